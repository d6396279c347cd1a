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

import hashlib
import json
import multiprocessing
import os
import queue
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
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
from account_lifecycle.testing.fakes import fake_identity_keys, fake_purgers
from account_lifecycle.values import PurgeContext
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
    lc = Lifecycle(
        POLICY, store=store, purgers=noop_purgers(POLICY), clock=clock, identity_keys=fake_identity_keys()
    )
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
    lc = Lifecycle(
        POLICY,
        store=store,
        purgers=noop_purgers(POLICY),
        clock=ManualClock(LATER),
        identity_keys=fake_identity_keys(),
    )
    start = time.perf_counter()
    report_ = lc.sweep()
    end = time.perf_counter()
    assert not report_.failed, dict(list(report_.errors.items())[:3])
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


def hand_written_batched_sweep(
    path: Path, synchronous: str, record_body: int, event_bodies: list[int], batch: int = 100
) -> float:
    """The batched sweep's durable steps in plain ``sqlite3``, on a copy of the same database:
    per batch of *batch* due accounts, one transaction claims them, one commits every start
    (a compare-and-set renewing the claim, one event each), one commits every outcome with the
    move to PURGED (a compare-and-set dropping the claim, two events each). Bodies have the
    lengths the library writes. Returns accounts per second."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    body = "x" * record_body
    started, purged, moved = ("y" * n for n in event_bodies)
    now, until = "2026-07-24T09:00:00.000000Z", "2026-07-24T09:05:00.000000Z"
    done = 0
    start = time.perf_counter()
    while True:
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(
            "SELECT account_id, version, (SELECT max(seq) FROM events e WHERE e.account_id = a.account_id)"
            " FROM accounts a WHERE due_at IS NOT NULL AND due_at <= ?"
            " AND (claim_until IS NULL OR claim_until <= ?)"
            " ORDER BY due_at, account_id LIMIT ?",
            (now, now, batch),
        ).fetchall()
        conn.executemany(
            "UPDATE accounts SET claim_owner = ?, claim_until = ? WHERE account_id = ?",
            [("sweep", until, row[0]) for row in rows],
        )
        conn.execute("COMMIT")
        if not rows:
            break
        for step, events in enumerate(((started,), (purged, moved))):
            conn.execute("BEGIN IMMEDIATE")
            for account_id, version, seq in rows:
                cursor = conn.execute(
                    "UPDATE accounts SET version = ?, state = ?, live_identity = ?, due_at = ?,"
                    " claim_owner = ?, claim_until = ?, body = ? WHERE account_id = ? AND version = ?"
                    " AND (claim_owner IS NULL OR claim_owner = ? OR claim_until <= ?)",
                    (
                        version + 1 + step,
                        "purged" if step else "restorable",
                        None,
                        None if step else now,
                        None if step else "sweep",
                        None if step else until,
                        body,
                        account_id,
                        version + step,
                        "sweep",
                        now,
                    ),
                )
                assert cursor.rowcount == 1
                conn.executemany(
                    "INSERT INTO events (account_id, seq, body) VALUES (?, ?, ?)",
                    [(account_id, seq + 1 + step + n, e) for n, e in enumerate(events)],
                )
            conn.execute("COMMIT")
        done += len(rows)
    elapsed = time.perf_counter() - start
    conn.close()
    return done / elapsed


#: ``json.dumps(data, sort_keys=True, separators=(",", ":"))``, the encoder built once.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def _canonical(data: dict[str, Any]) -> str:
    return _CANONICAL.encode(data)


def hand_written_same_bytes_sweep(path: Path, synchronous: str, batch: int = 100) -> float:
    """The batched sweep in plain ``sqlite3`` and ``json``/``hashlib``, doing the library's work
    for these accounts by hand, on a copy of the same database: per batch of *batch* due
    accounts, one transaction claims them and reads their records; the records are decoded
    (``json.loads``); one transaction commits every start (the record with its erasure, a
    compare-and-set renewing the claim, the ``erasure_started`` event hashed onto the chain,
    its outbox entry), the no-op purger is called, and one commits every outcome with the move
    to PURGED (the record, a compare-and-set dropping the claim, the ``category_purged`` and
    ``purge`` events, their outbox entries, the sealed values deleted). Records and events are
    encoded with ``json.dumps(sort_keys=True)`` and chained with SHA-256: the same bytes as the
    library's (``sqlite_sweep`` compares the two databases). Returns accounts per second."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA secure_delete=ON")
    purger = fake_purgers(POLICY, items=0, detail="")["backups"]
    now_text, until = "2026-07-24T09:00:00.000000Z", "2026-07-24T09:05:00.000000Z"
    owner = f"sweep:{uuid.uuid4().hex}"
    done = 0

    def chain(record: dict[str, Any], label: str, version: int, action: str, to: str, details: Any) -> str:
        event = {
            "account_id": record["account_id"],
            "action": action,
            "actor": "system",
            "at": now_text,
            "details": details,
            "from_state": record["state"],
            "policy": label,
            "prev_hash": record["chain_head"],
            "seq": record["last_seq"] + 1,
            "to_state": to,
            "version": version,
        }
        event["hash"] = hashlib.sha256(_canonical(event).encode("ascii")).hexdigest()
        record["chain_head"], record["last_seq"] = event["hash"], event["seq"]
        return _canonical(event)

    start = time.perf_counter()
    while True:
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(
            "SELECT account_id, body, policy_label FROM accounts"
            " WHERE due_at IS NOT NULL AND due_at <= ? AND (claim_until IS NULL OR claim_until <= ?)"
            " ORDER BY due_at, account_id LIMIT ?",
            (now_text, now_text, batch),
        ).fetchall()
        conn.executemany(
            "UPDATE accounts SET claim_owner = ?, claim_until = ? WHERE account_id = ?",
            [(owner, until, row[0]) for row in rows],
        )
        conn.execute("COMMIT")
        if not rows:
            break
        records = [(json.loads(body), label) for _, body, label in rows]
        events: list[tuple[str, int, str]] = []
        conn.execute("BEGIN IMMEDIATE")  # the starts
        for record, label in records:
            version = record["version"] + 1
            details = {"phase": "expiry", "steps": ["backups"]}
            seq = record["last_seq"] + 1
            events.append(
                (
                    record["account_id"],
                    seq,
                    chain(record, label, version, "erasure_started", record["state"], details),
                )
            )
            record["version"] = version
            record["erasure"] = {
                "owner": owner,
                "phase": "expiry",
                "steps": ["backups"],
                "started_at": now_text,
            }
            cursor = conn.execute(
                "UPDATE accounts SET version = ?, state = ?, live_identity = ?, due_at = ?, body = ?,"
                " policy_label = ?, claim_owner = ?, claim_until = ? WHERE account_id = ? AND version = ?"
                " AND (claim_owner IS NULL OR claim_owner = ? OR claim_until <= ?)",
                (
                    version,
                    record["state"],
                    record["identity"],
                    now_text,
                    _canonical(record),
                    label,
                    owner,
                    until,
                    record["account_id"],
                    version - 1,
                    owner,
                    now_text,
                ),
            )
            assert cursor.rowcount == 1
        conn.executemany("INSERT INTO events (account_id, seq, body) VALUES (?, ?, ?)", events)
        conn.executemany("INSERT INTO outbox (account_id, seq) VALUES (?, ?)", [e[:2] for e in events])
        conn.execute("COMMIT")
        outcomes = [
            purger.purge(
                record["account_id"],
                PurgeContext(
                    account_id=record["account_id"],
                    category="backups",
                    policy=label,
                    attempt=record["purge"]["backups"]["attempts"] + 1,
                    cancelled_at=datetime.fromisoformat(record["cancelled_at"]),
                    now=LATER,
                ),
            )
            for record, label in records
        ]
        events = []
        conn.execute("BEGIN IMMEDIATE")  # the outcomes, each with the move to PURGED
        for (record, label), result in zip(records, outcomes, strict=True):
            version = record["version"] + 1
            progress = record["purge"]["backups"]
            progress.update(
                status="done",
                attempts=progress["attempts"] + 1,
                items=result.items,
                at=now_text,
                purger=purger.name,
            )
            details = {
                "category": "backups",
                "attempt": progress["attempts"],
                "items": result.items,
                "detail": result.detail,
                "purger": purger.name,
            }
            del record["erasure"]
            seq = record["last_seq"]
            purged = chain(record, label, version, "category_purged", record["state"], details)
            released = {"identity_released": True}
            moved = chain(record, label, version, "purge", "purged", released)
            events += [(record["account_id"], seq + 1, purged), (record["account_id"], seq + 2, moved)]
            record.update(state="purged", version=version, identity=None, identity_released_at=now_text)
            record["pins"]["purged"] = label
            cursor = conn.execute(
                "UPDATE accounts SET version = ?, state = ?, live_identity = ?, due_at = ?, body = ?,"
                " policy_label = ?,"
                " claim_owner = CASE WHEN claim_owner = ? THEN NULL ELSE claim_owner END,"
                " claim_until = CASE WHEN claim_owner = ? THEN NULL ELSE claim_until END"
                " WHERE account_id = ? AND version = ?",
                (
                    version,
                    "purged",
                    None,
                    None,
                    _canonical(record),
                    label,
                    owner,
                    owner,
                    record["account_id"],
                    version - 1,
                ),
            )
            assert cursor.rowcount == 1
            conn.execute("DELETE FROM sealed_values WHERE account_id = ?", (record["account_id"],))
        conn.executemany("INSERT INTO events (account_id, seq, body) VALUES (?, ?, ?)", events)
        conn.executemany("INSERT INTO outbox (account_id, seq) VALUES (?, ?)", [e[:2] for e in events])
        conn.execute("COMMIT")
        done += len(rows)
    elapsed = time.perf_counter() - start
    conn.close()
    return done / elapsed


def same_bytes(library: Path, hand: Path) -> bool:
    """Whether the two databases hold the same records (versions, states, bodies, due times)
    and the same events, byte for byte, after their sweeps."""
    queries = (
        "SELECT account_id, version, state, live_identity, due_at, body, policy_label, claim_owner"
        " FROM accounts ORDER BY account_id",
        "SELECT account_id, seq, body FROM events ORDER BY account_id, seq",
        "SELECT account_id, seq FROM outbox ORDER BY account_id, seq",
    )
    a, b = sqlite3.connect(library), sqlite3.connect(hand)
    try:
        return all(a.execute(q).fetchall() == b.execute(q).fetchall() for q in queries)
    finally:
        a.close()
        b.close()


class CountingSQLiteStore(SQLiteStore):
    """Counts write transactions (each ``BEGIN IMMEDIATE`` ... ``COMMIT``) and statements."""

    transactions = 0

    def _write(self, what: str = "write") -> Any:
        self.transactions += 1
        return super()._write(what)


_BEFORE_SCRIPT = """
import sys, time
from datetime import UTC, datetime, timedelta
sys.path.insert(0, sys.argv[1])
import attrs
from account_lifecycle import Lifecycle, ManualClock, SQLiteStore, policies, PurgeCategory, PurgePolicy
from account_lifecycle.testing.fakes import fake_purgers
policy = attrs.evolve(policies.ALLCLIENTS, name="allclients-expiry-only",
    purge=PurgePolicy(categories=(PurgeCategory("backups", "expiry"),)), on_cancel=())
store = SQLiteStore(sys.argv[2], synchronous=sys.argv[3])
later = datetime(2026, 1, 5, 9, 0, tzinfo=UTC) + timedelta(days=200)
lc = Lifecycle(policy, store=store, purgers=list(fake_purgers(policy, items=0, detail="").values()),
    clock=ManualClock(later))
start = time.perf_counter()
report = lc.sweep()
print(len(report.purged) / (time.perf_counter() - start))
"""


def before_library_sweep(path: Path, synchronous: str) -> float | None:
    """The library as it was before batching (a checkout named by ``$BENCH_BEFORE``, say
    ``git archive main | tar -x -C /tmp/base``) sweeping a copy of the same database, in a
    subprocess of this run; None when ``$BENCH_BEFORE`` is not set."""
    before = os.environ.get("BENCH_BEFORE")
    if not before:
        return None
    out = subprocess.run(
        [sys.executable, "-c", _BEFORE_SCRIPT, before, str(path), synchronous],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def _library_sweep(path: Path, synchronous: str, n: int) -> tuple[float, float]:
    """The library's sweep of the database at *path*: (accounts per second, write transactions
    per account)."""
    store = CountingSQLiteStore(path, synchronous=synchronous)
    store.transactions = 0
    count, start, end = timed_sweep(store)
    store.close()
    assert count == n, (count, n)
    return count / (end - start), store.transactions / count


def _bodies(path: Path) -> tuple[int, list[int]]:
    """The longest record body and the lengths of the last three events of one account, as the
    library wrote them: what the hand-written baselines without encoding write."""
    conn = sqlite3.connect(path)
    try:
        (record_body,) = conn.execute("SELECT max(length(body)) FROM accounts").fetchone()
        event_bodies = [
            row[0]
            for row in conn.execute(
                "SELECT length(body) FROM events WHERE account_id = 'acct-000000' ORDER BY seq DESC LIMIT 3"
            )
        ][::-1]
    finally:
        conn.close()
    return record_body, event_bodies


def sqlite_sweep(synchronous: str, quick: bool, tmp: Path) -> list[Result]:
    # FULL syncs every commit: the per-step baselines would take minutes at 10,000 accounts
    n = 1_000 if quick else (10_000 if synchronous == "NORMAL" else 2_000)
    reps = 1 if quick else 3
    names = ("library", "hand", "same", "old-hand")
    rates: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}  # process CPU, us per account
    before_rates: list[float] = []
    transactions = 0.0
    setup_path = tmp / f"sweep-{synchronous}-setup.db"
    setup = SQLiteStore(setup_path, synchronous="NORMAL")  # set-up only: not timed
    populate(setup, n, "acct")
    setup.close()
    # the body lengths the library writes, from a sweep of a copy (set-up, not timed)
    probe = tmp / f"probe-{synchronous}.db"
    shutil.copyfile(setup_path, probe)
    _library_sweep(probe, "NORMAL", n)
    record_body, event_bodies = _bodies(probe)
    for rep in range(reps):
        copies = {name: tmp / f"{name}-{synchronous}-{rep}.db" for name in (*names, "before")}
        for target in copies.values():
            shutil.copyfile(setup_path, target)

        def library(path: Path) -> float:
            nonlocal transactions
            rate, transactions = _library_sweep(path, synchronous, n)
            return rate

        sides: dict[str, Callable[[Path], float]] = {
            "library": library,
            "hand": partial(
                hand_written_batched_sweep,
                synchronous=synchronous,
                record_body=record_body,
                event_bodies=event_bodies,
            ),
            "same": partial(hand_written_same_bytes_sweep, synchronous=synchronous),
            "old-hand": partial(
                hand_written_sweep,
                synchronous=synchronous,
                record_body=record_body,
                event_bodies=event_bodies[1:],
            ),
        }
        before = before_library_sweep(copies["before"], synchronous)
        if before is not None:
            before_rates.append(before)
        # every side in turn, the order turned round every repetition
        for name in names if rep % 2 == 0 else names[::-1]:
            c = time.process_time()
            rates[name].append(sides[name](copies[name]))
            cpu[name].append((time.process_time() - c) / n * 1e6)
        if rep == 0 and not same_bytes(copies["library"], copies["same"]):
            raise AssertionError("the hand-written same-bytes sweep wrote other bytes than the library")
    rate = statistics.median(rates["library"])
    hand, same, old_hand = (statistics.median(rates[k]) for k in ("hand", "same", "old-hand"))
    mcpu = {k: statistics.median(v) for k, v in cpu.items()}
    normal = synchronous == "NORMAL"
    notes = [
        f"median of {reps} sweeps of {n:,} due accounts each, sides interleaved: library "
        f"{[round(r) for r in rates['library']]}, hand-written batched {[round(r) for r in rates['hand']]}, "
        f"hand-written same bytes {[round(r) for r in rates['same']]}",
        f"process CPU per account (median): library {mcpu['library']:.0f} us, hand-written batched "
        f"{mcpu['hand']:.0f} us, same bytes {mcpu['same']:.0f} us",
        f"per account: {transactions:.3f} write transactions (claim, starts, outcomes: one each per "
        "batch of 100), 3 audit events",
        f"information: hand-written one commit per step (the baseline before batching) "
        f"{round(old_hand):,}/s, so the library is {rate / old_hand:.2f}x that",
    ]
    if before_rates:
        before = statistics.median(before_rates)
        notes.append(
            f"information: the library before batching, same run, copies of the same database: "
            f"{[round(r) for r in before_rates]}/s, median {round(before):,}/s: "
            f"{rate / before:.2f}x faster now"
        )
    target = ">= 0.9x and >= 10,000/s" if normal else ">= 0.9x"
    return [
        Result(
            f"3a sweep on SQLite, synchronous={synchronous}, batched",
            rate,
            "accounts/s",
            "hand-written sqlite3, same batched commits, bodies of the same length (no encoding, no hash)",
            hand,
            rate / hand,
            target,
            (rate / hand >= 0.9 and rate >= 10_000) if normal else rate / hand >= 0.9,
            notes=notes,
        ),
        Result(
            f"3a sweep on SQLite, synchronous={synchronous}, batched, against the same bytes",
            rate,
            "accounts/s",
            "hand-written sqlite3 + json + hashlib, same batched commits, same bytes "
            "(records, events, hash chain, outbox: compared)",
            same,
            rate / same,
            target,
            (rate / same >= 0.9 and rate >= 10_000) if normal else rate / same >= 0.9,
        ),
    ]


# -- PostgreSQL ----------------------------------------------------------------------------


NO_FSYNC_WAIT = "options=-csynchronous_commit%3Doff"  # diagnostic only: commits do not wait for fsync


def _pg_store(schema: str, options: str = "") -> Any:
    from account_lifecycle import PostgresStore

    dsn = PG_DSN + ("&" if "?" in PG_DSN else "?") + options if options else PG_DSN
    return PostgresStore(dsn, schema=schema, max_connections=2)


def _pg_sweeper(schema: str, options: str, barrier: Any, out: Any) -> None:
    store = _pg_store(schema, options)
    lc = Lifecycle(
        POLICY,
        store=store,
        purgers=noop_purgers(POLICY),
        clock=ManualClock(LATER),
        identity_keys=fake_identity_keys(),
    )
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


def _pg_copy_schema(source: str, target: str) -> None:
    """A copy of *source*'s tables and rows in a new schema *target* (set-up, not timed)."""
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{target}"')
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
                " AND table_type = 'BASE TABLE' ORDER BY table_name",
                (source,),
            )
        ]
        for table in tables:  # every table of the store (the outbox, sealed values, ...)
            conn.execute(f'CREATE TABLE "{target}".{table} (LIKE "{source}".{table} INCLUDING ALL)')
            conn.execute(f'INSERT INTO "{target}".{table} SELECT * FROM "{source}".{table}')
        conn.execute(f'ANALYZE "{target}".accounts')


def _pg_drop(*schemas: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _counting_pg_store(schema: str) -> Any:
    """A PostgresStore that counts its transactions and the statements sent in them."""
    from contextlib import contextmanager

    from account_lifecycle import PostgresStore

    class Counting(PostgresStore):
        transactions = 0
        statements = 0

        @contextmanager
        def _transaction(self, what: str, **kwargs: Any) -> Any:
            outer = self

            class Cursor:
                def __init__(self, inner: Any) -> None:
                    self._inner = inner

                def __getattr__(self, name: str) -> Any:
                    return getattr(self._inner, name)

                def execute(self, *args: Any, **kw: Any) -> Any:
                    outer.statements += 1
                    return self._inner.execute(*args, **kw)

                def executemany(self, *args: Any, **kw: Any) -> Any:
                    outer.statements += 1  # pipelined: one round trip for all its rows
                    return self._inner.executemany(*args, **kw)

            self.transactions += 1
            with super()._transaction(what, **kwargs) as cursor:
                yield Cursor(cursor)

    return Counting(PG_DSN, schema=schema, max_connections=2)


def hand_written_pg_batched_sweep(
    schema: str, record_body: int, event_bodies: list[int], batch: int = 100
) -> float:
    """The batched sweep's commits in plain psycopg, on a copy of the same schema: per batch
    of 100, one transaction claims (the store's own claim statement), one commits every start
    (a compare-and-set renewing the claim, one event each, sent pipelined), one every outcome
    with the move to PURGED (a compare-and-set dropping the claim, two events each)."""
    import psycopg

    body = "x" * record_body
    started, purged, moved = ("y" * n for n in event_bodies)
    now = LATER
    until = LATER + timedelta(minutes=5)
    done = 0
    with psycopg.connect(PG_DSN) as conn:
        start = time.perf_counter()
        while True:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(
                    f'UPDATE "{schema}".accounts SET claim_owner = %s, claim_until = %s'
                    " WHERE account_id IN ("
                    f'  SELECT account_id FROM "{schema}".accounts'
                    "  WHERE due_at <= %s AND (claim_until IS NULL OR claim_until <= %s)"
                    "  ORDER BY due_at, account_id LIMIT %s FOR UPDATE SKIP LOCKED)"
                    " RETURNING account_id, version, (SELECT max(seq) FROM "
                    f'"{schema}".events e WHERE e.account_id = accounts.account_id)',
                    ("sweep", until, now, now, batch),
                )
                rows = cur.fetchall()
            if not rows:
                break
            for step, events in enumerate(((started,), (purged, moved))):
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(
                        f'UPDATE "{schema}".accounts SET version = %s, state = %s, live_identity = %s,'
                        " due_at = %s, claim_owner = %s, claim_until = %s, body = %s"
                        " WHERE account_id = %s AND version = %s"
                        " AND (claim_owner IS NULL OR claim_owner = %s OR claim_until <= %s)"
                        " RETURNING account_id",
                        [
                            (
                                version + 1 + step,
                                "purged" if step else "restorable",
                                None,
                                None if step else now,
                                None if step else "sweep",
                                None if step else until,
                                body,
                                account_id,
                                version + step,
                                "sweep",
                                now,
                            )
                            for account_id, version, _ in rows
                        ],
                        returning=True,
                    )
                    cur.executemany(
                        f'INSERT INTO "{schema}".events (account_id, seq, at, action, body)'
                        " VALUES (%s, %s, %s, %s, %s)",
                        [
                            (account_id, seq + 1 + step + n, now, "step", e)
                            for account_id, _, seq in rows
                            for n, e in enumerate(events)
                        ],
                    )
            done += len(rows)
        elapsed = time.perf_counter() - start
    return done / elapsed


def pg_batched_sweep(quick: bool) -> list[Result]:
    """Target 2 on PostgreSQL: one sweeper, batched, against the same commits hand-written."""
    try:
        import psycopg

        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except Exception as exc:
        return [Result("3a sweep on PostgreSQL, batched", 0.0, "accounts/s", notes=[f"skipped: {exc}"])]
    n = 1_000 if quick else 5_000
    reps = 1 if quick else 3
    base = f"al_bench_{uuid.uuid4().hex[:10]}"
    setup = _pg_store(base, NO_FSYNC_WAIT)
    setup.migrate()
    made: list[str] = [base]
    rates: list[float] = []
    hand_rates: list[float] = []
    cpu: list[float] = []
    counts = (0.0, 0.0)
    try:
        populate(setup, n, "acct")
        setup.close()
        with psycopg.connect(PG_DSN) as conn:
            (record_body,) = conn.execute(f'SELECT max(length(body)) FROM "{base}".accounts').fetchone() or (
                0,
            )
            event_bodies = [
                row[0]
                for row in conn.execute(
                    f'SELECT length(body) FROM "{base}".events'
                    " WHERE account_id = %s ORDER BY seq DESC LIMIT 3",
                    ("acct-000000",),
                )
            ][::-1]
        for rep in range(reps):
            lib, hand = f"{base}_l{rep}", f"{base}_h{rep}"
            made += [lib, hand]
            _pg_copy_schema(base, lib)
            _pg_copy_schema(base, hand)
            store = _counting_pg_store(lib)
            Lifecycle(POLICY, store=store, purgers=noop_purgers(POLICY), clock=ManualClock(LATER)).get(
                "acct-000000"
            )
            sides = ["library", "hand"] if rep % 2 == 0 else ["hand", "library"]
            for side in sides:
                if side == "hand":
                    hand_rates.append(hand_written_pg_batched_sweep(hand, record_body, event_bodies))
                    continue
                store.transactions = store.statements = 0
                c = time.process_time()
                count, start, end = timed_sweep(store)
                cpu.append((time.process_time() - c) / count * 1000)
                assert count == n, (count, n)
                rates.append(count / (end - start))
                counts = (store.transactions / count, store.statements / count)
            store.close()
    finally:
        _pg_drop(*made)
    rate, hand_rate = statistics.median(rates), statistics.median(hand_rates)
    tx, st = counts
    return [
        Result(
            "3a sweep on PostgreSQL, batched (default durability)",
            rate,
            "accounts/s",
            "hand-written psycopg, same batched commits",
            hand_rate,
            rate / hand_rate,
            ">= 0.9x and >= 10,000/s",
            rate / hand_rate >= 0.9 and rate >= 10_000,
            notes=[
                f"median of {reps} sweeps of {n:,} due accounts: library {[round(r) for r in rates]}, "
                f"hand-written {[round(r) for r in hand_rates]}; "
                f"sweeper CPU {statistics.median(cpu):.3f} ms/account",
                f"per account: {tx:.3f} transactions, {st:.3f} statements sent (executemany pipelined "
                f"counts once); round trips ~ {tx * 3 + st:.2f} "
                "(a pool check, BEGIN, COMMIT per transaction)",
            ],
        )
    ]


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
        results = [r for sync in ("NORMAL", "FULL") for r in sqlite_sweep(sync, quick, Path(tmp))]
    for r in results:
        report(r)
    if postgres:
        try:
            results += [report(r) for r in pg_batched_sweep(quick)]
            results += [report(r) for r in pg_sweepers(quick)]
        except Exception as exc:  # say so in the table rather than lose the other figures
            failed = Result("3b sweep on PostgreSQL", 0.0, "accounts/s", notes=[f"not measured: {exc}"])
            results.append(report(failed))
    return results


if __name__ == "__main__":
    run(quick_mode())
