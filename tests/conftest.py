"""Shared fixtures. Hypothesis profiles: ``ci`` (the default: deterministic, bounded) and
``dev`` (more examples, random seeds); choose with HYPOTHESIS_PROFILE=dev."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# pytester runs the toolkit's contract suites on planted faults (tests/toolkit)
pytest_plugins = ("pytester", "browser")  # browser: the playwright fixture (tests/browser.py)

settings.register_profile(
    "ci",
    max_examples=60,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "accounts.db"


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """Each behaviour test runs on the in-memory store and on a real SQLite file."""
    from account_lifecycle import MemoryStore, SQLiteStore

    if request.param == "memory":
        yield MemoryStore()
    else:
        sqlite = SQLiteStore(tmp_path / "accounts.db")
        yield sqlite
        sqlite.close()


@pytest.fixture
def clock() -> object:
    from account_lifecycle import ManualClock

    return ManualClock(START)


# -- PostgreSQL (tests/pg.py): skipped with a reason when unreachable, failed under CI=true --


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """``(dsn, schema)``: a fresh schema name on the test server, dropped after the test."""
    import pg

    with pg.throwaway_schema() as target:
        yield target


@pytest.fixture
def pg_store(pg_schema: tuple[str, str]) -> Iterator[object]:
    """A migrated ``PostgresStore`` in its own schema, closed and dropped after the test."""
    import pg

    store = pg.migrated_store(*pg_schema)
    yield store
    store.close()


@pytest.fixture
def sp(store: object, clock: object) -> object:
    """A world of the SMRTPHONE policy (tests/world.py), on each store."""
    from world import World

    from account_lifecycle import policies

    return World(policies.SMRTPHONE, store, clock)  # type: ignore[arg-type]


@pytest.fixture
def ac(store: object, clock: object) -> object:
    """A world of the ALLCLIENTS policy (tests/world.py), on each store."""
    from world import World

    from account_lifecycle import policies

    return World(policies.ALLCLIENTS, store, clock)  # type: ignore[arg-type]
