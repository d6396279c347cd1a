"""The ``backend`` fixture: each integration race runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from backends import Backend


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Backend:
    return Backend("sqlite", str(tmp_path / "race.db"))


@pytest.fixture
def postgres_backend(pg_schema: tuple[str, str]) -> Backend:
    import pg

    pg.migrated_store(*pg_schema).close()
    return Backend("postgres", pg_schema[0], pg_schema[1])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> Backend:
    name = "sqlite_backend" if request.param == "sqlite" else "postgres_backend"
    found: Backend = request.getfixturevalue(name)
    return found
