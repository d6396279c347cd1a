"""``chain_verifies`` re-hashes only the events appended since the previous step; a store that
rewrites an event verified at an earlier step is still caught at the step it does so (the
earlier events are compared field by field, and the library verifies the whole history when
they differ)."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from account_lifecycle import AccountStore, HistoryTampered, MemoryStore, policies
from account_lifecycle.audit import AuditEvent
from account_lifecycle.testing.stateful import LifecycleStateMachine


class RewritingStore(MemoryStore):
    """Hands out the first event with changed details (its stored hash unchanged) once the
    account has three events: the kind of edit a hash chain exists to reveal."""

    def history(self, account_id: str) -> tuple[AuditEvent, ...]:
        events = super().history(account_id)
        if len(events) < 3:
            return events
        first = attrs.evolve(events[0], details={**events[0].details, "note": "edited"})
        return (first, *events[1:])


class OnRewritingStore(LifecycleStateMachine):
    policy = policies.ALLCLIENTS
    checked_invariants = ("chain_verifies",)

    def make_store(self) -> AccountStore:
        return RewritingStore()


def test_an_event_rewritten_after_it_was_verified_is_reported() -> None:
    with pytest.raises(HistoryTampered, match="content does not match its hash"):
        run_state_machine_as_test(
            OnRewritingStore,
            settings=settings(
                max_examples=200,
                stateful_step_count=20,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            ),
        )


def test_the_same_machine_on_an_honest_store_passes() -> None:
    class Honest(OnRewritingStore):
        def make_store(self) -> AccountStore:
            return MemoryStore()

    run_state_machine_as_test(
        Honest,
        settings=settings(
            max_examples=30, stateful_step_count=20, deadline=None, database=None, derandomize=True
        ),
    )
