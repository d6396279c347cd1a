"""The decision table compiled from a policy's machine (``compiled.DecisionTable``) decides
exactly as firing the ``transitions`` machine does (``PolicyMachine.decide``): for every state,
every trigger the machine has (and some it has not), and every outcome of every guard (pass,
refuse, decline a route, raise), the same new state or the same error, and the same refusal
kept on the attempt. Guards are replaced by scripted ones of the same names on the machine
itself, so the table is compiled from, and compared with, the very same machine.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from account_lifecycle import Actor, Lifecycle, MemoryStore, policies
from account_lifecycle.compiled import DecisionTable
from account_lifecycle.machine import _NOT_THIS_WAY, Attempt, Guard, NeedsPrerequisites, PolicyMachine
from account_lifecycle.model import AccountRecord, Action, Relation, State
from account_lifecycle.policy import Policy
from account_lifecycle.testing.fakes import fake_purgers
from account_lifecycle.testing.strategies import policies as drawn_policies

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OUTCOMES = ("pass", "refuse", "decline", "raise")


class Refused(Exception):
    """What a scripted guard refuses with: one instance per guard name, compared by identity."""


class Script:
    """The outcome each guard (by name) gives, as set by the test."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}
        self.refusals: dict[str, Refused] = {}

    def check(self, name: str) -> Any:
        def check(attempt: Attempt) -> Exception | None:
            outcome = self.outcomes.get(name, "pass")
            if outcome == "pass":
                return None
            if outcome == "decline":
                return _NOT_THIS_WAY
            if outcome == "raise":
                raise NeedsPrerequisites(name)
            return self.refusals.setdefault(name, Refused(name))

        return check


def scripted(policy: Policy) -> tuple[PolicyMachine, DecisionTable, Script, dict[tuple[str, str], list[str]]]:
    """The policy's machine with every guard replaced by a scripted guard of the same name, the
    table compiled from that machine, the script, and the guard names of each (trigger, source)."""
    machine = PolicyMachine(policy)
    script = Script()
    names: dict[tuple[str, str], list[str]] = {}
    for trigger, event in machine.machine.events.items():
        for source, transitions in event.transitions.items():
            seen: list[str] = []
            for t in transitions:
                for condition in t.conditions:
                    guard = condition.func
                    assert isinstance(guard, Guard)
                    condition.func = Guard(guard.name, script.check(guard.name), guard.needs_input)
                    if guard.name not in seen:
                        seen.append(guard.name)
            names[(str(trigger), source)] = seen
    return machine, DecisionTable(machine), script, names


def outcome(decide: Any, trigger: str, state: State) -> tuple[Any, ...]:
    """What one decision gives: the new state, or the error (by identity for a scripted
    refusal, by type and text otherwise), with the refusal kept on the attempt."""
    record = AccountRecord(account_id="acct-1", state=state, owner="owner")
    attempt = Attempt(record=record, actor=Actor.user("owner"), relation=Relation.OWNER, now=NOW)
    try:
        dest = decide(trigger, attempt)
    except Refused as exc:
        return ("refused", id(exc), id(attempt.refusal))
    except Exception as exc:
        kept = attempt.refusal
        return ("error", type(exc).__name__, str(exc), None if kept is None else id(kept))
    assert attempt.state == dest.value
    return ("state", dest, attempt.refusal is None)


def triggers_of(machine: PolicyMachine) -> list[str]:
    """Every trigger of the machine, every action, and a name no policy has."""
    return sorted({*machine.machine.events, *(a.value for a in Action), "no_such_step"})


def assignments(names: list[str]) -> Iterator[dict[str, str]]:
    for combo in itertools.product(OUTCOMES, repeat=len(names)):
        yield dict(zip(names, combo, strict=True))


@pytest.mark.parametrize("policy", [policies.SMRTPHONE, policies.ALLCLIENTS], ids=lambda p: p.name)
def test_the_table_decides_as_the_machine_for_every_state_trigger_and_guard_outcome(policy: Policy) -> None:
    """Exhaustive on the built-in policies: every combination of guard outcomes."""
    machine, table, script, names = scripted(policy)
    assert table.compiled
    checked = 0
    for trigger in triggers_of(machine):
        for state in State:
            for assignment in assignments(names.get((trigger, state.value), [])):
                script.outcomes = assignment
                assert outcome(table.decide, trigger, state) == outcome(machine.decide, trigger, state), (
                    trigger,
                    state,
                    assignment,
                )
                checked += 1
    assert checked > 400  # the confirm of SMRTPHONE alone has 4**5 combinations


@settings(max_examples=60)
@given(policy=drawn_policies(), data=st.data())
def test_the_table_decides_as_the_machine_on_drawn_policies(policy: Policy, data: st.DataObject) -> None:
    """Any policy the strategies draw, every state and trigger, drawn guard outcomes."""
    machine, table, script, names = scripted(policy)
    for trigger in triggers_of(machine):
        for state in State:
            guards = names.get((trigger, state.value), [])
            script.outcomes = {name: data.draw(st.sampled_from(OUTCOMES), label=name) for name in guards}
            assert outcome(table.decide, trigger, state) == outcome(machine.decide, trigger, state)


def test_the_table_is_built_from_whatever_transitions_the_machine_has() -> None:
    """A trigger added to the machine (as a new action would be) is in the table, decided as
    the machine decides it; a transition the table cannot reproduce (a plain callable as a
    condition) is decided by firing the machine."""
    machine = PolicyMachine(policies.ALLCLIENTS)
    script = Script()
    machine.machine.add_transition(
        "add_member", "active", None, conditions=[Guard("may_add_member", script.check("may_add_member"))]
    )
    machine.machine.add_transition("odd_step", "active", "surveyed", conditions=[lambda event: True])
    table = DecisionTable(machine)
    assert table.rows["add_member"]["active"] is not None
    assert table.rows["odd_step"]["active"] is None  # fired through the machine
    for name in ("pass", "refuse", "decline", "raise"):
        script.outcomes = {"may_add_member": name}
        for trigger in ("add_member", "odd_step"):
            for state in State:
                assert outcome(table.decide, trigger, state) == outcome(machine.decide, trigger, state)


def test_the_command_path_decides_through_the_table_and_allowed_actions_read_the_machine() -> None:
    """A lifecycle's rules hold the table compiled from its machine; a refusal reads the same
    either way, and ``allowed_actions`` still asks the machine."""
    lc = Lifecycle(
        policies.ALLCLIENTS, store=MemoryStore(), purgers=fake_purgers(policies.ALLCLIENTS).values()
    )
    assert lc.rules.table.machine is lc.machine
    lc.open("acct-1", owner="owner")
    owner = Actor.user("owner")
    assert Action.REQUEST_CANCELLATION in lc.allowed_actions("acct-1", owner)
    assert lc.request_cancellation("acct-1", owner).state is State.SURVEYED
    calls: list[str] = []
    original = lc.machine.possible

    def spy(trigger: str, attempt: Attempt) -> bool:
        calls.append(trigger)
        return original(trigger, attempt)

    lc.machine.possible = spy  # type: ignore[method-assign]
    lc.allowed_actions("acct-1", owner)
    assert calls
