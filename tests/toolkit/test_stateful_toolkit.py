"""LifecycleStateMachine as a host uses it: over generated policies, with a host's own purgers,
checks and lifecycle, stepped by hand, and its invariants documented and selectable."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from account_lifecycle import (
    AuditEvent,
    Lifecycle,
    PrerequisiteCheck,
    Purger,
    State,
    policies,
)
from account_lifecycle.testing import INVARIANT_TABLE, INVARIANTS, GeneratedPolicyMachine, machine_for
from account_lifecycle.testing.fakes import fake_purgers
from account_lifecycle.testing.stateful import LifecycleStateMachine

DOCS = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


# -- generated policies ------------------------------------------------------------------------


class AnyPolicy(GeneratedPolicyMachine):
    """Each run draws its own policy from strategies.policies()."""


TestAnyPolicy = AnyPolicy.TestCase
TestAnyPolicy.settings = settings(
    max_examples=250,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# -- a host's own purgers, checks and lifecycle ---------------------------------------------------


class Carrier:
    """A stand-in for the carrier API answering which numbers are still to be ported out."""

    def __init__(self, pending: Mapping[str, Sequence[str]]) -> None:
        self.pending = pending

    def port_outs(self, account_id: str) -> Sequence[str]:
        return [f"number {n}" for n in self.pending.get(account_id, ())]


class SmrtPhoneHost(LifecycleStateMachine):
    policy = policies.SMRTPHONE

    def make_purgers(self) -> Iterable[Purger]:
        self.fakes = fake_purgers(self.policy, items=0)  # the host's tables, two rows of acct-1 each
        for fake in self.fakes.values():
            fake.seed("acct-1", 2)
        return self.fakes.values()

    def make_prerequisites(self, pending: Mapping[str, Sequence[str]]) -> Mapping[str, PrerequisiteCheck]:
        return {"port_outs": Carrier(pending).port_outs}

    def make_lifecycle(self, **options: Any) -> Lifecycle:
        self.heard: list[AuditEvent] = []
        return Lifecycle(self.policy, listeners=[self.heard.append], **options)


def test_a_host_machine_steps_through_its_own_ports_by_hand() -> None:
    """Rules called one by one: pending port-outs refuse the confirmation, then the owner
    confirms and the host's purgers empty the host's tables; every invariant holds after
    each step."""
    machine = SmrtPhoneHost()
    account = machine.first_account()
    machine.set_pending_prerequisites(account, ["+15550100"])

    machine.owner_cancels(account, "exact", True)
    machine.lifecycle_invariants()
    assert machine.lc.get(account).state is State.PENDING_CONFIRM

    machine.set_pending_prerequisites(account, [])
    machine.confirm(account, "owner", "exact", set(), True)
    machine.lifecycle_invariants()
    machine.teardown()

    assert machine.lc.get(account).state is State.PURGED
    assert {name: fake.remaining("acct-1") for name, fake in machine.fakes.items()} == dict.fromkeys(
        machine.fakes, 0
    )
    assert [c.account_id for c in machine.purgers["agents"].calls] == ["acct-1"]
    assert machine.purgers["crm_contacts"].calls == []
    heard = [e.action for e in machine.heard][:4]
    assert heard == ["open", "request_cancellation", "submit_survey", "confirm"]


def test_a_host_machine_runs_under_hypothesis() -> None:
    """The same host machine passes a bounded Hypothesis run."""
    run_state_machine_as_test(
        SmrtPhoneHost, settings=settings(max_examples=40, stateful_step_count=20, deadline=None)
    )


# -- invariants ---------------------------------------------------------------------------------


def test_every_invariant_has_a_unique_name_and_says_what_it_checks_and_catches() -> None:
    """INVARIANTS are the names of INVARIANT_TABLE, each documented."""
    assert tuple(i.name for i in INVARIANT_TABLE) == INVARIANTS
    assert len(set(INVARIANTS)) == len(INVARIANTS) == 10
    for invariant in INVARIANT_TABLE:
        assert re.fullmatch(r"[a-z_]+", invariant.name)
        assert invariant.checks.endswith(".")
        assert invariant.catches


def test_the_docs_table_is_the_invariant_table() -> None:
    """docs/testing.md's invariants table has one row per invariant, in order, with the exact
    text of INVARIANT_TABLE."""
    section = DOCS.read_text(encoding="utf-8").split("### Invariants\n", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]

    assert rows == [f"| `{i.name}` | {i.checks} | {i.catches} |" for i in INVARIANT_TABLE]


def test_an_unknown_invariant_name_is_refused() -> None:
    """checked_invariants only takes names from INVARIANTS; a typo is an error, not a no-op."""
    misspelt = machine_for(policies.ALLCLIENTS, checked_invariants=("chain_verified",))

    with pytest.raises(ValueError, match=r"unknown invariants \['chain_verified'\]"):
        misspelt()


def test_machine_for_builds_a_subclass_per_policy() -> None:
    """machine_for(policy, **attributes) names the policy and keeps the attributes."""
    machine = machine_for(policies.SMRTPHONE, checked_invariants=("chain_verifies",))

    assert machine.__name__ == "LifecycleStateMachineForSmrtphone"
    assert (machine.policy, tuple(machine.checked_invariants)) == (policies.SMRTPHONE, ("chain_verifies",))
    assert issubclass(machine, LifecycleStateMachine)
