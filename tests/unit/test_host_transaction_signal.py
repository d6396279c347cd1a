"""The optional store signal ``in_host_transaction()`` (``ports.HostTransactionStore``) and
``on_commit`` (``ports.HostCommitStore``): what ``confirm`` does with them, on a MemoryStore
that a test tells it is inside a host's transaction, and the fallbacks for a store without them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from account_lifecycle import Actor, Lifecycle, ManualClock, MemoryStore, NotPermitted, State, policies
from account_lifecycle.ports import in_host_transaction, on_host_commit
from account_lifecycle.testing.fakes import RecordingPurger, fake_identity_keys, recording_purgers

POLICY = policies.ALLCLIENTS
OWNER = Actor.user("u-1")
CANCEL_TIME = {c.name for c in POLICY.purge.categories if c.at == "cancel"}


class HostStore(MemoryStore):
    """A MemoryStore that says whether it is inside a host's transaction, and keeps the
    callbacks given to ``on_commit`` for the test to run (its "commit")."""

    def __init__(self, *, can_hook: bool) -> None:
        super().__init__()
        self.hosted = False
        self.can_hook = can_hook
        self.callbacks: list[Callable[[], object]] = []

    def in_host_transaction(self) -> bool:
        return self.hosted

    def on_commit(self, callback: Callable[[], object]) -> bool:
        if not self.can_hook:
            return False
        self.callbacks.append(callback)
        return True


def pending(store: MemoryStore, purgers: dict[str, RecordingPurger]) -> Lifecycle:
    lc = Lifecycle(
        POLICY,
        store=store,
        clock=ManualClock(datetime(2026, 12, 1, 9, tzinfo=UTC)),
        purgers=purgers.values(),
        identity_keys=fake_identity_keys(),
    )
    lc.open("acct-1", owner="u-1")
    lc.request_cancellation("acct-1", OWNER)
    lc.skip_survey("acct-1", OWNER)
    return lc


def called(purgers: dict[str, RecordingPurger]) -> set[str]:
    return {name for name, p in purgers.items() if p.calls}


def test_a_store_without_the_methods_is_never_in_a_host_transaction() -> None:
    store = MemoryStore()
    assert in_host_transaction(store) is False
    assert on_host_commit(store, lambda: pytest.fail("never called")) is False


@pytest.mark.parametrize("can_hook", [True, False])
def test_outside_the_hosts_transaction_confirm_purges_inline(can_hook: bool) -> None:
    store, purgers = HostStore(can_hook=can_hook), recording_purgers(POLICY)
    lc = pending(store, purgers)
    assert lc.confirm("acct-1", OWNER).state is State.RESTORABLE
    assert called(purgers) == CANCEL_TIME
    assert store.callbacks == []


def test_inside_it_confirm_defers_and_runs_the_work_on_the_hosts_commit() -> None:
    store, purgers = HostStore(can_hook=True), recording_purgers(POLICY)
    lc = pending(store, purgers)
    store.hosted = True
    assert lc.confirm("acct-1", OWNER).state is State.CANCELLED
    assert called(purgers) == set()
    (commit,) = store.callbacks
    store.hosted = False
    commit()  # the host committed
    assert called(purgers) == CANCEL_TIME
    assert lc.get("acct-1").state is State.RESTORABLE
    commit()  # run again (a host calling twice): nothing is due, nothing is called again
    assert all(len(p.calls) == 1 for name, p in purgers.items() if name in CANCEL_TIME)


def test_a_store_that_cannot_tell_the_commit_leaves_the_work_to_the_sweep() -> None:
    store, purgers = HostStore(can_hook=False), recording_purgers(POLICY)
    lc = pending(store, purgers)
    store.hosted = True
    assert lc.confirm("acct-1", OWNER).state is State.CANCELLED
    store.hosted = False
    assert called(purgers) == set()
    assert lc.sweep().restorable == ("acct-1",)
    assert called(purgers) == CANCEL_TIME


@pytest.mark.parametrize(("defer", "state"), [(True, State.CANCELLED), (False, State.RESTORABLE)])
def test_an_explicit_defer_is_obeyed_and_registers_nothing(defer: bool, state: State) -> None:
    store, purgers = HostStore(can_hook=True), recording_purgers(POLICY)
    lc = pending(store, purgers)
    store.hosted = True
    assert lc.confirm("acct-1", OWNER, defer=defer).state is state
    assert store.callbacks == []


def test_a_keyed_retry_of_a_deferred_confirm_registers_nothing_more() -> None:
    store, purgers = HostStore(can_hook=True), recording_purgers(POLICY)
    lc = pending(store, purgers)
    store.hosted = True
    lc.confirm("acct-1", OWNER, idempotency_key="k-1")
    lc.confirm("acct-1", OWNER, idempotency_key="k-1")
    assert len(store.callbacks) == 1


def test_a_refused_confirm_registers_nothing() -> None:
    store, purgers = HostStore(can_hook=True), recording_purgers(POLICY)
    lc = pending(store, purgers)
    store.hosted = True
    with pytest.raises(NotPermitted):
        lc.confirm("acct-1", Actor.user("stranger"))
    assert store.callbacks == []
    assert lc.get("acct-1").state is State.PENDING_CONFIRM
