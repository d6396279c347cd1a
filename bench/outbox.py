"""What the transactional outbox costs (issue 17), on SQLite and PostgreSQL.

**Per event, in the command.** The same command (``request_cancellation`` / ``withdraw`` by the
owner on ``ALLCLIENTS`` accounts: one audit event each) against the shipped store and against
the same store class with its outbox insert skipped (``_outbox_append`` does nothing: no entry,
and on PostgreSQL no advisory lock), in the same run, interleaved block by block. The figure is
microseconds per command; the difference is the outbox's cost per event.

**Relay throughput.** Commands write N events; ``Lifecycle.relay`` then feeds them to one
durable listener that does nothing, advancing the cursor (one compare-and-set write) after each
delivery (``outbox_advance_every=1``, the default) or after every 20: events per second, the
store's write path being the bound.

``python -m bench.outbox`` (``--quick`` for a smoke test; ``--no-postgres`` for SQLite only).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from account_lifecycle import Actor, AuditEvent, Lifecycle, ManualClock, SQLiteStore, policies
from bench._common import Result, interleaved, median_ns_per_op, print_results, quick_mode, report
from bench.engine import noop_purgers

POLICY = policies.ALLCLIENTS
DSN = "postgresql://postgres@127.0.0.1:5432/test"


class SQLiteWithoutOutbox(SQLiteStore):
    """The baseline: the same store, its outbox insert skipped."""

    def _outbox_append(self, conn: Any, events: Sequence[AuditEvent]) -> None:
        return None


def _postgres_classes() -> tuple[type[Any], type[Any]]:
    from account_lifecycle.adapters.postgres import PostgresStore

    class PostgresWithoutOutbox(PostgresStore):
        """The baseline: the same store, its outbox insert (and advisory lock) skipped."""

        def _outbox_append(self, cursor: Any, events: Sequence[AuditEvent]) -> None:
            return None

    return PostgresStore, PostgresWithoutOutbox


class _Commands:
    """Owners of *n* accounts toggling between ACTIVE and SURVEYED: one event per command."""

    def __init__(self, store: Any, n: int, prefix: str) -> None:
        self.lc = Lifecycle(
            POLICY,
            store=store,
            purgers=noop_purgers(POLICY),
            clock=ManualClock(datetime(2026, 1, 1, tzinfo=UTC)),
        )
        self.ids = [f"{prefix}-{i}" for i in range(n)]
        self.owners = [Actor.user(f"owner-{i}") for i in range(n)]
        for account_id, owner in zip(self.ids, self.owners, strict=True):
            self.lc.open(account_id, owner=owner.id)
        self.cancelled = False

    def run(self) -> None:
        """One command per account."""
        act = self.lc.withdraw if self.cancelled else self.lc.request_cancellation
        for account_id, owner in zip(self.ids, self.owners, strict=True):
            act(account_id, owner)
        self.cancelled = not self.cancelled


def _command_cost(label: str, with_outbox: Any, without: Any, quick: bool) -> Result:
    n = 20 if quick else 50
    rounds = 5 if quick else 15
    a = _Commands(with_outbox, n, "with")
    b = _Commands(without, n, "without")
    medians = interleaved(
        {"with": median_ns_per_op(a.run, n), "without": median_ns_per_op(b.run, n)}, rounds=rounds
    )
    figure, base = medians["with"] / 1000, medians["without"] / 1000
    return report(
        Result(
            f"outbox: {label} command with its outbox entry",
            figure,
            "us/command",
            baseline_name="same store, outbox insert skipped",
            baseline=base,
            ratio=figure / base,
            notes=[f"cost per event (one event per command): {figure - base:+.1f} us"],
        )
    )


def _relay_throughput(label: str, store: Any, quick: bool) -> list[Result]:
    events = 300 if quick else 2000
    commands = _Commands(store, 100, "relay")
    while store.outbox_head() - 100 < events:
        commands.run()
    total = store.outbox_head()
    results = []
    for every in (1, 20):  # two listeners, each fed all the events; the cursor written ...
        delivered: list[int] = []
        lc = Lifecycle(
            POLICY,
            store=store,
            purgers=noop_purgers(POLICY),
            clock=commands.lc.clock,
            outbox_listeners={f"bench-{every}": lambda event, seen=delivered: seen.append(event.seq)},
            outbox_advance_every=every,
        )
        started = time.perf_counter()
        relayed = lc.relay().total
        seconds = time.perf_counter() - started
        assert relayed == total == len(delivered), (relayed, total)
        how = "after each delivery" if every == 1 else f"every {every} deliveries"
        results.append(
            report(
                Result(
                    f"outbox: {label} relay throughput, cursor written {how}",
                    relayed / seconds,
                    "events/s",
                    notes=[f"{relayed} events to one listener that does nothing"],
                )
            )
        )
    return results


@contextmanager
def _postgres_schema() -> Iterator[str | None]:
    import uuid

    import psycopg
    from psycopg import sql

    schema = f"al_bench_{uuid.uuid4().hex[:10]}"
    try:
        psycopg.connect(DSN, connect_timeout=3).close()
    except psycopg.Error as exc:
        print(f"PostgreSQL not reachable at {DSN}: {exc}; skipped", flush=True)
        yield None
        return
    try:
        yield schema
    finally:
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def run(quick: bool, *, postgres: bool = True) -> list[Result]:
    """Every figure of this benchmark, printed as it is known."""
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for synchronous in ("FULL", "NORMAL"):
            a = SQLiteStore(tmp / f"with-{synchronous}.db", synchronous=synchronous)
            b = SQLiteWithoutOutbox(tmp / f"without-{synchronous}.db", synchronous=synchronous)
            results.append(_command_cost(f"SQLite ({synchronous})", a, b, quick))
            a.close()
            b.close()
            relay_store = SQLiteStore(tmp / f"relay-{synchronous}.db", synchronous=synchronous)
            results += _relay_throughput(f"SQLite ({synchronous})", relay_store, quick)
            relay_store.close()
    if postgres:
        with_class, without_class = _postgres_classes()
        with _postgres_schema() as schema:
            if schema is not None:
                stores: list[Any] = []
                for cls, suffix in ((with_class, "a"), (without_class, "b"), (with_class, "r")):
                    store = cls(DSN, schema=f"{schema}_{suffix}")
                    store.migrate()
                    stores.append(store)
                try:
                    results.append(_command_cost("PostgreSQL", stores[0], stores[1], quick))
                    results += _relay_throughput("PostgreSQL", stores[2], quick)
                finally:
                    for store in stores:
                        store.close()
                    _drop(schema)
    return results


def _drop(prefix: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(DSN, autocommit=True) as conn:
        for suffix in ("a", "b", "r"):
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(f"{prefix}_{suffix}"))
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small runs, for a smoke test")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    results = run(args.quick or quick_mode(), postgres=not args.no_postgres)
    print()
    print_results(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
