"""DjangoStore's outbox positions increase in commit order: on PostgreSQL a writer numbering its
entries waits for the advisory lock of a transaction that numbered before it and has not yet
committed, so no reader ever sees a position appear below one it has read."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import transaction

from account_lifecycle.contrib.django.store import DjangoStore
from account_lifecycle.testing.store_contract import new_account

WAIT = 30.0  # seconds: a bound on each wait for the other thread, never a pause


def waiting_for_advisory_lock() -> int:
    import pg
    import psycopg

    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.postgres
def test_a_later_writer_waits_for_an_open_transaction_that_numbered_first(pg_db: str) -> None:
    """A opens a transaction (as a host view would), creates an account and stops before its
    commit; B then creates another and is seen waiting on the outbox lock. Nothing is visible to
    a reader yet; once A commits, B numbers after A, and a reader sees A's entries, then B's."""
    store = DjangoStore(pg_db)
    a_numbered, a_may_commit = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def writer_a() -> None:
        try:
            with transaction.atomic(using=pg_db):
                store.create(*new_account("acc-a", actions=("open", "second")))
                a_numbered.set()
                assert a_may_commit.wait(WAIT)
        except BaseException as exc:  # reported below
            failures.append(exc)
            a_numbered.set()

    def writer_b() -> None:
        try:
            store.create(*new_account("acc-b"))
        except BaseException as exc:  # reported below
            failures.append(exc)

    a = threading.Thread(target=writer_a)
    a.start()
    assert a_numbered.wait(WAIT)
    b = threading.Thread(target=writer_b)
    b.start()
    deadline = time.monotonic() + WAIT
    while waiting_for_advisory_lock() == 0:  # a condition polled, with a bound
        assert time.monotonic() < deadline, "B never waited for A's outbox lock"
        time.sleep(0.01)
    assert store.outbox_read(after=0, limit=10) == []
    a_may_commit.set()
    a.join(WAIT)
    b.join(WAIT)

    assert failures == []
    entries = store.outbox_read(after=0, limit=10)
    assert [(e.position, e.event.account_id, e.event.seq) for e in entries] == [
        (1, "acc-a", 1),
        (2, "acc-a", 2),
        (3, "acc-b", 1),
    ]
    assert store.outbox_head() == 3


@pytest.mark.parametrize("db", ["sqlite_db", "pg_db"])
def test_every_write_path_numbers_its_events_in_the_outbox(db: str, request: pytest.FixtureRequest) -> None:
    """create, save and save_many each add their events to the outbox, in order, as history
    returns them; a host transaction that fails leaves none."""
    from account_lifecycle.ports import Write
    from account_lifecycle.testing.store_contract import NOW, advance

    if db == "pg_db":
        request.applymarker(pytest.mark.postgres)
    store = DjangoStore(request.getfixturevalue(db))
    first, events = new_account("acc-1")
    store.create(first, events)
    second, more = advance(first, actions=("a", "b"))
    store.save(second, expected_version=1, events=more)
    third, last = advance(second)
    assert store.save_many([Write(third, 2, last)], now=NOW) == [None]
    fourth, lost = advance(third)

    def failing_view() -> None:
        with transaction.atomic(using=store.using):
            store.save(fourth, expected_version=3, events=lost)
            raise RuntimeError("the host's view fails")

    with pytest.raises(RuntimeError):
        failing_view()

    entries = store.outbox_read(after=0, limit=100)
    assert [e.event for e in entries] == list(store.history("acc-1"))
    assert [e.position for e in entries] == [1, 2, 3, 4]
    assert [e.position for e in store.outbox_read(after=2, limit=1)] == [3]
