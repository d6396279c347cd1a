"""The machine's checks after each step are incremental (an account no rule touched whose record
and history are unchanged is not checked again; the trail walk, the re-hash and the sealed-value
check cover only appended or changed events; each purger call is checked once, and again when
an account's confirmations or windows grow). Each planted fault here appears at a step that does
not touch the faulty account, after that account was checked clean: an incremental check that
missed it would let the step pass. Each fault's honest twin passes the same steps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from account_lifecycle import AccountStore, HistoryTampered, Lifecycle, MemoryStore, Policy
from account_lifecycle.audit import AuditEvent
from account_lifecycle.model import AccountRecord, Actor
from account_lifecycle.sealed import SealedValue
from account_lifecycle.testing.incremental import TouchedModel
from account_lifecycle.testing.stateful import LifecycleStateMachine

History = tuple[AuditEvent, ...]


class FaultyStore(MemoryStore):
    """A ``MemoryStore`` that, once ``fault`` is set, hands out acct-1's history (and, with
    ``record_fault``, its record) changed by it, without any write."""

    fault: Callable[[History], History] | None = None
    record_fault: Callable[[AccountRecord], AccountRecord] | None = None

    def history(self, account_id: str) -> History:
        events = super().history(account_id)
        return self.fault(events) if self.fault is not None and account_id == "acct-1" else events

    def get(self, account_id: str) -> AccountRecord:
        record = super().get(account_id)
        if self.record_fault is not None and account_id == "acct-1":
            return self.record_fault(record)
        return record


#: a policy with a hold (its reason is sealed), a cancel-time and an expiry-time category
HELD = Policy.from_toml(
    'name = "incremental"\n[survey]\nmode = "off"\n[recovery]\nwindow = "30 days"\n[purge]\n'
    'categories = [{ name = "contacts", at = "cancel" }, { name = "backups", at = "expiry" }]\n'
    'on_hold = "wait"\n'
)


class OnFaultyStore(LifecycleStateMachine):
    policy = HELD

    def make_store(self) -> AccountStore:
        return FaultyStore()


def _checked_clean(**attributes: Any) -> OnFaultyStore:
    """A machine with acct-1 (cancelled: purger calls made, a hold placed: a sealed value)
    and acct-2, both checked clean; then a step on acct-2 only."""
    machine = type("Machine", (OnFaultyStore,), attributes)()
    first = machine.first_account()
    second = machine.open_account("b@example.com", 1, [])
    machine.place_hold(first, "support", 0)  # on contacts: its reason "case-1" is sealed
    machine.release_hold(first, "support", 0)
    machine.owner_cancels(first, "exact", True)
    machine.lifecycle_invariants()
    assert any(e.sealed_values for e in machine.lc.history(first)), "the hold's reason is sealed"
    machine.request_cancellation(second, "owner")
    assert isinstance(machine.model, TouchedModel)
    assert first not in machine.model.touched  # the next check may skip acct-1 ...
    return machine


def _edit_first(events: History) -> History:
    first = attrs.evolve(events[0], details={**events[0].details, "note": "edited"})
    return (first, *events[1:])


def _reseal(events: History) -> History:
    return tuple(
        attrs.evolve(e, sealed_values={k: SealedValue(v.salt, "case-9") for k, v in e.sealed_values.items()})
        if e.sealed_values
        else e
        for e in events
    )


def _stray_outcome(events: History) -> History:
    last = events[-1]
    stray = attrs.evolve(last, seq=last.seq + 1, action="category_purged", details={"category": "contacts"})
    return (*events, stray)


#: name -> (history fault, checked invariants, expected error, how its message starts)
HISTORY_FAULTS: dict[str, tuple[Callable[[History], History], tuple[str, ...], type[Exception], str]] = {
    "an old event rewritten": (_edit_first, ("chain_verifies",), HistoryTampered, ""),
    "the last event dropped": (lambda h: h[:-1], ("chain_verifies",), HistoryTampered, ""),
    "an event in the middle dropped": (lambda h: (h[0], *h[2:]), ("chain_verifies",), HistoryTampered, ""),
    "two events swapped": (lambda h: (h[1], h[0], *h[2:]), ("chain_verifies",), HistoryTampered, ""),
    "a sealed value changed": (_reseal, ("chain_verifies",), HistoryTampered, ""),
    "the last event dropped, versions": (lambda h: h[:-1], ("versions_grow_by_one",), AssertionError, ""),
    "an outcome without a start": (
        _stray_outcome,
        ("purge_steps_started_first",),
        AssertionError,
        "acct-1: event",
    ),
}


@pytest.mark.parametrize("fault", list(HISTORY_FAULTS))
def test_a_history_fault_on_an_untouched_account_is_reported_at_that_step(fault: str) -> None:
    change, invariants, error, message = HISTORY_FAULTS[fault]
    machine = _checked_clean(checked_invariants=invariants)
    store = machine.store
    assert isinstance(store, FaultyStore)
    store.fault = change
    with pytest.raises(error) as info:
        machine.lifecycle_invariants()
    assert str(info.value).startswith(message), str(info.value)


def test_the_same_steps_on_an_honest_store_pass() -> None:
    machine = _checked_clean()
    machine.lifecycle_invariants()
    machine.lifecycle_invariants()  # nothing changed: every account skipped, still clean
    machine.teardown()


def test_a_record_changed_without_a_write_is_reported() -> None:
    machine = _checked_clean(checked_invariants=("matches_reference",))
    store = machine.store
    assert isinstance(store, FaultyStore)
    store.record_fault = lambda record: attrs.evolve(record, owner="someone-else")
    with pytest.raises(AssertionError):
        machine.lifecycle_invariants()


def test_a_late_divergence_of_the_reference_is_reported() -> None:
    """The reference changes at a step that sends no command (as a rule reads it through
    ``model`` to change it): the account is checked again."""
    machine = _checked_clean(checked_invariants=("matches_reference",))
    machine.lifecycle_invariants()
    machine.model["acct-1"].owner = "someone-else"
    with pytest.raises(AssertionError):
        machine.lifecycle_invariants()


def test_a_refused_command_that_writes_is_reported() -> None:
    class WritesOnRefusal(Lifecycle):
        def withdraw(self, account_id: str, actor: Actor, **kwargs: Any) -> AccountRecord:
            record = self.store.get(account_id)
            try:
                return super().withdraw(account_id, actor, **kwargs)
            except Exception:
                moved = attrs.evolve(record, version=record.version + 1)
                self.store.save(moved, expected_version=record.version, events=())
                raise

    class Machine(LifecycleStateMachine):
        def make_lifecycle(self, **options: Any) -> Lifecycle:
            return WritesOnRefusal(self.policy, **options)

    machine = Machine()
    account = machine.first_account()
    with pytest.raises(AssertionError, match="a refused command wrote something"):
        machine.withdraw(account, "owner")  # nothing to withdraw: refused


def _purged() -> OnFaultyStore:
    """acct-1 cancelled by its owner (cancel-time purger calls), the clock past its window and a
    sweep (the expiry-time call), checked clean."""
    machine = _checked_clean()
    machine.advance_clock(120, 0)
    machine.sweep()
    machine.lifecycle_invariants()
    assert machine.purgers["backups"].calls, "the expiry-time category was purged"
    return machine


def test_a_non_owner_confirmation_after_the_calls_were_checked_is_reported() -> None:
    machine = _purged()
    machine.confirmations["acct-1"].append((machine.clock.now(), "support"))
    with pytest.raises(AssertionError, match="a non-owner confirmed"):
        machine.lifecycle_invariants()


def test_a_late_call_without_a_confirmation_is_reported() -> None:
    machine = _purged()
    call = machine.purgers["contacts"].calls[0]
    machine.purgers["contacts"].calls.append(attrs.evolve(call, account_id="acct-2"))
    with pytest.raises(AssertionError, match="contacts of acct-2 purged without a confirmation"):
        machine.lifecycle_invariants()


def test_an_earlier_expiry_call_is_checked_again_against_a_later_window() -> None:
    machine = _purged()
    now = machine.clock.now()
    machine.windows["acct-1"].append((now, now + timedelta(seconds=1)))
    with pytest.raises(AssertionError, match="backups of acct-1 purged at"):
        machine.lifecycle_invariants()


class LateRewrite(MemoryStore):
    """Rewrites acct-1's first event once 12 writes have reached the store, whichever account
    they were for: the fault appears late in an example, usually at a step on another account."""

    writes = 0

    def save(self, record: AccountRecord, **kwargs: Any) -> None:
        super().save(record, **kwargs)
        self.writes += 1

    def history(self, account_id: str) -> History:
        events = super().history(account_id)
        return _edit_first(events) if account_id == "acct-1" and self.writes >= 12 else events


class OnLateRewrite(LifecycleStateMachine):
    checked_invariants = ("chain_verifies",)

    def make_store(self) -> AccountStore:
        return LateRewrite()


def test_a_search_finds_a_rewrite_appearing_late_in_an_example() -> None:
    with pytest.raises(HistoryTampered, match="content does not match its hash"):
        run_state_machine_as_test(
            OnLateRewrite,
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
