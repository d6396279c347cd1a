"""The integration races of tests/integration/test_concurrency.py (every conflicting command
raced by four workers: one winner, losers write nothing, no version or event lost) on
SQLAlchemyStore, SQLite and PostgreSQL, between threads and between spawned processes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from sqlalchemy import create_engine
from sqlalchemy_support import pg_url

from account_lifecycle.adapters.sqlalchemy import SQLAlchemyStore

# the races and their helpers, importable by name (spawned workers import them again)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import test_concurrency as races


class _Closing(SQLAlchemyStore):
    """The store owning its engine, as the races close their stores."""

    def close(self) -> None:
        self.engine.dispose()


@attrs.frozen
class SQLAlchemyBackend:
    """Plain data a spawned process rebuilds its own engine and store from."""

    url: str
    schema: str | None = None

    def build(self, connections: int = 2) -> _Closing:
        options: dict[str, Any] = {"pool_size": connections} if self.url.startswith("postgresql") else {}
        return _Closing(create_engine(self.url, **options), schema=self.schema)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLAlchemyBackend]:
    if request.param == "sqlite":
        found = SQLAlchemyBackend(f"sqlite:///{tmp_path / 'race.db'}")
        store = found.build()
        store.migrate()
        store.close()
        yield found
        return
    import pg

    with pg.throwaway_schema() as (dsn, schema):
        found = SQLAlchemyBackend(pg_url(dsn), schema)
        store = found.build()
        store.migrate()
        store.close()
        yield found


@pytest.mark.slow
def test_races_between_threads_have_exactly_one_winner(backend: SQLAlchemyBackend) -> None:
    store = backend.build(connections=races.WORKERS)
    try:
        plan, setup = races.set_up(store)
        reports = races.race_in_threads(store, plan)
        races.verify(store, plan, setup, reports)
    finally:
        store.close()


@pytest.mark.slow
def test_races_between_processes_have_exactly_one_winner(backend: SQLAlchemyBackend) -> None:
    store = backend.build()
    try:
        plan, setup = races.set_up(store)
        reports = races.race_in_processes(backend, plan)  # type: ignore[arg-type]
        races.verify(store, plan, setup, reports)
    finally:
        store.close()
