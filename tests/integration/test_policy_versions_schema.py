"""Schema 5 (policy versions) from a schema-3 store holding data: the pinned label becomes an
indexed column filled from the stored records, records written before versions keep working,
follow the oldest version of their name, and can be migrated."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from versions_fixtures import V1, V2, lifecycle

from account_lifecycle import Actor, ManualClock, SQLiteStore, State
from account_lifecycle.adapters.postgres import PostgresStore

OWNER = Actor.user("u-1")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _fill(store: object, clock: ManualClock) -> None:
    """Three accounts under version 1: active, restorable, purged."""
    lc = lifecycle([V1], store, clock)
    for account_id in ("old-active", "old-restorable"):
        lc.open(account_id, owner="u-1")
    lc.request_cancellation("old-restorable", OWNER)
    lc.skip_survey("old-restorable", OWNER)
    assert lc.confirm("old-restorable", OWNER).state is State.RESTORABLE


def _as_before_versions(body: str) -> str:
    """A record as a release before policy versions wrote it: no pin in the body."""
    data = json.loads(body)
    data.pop("policy_version", None)
    data.pop("pins", None)
    return json.dumps(data)


def _check_migrated(store: object, clock: ManualClock) -> None:
    lc = lifecycle([V1, V2], store, clock)
    record = lc.get("old-restorable")
    assert (record.policy_label, record.restorable_until) == ("allclients", datetime(2026, 4, 1, tzinfo=UTC))
    assert lc.registry.resolve(record) == V1  # an unpinned record follows the oldest version
    assert store.account_ids_pinned("allclients") == ("old-active", "old-restorable")  # type: ignore[attr-defined]
    plan = lc.plan_migration("allclients@1", "allclients@2")
    assert plan.accounts == 2
    report = lc.migrate_accounts("allclients@1", "allclients@2", dry_run=False)
    assert report.migrated == ("old-active", "old-restorable")
    moved = lc.get("old-restorable")
    assert moved.policy_label == "allclients@2"
    assert moved.restorable_until == datetime(2026, 4, 30, tzinfo=UTC)  # 30 days + 3 months: longer
    assert store.account_ids_pinned("allclients@2") == ("old-active", "old-restorable")  # type: ignore[attr-defined]
    assert store.account_ids_pinned("allclients") == ()  # type: ignore[attr-defined]
    lc.verify_history("old-restorable")
    assert lc.history("old-restorable")[-1].policy == "allclients@2"


def test_sqlite_from_schema_3_with_data(tmp_path: Path) -> None:
    path = tmp_path / "accounts.db"
    clock = ManualClock(T0)
    store = SQLiteStore(path)
    _fill(store, clock)
    store.close()
    with sqlite3.connect(path) as conn:  # back to schema 3, as the previous release left it
        conn.execute("DROP INDEX accounts_policy_label")
        conn.execute("ALTER TABLE accounts DROP COLUMN policy_label")
        for table in ("outbox", "outbox_cursors", "outbox_dead"):  # schema 4's
            conn.execute(f"DROP TABLE {table}")
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        for account_id, body in conn.execute("SELECT account_id, body FROM accounts").fetchall():
            conn.execute(
                "UPDATE accounts SET body = ? WHERE account_id = ?", (_as_before_versions(body), account_id)
            )
    conn.close()
    assert "ALTER TABLE accounts ADD COLUMN policy_label TEXT" in SQLiteStore.migration_statements(3)

    store = SQLiteStore(path)  # migrates
    try:
        assert store.schema_version() == 6
        with sqlite3.connect(path) as conn:
            labels = conn.execute("SELECT account_id, policy_label FROM accounts ORDER BY 1").fetchall()
            plan = conn.execute(
                "EXPLAIN QUERY PLAN SELECT account_id FROM accounts WHERE policy_label = 'x'"
            ).fetchall()
        conn.close()
        assert labels == [("old-active", "allclients"), ("old-restorable", "allclients")]
        assert any("accounts_policy_label" in str(row) for row in plan)
        store.migrate()  # idempotent
        _check_migrated(store, clock)
    finally:
        store.close()


def test_sqlite_rows_left_unlabelled_are_still_offered(tmp_path: Path) -> None:
    """Applying ``migrate --sql``'s statements by hand leaves the labels NULL: such rows are
    offered to the lifecycle, which reads each record to decide."""
    path = tmp_path / "accounts.db"
    clock = ManualClock(T0)
    store = SQLiteStore(path)
    _fill(store, clock)
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE accounts SET policy_label = NULL")
    conn.close()
    store = SQLiteStore(path)
    try:
        assert store.account_ids_pinned("allclients@1") == ("old-active", "old-restorable")
        assert lifecycle([V1, V2], store, clock).plan_migration("allclients@1", "allclients@2").accounts == 2
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_from_schema_3_with_data(pg_schema: tuple[str, str]) -> None:
    import pg
    import psycopg

    def query(target: str, statement: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(target, autocommit=True) as conn:
            cursor = conn.execute(statement, params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description is not None else []

    dsn, schema = pg_schema
    clock = ManualClock(T0)
    store = pg.migrated_store(dsn, schema)
    _fill(store, clock)
    store.close()
    query(dsn, f'DROP INDEX "{schema}".accounts_policy_label_idx')
    query(dsn, f'ALTER TABLE "{schema}".accounts DROP COLUMN policy_label')
    for table in ("outbox", "outbox_cursors", "outbox_dead"):  # migration 4's
        query(dsn, f'DROP TABLE "{schema}".{table}')
    query(dsn, f'DELETE FROM "{schema}".schema_migrations WHERE version >= 4')
    for account_id, body in query(dsn, f'SELECT account_id, body FROM "{schema}".accounts'):
        query(
            dsn,
            f'UPDATE "{schema}".accounts SET body = %s WHERE account_id = %s',
            _as_before_versions(body),
            account_id,
        )
    older = PostgresStore(dsn, schema=schema)
    try:
        assert older.schema_version() == 3
        assert any(
            s.startswith(f'ALTER TABLE "{schema}".accounts ADD COLUMN') for s in older.migration_statements(3)
        )
        assert older.migrate() == (4, 5, 6)
        assert query(dsn, f'SELECT account_id, policy_label FROM "{schema}".accounts ORDER BY 1') == [
            ("old-active", "allclients"),
            ("old-restorable", "allclients"),
        ]
        assert older.migrate() == ()
        _check_migrated(older, clock)
    finally:
        older.close()
