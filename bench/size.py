"""Target 4: cost does not grow with size.

* Command latency (``request_cancellation`` then ``withdraw`` by the owner, both accepted) and
  ``get`` on a store holding 1k, 10k, 100k and 1M accounts, SQLite (``synchronous=NORMAL``)
  and PostgreSQL, each against the same operations on a store of 1k accounts in the same run
  (blocks interleaved, the order flipped every round). Every block picks fresh random
  accounts from the whole store, so the big store is read where it is cold, not only where a
  previous block left it in cache.
* A command on an account with 1,000 events of history against a command on accounts with
  one or a few events, same store, same run.
* ``verify_history`` at 10, 100, 1,000 and 10,000 events (``MemoryStore`` and SQLite): time per
  event, against the time per event at 10 (linear means a ratio near 1).

Set-up (not timed): one account is opened through the library; its record and its ``open``
event, encoded once by the codec, are copied under other account ids of the same length and
loaded with ``executemany`` (SQLite) or ``COPY`` (PostgreSQL). Their events' hashes name the
template account, so ``verify_history`` would refuse them; commands on them build correct new
events on top of the stored chain head, which is all a command reads. The stores grow in
place: 1k, then 9k more rows, and so on.

PostgreSQL runs with ``synchronous_commit=off`` (the DSN's options): a commit's ``fsync`` on
this shared virtual disk moves by several ms between seconds and would hide any growth in
the statements' cost, which is what is measured here.
"""

from __future__ import annotations

import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from account_lifecycle import Actor, Lifecycle, MemoryStore, SQLiteStore, SystemClock, policies
from account_lifecycle.codec import event_to_json, record_to_json
from account_lifecycle.model import AccountRecord
from account_lifecycle.testing.fakes import fake_purgers
from bench import size_queries
from bench._common import Result, interleaved, quick_mode, report

POLICY = policies.ALLCLIENTS
PG_DSN = os.environ.get("ACCOUNT_LIFECYCLE_PG_DSN") or "postgresql://postgres@127.0.0.1:5432/test"
NO_FSYNC_WAIT = "options=-csynchronous_commit%3Doff"
TEMPLATE = "acct-T000000"  # same length as every filler id: acct-%07d
OWNER = Actor.user("owner-t")
FLAT = 1.5  # "flat": the big store's figure within 1.5x of the 1k store's, same run


def _lifecycle(store: Any) -> Lifecycle:
    """A lifecycle of the policy on *store*, with purgers that erase nothing."""
    purgers = fake_purgers(POLICY, items=0, detail="").values()
    return Lifecycle(POLICY, store=store, clock=SystemClock(), purgers=purgers)


def _filler_id(i: int) -> str:
    return f"acct-{i:07d}"


class Template:
    """A valid record and its events, encoded once, to copy under other ids."""

    def __init__(self) -> None:
        lc = _lifecycle(MemoryStore())
        lc.open(TEMPLATE, owner=OWNER.id)
        self.record: AccountRecord = lc.get(TEMPLATE)
        self.events = lc.history(TEMPLATE)
        self.record_json = record_to_json(self.record)
        self.event_json = [event_to_json(e) for e in self.events]

    def record_body(self, account_id: str) -> str:
        return self.record_json.replace(TEMPLATE, account_id)

    def event_bodies(self, account_id: str) -> list[str]:
        return [body.replace(TEMPLATE, account_id) for body in self.event_json]


# -- stores that can be grown in bulk -----------------------------------------------------------


class SQLiteTarget:
    """A ``SQLiteStore`` file grown with ``executemany`` (not timed)."""

    name = "SQLite NORMAL"

    def __init__(self, directory: Path, label: str, template: Template) -> None:
        self.path = directory / f"{label}.db"
        self.template = template
        self.count = 0
        self.store = SQLiteStore(self.path, synchronous="NORMAL")

    def grow(self, n: int) -> None:
        """Add rows up to *n* accounts in all."""
        from account_lifecycle.adapters.sqlite import SQLiteStore as S

        version, state, identity, due = S._columns(self.template.record)[:4]  # flags: the defaults (none)
        conn = sqlite3.connect(self.path)
        conn.execute("PRAGMA synchronous=OFF")
        with conn:
            conn.executemany(
                "INSERT INTO accounts (account_id, version, state, live_identity, due_at, body)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (_filler_id(i), version, state, identity, due, self.template.record_body(_filler_id(i)))
                    for i in range(self.count, n)
                ),
            )
            conn.executemany(
                "INSERT INTO events (account_id, seq, body) VALUES (?, ?, ?)",
                (
                    (_filler_id(i), seq, body)
                    for i in range(self.count, n)
                    for seq, body in enumerate(self.template.event_bodies(_filler_id(i)), 1)
                ),
            )
        conn.execute("ANALYZE")
        conn.close()
        self.count = n

    def close(self) -> None:
        self.store.close()


class PostgresTarget:
    """A ``PostgresStore`` schema grown with ``COPY`` (not timed)."""

    name = "PostgreSQL"

    def __init__(self, label: str, template: Template) -> None:
        from account_lifecycle import PostgresStore

        self.schema = f"bench_size_{label}_{os.getpid()}"
        self.template = template
        self.count = 0
        dsn = PG_DSN + ("&" if "?" in PG_DSN else "?") + NO_FSYNC_WAIT
        self.store = PostgresStore(dsn, schema=self.schema, max_connections=2)
        self.store.migrate()

    def grow(self, n: int) -> None:
        """Add rows up to *n* accounts in all."""
        import psycopg

        columns = self.store._columns(self.template.record)
        events = self.template.events
        with psycopg.connect(PG_DSN) as conn:
            conn.execute("SET synchronous_commit = off")
            with conn.cursor() as cur:
                with cur.copy(
                    f'COPY "{self.schema}".accounts (account_id, version, state, live_identity, due_at, body)'
                    " FROM STDIN"
                ) as copy:
                    for i in range(self.count, n):
                        aid = _filler_id(i)
                        copy.write_row(
                            (
                                aid,
                                columns["version"],
                                columns["state"],
                                columns["live_identity"],
                                columns["due_at"],
                                self.template.record_body(aid),
                            )
                        )
                with cur.copy(
                    f'COPY "{self.schema}".events (account_id, seq, at, action, body) FROM STDIN'
                ) as copy:
                    for i in range(self.count, n):
                        aid = _filler_id(i)
                        for e, body in zip(events, self.template.event_bodies(aid), strict=True):
                            copy.write_row((aid, e.seq, e.at, str(e.action), body))
            conn.commit()
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'VACUUM ANALYZE "{self.schema}".accounts')
            conn.execute(f'VACUUM ANALYZE "{self.schema}".events')
        self.count = n

    def close(self) -> None:
        import psycopg

        self.store.close()
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


# -- timed blocks -------------------------------------------------------------------------------


def _command_block(
    lc: Lifecycle, count: Callable[[], int], ops: int, rng: random.Random
) -> Callable[[], float]:
    """A block of *ops* accepted commands on random accounts: ns per command."""

    def block() -> float:
        ids = [_filler_id(rng.randrange(count())) for _ in range(ops // 2)]
        start = time.perf_counter_ns()
        for account_id in ids:
            lc.request_cancellation(account_id, OWNER)
            lc.withdraw(account_id, OWNER)
        return (time.perf_counter_ns() - start) / (2 * len(ids))

    return block


def _get_block(lc: Lifecycle, count: Callable[[], int], ops: int, rng: random.Random) -> Callable[[], float]:
    """A block of *ops* ``get`` of random accounts: ns per get."""

    def block() -> float:
        ids = [_filler_id(rng.randrange(count())) for _ in range(ops)]
        start = time.perf_counter_ns()
        for account_id in ids:
            lc.get(account_id)
        return (time.perf_counter_ns() - start) / len(ids)

    return block


def _history_block(lc: Lifecycle, account_id: str, ops: int) -> Callable[[], float]:
    def block() -> float:
        start = time.perf_counter_ns()
        for _ in range(ops // 2):
            lc.request_cancellation(account_id, OWNER)
            lc.withdraw(account_id, OWNER)
        return (time.perf_counter_ns() - start) / (2 * (ops // 2))

    return block


def _grow_history(lc: Lifecycle, account_id: str, events: int) -> None:
    """Open *account_id* and run command pairs until it has *events* events."""
    lc.open(account_id, owner=OWNER.id)
    while len(lc.history(account_id)) + 2 <= events:
        for _ in range((events - len(lc.history(account_id))) // 2):
            lc.request_cancellation(account_id, OWNER)
            lc.withdraw(account_id, OWNER)
    if len(lc.history(account_id)) < events:
        lc.request_cancellation(account_id, OWNER)
    assert len(lc.history(account_id)) == events, (account_id, len(lc.history(account_id)))


def _size_results(
    backend: str, small: Any, big: Any, sizes: list[int], rounds: int, ops: int
) -> list[Result]:
    results: list[Result] = []
    rng = random.Random(14)
    small.grow(sizes[0])
    small_lc = _lifecycle(small.store)
    big_lc = _lifecycle(big.store)
    for n in sizes:
        start = time.perf_counter()
        big.grow(n)
        load = time.perf_counter() - start
        got = interleaved(
            {
                "small command": _command_block(small_lc, lambda: small.count, ops, rng),
                "big command": _command_block(big_lc, lambda: big.count, ops, rng),
                "small get": _get_block(small_lc, lambda: small.count, ops, rng),
                "big get": _get_block(big_lc, lambda: big.count, ops, rng),
            },
            rounds=rounds,
        )
        for what in ("command", "get"):
            figure, base = got[f"big {what}"] / 1000, got[f"small {what}"] / 1000
            results.append(
                report(
                    Result(
                        f"4 {backend}: {what} at {n:,} accounts",
                        figure,
                        "us",
                        f"same at {sizes[0]:,} accounts",
                        base,
                        figure / base,
                        f"<= {FLAT}x (flat)",
                        figure / base <= FLAT,
                        notes=[f"bulk load to {n:,} accounts took {load:.1f} s (not timed)"]
                        if what == "get"
                        else [],
                    )
                )
            )
    # a command on an account with 1,000 events of history, same store as the fillers
    _grow_history(big_lc, "acct-H000000", 1001)  # open + 500 pairs: active again
    got = interleaved(
        {
            "history": _history_block(big_lc, "acct-H000000", ops),
            "fresh": _command_block(big_lc, lambda: big.count, ops, rng),
        },
        rounds=rounds,
    )
    figure, base = got["history"] / 1000, got["fresh"] / 1000
    results.append(
        report(
            Result(
                f"4 {backend}: command on an account with 1,000+ events ({big.count:,} accounts)",
                figure,
                "us",
                "same on accounts with 1-5 events",
                base,
                figure / base,
                f"<= {FLAT}x (flat)",
                figure / base <= FLAT,
            )
        )
    )
    return results


def _verify_results(backend: str, lc: Lifecycle, lengths: list[int], rounds: int) -> list[Result]:
    ids = {n: f"acct-V{n:06d}" for n in lengths}
    for n, account_id in ids.items():
        _grow_history(lc, account_id, n)

    def block(account_id: str, n: int) -> Callable[[], float]:
        reps = max(1, 2000 // n)

        def run() -> float:
            start = time.perf_counter_ns()
            for _ in range(reps):
                lc.verify_history(account_id)
            return (time.perf_counter_ns() - start) / (reps * n)

        return run

    got = interleaved({str(n): block(ids[n], n) for n in lengths}, rounds=rounds)
    base = got[str(lengths[0])] / 1000
    results = []
    for n in lengths:
        figure = got[str(n)] / 1000
        results.append(
            report(
                Result(
                    f"4 {backend}: verify_history, {n:,} events, per event",
                    figure,
                    "us",
                    f"per event at {lengths[0]:,}",
                    base,
                    figure / base,
                    f"<= {FLAT}x (linear)",
                    figure / base <= FLAT,
                    notes=[f"whole history: {figure * n / 1000:.2f} ms"],
                )
            )
        )
    return results


def run(
    quick: bool = False, *, postgres: bool = True, max_size: int | None = None, only_queries: bool = False
) -> list[Result]:
    """Every figure of target 4 this module measures (with *only_queries*, the filtered pages
    of ``bench.size_queries`` alone)."""
    quick = quick or quick_mode()
    sizes = [1_000, 10_000] if quick else [1_000, 10_000, 100_000, 1_000_000]
    if max_size is not None:
        sizes = [n for n in sizes if n <= max_size]
    rounds, ops = (3, 40) if quick else (9, 200)
    lengths = [10, 100] if quick else [10, 100, 1_000, 10_000]
    template = Template()
    results: list[Result] = []
    query_sizes = [n for n in sizes if n != 10_000] if len(sizes) > 2 else sizes
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMPDIR")) as tmp:
        directory = Path(tmp)
        if not only_queries:
            results += _verify_results("MemoryStore", _lifecycle(MemoryStore()), lengths, rounds)
            verify_store = SQLiteStore(directory / "verify.db", synchronous="NORMAL")
            results += _verify_results("SQLite", _lifecycle(verify_store), lengths, rounds)
            verify_store.close()
            small, big = SQLiteTarget(directory, "small", template), SQLiteTarget(directory, "big", template)
            try:
                results += _size_results("SQLite", small, big, sizes, rounds, ops)
            finally:
                small.close()
                big.close()
        record = template.record
        q_small = size_queries.SQLiteQueries(directory, "small", record)
        q_big = size_queries.SQLiteQueries(directory, "big", record)
        try:
            results += size_queries.query_results(
                "SQLite", q_small, q_big, query_sizes, _lifecycle, rounds, 5
            )
        finally:
            q_small.close()
            q_big.close()
    if postgres:
        fast = PG_DSN + ("&" if "?" in PG_DSN else "?") + NO_FSYNC_WAIT
        if not only_queries:
            pg_small, pg_big = PostgresTarget("small", template), PostgresTarget("big", template)
            try:
                results += _size_results("PostgreSQL", pg_small, pg_big, sizes, rounds, ops // 2)
            finally:
                pg_small.close()
                pg_big.close()
        record = template.record
        pq_small = size_queries.PostgresQueries("small", record, PG_DSN, fast)
        pq_big = size_queries.PostgresQueries("big", record, PG_DSN, fast)
        try:
            results += size_queries.query_results(
                "PostgreSQL", pq_small, pq_big, query_sizes, _lifecycle, rounds, 5
            )
        finally:
            pq_small.close()
            pq_big.close()
    return results


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.size [--quick] [--no-postgres] [--max-size N] [--queries]`` (``--queries``:
    the filtered pages alone; ``$BENCH_BEFORE``: main's library timed on the same stores)."""
    args = sys.argv[1:] if argv is None else argv
    max_size = None
    if "--max-size" in args:
        max_size = int(args[args.index("--max-size") + 1])
    results = run(
        "--quick" in args,
        postgres="--no-postgres" not in args,
        max_size=max_size,
        only_queries="--queries" in args,
    )
    from bench._common import print_results

    print()
    print_results(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
