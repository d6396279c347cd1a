"""Target 3: ``sweep()`` throughput.

* SQLite: at least 10,000 due accounts per second through ``sweep()`` with no-op purgers.
* PostgreSQL: two sweeper processes reach at least 1.7x the throughput of one.

Set-up (not timed): accounts of a policy variant of ``ALLCLIENTS`` with the same expiry
category (``backups``) but nothing to erase at cancellation and no ``on_cancel`` effect, so
that ``confirm`` takes them straight to ``RESTORABLE`` quickly; then the clock moves past the
3-month window and every account is due. Only ``sweep()`` is timed. Each account then
costs what an ``ALLCLIENTS`` account costs at the end of its window: the batch claim, the
``backups`` purger call and its committed ledger step, the ``RESTORABLE -> PURGED`` commit,
and the release of the claim.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from account_lifecycle import (
    Actor,
    Lifecycle,
    ManualClock,
    Policy,
    PurgeCategory,
    PurgePolicy,
    SQLiteStore,
    State,
    policies,
)
from account_lifecycle.ports import AccountStore
from bench._common import Result, quick_mode, report
from bench.engine import noop_purgers

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LATER = START + timedelta(days=200)
PG_DSN = os.environ.get("ACCOUNT_LIFECYCLE_PG_DSN") or "postgresql://postgres@127.0.0.1:5432/test"

POLICY: Policy = attrs.evolve(
    policies.ALLCLIENTS,
    name="allclients-expiry-only",
    purge=PurgePolicy(categories=(PurgeCategory("backups", "expiry"),)),
    on_cancel=(),
)


def populate(store: AccountStore, n: int, prefix: str) -> None:
    """Open *n* accounts and take each to RESTORABLE at START."""
    clock = ManualClock(START)
    lc = Lifecycle(POLICY, store=store, purgers=noop_purgers(POLICY), clock=clock)
    for i in range(n):
        account_id = f"{prefix}-{i:06d}"
        owner = Actor.user(f"owner-{i}")
        lc.open(account_id, owner=owner.id, identity=f"{account_id}@example.com")
        lc.request_cancellation(account_id, owner)
        lc.skip_survey(account_id, owner)
        record = lc.confirm(account_id, owner)
        assert record.state is State.RESTORABLE, record.state


def timed_sweep(store: AccountStore) -> tuple[int, float, float]:
    """Sweep everything due at LATER; (accounts purged, start, end) on the perf counter."""
    lc = Lifecycle(POLICY, store=store, purgers=noop_purgers(POLICY), clock=ManualClock(LATER))
    start = time.perf_counter()
    report_ = lc.sweep()
    end = time.perf_counter()
    assert not report_.failed
    return len(report_.purged), start, end


def sqlite_sweep(synchronous: str, quick: bool, tmp: Path) -> Result:
    n = 1_000 if quick else 3_000
    reps = 1 if quick else 3
    rates = []
    for rep in range(reps):
        path = tmp / f"sweep-{synchronous}-{rep}.db"
        setup = SQLiteStore(path, synchronous="NORMAL")  # set-up only: not timed
        populate(setup, n, "acct")
        setup.close()
        store = SQLiteStore(path, synchronous=synchronous)
        count, start, end = timed_sweep(store)
        store.close()
        assert count == n, (count, n)
        rates.append(count / (end - start))
    rate = statistics.median(rates)
    target = synchronous == "FULL"
    return Result(
        f"3a sweep on SQLite, synchronous={synchronous}",
        rate,
        "accounts/s",
        "target",
        10_000.0,
        rate / 10_000,
        ">= 10,000/s" if target else "",
        (rate >= 10_000) if target else None,
        notes=[f"median of {reps} sweeps of {n:,} due accounts each, rates {[round(r) for r in rates]}"],
    )


# -- PostgreSQL ----------------------------------------------------------------------------


def _pg_store(schema: str) -> Any:
    from account_lifecycle import PostgresStore

    return PostgresStore(PG_DSN, schema=schema, max_connections=2)


def _pg_sweeper(schema: str, barrier: Any, out: Any) -> None:
    store = _pg_store(schema)
    lc = Lifecycle(POLICY, store=store, purgers=noop_purgers(POLICY), clock=ManualClock(LATER))
    lc.sweep(limit=0)  # opens the pool and checks the schema before the clock starts
    barrier.wait()
    start = time.perf_counter()
    report_ = lc.sweep()
    end = time.perf_counter()
    out.put((len(report_.purged), start, end))
    store.close()


def _pg_round(sweepers: int, n: int) -> float:
    schema = f"al_bench_{uuid.uuid4().hex[:10]}"
    store = _pg_store(schema)
    store.migrate()
    try:
        populate(store, n, "acct")
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(sweepers)
        out = ctx.Queue()
        procs = [ctx.Process(target=_pg_sweeper, args=(schema, barrier, out)) for _ in range(sweepers)]
        for p in procs:
            p.start()
        results = [out.get(timeout=600) for _ in procs]
        for p in procs:
            p.join()
        total = sum(r[0] for r in results)
        assert total == n, (total, n)
        elapsed = max(r[2] for r in results) - min(r[1] for r in results)
        return float(total / elapsed)
    finally:
        import psycopg

        store.close()
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def pg_sweepers(quick: bool) -> Result:
    try:
        import psycopg

        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except Exception as exc:
        return Result(
            "3b sweep on PostgreSQL, 2 processes vs 1", 0.0, "accounts/s", notes=[f"skipped: {exc}"]
        )
    n = 600 if quick else 2_000
    reps = 1 if quick else 3
    one: list[float] = []
    two: list[float] = []
    for _ in range(reps):  # interleaved: one sweeper, then two, then one again...
        one.append(_pg_round(1, n))
        two.append(_pg_round(2, n))
    r1, r2 = statistics.median(one), statistics.median(two)
    return Result(
        "3b sweep on PostgreSQL, 2 sweeper processes vs 1",
        r2,
        "accounts/s",
        "1 sweeper process",
        r1,
        r2 / r1,
        ">= 1.7x",
        r2 / r1 >= 1.7,
        notes=[
            f"{n:,} due accounts per round, median of {reps} rounds; one: {[round(x) for x in one]}, "
            f"two: {[round(x) for x in two]}",
            f"server on this machine ({os.cpu_count()} cores shared by the sweepers and the server)",
        ],
    )


def run(quick: bool = False, *, postgres: bool = True) -> list[Result]:
    base = os.environ.get("BENCH_TMPDIR") or None
    with tempfile.TemporaryDirectory(prefix="al-bench-", dir=base) as tmp:
        results = [sqlite_sweep(sync, quick, Path(tmp)) for sync in ("FULL", "NORMAL")]
    for r in results:
        report(r)
    if postgres:
        results.append(report(pg_sweepers(quick)))
    return results


if __name__ == "__main__":
    run(quick_mode())
