"""A machine class with the default ``make_lifecycle`` lends one ``Lifecycle`` per policy to one
run at a time (``testing.reuse``): each run still sees only its own store, clock, checks and
purgers, two live machines never share one, and a host's ``make_lifecycle`` is called per run."""

from __future__ import annotations

from typing import Any

import pytest

from account_lifecycle import AccountNotFound, Lifecycle, State, policies
from account_lifecycle.testing.stateful import START, GeneratedPolicyMachine, LifecycleStateMachine


class SmrtPhoneRuns(LifecycleStateMachine):
    policy = policies.SMRTPHONE


def _run_far(machine: LifecycleStateMachine) -> str:
    """Cancel and purge the first account, break a purger, move the clock: state a later run
    must not see."""
    account = machine.first_account()
    machine.set_pending_prerequisites(account, ["+15550100"])
    machine.set_pending_prerequisites(account, [])
    machine.owner_cancels(account, "exact", True)
    machine.break_purger("acct-9", 0, 2)
    machine.advance_clock(120, 0)
    machine.sweep()
    machine.lifecycle_invariants()
    assert machine.lc.get(account).state is State.PURGED
    return account


def test_a_later_run_gets_the_same_lifecycle_over_its_own_store_clock_and_purgers() -> None:
    first = SmrtPhoneRuns()
    account = _run_far(first)
    lifecycle = first.lc
    first.teardown()

    second = SmrtPhoneRuns()
    assert second.lc is lifecycle  # lent again: the policy's machine is not rebuilt
    assert second.clock.now() == START
    assert second.lc.clock.now() == START
    assert all(p.calls == [] for p in second.purgers.values())
    assert all(p.during == {} for p in second.purgers.values())
    assert all(p.broken is second.broken for p in second.purgers.values())
    assert second.broken == {}
    with pytest.raises(AccountNotFound):
        second.lc.get(account)  # the first run's store is not this one's
    again = _run_far(second)  # and it runs the same way
    assert again == account
    assert [c.account_id for c in second.purgers["agents"].calls] == [account]
    second.teardown()


def test_two_live_machines_never_share_a_lifecycle() -> None:
    one, two = SmrtPhoneRuns(), SmrtPhoneRuns()
    assert one.lc is not two.lc
    a = one.first_account()
    one.owner_cancels(a, "exact", True)
    b = two.first_account()
    assert a == b  # the same id, in two stores
    assert two.lc.get(b).state is State.ACTIVE
    assert one.lc.get(a).state is not State.ACTIVE
    one.lifecycle_invariants()
    two.lifecycle_invariants()
    one.teardown()
    two.teardown()


def test_a_host_make_lifecycle_is_called_for_every_run() -> None:
    built: list[Lifecycle] = []

    class Host(SmrtPhoneRuns):
        def make_lifecycle(self, **options: Any) -> Lifecycle:
            built.append(Lifecycle(self.policy, **options))
            return built[-1]

    for _ in range(2):
        machine = Host()
        assert machine.lc is built[-1]
        assert machine.lc.store is machine.store
        machine.teardown()
    assert len(built) == 2


def test_a_drawn_policy_gets_a_lifecycle_of_its_own() -> None:
    """``GeneratedPolicyMachine`` gives back the class policy's lifecycle when it draws its
    policy, and builds one for the drawn policy."""
    machine = GeneratedPolicyMachine()
    lent = machine.lc
    machine.use_policy(policies.SMRTPHONE)
    assert machine.lc is not lent
    assert machine.lc.policy is policies.SMRTPHONE
    machine.teardown()
    other = GeneratedPolicyMachine()
    assert other.lc is lent
    other.teardown()
