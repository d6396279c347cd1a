"""What SQLiteStore promises about its schema: a file written by an older release is brought up
to date when the store is built, migrate() is idempotent, and a newer file is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from account_lifecycle import AccountExists, SQLiteStore, StoreError
from account_lifecycle.adapters.sqlite import SCHEMA_VERSION
from account_lifecycle.testing.fakes import fake_identity_keys
from account_lifecycle.testing.store_contract import NOW, new_account


def make_version_1(path: Path) -> None:
    """A file as release 0.1 left it: no identities table, schema version 1, one account with
    its identity in plain text."""
    store = SQLiteStore(path)
    store.create(*new_account("acc-old", identity="ann@example.com"))
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE identities")
        conn.execute("DROP TABLE sealed_values")
        for table in ("outbox", "outbox_cursors", "outbox_dead"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.close()


def test_a_version_1_file_is_upgraded_and_keeps_its_accounts(tmp_path: Path) -> None:
    """Opening a version-1 file with the deployment's keys creates the identities table, turns
    the plain identity into its digest and records the current version; the accounts stay, and
    identifiers work at once."""
    path = tmp_path / "accounts.db"
    make_version_1(path)

    keys = fake_identity_keys()
    store = SQLiteStore(path, identity_keys=keys)
    try:
        assert store.schema_version() == SCHEMA_VERSION == 6
        assert store.get("acc-old").identity == keys.digest("identity", "ann@example.com")
        store.create(*new_account("acc-new", identifiers={"email": "bob@example.com"}), now=NOW)
        with pytest.raises(AccountExists):
            store.create(*new_account("acc-other", identifiers={"email": "bob@example.com"}), now=NOW)
    finally:
        store.close()


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    """migrate() again and again, and from a second store on the same file, changes nothing."""
    store = SQLiteStore(tmp_path / "accounts.db")
    other = SQLiteStore(tmp_path / "accounts.db")
    try:
        store.create(*new_account("acc-1", identifiers={"email": "ann@example.com"}), now=NOW)
        store.migrate()
        other.migrate()
        store.migrate()

        assert store.schema_version() == other.schema_version() == SCHEMA_VERSION
        assert other.get("acc-1").identifiers["email"].value == "ann@example.com"
    finally:
        store.close()
        other.close()


def test_a_newer_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "accounts.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.close()

    newer = f"has schema version {SCHEMA_VERSION + 1}, newer than this library's {SCHEMA_VERSION}"
    with pytest.raises(StoreError, match=newer):
        SQLiteStore(path)
