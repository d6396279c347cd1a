"""No purger erases before the host commits: ``confirm`` inside the host's ``transaction.atomic()``
on a ``DjangoStore`` defers its cancel-time purge (the store says it is in the host's
transaction) and runs it through the fenced runner once the host has committed
(``transaction.on_commit``); a rollback drops the confirmation and calls no purger. Outside any
``atomic()`` the purge runs inline as before. On SQLite and on PostgreSQL."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import attrs
import pytest
from django.db import connections, transaction

from account_lifecycle import Actor, Lifecycle, ManualClock, State, policies
from account_lifecycle.contrib.django.models import AccountRow, EventRow
from account_lifecycle.contrib.django.store import DjangoStore
from account_lifecycle.model import PurgeStatus
from account_lifecycle.ports import in_host_transaction, on_host_commit
from account_lifecycle.testing.fakes import RecordingPurger, fake_identity_keys, recording_purgers

POLICY = policies.ALLCLIENTS
OWNER = Actor.user("u-1")
CANCEL_TIME = {c.name for c in POLICY.purge.categories if c.at == "cancel"}


class HostFailure(Exception):
    """The host's request fails after the confirm, inside its transaction."""


@pytest.fixture(params=["sqlite_db", pytest.param("pg_db", marks=pytest.mark.postgres)])
def alias(request: pytest.FixtureRequest) -> str:
    name: str = request.getfixturevalue(request.param)
    return name


@pytest.fixture
def purgers() -> dict[str, RecordingPurger]:
    return recording_purgers(POLICY)


def lifecycle_on(
    alias: str, purgers: dict[str, RecordingPurger], clock: ManualClock, policy: Any = POLICY
) -> Lifecycle:
    return Lifecycle(
        policy,
        store=DjangoStore(alias),
        clock=clock,
        purgers=purgers.values(),
        identity_keys=fake_identity_keys(),
    )


@pytest.fixture
def lc(alias: str, purgers: dict[str, RecordingPurger], clock: ManualClock) -> Lifecycle:
    lc = lifecycle_on(alias, purgers, clock)
    lc.open("acct-1", owner="u-1")
    lc.request_cancellation("acct-1", OWNER)
    lc.skip_survey("acct-1", OWNER)
    return lc


def called(purgers: dict[str, RecordingPurger]) -> set[str]:
    return {name for name, p in purgers.items() if p.calls}


def events(alias: str) -> int:
    return int(EventRow.objects.using(alias).filter(account_id="acct-1").count())


def test_a_confirm_the_host_rolls_back_erases_nothing(
    lc: Lifecycle, alias: str, purgers: dict[str, RecordingPurger]
) -> None:
    """Rolled back: no purger was called (neither inside the block nor after it), the account
    was not cancelled, no event of the confirm is kept, and nothing is due for a sweep."""
    before = events(alias)
    seen: list[tuple[bool, State, set[str]]] = []

    def host_view() -> None:
        with transaction.atomic(using=alias):
            record = lc.confirm("acct-1", OWNER)
            seen.append((in_host_transaction(lc.store), record.state, called(purgers)))
            raise HostFailure

    with pytest.raises(HostFailure):
        host_view()

    # deferred: the steps were due, none started, no purger called inside the block
    assert seen == [(True, State.CANCELLED, set())]
    assert called(purgers) == set()
    assert lc.get("acct-1").state is State.PENDING_CONFIRM
    assert events(alias) == before
    assert lc.sweep().purged == ()
    assert called(purgers) == set()


def test_a_confirm_the_host_commits_is_erased_once_committed(
    lc: Lifecycle, alias: str, purgers: dict[str, RecordingPurger]
) -> None:
    """Committed: the cancel-time purgers run right after the commit (``on_commit``), not
    inside the block and without waiting for a sweep; the claim they ran under is dropped."""
    with transaction.atomic(using=alias):
        assert lc.confirm("acct-1", OWNER).state is State.CANCELLED
        assert called(purgers) == set()
        assert lc.get("acct-1").state is State.CANCELLED

    assert called(purgers) == CANCEL_TIME
    record = lc.get("acct-1")
    assert record.state is State.RESTORABLE
    assert all(record.purge[name].status is PurgeStatus.DONE for name in CANCEL_TIME)
    row = AccountRow.objects.using(alias).get(account_id="acct-1")
    assert (row.claim_owner, row.claim_until) == (None, None)
    assert all(len(p.calls) == 1 for name, p in purgers.items() if name in CANCEL_TIME)
    lc.verify_history("acct-1")


def test_a_confirm_outside_any_atomic_block_purges_inline(
    lc: Lifecycle, alias: str, purgers: dict[str, RecordingPurger]
) -> None:
    assert not in_host_transaction(lc.store)
    assert lc.confirm("acct-1", OWNER).state is State.RESTORABLE
    assert called(purgers) == CANCEL_TIME


def test_defer_false_inside_the_block_purges_inline_knowingly(
    lc: Lifecycle, alias: str, purgers: dict[str, RecordingPurger]
) -> None:
    with transaction.atomic(using=alias):
        assert lc.confirm("acct-1", OWNER, defer=False).state is State.RESTORABLE
        assert called(purgers) == CANCEL_TIME
    assert all(len(p.calls) == 1 for name, p in purgers.items() if name in CANCEL_TIME)


def test_defer_true_inside_the_block_leaves_the_work_to_the_sweep(
    lc: Lifecycle, alias: str, purgers: dict[str, RecordingPurger]
) -> None:
    """An explicit ``defer=True`` is the caller's choice of the sweep: nothing runs on commit."""
    with transaction.atomic(using=alias):
        lc.confirm("acct-1", OWNER, defer=True)
    assert called(purgers) == set()
    assert lc.get("acct-1").state is State.CANCELLED
    assert lc.sweep().restorable == ("acct-1",)
    assert called(purgers) == CANCEL_TIME


def test_a_policy_that_defers_its_cancel_work_is_left_to_the_sweep(
    alias: str, purgers: dict[str, RecordingPurger], clock: ManualClock
) -> None:
    """``[purge] cancel_work = "deferred"``: the sweep erases, in or out of the host's block."""
    deferred = attrs.evolve(POLICY, purge=attrs.evolve(POLICY.purge, cancel_work="deferred"))
    lc = lifecycle_on(alias, purgers, clock, deferred)
    lc.open("acct-1", owner="u-1")
    lc.request_cancellation("acct-1", OWNER)
    lc.skip_survey("acct-1", OWNER)
    with transaction.atomic(using=alias):
        lc.confirm("acct-1", OWNER)
    assert called(purgers) == set()
    assert lc.sweep().restorable == ("acct-1",)


def test_a_savepoint_rolled_back_inside_a_committed_block_erases_nothing(
    lc: Lifecycle, alias: str, purgers: dict[str, RecordingPurger]
) -> None:
    """The confirm in an inner ``atomic()`` the host rolls back, the outer block committed: the
    callback went with the savepoint."""

    def inner() -> None:
        with transaction.atomic(using=alias):
            lc.confirm("acct-1", OWNER)
            raise HostFailure

    with transaction.atomic(using=alias):
        with pytest.raises(HostFailure):
            inner()
        assert lc.get("acct-1").state is State.PENDING_CONFIRM
    assert called(purgers) == set()
    assert lc.get("acct-1").state is State.PENDING_CONFIRM


def test_a_sweeper_that_claims_first_keeps_the_account(
    lc: Lifecycle, alias: str, purgers: dict[str, RecordingPurger]
) -> None:
    """A worker claims the account between the host's commit and the confirm's callback (the
    host's own callback, registered first, runs first): the callback's runner is fenced out by
    the claim and calls nothing; the worker erases under its claim."""
    taken: list[Any] = []
    with transaction.atomic(using=alias):
        transaction.on_commit(lambda: taken.append(lc.claim_due(owner="worker")), using=alias)
        lc.confirm("acct-1", OWNER)

    (claim,) = taken
    assert claim.account_ids == ("acct-1",)
    assert called(purgers) == set()
    row = AccountRow.objects.using(alias).get(account_id="acct-1")
    assert row.claim_owner == "worker"  # the callback took no claim and dropped none
    assert lc.run_claimed("acct-1", claim.lease) is not None
    assert called(purgers) == CANCEL_TIME
    assert lc.get("acct-1").state is State.RESTORABLE


def test_a_purger_failing_after_the_commit_is_recorded_for_the_sweep(
    lc: Lifecycle, alias: str, purgers: dict[str, RecordingPurger], clock: ManualClock
) -> None:
    """The host's block exits normally; the failure is on the record and the sweep retries."""
    purgers["contacts"].fail_times = 1
    with transaction.atomic(using=alias):
        lc.confirm("acct-1", OWNER)
    record = lc.get("acct-1")
    assert record.state is State.CANCELLED
    assert record.purge["contacts"].status is PurgeStatus.FAILED
    assert "contacts backend unavailable" in (record.purge["contacts"].error or "")
    clock.advance(timedelta(minutes=1))  # the lifecycle's retry backoff
    assert lc.sweep().restorable == ("acct-1",)


def test_the_store_says_when_it_is_in_the_hosts_transaction(alias: str) -> None:
    store = DjangoStore(alias)
    assert store.in_host_transaction() is False
    with transaction.atomic(using=alias):
        assert store.in_host_transaction() is True
        assert DjangoStore("deferred" if alias == "default" else "default").in_host_transaction() is False
    assert store.in_host_transaction() is False


def test_under_manual_transactions_the_confirm_waits_for_the_sweep(
    lc: Lifecycle, alias: str, purgers: dict[str, RecordingPurger]
) -> None:
    """Autocommit off and no ``atomic()`` block: Django cannot run work on commit, so the
    store registers nothing (False) and the sweep erases after the host's ``commit()``."""
    transaction.set_autocommit(False, using=alias)
    try:
        assert lc.store.in_host_transaction()  # type: ignore[attr-defined]
        assert on_host_commit(lc.store, lambda: pytest.fail("never called")) is False
        assert lc.confirm("acct-1", OWNER).state is State.CANCELLED
        transaction.commit(using=alias)
    finally:
        transaction.set_autocommit(True, using=alias)
    assert called(purgers) == set()
    assert lc.get("acct-1").state is State.CANCELLED
    assert lc.sweep().restorable == ("acct-1",)
    assert called(purgers) == CANCEL_TIME


def test_the_settings_autocommit_off_counts_before_the_connection_opens(
    alias: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = connections[alias]
    conn.close()
    assert conn.connection is None
    monkeypatch.setitem(conn.settings_dict, "AUTOCOMMIT", False)
    assert DjangoStore(alias).in_host_transaction() is True
    monkeypatch.setitem(conn.settings_dict, "AUTOCOMMIT", True)
    assert DjangoStore(alias).in_host_transaction() is False
    assert conn.connection is None  # answered without connecting


def test_a_store_failure_after_the_commit_is_logged_not_raised(
    lc: Lifecycle, alias: str, purgers: dict[str, RecordingPurger], caplog: pytest.LogCaptureFixture
) -> None:
    """The callback's store read fails (the database went away): the host's block still exits
    normally, the failure is logged with no stored value, and the sweep erases later."""
    from account_lifecycle import StoreError

    real_get = lc.store.get
    failing = {"on": False}

    def get(account_id: str) -> Any:
        if failing["on"]:
            raise StoreError("reading account failed in Django database: connection lost")
        return real_get(account_id)

    with caplog.at_level(logging.WARNING, logger="account_lifecycle"):
        with transaction.atomic(using=alias):
            lc.confirm("acct-1", OWNER)
            object.__setattr__(lc.store, "get", get)
            failing["on"] = True
        failing["on"] = False
    assert called(purgers) == set()
    assert any("after the host committed stopped" in r.getMessage() for r in caplog.records)
    assert lc.sweep().restorable == ("acct-1",)
