"""The store contract suite (account_lifecycle.testing.store_contract) on every shipped store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pg
import pytest

from account_lifecycle import AccountStore, MemoryStore, SQLiteStore
from account_lifecycle.testing.store_contract import StoreContract


class TestMemoryStore(StoreContract):
    def make_store(self) -> AccountStore:
        return MemoryStore()

    def corrupt_record(self, store: AccountStore, account_id: str, body: str) -> None:
        pytest.skip(
            "MemoryStore keeps the decoded AccountRecord objects it was given, never encoded text: "
            "none of its records can be undecodable"
        )

    def corrupt_event(self, store: AccountStore, account_id: str, seq: int, body: str) -> None:
        pytest.skip(
            "MemoryStore keeps the decoded AuditEvent objects it was given, never encoded text: "
            "none of its events can be undecodable"
        )


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[AccountStore]:
        store = SQLiteStore(tmp_path / "accounts.db")
        yield store
        store.close()

    @staticmethod
    def _overwrite(store: AccountStore, statement: str, values: tuple[object, ...]) -> None:
        assert isinstance(store, SQLiteStore)
        with closing(sqlite3.connect(store.path, isolation_level=None)) as conn:
            assert conn.execute(statement, values).rowcount == 1

    def corrupt_record(self, store: AccountStore, account_id: str, body: str) -> None:
        self._overwrite(store, "UPDATE accounts SET body = ? WHERE account_id = ?", (body, account_id))

    def corrupt_event(self, store: AccountStore, account_id: str, seq: int, body: str) -> None:
        self._overwrite(
            store, "UPDATE events SET body = ? WHERE account_id = ? AND seq = ?", (body, account_id, seq)
        )


@pytest.mark.postgres
class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store(self, pg_store: AccountStore) -> AccountStore:
        return pg_store

    @staticmethod
    def _overwrite(store: AccountStore, table: str, where: str, values: tuple[object, ...]) -> None:
        import psycopg
        from psycopg import sql

        from account_lifecycle.adapters.postgres import PostgresStore

        assert isinstance(store, PostgresStore)
        statement = sql.SQL("UPDATE {}.{} SET body = %s WHERE " + where).format(  # type: ignore[arg-type]
            sql.Identifier(store.schema), sql.Identifier(table)
        )
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            assert conn.execute(statement, values).rowcount == 1

    def corrupt_record(self, store: AccountStore, account_id: str, body: str) -> None:
        self._overwrite(store, "accounts", "account_id = %s", (body, account_id))

    def corrupt_event(self, store: AccountStore, account_id: str, seq: int, body: str) -> None:
        self._overwrite(store, "events", "account_id = %s AND seq = %s", (body, account_id, seq))
