"""Engines and stores for the SQLAlchemy store's tests: a SQLite file per test, and a throw-away
PostgreSQL schema per test (tests/pg.py: skipped with the reason when the server is unreachable,
failed under CI=true)."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, update
from sqlalchemy.engine import Engine

from account_lifecycle.adapters.sqlalchemy import SQLAlchemyStore

T = TypeVar("T")


def pg_url(dsn: str, driver: str = "psycopg") -> str:
    """*dsn* (``postgresql://...``) as a SQLAlchemy URL for *driver*."""
    scheme, rest = dsn.split("://", 1)
    return f"postgresql+{driver}://{rest}" if scheme in ("postgresql", "postgres") else dsn


def sqlite_engine(path: Path) -> Engine:
    return create_engine(f"sqlite:///{path}")


@contextmanager
def sqlite_store(path: Path) -> Iterator[SQLAlchemyStore]:
    engine = sqlite_engine(path)
    store = SQLAlchemyStore(engine)
    store.migrate()
    try:
        yield store
    finally:
        engine.dispose()


@contextmanager
def pg_store() -> Iterator[SQLAlchemyStore]:
    import pg

    with pg.throwaway_schema() as (dsn, schema):
        engine = create_engine(pg_url(dsn), pool_size=4)
        store = SQLAlchemyStore(engine, schema=schema)
        store.migrate()
        try:
            yield store
        finally:
            engine.dispose()


def overwrite_body(store: Any, table: str, body: str, **where: object) -> None:
    """Write *body* into the row of *table* (``accounts`` or ``events``) that *where* names."""
    inner = getattr(store, "async_store", None)  # the async contract harness's BlockingStore
    if inner is not None:
        url = inner.engine.url  # written with a synchronous engine on the same database
        sync = create_engine(url.set(drivername="sqlite") if url.drivername.startswith("sqlite") else url)
        t = inner._logic.accounts if table == "accounts" else inner._logic.events
        try:
            with sync.begin() as conn:
                statement = update(t).where(*(t.c[k] == v for k, v in where.items())).values(body=body)
                assert conn.execute(statement).rowcount == 1
        finally:
            sync.dispose()
        return
    if isinstance(store, Blocking):
        inner = store.inner

        async def overwrite() -> int:
            t = inner._logic.accounts if table == "accounts" else inner._logic.events
            async with inner.engine.begin() as conn:
                statement = update(t).where(*(t.c[k] == v for k, v in where.items())).values(body=body)
                return int((await conn.execute(statement)).rowcount)

        assert store.call(overwrite()) == 1
        return
    logic = store._logic
    t = logic.accounts if table == "accounts" else logic.events
    with store.engine.begin() as conn:
        result = conn.execute(update(t).where(*(t.c[k] == v for k, v in where.items())).values(body=body))
        assert result.rowcount == 1


class Blocking:
    """An async store behind blocking methods: every call runs on one event loop in a thread of
    its own (so calls from several threads, as the contract's races make, share the loop)."""

    def __init__(self, store: Any) -> None:
        self.inner = store
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=60)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)
        if not inspect.iscoroutinefunction(method):
            return method

        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self.call(method(*args, **kwargs))

        return blocking

    def close(self) -> None:
        self.call(self.inner.engine.dispose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@contextmanager
def async_sqlite_store(path: Path) -> Iterator[Blocking]:
    from sqlalchemy.ext.asyncio import create_async_engine

    from account_lifecycle.adapters.sqlalchemy import AsyncSQLAlchemyStore

    store = Blocking(AsyncSQLAlchemyStore(create_async_engine(f"sqlite+aiosqlite:///{path}")))
    try:
        store.migrate()
        yield store
    finally:
        store.close()


@contextmanager
def async_pg_store() -> Iterator[Blocking]:
    import pg
    from sqlalchemy.ext.asyncio import create_async_engine

    from account_lifecycle.adapters.sqlalchemy import AsyncSQLAlchemyStore

    with pg.throwaway_schema() as (dsn, schema):
        store = Blocking(AsyncSQLAlchemyStore(create_async_engine(pg_url(dsn), pool_size=4), schema=schema))
        try:
            store.migrate()
            yield store
        finally:
            store.close()
