"""The transitions machine: one per policy, no shortcuts, no models kept alive."""

from __future__ import annotations

import gc
from datetime import UTC, datetime

import pytest
from world import OWNER, World

from account_lifecycle import Duration, ManualClock, MemoryStore, State, policies
from account_lifecycle.machine import Attempt, PolicyMachine
from account_lifecycle.model import AccountRecord, Relation


def test_no_auto_transition_shortcuts() -> None:
    """auto_transitions is off: there is no to_<state>() trigger that skips every guard."""
    for policy in (policies.SMRTPHONE, policies.ALLCLIENTS):
        machine = PolicyMachine(policy)
        assert not any(name.startswith("to_") for name in machine.events())
        assert machine.machine.auto_transitions is False


def test_machine_holds_no_account_models(store, clock: ManualClock) -> None:
    """Driving many accounts leaves the shared machine without any model attached."""
    world = World(policies.ALLCLIENTS, store, clock)
    for n in range(50):
        world.open(f"acct-{n}", identity=None)
        world.cancel(f"acct-{n}")
    gc.collect()
    assert world.lc.machine.machine.models == []


@pytest.mark.parametrize(
    ("policy", "states"),
    [
        (
            policies.SMRTPHONE,
            {State.ACTIVE, State.SURVEYED, State.PENDING_CONFIRM, State.CANCELLED, State.PURGED},
        ),
        (policies.ALLCLIENTS, set(State)),
    ],
)
def test_reachable_states(policy, states) -> None:
    """smrtPhone never reaches RESTORABLE; AllClients reaches every state."""
    assert PolicyMachine(policy).reachable_states == states


def test_transitions_list_guards_by_name() -> None:
    """The definition the diagram and verify read names every guard of confirm."""
    machine = PolicyMachine(policies.SMRTPHONE)
    confirm = [t for t in machine.transitions() if t[0] == "confirm"]
    assert confirm == [
        ("confirm", State.PENDING_CONFIRM, State.CANCELLED,
         ("may_confirm", "answers_open_request", "token_matches", "acknowledged", "prerequisites_clear")),
    ]  # fmt: skip


def test_possible_fires_nothing() -> None:
    """Asking whether an action is possible does not change the attempt's state."""
    machine = PolicyMachine(policies.ALLCLIENTS)
    record = AccountRecord(account_id="a", state=State.ACTIVE, owner="owner")
    attempt = Attempt(
        record=record, actor=OWNER, relation=Relation.OWNER, now=datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert machine.possible("request_cancellation", attempt)
    assert attempt.state == ""
    assert machine.decide("request_cancellation", attempt) is State.SURVEYED


def test_weekly_window_policy(clock: ManualClock) -> None:
    """A policy with a window in weeks counts exact days."""
    import attrs

    from account_lifecycle import RecoveryPolicy

    policy = attrs.evolve(policies.ALLCLIENTS, recovery=RecoveryPolicy(Duration(2, "weeks")))
    world = World(policy, MemoryStore(), clock)
    world.open()
    record = world.cancel()
    assert record.restorable_until == datetime(2026, 12, 14, 12, tzinfo=UTC)
