"""``AsyncPostgresStore``: ``PostgresStore`` on psycopg's async API (extras ``postgres`` and ``async``).

No SQL lives here. The store is ``PostgresStore`` itself, run in a greenlet (``_bridge``), with
psycopg's ``AsyncConnectionPool`` behind its connection seam (``PostgresStore._pool_class``): a
pool, connection and cursor whose every call awaits the async one on the calling task. So each
of ``PostgresStore``'s methods, including those added after this module was written, is a
coroutine method here, with the same statements, transactions and errors, and a query waiting
on the server (a row lock, say) lets the loop run other tasks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from psycopg import AsyncConnection, AsyncCursor
from psycopg_pool import AsyncConnectionPool

from account_lifecycle._bridge import await_only, run_in_greenlet
from account_lifecycle.adapters.postgres import PostgresStore
from account_lifecycle.audit import AuditEvent
from account_lifecycle.health import StoreStatus
from account_lifecycle.identity_keys import IdentityKeys
from account_lifecycle.model import AccountRecord
from account_lifecycle.values import CorruptRecord, Lease, Write

__all__ = ["AsyncPostgresStore"]

T = TypeVar("T")


class _AwaitingCursor:
    """A psycopg ``AsyncCursor`` used as a synchronous ``Cursor`` in a greenlet."""

    def __init__(self, cursor: AsyncCursor[Any]) -> None:
        self._cursor = cursor

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._cursor, name)
        if not callable(attribute):
            return attribute  # rowcount, description...

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            if hasattr(result, "__await__"):
                result = await_only(result)
            return self if result is self._cursor else result  # execute() returns the cursor

        return call


class _AwaitingConnection:
    """A psycopg ``AsyncConnection``, as the synchronous connection ``_transaction`` uses."""

    def __init__(self, connection: AsyncConnection[Any]) -> None:
        self._connection = connection

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with _entered(self._connection.transaction()):
            yield

    @contextmanager
    def cursor(self, **options: Any) -> Iterator[_AwaitingCursor]:
        with _entered(self._connection.cursor(**options)) as cursor:
            yield _AwaitingCursor(cursor)


@contextmanager
def _entered(manager: Any) -> Iterator[Any]:
    """An async context manager, entered and left from synchronous code in a greenlet."""
    value = await_only(manager.__aenter__())
    try:
        yield value
    except BaseException as exc:
        if not await_only(manager.__aexit__(type(exc), exc, exc.__traceback__)):
            raise
    else:
        await_only(manager.__aexit__(None, None, None))


class _AwaitingPool:
    """psycopg's ``AsyncConnectionPool`` as the synchronous pool ``PostgresStore`` gets its
    connections from (built with the same arguments, or around a host's async pool)."""

    check_connection = AsyncConnectionPool.check_connection

    def __init__(self, conninfo: str = "", *, pool: AsyncConnectionPool[Any] | None = None, **options: Any):
        self.pool: AsyncConnectionPool[Any] = (
            pool if pool is not None else AsyncConnectionPool(conninfo, **options)
        )

    @property
    def conninfo(self) -> object:
        return self.pool.conninfo

    @property
    def name(self) -> str:
        return self.pool.name

    def open(self, wait: bool = False) -> None:
        await_only(self.pool.open(wait=wait))

    def close(self) -> None:
        await_only(self.pool.close())

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[_AwaitingConnection]:
        with _entered(self.pool.connection(timeout=timeout)) as connection:
            yield _AwaitingConnection(connection)


class _GreenletPostgresStore(PostgresStore):
    """``PostgresStore`` whose connections come from an async pool: for greenlets only."""

    _pool_class = _AwaitingPool  # type: ignore[assignment]


class AsyncPostgresStore:
    """Accounts and audit events in PostgreSQL, for asyncio: ``PostgresStore``'s schema,
    statements, guarantees and errors, on psycopg's ``AsyncConnectionPool``.

    *dsn_or_pool* is a connection string (the store then owns an ``AsyncConnectionPool`` of up
    to *max_connections* connections, opened on first use in the running loop, closed by
    ``await close()``) or an ``AsyncConnectionPool`` the host manages. Every public method of
    ``PostgresStore`` is a coroutine method here (``await store.migrate()``, ``await
    store.status(now=...)``...). A store and its pool belong to one event loop.
    """

    def __init__(
        self,
        dsn_or_pool: str | AsyncConnectionPool[Any],
        *,
        schema: str = "account_lifecycle",
        max_connections: int = 10,
        timeout: float = 30.0,
    ) -> None:
        if isinstance(dsn_or_pool, AsyncConnectionPool):
            source: Any = _AwaitingPool(pool=dsn_or_pool)
        elif isinstance(dsn_or_pool, str):
            source = dsn_or_pool
        else:
            raise TypeError(
                "AsyncPostgresStore needs a DSN string or a psycopg_pool.AsyncConnectionPool, "
                f"got {type(dsn_or_pool).__name__}"
            )
        self._greenlet_store = _GreenletPostgresStore(
            source, schema=schema, max_connections=max_connections, timeout=timeout
        )
        #: The PostgreSQL schema holding the tables.
        self.schema = schema

    def __repr__(self) -> str:
        return f"Async{self._greenlet_store!r}"

    def __getattr__(self, name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        """Any other public method of ``PostgresStore``, as a coroutine method."""
        if name.startswith("_"):
            raise AttributeError(name)
        method = getattr(self._greenlet_store, name)
        if not callable(method):
            raise AttributeError(f"PostgresStore.{name} is not a method")

        @functools.wraps(method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await run_in_greenlet(method, *args, **kwargs)

        return call

    async def migrate(self, *, identity_keys: IdentityKeys | None = None) -> tuple[int, ...]:
        """Create or upgrade the schema (``PostgresStore.migrate``)."""
        return await run_in_greenlet(self._greenlet_store.migrate, identity_keys=identity_keys)

    async def close(self) -> None:
        """Close the pool if this store created it (a pool handed in stays open)."""
        await run_in_greenlet(self._greenlet_store.close)

    async def __aenter__(self) -> AsyncPostgresStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def create(
        self,
        record: AccountRecord,
        events: Sequence[AuditEvent],
        *,
        now: datetime | None = None,
        aliases: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Insert a new account (``PostgresStore.create``)."""
        await run_in_greenlet(self._greenlet_store.create, record, events, now=now, aliases=aliases)

    async def get(self, account_id: str) -> AccountRecord:
        """The stored record (``PostgresStore.get``)."""
        return await run_in_greenlet(self._greenlet_store.get, account_id)

    async def save(
        self,
        record: AccountRecord,
        *,
        expected_version: int,
        events: Sequence[AuditEvent],
        lease: Lease | None = None,
        release: str | None = None,
        now: datetime | None = None,
        erase_sealed: bool = False,
    ) -> None:
        """Compare-and-set *record* with its *events* (``PostgresStore.save``)."""
        await run_in_greenlet(
            self._greenlet_store.save,
            record,
            expected_version=expected_version,
            events=events,
            lease=lease,
            release=release,
            now=now,
            erase_sealed=erase_sealed,
        )

    async def save_many(self, writes: Sequence[Write], *, now: datetime) -> list[Exception | None]:
        """Many compare-and-sets in one transaction (``PostgresStore.save_many``)."""
        return await run_in_greenlet(self._greenlet_store.save_many, writes, now=now)

    async def history(self, account_id: str) -> tuple[AuditEvent, ...]:
        """The account's audit events in order (``PostgresStore.history``)."""
        return await run_in_greenlet(self._greenlet_store.history, account_id)

    async def account_ids(self) -> tuple[str, ...]:
        """Every stored account id."""
        return await run_in_greenlet(self._greenlet_store.account_ids)

    async def claim_due(
        self, *, now: datetime, lease: Lease, limit: int
    ) -> Sequence[AccountRecord | CorruptRecord]:
        """Claim up to *limit* due accounts (``PostgresStore.claim_due``, ``SKIP LOCKED``)."""
        return await run_in_greenlet(self._greenlet_store.claim_due, now=now, lease=lease, limit=limit)

    async def release(self, account_id: str, owner: str) -> None:
        """Drop *owner*'s claim on the account."""
        await run_in_greenlet(self._greenlet_store.release, account_id, owner)

    async def status(self, *, now: datetime) -> StoreStatus:
        """A read-only snapshot of the purge work (``PostgresStore.status``)."""
        return await run_in_greenlet(self._greenlet_store.status, now=now)
