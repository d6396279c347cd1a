"""Target 3: ``sweep()`` throughput.

* SQLite: at least 10,000 due accounts per second through ``sweep()`` with no-op purgers.
* PostgreSQL: two sweeper processes reach at least 1.7x the throughput of one.

Set-up (not timed): accounts of a policy variant of ``ALLCLIENTS`` with the same expiry
category (``backups``) but nothing to erase at cancellation and no ``on_cancel`` effect, so
that ``confirm`` takes them straight to ``RESTORABLE`` quickly; then the clock moves past the
3-month window and every account is due. Only ``sweep()`` is timed. Each account then
costs what an ``ALLCLIENTS`` account costs at the end of its window: the batch claim, the
``backups`` purger call and its committed ledger step, and the ``RESTORABLE -> PURGED``
commit, which also drops the claim.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import shutil
import sqlite3
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


def hand_written_sweep(path: Path, synchronous: str, record_body: int, event_bodies: list[int]) -> float:
    """The same durable steps in plain ``sqlite3``, on a copy of the same database: claim a
    batch of 100 due accounts; for each one, commit the ``backups`` ledger step with its
    event (renewing the claim), then commit the move to PURGED with its event, clearing the
    claim. Bodies have the lengths the library writes. Returns accounts per second."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    body = "x" * record_body
    events = ["y" * n for n in event_bodies]
    now, until = "2026-07-24T09:00:00.000000Z", "2026-07-24T09:05:00.000000Z"
    done = 0
    start = time.perf_counter()
    while True:
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(  # the library reads version and seq from the claimed bodies
            "SELECT account_id, version, (SELECT max(seq) FROM events e WHERE e.account_id = a.account_id)"
            " FROM accounts a WHERE due_at IS NOT NULL AND due_at <= ?"
            " AND (claim_until IS NULL OR claim_until <= ?)"
            " ORDER BY due_at, account_id LIMIT ?",
            (now, now, 100),
        ).fetchall()
        conn.executemany(
            "UPDATE accounts SET claim_owner = ?, claim_until = ? WHERE account_id = ?",
            [("sweep", until, row[0]) for row in rows],
        )
        conn.execute("COMMIT")
        if not rows:
            break
        for account_id, version, seq in rows:
            for step, (due, event) in enumerate(zip((now, None), events, strict=True)):
                conn.execute("BEGIN IMMEDIATE")
                cursor = conn.execute(
                    "UPDATE accounts SET version = ?, state = ?, live_identity = ?, due_at = ?,"
                    " claim_owner = ?, claim_until = ?, body = ? WHERE account_id = ? AND version = ?",
                    (
                        version + 1,
                        "purged" if step else "restorable",
                        None,
                        due,
                        None if step else "sweep",
                        None if step else until,
                        body,
                        account_id,
                        version,
                    ),
                )
                assert cursor.rowcount == 1
                conn.execute(
                    "INSERT INTO events (account_id, seq, body) VALUES (?, ?, ?)",
                    (account_id, seq + 1, event),
                )
                conn.execute("COMMIT")
                version, seq = version + 1, seq + 1
            done += 1
    elapsed = time.perf_counter() - start
    conn.close()
    return done / elapsed


def sqlite_sweep(synchronous: str, quick: bool, tmp: Path) -> Result:
    n = 1_000 if quick else 3_000
    reps = 1 if quick else 3
    rates = []
    hand_rates = []
    for rep in range(reps):
        path = tmp / f"sweep-{synchronous}-{rep}.db"
        setup = SQLiteStore(path, synchronous="NORMAL")  # set-up only: not timed
        populate(setup, n, "acct")
        setup.close()
        copy = tmp / f"hand-{synchronous}-{rep}.db"
        shutil.copyfile(path, copy)
        store = SQLiteStore(path, synchronous=synchronous)
        count, start, end = timed_sweep(store)
        assert count == n, (count, n)
        rates.append(count / (end - start))
        conn = store._conn()
        (record_body,) = conn.execute("SELECT max(length(body)) FROM accounts").fetchone()
        event_bodies = [
            row[0]
            for row in conn.execute(
                "SELECT length(body) FROM events WHERE account_id = 'acct-000000' ORDER BY seq DESC LIMIT 2"
            )
        ][::-1]
        store.close()
        hand_rates.append(hand_written_sweep(copy, synchronous, record_body, event_bodies))
    rate, hand = statistics.median(rates), statistics.median(hand_rates)
    target = synchronous == "FULL"
    return Result(
        f"3a sweep on SQLite, synchronous={synchronous}",
        rate,
        "accounts/s",
        "hand-written sqlite3, same commits",
        hand,
        rate / hand,
        ">= 10,000/s" if target else "",
        (rate >= 10_000) if target else None,
        notes=[
            f"median of {reps} sweeps of {n:,} due accounts each: library {[round(r) for r in rates]}, "
            f"hand-written {[round(r) for r in hand_rates]}",
            "per account: 2 committed steps (ledger; PURGED, which drops the claim) + 1/100 of a claim",
        ],
    )


# -- PostgreSQL ----------------------------------------------------------------------------


NO_FSYNC_WAIT = "options=-csynchronous_commit%3Doff"  # diagnostic only: commits do not wait for fsync


def _pg_store(schema: str, options: str = "") -> Any:
    from account_lifecycle import PostgresStore

    dsn = PG_DSN + ("&" if "?" in PG_DSN else "?") + options if options else PG_DSN
    return PostgresStore(dsn, schema=schema, max_connections=2)


def _pg_sweeper(schema: str, options: str, barrier: Any, out: Any) -> None:
    store = _pg_store(schema, options)
    lc = Lifecycle(POLICY, store=store, purgers=noop_purgers(POLICY), clock=ManualClock(LATER))
    lc.get("acct-000000")  # opens the pool and checks the schema before the clock starts
    barrier.wait(timeout=120)
    cpu = time.process_time()
    start = time.perf_counter()
    report_ = lc.sweep()
    end = time.perf_counter()
    out.put((len(report_.purged), start, end, time.process_time() - cpu))
    store.close()


def _server_cpu() -> float:
    """CPU seconds used so far by the PostgreSQL server processes on this machine, and by the
    backends that have exited (Linux; assumes the sweepers' backends start after this is read)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name.startswith("postgres"):
            fields = stat[stat.rindex(")") + 2 :].split()
            # utime, stime, and cutime, cstime: the postmaster collects its exited backends'
            total += sum(int(x) for x in fields[11:15])
    return total / tick


def _pg_round(sweepers: int, n: int, options: str = "") -> tuple[float, float, float]:
    """(accounts per second, sweeper CPU and server CPU seconds per account) of one round."""
    schema = f"al_bench_{uuid.uuid4().hex[:10]}"
    store = _pg_store(schema, NO_FSYNC_WAIT)  # set-up only (not timed): no wait for fsync
    store.migrate()
    try:
        populate(store, n, "acct")
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(sweepers)
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_pg_sweeper, args=(schema, options, barrier, out)) for _ in range(sweepers)
        ]
        for p in procs:
            p.start()
        server = _server_cpu()
        try:
            results: list[tuple[int, float, float, float]] = []
            while len(results) < len(procs):
                try:
                    results.append(out.get(timeout=1))
                except queue.Empty:
                    failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                    if failed:
                        raise RuntimeError(f"a sweeper process failed (exit code {failed[0]})") from None
        finally:
            for p in procs:
                p.join(timeout=5)
                if p.is_alive():
                    p.terminate()
        server = _server_cpu() - server  # includes the sweepers' start-up queries: a little high
        total = sum(r[0] for r in results)
        assert total == n, (total, n)
        elapsed = max(r[2] for r in results) - min(r[1] for r in results)
        return float(total / elapsed), sum(r[3] for r in results) / total, server / total
    finally:
        import psycopg

        store.close()
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def pg_sweepers(quick: bool) -> list[Result]:
    try:
        import psycopg

        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except Exception as exc:
        return [
            Result("3b sweep on PostgreSQL, 2 processes vs 1", 0.0, "accounts/s", notes=[f"skipped: {exc}"])
        ]
    n = 600 if quick else 2_000
    reps = 1 if quick else 3
    results = []
    for options, label in (("", "default durability"), (NO_FSYNC_WAIT, "synchronous_commit=off, diagnostic")):
        one: list[tuple[float, float, float]] = []
        two: list[tuple[float, float, float]] = []
        for _ in range(reps):  # interleaved: one sweeper, then two, then one again...
            one.append(_pg_round(1, n, options))
            two.append(_pg_round(2, n, options))
        r1 = statistics.median(r[0] for r in one)
        r2 = statistics.median(r[0] for r in two)
        cpu1 = statistics.median(r[1] for r in one) * 1000
        server1 = statistics.median(r[2] for r in one) * 1000
        ceiling = (os.cpu_count() or 1) * 1000 / (cpu1 + server1)
        target = not options
        results.append(
            Result(
                f"3b sweep on PostgreSQL, 2 sweeper processes vs 1 ({label})",
                r2,
                "accounts/s",
                "1 sweeper process",
                r1,
                r2 / r1,
                ">= 1.7x" if target else "",
                (r2 / r1 >= 1.7) if target else None,
                notes=[
                    f"{n:,} due accounts per round, median of {reps} rounds; "
                    f"one: {[round(r[0]) for r in one]}, two: {[round(r[0]) for r in two]}",
                    f"per account, one sweeper spends {cpu1:.2f} ms of its own CPU (busy "
                    f"{cpu1 * r1 / 10:.0f}% of the wall time) and the server {server1:.2f} ms; "
                    f"{os.cpu_count()} cores fully used could do at most {ceiling:.0f}/s = "
                    f"{ceiling / r1:.2f}x one sweeper",
                ],
            )
        )
    return results


def run(quick: bool = False, *, postgres: bool = True) -> list[Result]:
    base = os.environ.get("BENCH_TMPDIR") or None
    with tempfile.TemporaryDirectory(prefix="al-bench-", dir=base) as tmp:
        results = [sqlite_sweep(sync, quick, Path(tmp)) for sync in ("FULL", "NORMAL")]
    for r in results:
        report(r)
    if postgres:
        try:
            results += [report(r) for r in pg_sweepers(quick)]
        except Exception as exc:  # say so in the table rather than lose the other figures
            failed = Result("3b sweep on PostgreSQL", 0.0, "accounts/s", notes=[f"not measured: {exc}"])
            results.append(report(failed))
    return results


if __name__ == "__main__":
    run(quick_mode())
