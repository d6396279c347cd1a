"""What PostgresStore promises beyond the store contract: explicit, versioned, concurrent-safe
migrations, clear errors when the schema is missing or the server is down, host-managed
pools, database-enforced identities, and no psycopg import until it is asked for."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta, timezone
from typing import Any

import pg
import psycopg
import pytest
from psycopg import sql
from psycopg_pool import ConnectionPool

from account_lifecycle import AccountExists, Lease, StoreError
from account_lifecycle.adapters.postgres import SCHEMA_VERSION, PostgresStore
from account_lifecycle.testing.fakes import fake_identity_keys
from account_lifecycle.testing.store_contract import NOW, due_record, new_account


def query(target: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(target, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description is not None else []


@pytest.fixture
def unmigrated(pg_schema: tuple[str, str]) -> Iterator[PostgresStore]:
    store = PostgresStore(pg_schema[0], schema=pg_schema[1])
    yield store
    store.close()


@pytest.mark.postgres
def test_migrate_applies_each_version_once(unmigrated: PostgresStore) -> None:
    """The first migrate() applies every migration; later calls apply nothing."""
    assert unmigrated.schema_version() == 0

    assert unmigrated.migrate() == (1, 2, 3, 4, 5, 6)
    assert unmigrated.migrate() == ()
    assert unmigrated.schema_version() == SCHEMA_VERSION == 6


@pytest.mark.postgres
def test_a_schema_at_version_1_is_upgraded_and_keeps_its_accounts(
    unmigrated: PostgresStore, pg_schema: tuple[str, str]
) -> None:
    """migrate() on a schema an older release left at version 1 applies versions 2 (the
    identities table) and 3 (digests: the plain identity becomes its digest under the keys
    given); the accounts stay, and identifiers work afterwards."""
    unmigrated.migrate()
    unmigrated.create(*new_account("acc-old", identity="ann@example.com"))
    schema = pg_schema[1]
    query(pg_schema[0], f'DROP TABLE "{schema}".identities')
    query(pg_schema[0], f'DROP TABLE "{schema}".sealed_values')
    for table in ("outbox", "outbox_cursors", "outbox_dead"):
        query(pg_schema[0], f'DROP TABLE "{schema}".{table}')
    query(pg_schema[0], f'DELETE FROM "{schema}".schema_migrations WHERE version >= 2')
    query(pg_schema[0], f'ALTER TABLE "{schema}".accounts DROP COLUMN policy_label')
    older = PostgresStore(pg_schema[0], schema=schema)
    try:
        assert older.schema_version() == 1

        keys = fake_identity_keys()
        assert older.migrate(identity_keys=keys) == (2, 3, 4, 5, 6)

        assert older.get("acc-old").identity == keys.digest("identity", "ann@example.com")
        older.create(*new_account("acc-new", identifiers={"email": "bob@example.com"}), now=NOW)
        with pytest.raises(AccountExists):
            older.create(*new_account("acc-other", identifiers={"email": "bob@example.com"}), now=NOW)
    finally:
        older.close()


@pytest.mark.postgres
def test_concurrent_migrations_apply_the_schema_exactly_once(pg_schema: tuple[str, str]) -> None:
    """Stores migrating one schema at the same moment from several threads apply it once."""
    stores = [PostgresStore(pg_schema[0], schema=pg_schema[1]) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    applied: list[tuple[int, ...]] = []
    failures: list[BaseException] = []

    def migrate(store: PostgresStore) -> None:
        try:
            barrier.wait(timeout=30)
            applied.append(store.migrate())
        except BaseException as exc:  # asserted below
            failures.append(exc)

    threads = [threading.Thread(target=migrate, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for store in stores:
        store.close()

    assert failures == []
    assert sorted(applied) == [(), (), (), (1, 2, 3, 4, 5, 6)]
    assert query(pg_schema[0], f'SELECT version FROM "{pg_schema[1]}".schema_migrations ORDER BY 1') == [
        (1,),
        (2,),
        (3,),
        (4,),
        (5,),
        (6,),
    ]


@pytest.mark.postgres
def test_a_store_never_creates_its_schema_implicitly(
    unmigrated: PostgresStore, pg_schema: tuple[str, str]
) -> None:
    """Before migrate(), every call raises StoreError telling to run migrate(), and nothing is created."""
    record, events = new_account("acc-1")

    with pytest.raises(StoreError, match=r"has no account_lifecycle tables .*run store\.migrate\(\)"):
        unmigrated.create(record, events)
    with pytest.raises(StoreError, match=r"run store\.migrate\(\)"):
        unmigrated.get("acc-1")

    assert query(pg_schema[0], "SELECT 1 FROM pg_namespace WHERE nspname = %s", pg_schema[1]) == []


@pytest.mark.postgres
def test_a_dropped_schema_is_reported_as_missing_tables(pg_store: PostgresStore) -> None:
    """Tables that disappear after the store checked them give the same StoreError, not a psycopg error."""
    pg_store.create(*new_account("acc-1"))
    pg.drop_schema(pg.dsn(), pg_store.schema)

    with pytest.raises(StoreError, match=r"run store\.migrate\(\)"):
        pg_store.get("acc-1")


@pytest.mark.postgres
def test_a_newer_schema_is_refused(unmigrated: PostgresStore, pg_schema: tuple[str, str]) -> None:
    """A schema migrated by a newer library version is refused with StoreError, not written to."""
    unmigrated.migrate()
    query(
        pg_schema[0],
        f"INSERT INTO \"{pg_schema[1]}\".schema_migrations (version, description) VALUES (99, 'future')",
    )
    fresh = PostgresStore(pg_schema[0], schema=pg_schema[1])
    try:
        with pytest.raises(StoreError, match=f"has version 99, newer than this library's {SCHEMA_VERSION}"):
            fresh.get("acc-1")
        with pytest.raises(StoreError, match=f"has version 99, newer than this library's {SCHEMA_VERSION}"):
            fresh.migrate()
    finally:
        fresh.close()


def test_an_unreachable_server_raises_store_error() -> None:
    """With no server listening, a call fails with StoreError after the timeout; no psycopg error escapes."""
    store = PostgresStore("postgresql://postgres:secret@127.0.0.1:1/test", timeout=1.0)
    try:
        with pytest.raises(StoreError, match=r"PostgreSQL at 127\.0\.0\.1:1/test is unavailable") as info:
            store.migrate()
    finally:
        store.close()

    assert "secret" not in str(info.value)
    assert "secret" not in repr(store)


def test_an_invalid_dsn_raises_store_error() -> None:
    """A DSN libpq cannot parse is refused when the store is built."""
    with pytest.raises(StoreError, match="invalid PostgreSQL DSN"):
        PostgresStore("host=127.0.0.1 port")


@pytest.mark.postgres
def test_database_errors_are_translated(pg_store: PostgresStore) -> None:
    """A value PostgreSQL refuses (a NUL character) raises StoreError, never a psycopg error."""
    with pytest.raises(StoreError, match="failed while reading account"):
        pg_store.get("acc\x00-1")


@pytest.mark.postgres
def test_a_host_managed_pool_is_used_and_left_open(pg_schema: tuple[str, str]) -> None:
    """A store built on the host's ConnectionPool works on it and does not close it."""
    with ConnectionPool(pg_schema[0], min_size=1, max_size=2, open=True) as pool:
        store = PostgresStore(pool, schema=pg_schema[1])
        store.migrate()
        record, events = new_account("acc-1")
        store.create(record, events)
        store.close()

        assert store.get("acc-1") == record
        assert not pool.closed


@pytest.mark.postgres
def test_the_database_enforces_one_live_identity(pg_store: PostgresStore, pg_schema: tuple[str, str]) -> None:
    """A second row with a live identity is refused by the unique index itself, so no caller can
    bypass the check; released identities (NULL) may repeat."""
    pg_store.create(*new_account("acc-1", identity="ann@example.com"))
    table = f'"{pg_schema[1]}".accounts'

    with pytest.raises(psycopg.errors.UniqueViolation, match="accounts_live_identity_key"):
        query(
            pg_schema[0],
            f"INSERT INTO {table} (account_id, version, state, live_identity, body)"
            " VALUES ('acc-2', 1, 'active', 'ann@example.com', '{}')",
        )
    with pytest.raises(AccountExists):
        pg_store.create(*new_account("acc-3", identity="ann@example.com"))
    query(
        pg_schema[0],
        f"INSERT INTO {table} (account_id, version, state, live_identity, body)"
        " VALUES ('acc-4', 1, 'purged', NULL, '{}'), ('acc-5', 1, 'purged', NULL, '{}')",
    )
    assert query(pg_schema[0], f"SELECT count(*) FROM {table} WHERE live_identity IS NULL") == [(2,)]


@pytest.mark.postgres
def test_due_times_are_timestamptz_and_claims_use_the_due_index(
    pg_store: PostgresStore, pg_schema: tuple[str, str]
) -> None:
    """due_at is stored as timestamptz, and the claim query can be served by the partial due index."""
    due = NOW - timedelta(hours=1)
    pg_store.create(due_record("acc-1", due), ())
    target, schema = pg_schema

    [(stored,)] = query(target, f'SELECT due_at FROM "{schema}".accounts')
    [(column_type,)] = query(
        target,
        "SELECT data_type FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = 'accounts' AND column_name = 'due_at'",
        schema,
    )
    with psycopg.connect(target) as conn:
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = conn.execute(
            sql.SQL(
                "EXPLAIN SELECT account_id FROM {}.accounts WHERE due_at <= %s"
                " AND (claim_until IS NULL OR claim_until <= %s) ORDER BY due_at, account_id LIMIT 10"
            ).format(sql.Identifier(schema)),
            (NOW, NOW),
        ).fetchall()

    assert stored == due
    assert column_type == "timestamp with time zone"
    assert "accounts_due_at_idx" in "\n".join(row[0] for row in plan)


@pytest.mark.postgres
def test_claims_store_times_in_utc_whatever_the_session_time_zone(pg_store: PostgresStore) -> None:
    """claim_due compares moments, not wall-clock text: a claim made at a non-UTC moment holds."""
    pg_store.create(due_record("acc-1", NOW - timedelta(minutes=1)), ())
    tokyo = NOW.astimezone(timezone(timedelta(hours=9)))
    [claimed] = pg_store.claim_due(now=tokyo, lease=Lease("w1", NOW + timedelta(minutes=5)), limit=5)

    assert claimed.account_id == "acc-1"
    assert pg_store.claim_due(now=NOW, lease=Lease("w2", NOW + timedelta(minutes=5)), limit=5) == []


def test_importing_the_package_does_not_import_psycopg() -> None:
    """import account_lifecycle loads no psycopg; account_lifecycle.PostgresStore loads it on demand."""
    code = (
        "import sys, account_lifecycle\n"
        "assert 'psycopg' not in sys.modules, 'psycopg imported eagerly'\n"
        "from account_lifecycle import PostgresStore\n"
        "assert 'psycopg' in sys.modules\n"
        "print(PostgresStore.__module__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)

    assert result.stderr == ""
    assert result.stdout == "account_lifecycle.adapters.postgres\n"
