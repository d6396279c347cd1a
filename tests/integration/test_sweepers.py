"""Parallel sweepers on real databases: several processes (and threads) sweep one store at
once, share the work, and never run one account's purge twice; purgers run outside any
store transaction.

This file is also the sweeper processes' program: ``python test_sweepers.py '<json args>'``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from account_lifecycle import (
    AccountStore,
    Actor,
    Duration,
    Lifecycle,
    ManualClock,
    Policy,
    PurgeCategory,
    PurgeContext,
    PurgePolicy,
    PurgeStatus,
    RecoveryPolicy,
    SQLiteStore,
    State,
    SurveyPolicy,
    SweepReport,
)
from account_lifecycle.testing.fakes import FakePurger, fake_purgers

POLICY = Policy(
    name="sweeptest",
    version=1,
    survey=SurveyPolicy(mode="off"),
    recovery=RecoveryPolicy(window=Duration(1, "months")),
    purge=PurgePolicy(
        categories=(
            PurgeCategory("files"),
            PurgeCategory("backups", "expiry"),
            PurgeCategory("archive", "expiry"),
        ),
    ),
)
OWNER = Actor.user("owner")
CANCELLED_AT = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)  # + 1 month = 30 April (clamped)
RETRY_CANCELLED_AT = datetime(2026, 4, 30, 12, 0, tzinfo=UTC)  # + 1 month = 30 May
SWEEP_AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
EXPIRED = tuple(f"exp-{n:02d}" for n in range(40))  # RESTORABLE, window ended: purged by the sweep
RETRY = tuple(f"ret-{n:02d}" for n in range(8))  # CANCELLED, files failed: retried by the sweep
SWEEPERS = 4


def ledger_line(ledger: Path | None, rendezvous: Path | None = None) -> Callable[[str, PurgeContext], None]:
    """What each purger does: append ``account category pid`` to a ledger. With *rendezvous*,
    a sweeper process's first purger call also waits there until a second sweeper process has
    reached its own first purger call (see ``arrive``), so sweepers overlap by construction."""
    arrived = False

    def run(account_id: str, context: PurgeContext) -> None:
        nonlocal arrived
        if ledger is not None:
            fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{account_id} {context.category} {os.getpid()}\n".encode())
            finally:
                os.close(fd)
        if rendezvous is not None and not arrived:
            arrived = True
            arrive(rendezvous, quorum=2)

    return run


def arrive(rendezvous: Path, quorum: int, timeout: float = 30.0) -> None:
    """A cross-process barrier on a directory: mark this process as arrived, then wait until
    *quorum* processes have (at most *timeout* seconds; past it the caller goes on, and the
    test's ``len(workers) >= 2`` names the failure instead of hanging). The first sweeper to
    reach a purger holds its claimed batch here until another sweeper has claimed a batch of
    its own and reached a purger: two processes have then both done work."""
    (rendezvous / str(os.getpid())).touch()
    deadline = time.monotonic() + timeout
    while sum(1 for _ in rendezvous.iterdir()) < quorum and time.monotonic() < deadline:
        time.sleep(0.001)  # polling a directory: an event between unrelated processes


def open_store(spec: dict[str, str]) -> Any:
    if spec["kind"] == "sqlite":
        return SQLiteStore(spec["path"])
    from account_lifecycle.adapters.postgres import PostgresStore

    return PostgresStore(spec["dsn"], schema=spec["schema"], max_connections=2)


def lifecycle(
    store: AccountStore,
    clock: ManualClock,
    ledger: Path | None,
    rendezvous: Path | None = None,
    **kwargs: Any,
) -> Lifecycle:
    purgers = fake_purgers(POLICY, before=ledger_line(ledger, rendezvous)).values()
    return Lifecycle(POLICY, store=store, clock=clock, purgers=purgers, **kwargs)


def sweeper_main(raw: str) -> None:
    """Open the store, say ready, wait for go, sweep once, print the report."""
    args = json.loads(raw)
    store = open_store(args["store"])
    lc = lifecycle(
        store,
        ManualClock(SWEEP_AT),
        Path(args["ledger"]),
        Path(args["rendezvous"]),
        sweep_batch=args["batch"],
    )
    print("ready", flush=True)
    assert sys.stdin.readline() == "go\n"
    report = lc.sweep()
    print(json.dumps({"purged": report.purged, "failed": report.failed, "restorable": report.restorable}))
    store.close()


def populate(store: AccountStore) -> None:
    """40 accounts whose window has ended, 8 whose cancel-time purge failed and is due again."""
    clock = ManualClock(CANCELLED_AT)
    lc = lifecycle(store, clock, None)
    files = lc.purgers["files"]
    assert isinstance(files, FakePurger)
    files.fail_when = lambda account_id, _: account_id in RETRY
    for account_id in EXPIRED + RETRY:
        if account_id == RETRY[0]:
            clock.set(RETRY_CANCELLED_AT)
        lc.open(account_id, owner="owner")
        lc.request_cancellation(account_id, OWNER)
        lc.confirm(account_id, OWNER)
    assert {lc.get(a).state for a in EXPIRED} == {State.RESTORABLE}
    assert {lc.get(a).state for a in RETRY} == {State.CANCELLED}


def run_sweepers(spec: dict[str, str], ledger: Path, count: int, batch: int) -> list[SweepReport]:
    """Start *count* sweeper processes, release them at once, collect their reports. Their
    purgers meet at a rendezvous directory beside the ledger (``arrive``)."""
    rendezvous = ledger.parent / "rendezvous"
    rendezvous.mkdir()
    args = json.dumps({"store": spec, "ledger": str(ledger), "rendezvous": str(rendezvous), "batch": batch})
    children = [
        subprocess.Popen(
            [sys.executable, __file__, args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n", child.stderr.read() if child.stderr else ""
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        reports = []
        for child in children:
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
            data = json.loads(out)
            reports.append(
                SweepReport(tuple(data["purged"]), tuple(data["failed"]), tuple(data["restorable"]))
            )
        return reports
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def check_shared_work(store: AccountStore, reports: list[SweepReport], ledger: Path) -> None:
    purged = [a for r in reports for a in r.purged]
    restorable = [a for r in reports for a in r.restorable]
    assert sorted(purged) == sorted(EXPIRED)  # each expired account reported by exactly one sweeper
    assert sorted(restorable) == sorted(RETRY)
    assert [r.failed for r in reports] == [()] * len(reports)
    lines = [line.split() for line in ledger.read_text().splitlines()]
    calls = Counter((account, category) for account, category, _ in lines)
    expected = Counter({(a, c): 1 for a in EXPIRED for c in ("backups", "archive")})
    expected.update({(a, "files"): 1 for a in RETRY})
    assert calls == expected  # each purger called exactly once per account
    workers = {pid for _, _, pid in lines}
    assert len(workers) >= 2, f"one sweeper did all the work: {reports}"
    lc = lifecycle(store, ManualClock(SWEEP_AT), None)
    for account_id in EXPIRED + RETRY:
        record = lc.get(account_id)
        later = PurgeStatus.DONE if account_id in EXPIRED else PurgeStatus.PENDING
        assert record.state is (State.PURGED if account_id in EXPIRED else State.RESTORABLE)
        assert dict(record.purge) == {
            "files": record.purge["files"],
            "backups": record.purge["backups"],
            "archive": record.purge["archive"],
        }
        assert [record.purge[c].status for c in ("files", "backups", "archive")] == [
            PurgeStatus.DONE,
            later,
            later,
        ]
        purged_events = [
            e.details["category"] for e in lc.history(account_id) if e.action == "category_purged"
        ]
        assert sorted(purged_events) == (
            ["archive", "backups", "files"] if account_id in EXPIRED else ["files"]
        )
        lc.verify_history(account_id)


# -- SQLite -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_sqlite_sweepers_in_parallel_processes_share_the_work(tmp_path: Path) -> None:
    """Four sweeper processes on one SQLite file: every account purged once, by one of them."""
    db = tmp_path / "accounts.db"
    store = SQLiteStore(db)
    populate(store)
    ledger = tmp_path / "ledger"
    ledger.touch()
    reports = run_sweepers({"kind": "sqlite", "path": str(db)}, ledger, SWEEPERS, batch=3)
    check_shared_work(store, reports, ledger)
    store.close()


def test_sqlite_sweepers_in_parallel_threads_share_the_work(tmp_path: Path) -> None:
    """Four threads sweeping one SQLiteStore (a connection each): the same guarantees."""
    store = SQLiteStore(tmp_path / "accounts.db")
    populate(store)
    ledger = tmp_path / "ledger"
    ledger.touch()
    lc = lifecycle(store, ManualClock(SWEEP_AT), ledger, sweep_batch=3)
    reports: list[SweepReport] = []
    barrier = threading.Barrier(SWEEPERS)

    def sweep() -> None:
        barrier.wait()
        reports.append(lc.sweep())

    threads = [threading.Thread(target=sweep) for _ in range(SWEEPERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(a for r in reports for a in r.purged) == sorted(EXPIRED)
    assert sorted(a for r in reports for a in r.restorable) == sorted(RETRY)
    calls = Counter(tuple(line.split()[:2]) for line in ledger.read_text().splitlines())
    assert set(calls.values()) == {1}
    assert len(calls) == len(EXPIRED) * 2 + len(RETRY)
    store.close()


def test_purgers_run_outside_any_store_transaction(tmp_path: Path) -> None:
    """While a purger runs, another connection can write at once (no transaction is held) and
    reads the previous category already committed as done."""
    db = tmp_path / "accounts.db"
    store = SQLiteStore(db)
    policy = Policy(
        name="two",
        survey=SurveyPolicy(mode="off"),
        purge=PurgePolicy(categories=(PurgeCategory("files"), PurgeCategory("mail"))),
    )
    observed: list[tuple[str, dict[str, str]]] = []

    def observe(account_id: str, context: PurgeContext) -> None:
        other = SQLiteStore(db, timeout=0.2)  # its own connection; waits 0.2 s at most for a lock
        try:
            other.release(account_id, "nobody")  # a write transaction: fails if one is held
            statuses = {k: p.status.value for k, p in other.get(account_id).purge.items()}
            observed.append((context.category, statuses))
        finally:
            other.close()

    lc = Lifecycle(
        policy,
        store=store,
        clock=ManualClock(SWEEP_AT),
        purgers=fake_purgers(policy, before=observe).values(),
    )
    lc.open("acct-1", owner="owner")
    lc.request_cancellation("acct-1", OWNER)
    assert lc.confirm("acct-1", OWNER).state is State.PURGED
    assert observed == [
        ("files", {"files": "pending", "mail": "pending"}),
        ("mail", {"files": "done", "mail": "pending"}),
    ]
    store.close()


# -- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """A throw-away schema on a reachable server (skipped without one, failed under CI=true)."""
    from pg import throwaway_schema  # tests/pg.py

    with throwaway_schema() as (dsn, schema):
        yield dsn, schema


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_sweepers_in_parallel_processes_share_the_work(
    tmp_path: Path, pg_schema: tuple[str, str]
) -> None:
    """Four sweeper processes on one PostgreSQL schema: every account purged once, by one of them."""
    from pg import migrated_store

    dsn, schema = pg_schema
    store = migrated_store(dsn, schema)
    try:
        populate(store)
        ledger = tmp_path / "ledger"
        ledger.touch()
        reports = run_sweepers({"kind": "postgres", "dsn": dsn, "schema": schema}, ledger, SWEEPERS, batch=3)
        check_shared_work(store, reports, ledger)
    finally:
        store.close()


if __name__ == "__main__":
    sweeper_main(sys.argv[1])
