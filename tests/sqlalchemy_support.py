"""Engines and stores for the SQLAlchemy store's tests: a SQLite file per test, and a throw-away
PostgreSQL schema per test (tests/pg.py: skipped with the reason when the server is unreachable,
failed under CI=true)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, update
from sqlalchemy.engine import Engine

from account_lifecycle.adapters.sqlalchemy import SQLAlchemyStore


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


def overwrite_body(store: SQLAlchemyStore, table: str, body: str, **where: object) -> None:
    """Write *body* into the row of *table* (``accounts`` or ``events``) that *where* names."""
    logic = store._logic
    t = logic.accounts if table == "accounts" else logic.events
    with store.engine.begin() as conn:
        result = conn.execute(update(t).where(*(t.c[k] == v for k, v in where.items())).values(body=body))
        assert result.rowcount == 1
