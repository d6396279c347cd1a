"""``store.status(now=...)`` on MemoryStore, SQLiteStore and PostgresStore: backlog, oldest due,
failed steps by category, live claims by owner, started erasures, undecodable rows and the
schema version, read without writing anything."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from account_lifecycle import (
    Actor,
    Erasure,
    Lifecycle,
    ManualClock,
    MemoryStore,
    SQLiteStore,
    StoreError,
    policies,
)
from account_lifecycle.health import StoreStatus
from account_lifecycle.testing import FakePurger

T0 = datetime(2026, 1, 31, 12, tzinfo=UTC)
OWNER = Actor.parse("user:u1")
SP = policies.SMRTPHONE


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "sqlite":
        store = SQLiteStore(tmp_path / "accounts.db")
        yield store
        store.close()
    else:
        yield request.getfixturevalue("pg_store")


def _cancel(lc: Lifecycle, account_id: str) -> None:
    lc.open(account_id, owner="u1")
    lc.request_cancellation(account_id, OWNER)
    lc.submit_survey(account_id, OWNER, "cancel")
    lc.confirm(
        account_id, OWNER, token="CONFIRM", acknowledgements=[a.id for a in SP.confirmation.acknowledgements]
    )


def _lifecycle(store: Any, clock: ManualClock) -> Lifecycle:
    purgers = [FakePurger(c.name, fail_when=c.name == "call_recordings") for c in SP.purge.categories]
    return Lifecycle(SP, store=store, purgers=purgers, prerequisites={"port_outs": lambda _: ()}, clock=clock)


def test_an_empty_store_is_healthy(any_store: Any) -> None:
    status = any_store.status(now=T0)
    assert (status.due, status.oldest_due, dict(status.failed), dict(status.claims)) == (0, None, {}, {})
    assert status.corrupt == ()
    assert status.erasures == 0
    assert not status.schema_outdated
    assert status.stuck(timedelta(0)) == ()


def test_backlog_failures_claims_and_erasures(any_store: Any) -> None:
    clock = ManualClock(T0)
    lc = _lifecycle(any_store, clock)
    lc.open("active", owner="u1")
    _cancel(lc, "a1")
    clock.advance(timedelta(minutes=10))
    _cancel(lc, "a2")

    # Both purges failed on one category at confirm; a1's retry is due ten minutes on, a2's not yet.
    status = any_store.status(now=clock.now())
    first_retry = any_store.get("a1").purge["call_recordings"].retry_at
    assert (status.due, status.oldest_due) == (1, first_retry)
    assert dict(status.failed) == {"call_recordings": 2}

    # Three hours on, both retries are due: a1's first (it failed ten minutes earlier).
    later = clock.now() + timedelta(hours=3)
    status = any_store.status(now=later)
    assert status.due == 2
    assert status.oldest_due == first_retry
    assert status.oldest_due_age == later - first_retry
    assert status.stuck(timedelta(hours=1))
    assert not status.stuck(timedelta(days=1))

    # A worker claims one account: the claim is reported by owner while it lives.
    clock.set(later)
    claim = lc.claim_due(limit=1, owner="worker-7")
    assert claim.account_ids == ("a1",)
    status = any_store.status(now=later)
    assert dict(status.claims) == {"worker-7": 1}
    assert status.due == 2  # claimed work is still due work
    assert dict(any_store.status(now=claim.lease.until).claims) == {}  # the lease lapsed

    # A runner that died after committing its start leaves an erasure behind.
    record = any_store.get("a2")
    started = attrs.evolve(
        record,
        version=record.version + 1,
        erasure=Erasure(owner="sweep:dead", phase="cancel", steps=("call_recordings",), started_at=later),
    )
    any_store.save(started, expected_version=record.version, events=())
    status = any_store.status(now=later + timedelta(hours=2))
    assert (status.erasures, status.oldest_erasure) == (1, later)
    assert any("erasure started" in reason for reason in status.stuck(timedelta(hours=1)))


def test_status_writes_nothing(any_store: Any) -> None:
    """Reading the status leaves the records and the claims as they were."""
    clock = ManualClock(T0)
    lc = _lifecycle(any_store, clock)
    _cancel(lc, "a1")
    before = any_store.get("a1")
    any_store.status(now=T0 + timedelta(days=1))
    assert any_store.get("a1") == before
    clock.set(T0 + timedelta(days=1))
    assert lc.claim_due(limit=5, owner="w").account_ids == ("a1",)  # no claim was taken by status


def test_status_needs_an_aware_time(any_store: Any) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        any_store.status(now=datetime(2026, 1, 1))


def test_to_dict_is_json_ready() -> None:
    status = StoreStatus(
        at=T0,
        schema_version=1,
        library_schema_version=2,
        due=3,
        oldest_due=T0 - timedelta(hours=2),
        failed={"b": 1, "a": 2},
        claims={"w": 1},
        corrupt=("x",),
    )
    data = status.to_dict()
    assert data["oldest_due_age_seconds"] == 7200.0
    assert data["failed"] == {"a": 2, "b": 1}
    assert data["schema_outdated"] is True
    reasons = status.stuck(timedelta(hours=1))
    assert reasons[0].startswith(
        "schema version 1 is older than the library's 2: run account-lifecycle migrate"
    )
    assert "3 account(s) due, the oldest waiting 2h00m (> 1h00m)" in reasons[1]
    assert "cannot be decoded: x" in reasons[2]


# -- SQLite: undecodable rows, read-only opening, older files -----------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sqlite_reports_an_undecodable_row(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    clock = ManualClock(T0)
    _cancel(_lifecycle(store, clock), "a1")
    store.close()
    with sqlite3.connect(tmp_path / "a.db") as conn:
        conn.execute("UPDATE accounts SET body = 'not json' WHERE account_id = 'a1'")
    reader = SQLiteStore.open_read_only(tmp_path / "a.db")
    status = reader.status(now=T0 + timedelta(days=1))
    assert status.corrupt == ("a1",)
    assert status.due == 1
    reader.close()


def test_sqlite_read_only_store_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with pytest.raises(StoreError, match="does not exist"):
        SQLiteStore.open_read_only(path)
    assert not path.exists()
    store = SQLiteStore(path)
    _cancel(_lifecycle(store, ManualClock(T0)), "a1")
    store.close()
    digest = _digest(path)
    reader = SQLiteStore.open_read_only(path)
    assert reader.schema_version() == 6
    with pytest.raises(StoreError, match="read-only"):
        reader.migrate()
    record = reader.get("a1")
    with pytest.raises(StoreError, match="readonly"):
        reader.save(
            attrs.evolve(record, version=record.version + 1), expected_version=record.version, events=()
        )
    reader.close()
    assert _digest(path) == digest


def _version_1(path: Path) -> None:
    """A file as release 0.1 left it: no identities or sealed values tables, schema version 1,
    one cancelled account."""
    store = SQLiteStore(path)
    _cancel(_lifecycle(store, ManualClock(T0)), "a1")
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE identities")
        conn.execute("DROP TABLE sealed_values")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    sqlite3.connect(path).close()


def test_sqlite_status_on_an_older_schema_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _version_1(path)
    digest = _digest(path)
    reader = SQLiteStore.open_read_only(path)
    status = reader.status(now=T0 + timedelta(days=1))
    reader.close()
    assert (status.schema_version, status.library_schema_version, status.schema_outdated) == (1, 6, True)
    assert status.due == 1
    assert dict(status.failed) == {"call_recordings": 1}
    assert _digest(path) == digest
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta").fetchone() == ("1",)
        assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'identities'").fetchone() is None


def test_sqlite_migration_statements(tmp_path: Path) -> None:
    """What ``migrate --sql`` prints is what migrate() does in SQL: run on a version 1 file by
    hand, it creates the tables and leaves the version as it was, saying (a comment) that
    ``migrate`` does the rest (schema 3's digests need the keys); migrate() then finishes."""
    assert SQLiteStore.migration_statements(6) == ()
    fresh = SQLiteStore.migration_statements(0)
    assert fresh[-1] == "INSERT INTO meta VALUES ('schema_version', '6')"
    path = tmp_path / "old.db"
    _version_1(path)
    statements = SQLiteStore.migration_statements(1)
    assert statements[-1].startswith("-- schema 3 also turns identities stored in plain text")
    assert SQLiteStore.migration_statements(2)[-1] == statements[-1]
    with sqlite3.connect(path) as conn:
        for statement in statements:
            conn.execute(statement)
    reader = SQLiteStore.open_read_only(path)
    assert reader.schema_version() == 1
    assert reader.status(now=T0).library_schema_version == 6
    reader.close()
    store = SQLiteStore(path)  # no identities in this file: nothing needs the keys
    assert store.schema_version() == 6
    store.close()


# -- PostgreSQL: older schemas, undecodable rows ---------------------------------------------------


@pytest.mark.postgres
def test_postgres_status_of_an_unmigrated_schema_creates_nothing(pg_schema: tuple[str, str]) -> None:
    import psycopg

    from account_lifecycle import PostgresStore

    dsn, schema = pg_schema
    with PostgresStore(dsn, schema=schema) as store:
        status = store.status(now=T0)
        assert (status.schema_version, status.schema_outdated, status.due) == (0, True, 0)
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    assert row is None


@pytest.mark.postgres
def test_postgres_status_on_an_older_schema_and_a_corrupt_row(pg_schema: tuple[str, str]) -> None:
    import psycopg
    from psycopg import sql

    from account_lifecycle import PostgresStore

    dsn, schema = pg_schema
    with PostgresStore(dsn, schema=schema) as store:
        store.migrate()
        _cancel(_lifecycle(store, ManualClock(T0)), "a1")
        _cancel(_lifecycle(store, ManualClock(T0)), "a2")
    with psycopg.connect(dsn, autocommit=True) as conn:
        name = sql.Identifier(schema)
        conn.execute(sql.SQL("UPDATE {}.accounts SET body = 'not json' WHERE account_id = 'a2'").format(name))
        conn.execute(sql.SQL("DELETE FROM {}.schema_migrations WHERE version >= 2").format(name))
        conn.execute(sql.SQL("DROP TABLE {}.identities").format(name))
        conn.execute(sql.SQL("DROP TABLE {}.sealed_values").format(name))
    with PostgresStore(dsn, schema=schema) as store:
        status = store.status(now=T0 + timedelta(days=1))
        assert (status.schema_version, status.schema_outdated) == (1, True)
        assert status.due == 2
        assert status.corrupt == ("a2",)
        assert dict(status.failed) == {"call_recordings": 1}
        statements = store.migration_statements(1)
        assert statements[0].startswith(f'CREATE TABLE "{schema}".identities')
        assert statements[-2].startswith(f'INSERT INTO "{schema}".schema_migrations')
        assert statements[-1].startswith("-- schema 3 also turns identities stored in plain text")
        assert store.schema_version() == 1  # nothing was migrated
        assert len(store.migration_statements(0)) > len(statements)
        assert store.migration_statements(2) == (statements[-1],)
        assert store.migration_statements(6) == ()
