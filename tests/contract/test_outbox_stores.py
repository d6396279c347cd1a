"""What the shipped stores promise about their outbox beyond the contract suite: a store written
before the outbox (schema 3) gets entries for the events it holds, in a stable order, when it is
migrated; and on PostgreSQL, positions are numbered in commit order (the advisory lock)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from account_lifecycle import AuditEvent, SQLiteStore
from account_lifecycle.adapters.sqlite import SCHEMA_VERSION
from account_lifecycle.testing.store_contract import advance, new_account

_WAIT = 60  # seconds: a bound on each wait, never a measure of anything


def _fill(store: Any) -> list[tuple[str, int]]:
    """Accounts written in an interleaved order; returns every (account_id, seq) written."""
    b = new_account("acc-b", actions=("open", "survey"))
    store.create(*b)
    a = new_account("acc-a")
    store.create(*a)
    b2 = advance(b[0], actions=("confirm",))
    store.save(b2[0], expected_version=1, events=b2[1])
    a2 = advance(a[0], actions=("one", "two"))
    store.save(a2[0], expected_version=1, events=a2[1])
    return [(e.account_id, e.seq) for e in (*b[1], *a[1], *b2[1], *a2[1])]


def _by_account(written: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    return sorted(written)


def _make_version_3(path: Path) -> list[tuple[str, int]]:
    store = SQLiteStore(path)
    written = _fill(store)
    store.close()
    with sqlite3.connect(path) as conn:
        for table in ("outbox", "outbox_cursors", "outbox_dead"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("DROP INDEX accounts_policy_label")  # schema 5's column goes too
        conn.execute("ALTER TABLE accounts DROP COLUMN policy_label")
        for index in ("accounts_held", "accounts_failed", "accounts_state"):  # schema 6's go too
            conn.execute(f"DROP INDEX {index}")
        conn.execute("ALTER TABLE accounts DROP COLUMN has_holds")
        conn.execute("ALTER TABLE accounts DROP COLUMN has_failed_steps")
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    conn.close()
    return written


def test_a_version_3_sqlite_file_gets_entries_for_its_events_per_account_in_seq_order(tmp_path: Path) -> None:
    """Migrating a schema-3 file that holds events gives each an entry, by account then seq
    (a stable order: each account's events in their own order); later writes come after."""
    path = tmp_path / "accounts.db"
    written = _make_version_3(path)

    store = SQLiteStore(path)
    try:
        assert store.schema_version() == SCHEMA_VERSION == 6
        entries = store.outbox_read(after=0, limit=100)
        assert [(e.event.account_id, e.event.seq) for e in entries] == _by_account(written)
        assert [e.position for e in entries] == list(range(1, len(written) + 1))
        assert [e.event for e in entries] == sorted(
            (*store.history("acc-a"), *store.history("acc-b")), key=lambda e: (e.account_id, e.seq)
        )
        store.migrate()  # again: nothing is numbered twice
        assert store.outbox_head() == len(written)
        later = advance(store.get("acc-a"), actions=("later",))
        store.save(later[0], expected_version=2, events=later[1])
        assert [e.event.action for e in store.outbox_read(after=len(written), limit=10)] == ["later"]
    finally:
        store.close()


def test_the_sql_of_migrate_from_version_3_does_what_migrate_does(tmp_path: Path) -> None:
    """``migration_statements(3)``, run by hand on a schema-3 file, creates the outbox, numbers
    the events as ``migrate`` does, adds schema 5's and 6's columns, and leaves the version at 3
    with a closing comment: filling schema 6's columns needs ``migrate``, which then records 6."""
    path = tmp_path / "accounts.db"
    written = _make_version_3(path)
    statements = SQLiteStore.migration_statements(3)
    with sqlite3.connect(path) as conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()

    reader = SQLiteStore.open_read_only(path)
    try:
        assert reader.schema_version() == 3
        assert statements[-1].startswith("-- schema 6 also fills has_holds and has_failed_steps")
        entries = reader.outbox_read(after=0, limit=100)
        assert [(e.event.account_id, e.event.seq) for e in entries] == _by_account(written)
    finally:
        reader.close()
    store = SQLiteStore(path)
    try:
        assert store.schema_version() == 6
        assert [(e.event.account_id, e.event.seq) for e in store.outbox_read(after=0, limit=100)] == (
            _by_account(written)
        )
    finally:
        store.close()


# -- PostgreSQL ------------------------------------------------------------------------------------


def _query(target: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(target, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description is not None else []


@pytest.mark.postgres
def test_a_postgres_schema_at_version_3_gets_entries_for_its_events(pg_schema: tuple[str, str]) -> None:
    """Migration 4 on a schema that holds events numbers them by account then seq; the
    sequence goes on from there for later writes."""
    from account_lifecycle.adapters.postgres import PostgresStore

    target, schema = pg_schema
    with PostgresStore(target, schema=schema) as store:
        store.migrate()
        written = _fill(store)
    for table in ("outbox", "outbox_cursors", "outbox_dead"):
        _query(target, f'DROP TABLE "{schema}".{table}')
    _query(target, f'DELETE FROM "{schema}".schema_migrations WHERE version >= 4')

    with PostgresStore(target, schema=schema) as store:
        assert store.schema_version() == 3
        assert store.migration_statements(3)[0].startswith(f'CREATE TABLE "{schema}".outbox')
        assert store.migrate() == (4, 5, 6)
        entries = store.outbox_read(after=0, limit=100)
        assert [(e.event.account_id, e.event.seq) for e in entries] == _by_account(written)
        assert [e.position for e in entries] == list(range(1, len(written) + 1))
        later = advance(store.get("acc-a"), actions=("later",))
        store.save(later[0], expected_version=2, events=later[1])
        [entry] = store.outbox_read(after=len(written), limit=10)
        assert (entry.position, entry.event.action) == (len(written) + 1, "later")


def _pausing_store(target: str, schema: str) -> Any:
    from account_lifecycle.adapters.postgres import PostgresStore

    class Pausing(PostgresStore):
        """Holds the transaction of a write to ``pause_for`` open right after it numbered its
        outbox entries, until ``go`` is set."""

        pause_for: str | None = None
        numbered = threading.Event()
        go = threading.Event()

        def _outbox_append(self, cursor: Any, events: Sequence[AuditEvent]) -> None:
            super()._outbox_append(cursor, events)
            if events and events[0].account_id == self.pause_for:
                self.numbered.set()
                assert self.go.wait(_WAIT)

    store = Pausing(target, schema=schema)
    store.migrate()
    return store


def _waiting_on_outbox_lock(target: str, schema: str) -> bool:
    """Whether a session waits for the outbox's advisory lock of *schema* (``pg_locks``)."""
    from psycopg import sql

    name = f"account_lifecycle.outbox:{sql.Identifier(schema).as_string()}"
    [(key,)] = _query(target, "SELECT hashtextextended(%s, 0)", name)
    key &= 0xFFFFFFFFFFFFFFFF
    rows = _query(
        target,
        "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = %s"
        " AND objid = %s AND objsubid = 1 AND database = (SELECT oid FROM pg_database"
        " WHERE datname = current_database())",
        key >> 32,
        key & 0xFFFFFFFF,
    )
    return bool(rows)


@pytest.mark.postgres
def test_postgres_numbers_outbox_entries_in_commit_order(pg_schema: tuple[str, str]) -> None:
    """A write that numbered its entries and has not committed yet holds the others back: the
    second writer waits on the advisory lock, a reader meanwhile sees neither entry, and once
    the first commits the second gets the higher position. Without the lock the second could
    commit a higher position first, and a reader that saw it would skip the lower one for good."""
    target, schema = pg_schema
    store = _pausing_store(target, schema)
    try:
        a = new_account("acc-a")
        b = new_account("acc-b")
        store.create(*a)
        store.create(*b)
        head = store.outbox_head()
        a2 = advance(a[0], actions=("first",))
        b2 = advance(b[0], actions=("second",))
        store.pause_for = "acc-a"
        errors: list[BaseException] = []

        def save(written: Any) -> None:
            try:
                store.save(written[0], expected_version=1, events=written[1])
            except BaseException as exc:  # reported by the test thread
                errors.append(exc)

        first = threading.Thread(target=save, args=(a2,))
        first.start()
        assert store.numbered.wait(_WAIT)
        second = threading.Thread(target=save, args=(b2,))
        second.start()
        for _ in range(6000):  # until the second writer waits on the lock (bounded)
            if _waiting_on_outbox_lock(target, schema) or not second.is_alive():
                break
            threading.Event().wait(0.01)
        assert second.is_alive()
        assert _waiting_on_outbox_lock(target, schema)
        assert store.outbox_head() == head
        assert store.outbox_read(after=head, limit=10) == []

        store.go.set()
        first.join(_WAIT)
        second.join(_WAIT)
        assert errors == []
        entries = store.outbox_read(after=head, limit=10)
        assert [(e.event.account_id, e.event.action) for e in entries] == [
            ("acc-a", "first"),
            ("acc-b", "second"),
        ]
        assert entries[0].position < entries[1].position
    finally:
        store.go.set()
        store.close()
