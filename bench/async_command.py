"""The asyncio front end's cost: one accepted command through ``AsyncLifecycle`` next to the
same command through ``Lifecycle``, on each store, in the same run.

Both sides run ``request_cancellation`` then ``withdraw`` by the owner on ``ALLCLIENTS``
accounts (every command accepted), blocks interleaved (``_common.interleaved``). The async
side runs its commands one after another in a coroutine on one event loop, so the figure is a
command's latency, not a throughput under concurrency. Pairs:

- ``MemoryStore`` against ``AsyncLifecycle`` on ``ThreadedStore(MemoryStore())`` (each store
  call goes to the store's thread and back), and on an async store calling ``MemoryStore``
  inline (``_InlineMemory``, a bench helper: the greenlet bridge's cost alone);
- ``SQLiteStore`` (``synchronous=NORMAL``, so an fsync does not hide the CPU) against
  ``ThreadedStore(SQLiteStore(...))``;
- ``PostgresStore`` against ``AsyncPostgresStore`` (psycopg's async API), each in a fresh
  schema, when the server is reachable.

Run alone: ``python -m bench.async_command`` (``--quick`` via ``BENCH_QUICK=1``).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from account_lifecycle import (
    Actor,
    AsyncLifecycle,
    Lifecycle,
    MemoryStore,
    SQLiteStore,
    SystemClock,
    ThreadedStore,
    policies,
)
from account_lifecycle._bridge import run_in_greenlet
from bench._common import Result, interleaved, median_ns_per_op, quick_mode, report
from bench.engine import noop_purgers

POLICY = policies.ALLCLIENTS
PG_DSN = os.environ.get("ACCOUNT_LIFECYCLE_PG_DSN") or "postgresql://postgres@127.0.0.1:5432/test"


class _InlineMemory:
    """An async store calling a ``MemoryStore`` inline (it never blocks): the bridge's cost
    without a thread hop. A bench helper, not a store to ship."""

    def __init__(self) -> None:
        self.store = MemoryStore()

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.store, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call

    async def create(self, *args: Any, **kwargs: Any) -> None:
        self.store.create(*args, **kwargs)

    async def get(self, account_id: str) -> Any:
        return self.store.get(account_id)

    async def save(self, *args: Any, **kwargs: Any) -> None:
        self.store.save(*args, **kwargs)

    async def history(self, account_id: str) -> Any:
        return self.store.history(account_id)

    async def account_ids(self) -> Any:
        return self.store.account_ids()

    async def claim_due(self, **kwargs: Any) -> Any:
        return self.store.claim_due(**kwargs)

    async def release(self, account_id: str, owner: str) -> None:
        self.store.release(account_id, owner)

    async def close(self) -> None:
        return None


def _pair(
    name: str,
    sync_store: Any,
    async_store: Any,
    loop: asyncio.AbstractEventLoop,
    *,
    n: int,
    rounds: int,
    async_name: str,
) -> Result:
    """ns per accepted command, Lifecycle on *sync_store* against AsyncLifecycle on *async_store*."""
    tag = uuid.uuid4().hex[:6]
    sync_lc = Lifecycle(POLICY, store=sync_store, purgers=noop_purgers(POLICY), clock=SystemClock())
    async_lc = AsyncLifecycle(POLICY, store=async_store, purgers=noop_purgers(POLICY), clock=SystemClock())
    owners = [Actor.user(f"owner-{i}") for i in range(n)]
    sync_ids = [f"s-{tag}-{i}" for i in range(n)]
    async_ids = [f"a-{tag}-{i}" for i in range(n)]
    for account_id, owner in zip(sync_ids, owners, strict=True):
        sync_lc.open(account_id, owner=owner.id)

    async def open_all() -> None:
        for account_id, owner in zip(async_ids, owners, strict=True):
            await async_lc.open(account_id, owner=owner.id)

    loop.run_until_complete(open_all())
    sync_pairs = list(zip(sync_ids, owners, strict=True))
    async_pairs = list(zip(async_ids, owners, strict=True))

    def synchronous() -> None:
        for account_id, owner in sync_pairs:
            sync_lc.request_cancellation(account_id, owner)
        for account_id, owner in sync_pairs:
            sync_lc.withdraw(account_id, owner)

    async def commands() -> None:
        for account_id, owner in async_pairs:
            await async_lc.request_cancellation(account_id, owner)
        for account_id, owner in async_pairs:
            await async_lc.withdraw(account_id, owner)

    def asynchronous() -> None:
        loop.run_until_complete(commands())

    medians = interleaved(
        {"sync": median_ns_per_op(synchronous, 2 * n), "async": median_ns_per_op(asynchronous, 2 * n)},
        rounds=rounds,
    )
    a, s = medians["async"] / 1000, medians["sync"] / 1000
    cpu_async, cpu_sync = _cpu_us(asynchronous, 2 * n), _cpu_us(synchronous, 2 * n)
    return Result(
        f"async command, {name}",
        a,
        "us",
        f"Lifecycle on {name.split(' vs ')[0]}",
        s,
        a / s,
        notes=[
            f"AsyncLifecycle on {async_name}: +{a - s:.1f} us per command (wall)",
            f"CPU of this process per command (min of 5; contention does not inflate it): "
            f"{cpu_async:.1f} us async, {cpu_sync:.1f} us sync, {cpu_async / cpu_sync:.2f}x",
        ],
    )


def _cpu_us(block: Callable[[], None], ops: int, repeats: int = 5) -> float:
    """The process's CPU time (every thread) per operation of *block*, the least of *repeats*."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        block()
        best = min(best, time.process_time() - start)
    return best / ops * 1e6


def bridge_round_trip(loop: asyncio.AbstractEventLoop, quick: bool) -> Result:
    """What ``await run_in_greenlet(fn)`` of a function that does nothing costs, against a
    plain call of it: the bridge's fixed cost per command."""
    n = 2_000 if quick else 20_000

    def nothing() -> None:
        return None

    async def bridged() -> None:
        for _ in range(n):
            await run_in_greenlet(nothing)

    def plain() -> None:
        for _ in range(n):
            nothing()

    medians = interleaved(
        {
            "bridge": median_ns_per_op(lambda: loop.run_until_complete(bridged()), n),
            "plain": median_ns_per_op(plain, n),
        },
        rounds=5 if quick else 11,
    )
    return Result(
        "async: run_in_greenlet of a no-op",
        medians["bridge"] / 1000,
        "us",
        "plain call",
        medians["plain"] / 1000,
        medians["bridge"] / medians["plain"],
    )


def psycopg_pool_transaction(loop: asyncio.AbstractEventLoop, n: int, rounds: int) -> Result:
    """psycopg alone, no library: one pooled, checked transaction running ``SELECT 1``
    (what each store call does around its statements) on ``AsyncConnectionPool`` against
    ``ConnectionPool``, for the share of the PostgreSQL difference that is the driver's."""
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

    options: dict[str, Any] = {"min_size": 1, "max_size": 2, "open": False, "kwargs": {"autocommit": True}}
    sync_pool = ConnectionPool(PG_DSN, check=ConnectionPool.check_connection, **options)
    async_pool = AsyncConnectionPool(PG_DSN, check=AsyncConnectionPool.check_connection, **options)
    sync_pool.open(wait=True)
    loop.run_until_complete(async_pool.open(wait=True))

    def synchronous() -> None:
        for _ in range(n):
            with sync_pool.connection() as conn, conn.transaction():
                conn.execute("SELECT 1").fetchone()

    async def transactions() -> None:
        for _ in range(n):
            async with async_pool.connection() as conn, conn.transaction():
                await (await conn.execute("SELECT 1")).fetchone()

    try:
        medians = interleaved(
            {
                "sync": median_ns_per_op(synchronous, n),
                "async": median_ns_per_op(lambda: loop.run_until_complete(transactions()), n),
            },
            rounds=rounds,
        )
    finally:
        sync_pool.close()
        loop.run_until_complete(async_pool.close())
    a, s = medians["async"] / 1000, medians["sync"] / 1000
    return Result(
        "async: psycopg alone, a pooled transaction, AsyncConnectionPool",
        a,
        "us",
        "ConnectionPool",
        s,
        a / s,
    )


def _postgres(loop: asyncio.AbstractEventLoop, n: int, rounds: int) -> list[Result]:
    """The driver's own difference, then the command's, on PostgreSQL."""
    try:
        import psycopg

        from account_lifecycle import AsyncPostgresStore, PostgresStore

        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except Exception as exc:  # no server: the row says so instead of a figure
        return [
            Result("async command, PostgreSQL: not measured", 0.0, "", notes=[f"{type(exc).__name__}: {exc}"])
        ]
    driver = report(psycopg_pool_transaction(loop, n, rounds))
    schemas = [f"al_bench_async_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    sync_store = PostgresStore(PG_DSN, schema=schemas[0], max_connections=2)
    sync_store.migrate()
    async_store = AsyncPostgresStore(PG_DSN, schema=schemas[1], max_connections=2)
    loop.run_until_complete(async_store.migrate())
    try:
        return [
            driver,
            _pair(
                "PostgresStore vs AsyncPostgresStore",
                sync_store,
                async_store,
                loop,
                n=n,
                rounds=rounds,
                async_name="AsyncPostgresStore (psycopg async pool)",
            ),
        ]
    finally:
        sync_store.close()
        loop.run_until_complete(async_store.close())
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run(quick: bool = False, postgres: bool = True) -> list[Result]:
    n = 20 if quick else 100
    rounds = 3 if quick else 11
    loop = asyncio.new_event_loop()
    results: list[Result] = []
    try:
        results.append(report(bridge_round_trip(loop, quick)))
        results.append(
            report(
                _pair(
                    "MemoryStore vs inline async memory store",
                    MemoryStore(),
                    _InlineMemory(),
                    loop,
                    n=n,
                    rounds=rounds,
                    async_name="an async store calling MemoryStore inline (bridge only)",
                )
            )
        )
        threaded = ThreadedStore(MemoryStore())
        results.append(
            report(
                _pair(
                    "MemoryStore vs ThreadedStore(MemoryStore)",
                    MemoryStore(),
                    threaded,
                    loop,
                    n=n,
                    rounds=rounds,
                    async_name="ThreadedStore(MemoryStore()) (a thread hop per store call)",
                )
            )
        )
        loop.run_until_complete(threaded.close())
        with tempfile.TemporaryDirectory(prefix="al-bench-", dir=os.environ.get("BENCH_TMPDIR")) as tmp:
            sync_sqlite = SQLiteStore(Path(tmp) / "sync.db", synchronous="NORMAL")
            threaded_sqlite = ThreadedStore(SQLiteStore(Path(tmp) / "async.db", synchronous="NORMAL"))
            results.append(
                report(
                    _pair(
                        "SQLiteStore vs ThreadedStore(SQLiteStore), synchronous=NORMAL",
                        sync_sqlite,
                        threaded_sqlite,
                        loop,
                        n=n,
                        rounds=rounds,
                        async_name="ThreadedStore(SQLiteStore(...))",
                    )
                )
            )
            sync_sqlite.close()
            loop.run_until_complete(threaded_sqlite.close())
        if postgres:
            *driver, command = _postgres(loop, n, rounds)
            results += [*driver, report(command)]
    finally:
        loop.close()
    return results


if __name__ == "__main__":
    start = time.perf_counter()
    run(quick_mode())
    print(f"({time.perf_counter() - start:.0f} s)")
