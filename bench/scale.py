"""Target 4: claim cost does not grow with the number of due accounts.

Every account shares one due time (the worst case for a claim that sorts), and each claim of
100 is released again, so every claim sees the same store. SQLite: the library's claim with
the (due_at, account_id) index against the same claim on a copy of the file with the old
(due_at) index, same run. MemoryStore: the library's heap against the sorted scan it replaced,
on the same dictionary, same run. Set-up inserts rows directly (not timed).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from account_lifecycle import Lease, MemoryStore, SQLiteStore
from account_lifecycle.codec import record_to_json
from account_lifecycle.model import AccountRecord, PurgeProgress, State
from account_lifecycle.schedule import due_at
from bench._common import Result, quick_mode, report

DUE = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW = DUE + timedelta(days=1)


def _template() -> AccountRecord:
    return AccountRecord(
        account_id="acct-template",
        state=State.CANCELLED,
        owner="owner",
        cancelled_at=DUE,
        purge={"contacts": PurgeProgress()},
        version=3,
    )


def _sqlite_file(path: Path, n: int) -> None:
    store = SQLiteStore(path, synchronous="NORMAL")
    template = _template()
    assert due_at(template) == DUE
    due = store._columns(template)[3]
    conn = store._conn()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO accounts (account_id, version, state, live_identity, due_at, body)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            (
                f"acct-{i:07d}",
                3,
                "cancelled",
                None,
                due,
                record_to_json(attrs.evolve(template, account_id=f"acct-{i:07d}")),
            )
            for i in range(n)
        ),
    )
    conn.execute("COMMIT")
    store.close()


def _claims(claim: Callable[..., list[Any]], release: Callable[[list[Any], Lease], None], reps: int) -> float:
    times = []
    for rep in range(reps):
        lease = Lease(f"s{rep}", NOW + timedelta(minutes=5))
        start = time.perf_counter()
        got = claim(lease)
        times.append(time.perf_counter() - start)
        assert len(got) == 100, len(got)
        release(got, lease)
    return statistics.median(times) * 1000


def sqlite_claims(sizes: tuple[int, ...], tmp: Path) -> list[Result]:
    new: dict[int, float] = {}
    old: dict[int, float] = {}
    for n in sizes:
        path = tmp / f"scale-{n}.db"
        _sqlite_file(path, n)
        old_path = tmp / f"scale-{n}-old.db"
        shutil.copyfile(path, old_path)
        with sqlite3.connect(old_path) as conn:  # the index before this change
            conn.execute("DROP INDEX accounts_due_order")
            conn.execute("CREATE INDEX accounts_due ON accounts (due_at) WHERE due_at IS NOT NULL")
        store = SQLiteStore(path, synchronous="NORMAL")

        def release(got: list, lease: Lease, store: SQLiteStore = store) -> None:  # type: ignore[type-arg]
            conn = store._conn()
            conn.execute("BEGIN")
            conn.executemany(
                "UPDATE accounts SET claim_owner = NULL, claim_until = NULL WHERE account_id = ?",
                [(r.account_id,) for r in got],
            )
            conn.execute("COMMIT")

        new[n] = _claims(
            lambda lease, store=store: store.claim_due(now=NOW, lease=lease, limit=100), release, 9
        )
        store.close()
        old_conn = sqlite3.connect(old_path, isolation_level=None)

        def old_claim(lease: Lease, conn: sqlite3.Connection = old_conn) -> list:  # type: ignore[type-arg]
            from account_lifecycle.audit import format_time

            m = format_time(NOW)
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute(
                "SELECT account_id, CAST(body AS BLOB) FROM accounts"
                " WHERE due_at IS NOT NULL AND due_at <= ? AND (claim_until IS NULL OR claim_until <= ?)"
                " ORDER BY due_at, account_id LIMIT ?",
                (m, m, 100),
            ).fetchall()
            conn.executemany(
                "UPDATE accounts SET claim_owner = ?, claim_until = ? WHERE account_id = ?",
                [(lease.owner, format_time(lease.until), row[0]) for row in rows],
            )
            conn.execute("COMMIT")
            return [attrs.evolve(_template(), account_id=row[0]) for row in rows]

        def old_release(got: list, lease: Lease, conn: sqlite3.Connection = old_conn) -> None:  # type: ignore[type-arg]
            conn.execute("BEGIN")
            conn.executemany(
                "UPDATE accounts SET claim_owner = NULL, claim_until = NULL WHERE account_id = ?",
                [(r.account_id,) for r in got],
            )
            conn.execute("COMMIT")

        old[n] = _claims(old_claim, old_release, 9)
        old_conn.close()
    first, last = sizes[0], sizes[-1]
    return [
        Result(
            f"4 SQLite claim of 100, {last:,} accounts due at one time",
            new[last],
            "ms",
            f"same store with {first:,} accounts",
            new[first],
            new[last] / new[first],
            "flat (<= 1.5x)",
            new[last] / new[first] <= 1.5,
            notes=[
                "per size, ms per claim: " + ", ".join(f"{n:,}: {new[n]:.2f}" for n in sizes),
                "before (the (due_at) index, same run, copies of the same files): "
                + ", ".join(f"{n:,}: {old[n]:.2f}" for n in sizes),
            ],
        )
    ]


def memory_claims(sizes: tuple[int, ...]) -> list[Result]:
    new: dict[int, float] = {}
    old: dict[int, float] = {}
    for n in sizes:
        store = MemoryStore()
        template = _template()
        for i in range(n):
            store.create(attrs.evolve(template, account_id=f"acct-{i:07d}"), ())

        def release(got: list, lease: Lease, store: MemoryStore = store) -> None:  # type: ignore[type-arg]
            for r in got:
                store.release(r.account_id, lease.owner)

        new[n] = _claims(
            lambda lease, store=store: store.claim_due(now=NOW, lease=lease, limit=100), release, 9
        )

        def old_claim(lease: Lease, store: MemoryStore = store) -> list:  # type: ignore[type-arg]
            with store._lock:  # the sorted scan this change replaced
                candidates = sorted(
                    (due, account_id)
                    for account_id, due in store._due.items()
                    if due <= NOW and store._claim_free(account_id, NOW)
                )[:100]
                out = []
                for _, account_id in candidates:
                    store._claims[account_id] = lease
                    out.append(store._records[account_id])
                return out

        old[n] = _claims(old_claim, release, 9)
    first, last = sizes[0], sizes[-1]
    return [
        Result(
            f"4 MemoryStore claim of 100, {last:,} accounts due at one time",
            new[last],
            "ms",
            f"same store with {first:,} accounts",
            new[first],
            new[last] / new[first],
            "flat (<= 1.5x)",
            new[last] / new[first] <= 1.5,
            notes=[
                "per size, ms per claim: " + ", ".join(f"{n:,}: {new[n]:.3f}" for n in sizes),
                "before (sorting every due account, same run): "
                + ", ".join(f"{n:,}: {old[n]:.3f}" for n in sizes),
            ],
        )
    ]


def run(quick: bool = False) -> list[Result]:
    sizes = (1_000, 10_000) if quick else (1_000, 10_000, 100_000)
    base = os.environ.get("BENCH_TMPDIR") or None
    with tempfile.TemporaryDirectory(prefix="al-bench-", dir=base) as tmp:
        results = sqlite_claims(sizes, Path(tmp))
    results += memory_claims(sizes)
    return [report(r) for r in results]


if __name__ == "__main__":
    run(quick_mode())
