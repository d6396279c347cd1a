"""Target 4 for operators' queries: a filtered page of ``Lifecycle.accounts`` costs the same at
1k, 100k and 1M stored accounts (imported by ``bench.size``; ``python -m bench.size --queries``).

Each store holds active accounts copied from one template row (accounts only: a query reads
no event), of which 10, spread over the ids, have a legal hold and 10 others are cancelled with
a failed purge step (written through the store's own ``save``, so their columns are the
library's). Three pages of 50 (``limit=50``; each matches 10, so the page proves there are no
more): ``with_holds=True``, ``with_failed_steps=True`` and ``states={"cancelled"}``. The big store
grows in place (1k, 100k, 1M); each of its pages is timed against the same page on a 1k store in
the same run, blocks interleaved and the order flipped every round. CPU time of this process
(``time.process_time``) and wall time are both reported: the database's own work is in wall
time (PostgreSQL is another process).

"Before": the library of ``$BENCH_BEFORE`` (a checkout of main, ``git archive main | tar -x -C
/tmp/base``) answering the same page on the same store in a subprocess of this run, one timing
per size up to ``$BENCH_BEFORE_MAX`` accounts (100,000 unless set: a page took about a minute
there under load, and it grows with the store): it filtered holds and failed steps by decoding
every row. It reads the same file or schema with its recorded version set back to 5 for the
read (the older library ignores the two added columns) and set to 6 again after.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from account_lifecycle import Lifecycle, SQLiteStore
from account_lifecycle.codec import record_to_json
from account_lifecycle.model import AccountRecord, Hold, PurgeProgress, PurgeStatus, State
from bench._common import Result, interleaved, report

HELD = 10
_NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
QUERIES: dict[str, dict[str, Any]] = {
    "with_holds=True": {"with_holds": True},
    "with_failed_steps=True": {"with_failed_steps": True},
    'states={"cancelled"}': {"states": {"cancelled"}},
}
FLAT = 1.5


def _id(i: int) -> str:
    return f"acct-{i:07d}"


def _special(n: int) -> tuple[list[int], list[int]]:
    """The positions of the held and of the failed accounts among *n*: spread over the ids."""
    step = n // HELD
    return [k * step + step // 3 for k in range(HELD)], [k * step + 2 * step // 3 for k in range(HELD)]


def _mark(store: Any, n: int, template: AccountRecord, marked: set[str]) -> set[str]:
    """Give the accounts of ``_special(n)`` their hold or failed step through ``store.save``,
    and put the ones marked for a smaller size back as the template (through ``save`` too)."""
    held, failed = _special(n)
    want = {_id(i): "held" for i in held} | {_id(i): "failed" for i in failed}
    for account_id in marked - set(want):
        current = store.get(account_id)
        plain = attrs.evolve(template, account_id=account_id, version=current.version + 1)
        store.save(plain, expected_version=current.version, events=())
    for account_id, kind in want.items():
        current = store.get(account_id)
        if kind == "held":
            hold = Hold(current.cancelled_at or _NOW, "support:bench", "case 14")
            following = attrs.evolve(current, version=current.version + 1, holds={"files": hold})
        else:
            step = PurgeProgress(PurgeStatus.FAILED, attempts=1, error="timeout", at=_NOW, retry_at=_NOW)
            following = attrs.evolve(
                current,
                version=current.version + 1,
                state=State.CANCELLED,
                cancelled_at=_NOW,
                purge={"contacts": step},
            )
        store.save(following, expected_version=current.version, events=())
    return set(want)


class SQLiteQueries:
    name = "SQLite NORMAL"
    in_process = True

    def __init__(self, directory: Path, label: str, template: AccountRecord) -> None:
        self.path = directory / f"queries-{label}.db"
        self.template = template
        self.count = 0
        self.marked: set[str] = set()
        self.store = SQLiteStore(self.path, synchronous="NORMAL")

    def grow(self, n: int) -> None:
        version, state, identity, due, _, label, held, failed = SQLiteStore._columns(self.template)
        body = record_to_json(self.template)
        conn = sqlite3.connect(self.path)
        conn.execute("PRAGMA synchronous=OFF")
        with conn:
            conn.executemany(
                "INSERT INTO accounts (account_id, version, state, live_identity, due_at, body, policy_label,"
                " has_holds, has_failed_steps) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        _id(i),
                        version,
                        state,
                        identity,
                        due,
                        body.replace(TEMPLATE_ID, _id(i)),
                        label,
                        held,
                        failed,
                    )
                    for i in range(self.count, n)
                ),
            )
        conn.execute("ANALYZE")
        conn.close()
        self.count = n
        self.marked = _mark(self.store, n, self.template, self.marked)

    def set_version(self, version: int) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
        conn.close()

    def before_args(self) -> list[str]:
        return ["sqlite", str(self.path)]

    def plan_notes(self, query: dict[str, Any]) -> list[str]:
        return []

    def close(self) -> None:
        self.store.close()


class PostgresQueries:
    name = "PostgreSQL"
    in_process = False

    def __init__(self, label: str, template: AccountRecord, dsn: str, fast_dsn: str) -> None:
        from account_lifecycle import PostgresStore

        self.schema = f"bench_queries_{label}_{os.getpid()}"
        self.template = template
        self.count = 0
        self.marked: set[str] = set()
        self.dsn = dsn
        self.store = PostgresStore(fast_dsn, schema=self.schema, max_connections=2)
        self.store.migrate()

    def grow(self, n: int) -> None:
        import psycopg

        columns = self.store._columns(self.template)
        body = columns["body"]
        with psycopg.connect(self.dsn) as conn:
            conn.execute("SET synchronous_commit = off")
            with (
                conn.cursor() as cur,
                cur.copy(
                    f'COPY "{self.schema}".accounts (account_id, version, state, live_identity, due_at, body,'
                    " policy_label, has_holds, has_failed_steps) FROM STDIN"
                ) as copy,
            ):
                for i in range(self.count, n):
                    copy.write_row(
                        (
                            _id(i),
                            columns["version"],
                            columns["state"],
                            columns["live_identity"],
                            columns["due_at"],
                            body.replace(TEMPLATE_ID, _id(i)),
                            columns["policy_label"],
                            columns["has_holds"],
                            columns["has_failed_steps"],
                        )
                    )
            conn.commit()
        self.count = n
        self.marked = _mark(self.store, n, self.template, self.marked)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'VACUUM ANALYZE "{self.schema}".accounts')

    def set_version(self, version: int) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            if version < 6:
                conn.execute(f'DELETE FROM "{self.schema}".schema_migrations WHERE version >= 6')
            else:
                conn.execute(
                    f'INSERT INTO "{self.schema}".schema_migrations (version, description) VALUES (6, %s)'
                    " ON CONFLICT DO NOTHING",
                    ("operators' queries (restored after the before-timing)",),
                )

    def before_args(self) -> list[str]:
        return ["postgres", self.dsn, self.schema]

    def plan_notes(self, query: dict[str, Any]) -> list[str]:
        """The plan of the page's statement (as ``list_accounts`` builds it) and the buffers it
        touched: a count that does not move with load."""
        import psycopg

        where = {"with_holds": "has_holds", "with_failed_steps": "has_failed_steps"}
        clause = " AND ".join(where[k] for k in query if k in where) or "state = 'cancelled'"
        statement = (
            f'EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT account_id, body FROM "{self.schema}".accounts'
            f" WHERE {clause} ORDER BY account_id LIMIT 51"
        )
        with psycopg.connect(self.dsn) as conn:
            [[plan]] = conn.execute(statement).fetchall()
        top = plan[0]["Plan"]
        node = top["Plans"][0] if top.get("Plans") else top
        blocks = top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)
        return [
            f"plan: {node['Node Type']} on {node.get('Index Name', 'the table')}, {blocks} buffers touched"
        ]

    def close(self) -> None:
        import psycopg

        self.store.close()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


TEMPLATE_ID = "acct-T000000"

_BEFORE_SCRIPT = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from account_lifecycle import Lifecycle, SystemClock, policies
from account_lifecycle.testing.fakes import fake_purgers
kind = sys.argv[2]
if kind == "sqlite":
    from account_lifecycle import SQLiteStore
    store = SQLiteStore(sys.argv[3], synchronous="NORMAL")
else:
    from account_lifecycle import PostgresStore
    store = PostgresStore(sys.argv[3], schema=sys.argv[4], max_connections=2)
purgers = fake_purgers(policies.ALLCLIENTS, items=0, detail="").values()
lc = Lifecycle(policies.ALLCLIENTS, store=store, clock=SystemClock(), purgers=purgers)
query = json.loads(sys.argv[-1])
wall, cpu = time.perf_counter(), time.process_time()
page = lc.accounts(**query)
print(json.dumps([time.perf_counter() - wall, time.process_time() - cpu, len(page.accounts)]))
store.close()
"""


def _before(target: Any, query: dict[str, Any]) -> tuple[float, float] | None:
    """(wall s, CPU s) of one page by the library in ``$BENCH_BEFORE``; None without it."""
    import json

    before = os.environ.get("BENCH_BEFORE")
    if not before or target.count > int(os.environ.get("BENCH_BEFORE_MAX", "100000")):
        return None
    wanted = {k: sorted(v) if isinstance(v, set) else v for k, v in query.items()}
    target.set_version(5)
    try:
        out = subprocess.run(
            [sys.executable, "-c", _BEFORE_SCRIPT, before, *target.before_args(), json.dumps(wanted)],
            check=True,
            capture_output=True,
            text=True,
            cwd=before,
        )
    finally:
        target.set_version(6)
    wall, cpu, found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found == HELD, found
    return wall, cpu


def _page_block(
    lc: Lifecycle, query: dict[str, Any], reps: int
) -> tuple[Callable[[], float], Callable[[], float]]:
    """Blocks of *reps* pages: (wall us per page, CPU us per page); each checks its page."""

    def wall() -> float:
        start = time.perf_counter_ns()
        for _ in range(reps):
            page = lc.accounts(**query)
        assert len(page.accounts) == HELD, page.account_ids
        assert page.next_cursor is None
        return (time.perf_counter_ns() - start) / reps / 1000

    def cpu() -> float:
        start = time.process_time_ns()
        for _ in range(reps):
            page = lc.accounts(**query)
        assert len(page.accounts) == HELD, page.account_ids
        return (time.process_time_ns() - start) / reps / 1000

    return wall, cpu


def query_results(
    backend: str,
    small: Any,
    big: Any,
    sizes: list[int],
    lifecycle: Callable[[Any], Lifecycle],
    rounds: int,
    reps: int,
) -> list[Result]:
    """The filtered pages on *big* at each size against *small* at 1k, same run."""
    results: list[Result] = []
    small.grow(sizes[0])
    small_lc, big_lc = lifecycle(small.store), lifecycle(big.store)
    for n in sizes:
        start = time.perf_counter()
        big.grow(n)
        load = time.perf_counter() - start
        for label, query in QUERIES.items():
            small_wall, small_cpu = _page_block(small_lc, query, reps)
            big_wall, big_cpu = _page_block(big_lc, query, reps)
            got = interleaved(
                {"small wall": small_wall, "big wall": big_wall, "small cpu": small_cpu, "big cpu": big_cpu},
                rounds=rounds,
            )
            # SQLite works in this process: its CPU time is the page's cost, steady under load.
            # PostgreSQL works in the server: wall time, with the blocks the plan touched.
            measure = "cpu" if big.in_process else "wall"
            other = "wall" if big.in_process else "cpu"
            figure, base = got[f"big {measure}"], got[f"small {measure}"]
            big_other, small_other = got[f"big {other}"], got[f"small {other}"]
            notes = [
                f"{measure} time per page (the figure); {other} time: {big_other:.0f} us vs "
                f"{small_other:.0f} us at {sizes[0]:,} ({big_other / small_other:.2f}x);"
                f" load average {os.getloadavg()[0]:.1f}"
            ]
            notes += big.plan_notes(query)
            if label == "with_holds=True":
                notes.append(f"bulk load to {n:,} accounts took {load:.1f} s (not timed)")
            before = _before(big, query)
            if before is not None:
                notes.append(
                    f"before (main's library, same store, one page): {before[0] * 1e3:,.1f} ms wall, "
                    f"{before[1] * 1e3:,.1f} ms CPU: {before[0] * 1e6 / got['big wall']:,.0f}x the wall time "
                    f"now, {before[1] * 1e6 / got['big cpu']:,.0f}x the CPU time"
                )
            results.append(
                report(
                    Result(
                        f"4 {backend}: page of {label} ({HELD} match) at {n:,} accounts ({measure})",
                        figure,
                        "us",
                        f"same at {sizes[0]:,} accounts",
                        base,
                        figure / base,
                        f"<= {FLAT}x (flat)",
                        figure / base <= FLAT,
                        notes=notes,
                    )
                )
            )
    return results
