"""The whole store contract suite on the async stores, through a blocking facade (an event loop
in a background thread): ThreadedStore around SQLiteStore and MemoryStore, and
AsyncPostgresStore. Tests added to the contract later run here too."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pg
import pytest

from account_lifecycle import AccountStore, MemoryStore, SQLiteStore, ThreadedStore
from account_lifecycle.testing.async_store_contract import AsyncStoreContract, BlockingStore


def _async_store_of(store: AccountStore) -> object:
    assert isinstance(store, BlockingStore)
    return store.async_store


class TestThreadedSQLiteStore(AsyncStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[AccountStore]:
        with self.blocking(lambda: ThreadedStore(SQLiteStore(tmp_path / "accounts.db"))) as store:
            yield store

    @staticmethod
    def _overwrite(store: AccountStore, statement: str, values: tuple[object, ...]) -> None:
        threaded = _async_store_of(store)
        assert isinstance(threaded, ThreadedStore)
        assert isinstance(threaded.store, SQLiteStore)
        with closing(sqlite3.connect(threaded.store.path, isolation_level=None)) as conn:
            assert conn.execute(statement, values).rowcount == 1

    def corrupt_record(self, store: AccountStore, account_id: str, body: str) -> None:
        self._overwrite(store, "UPDATE accounts SET body = ? WHERE account_id = ?", (body, account_id))

    def corrupt_event(self, store: AccountStore, account_id: str, seq: int, body: str) -> None:
        self._overwrite(
            store, "UPDATE events SET body = ? WHERE account_id = ? AND seq = ?", (body, account_id, seq)
        )


class TestThreadedMemoryStore(AsyncStoreContract):
    def make_async_store(self) -> ThreadedStore:
        return ThreadedStore(MemoryStore())

    def corrupt_record(self, store: AccountStore, account_id: str, body: str) -> None:
        pytest.skip("MemoryStore keeps decoded records, never encoded text: none can be undecodable")

    def corrupt_event(self, store: AccountStore, account_id: str, seq: int, body: str) -> None:
        pytest.skip("MemoryStore keeps decoded events, never encoded text: none can be undecodable")


@pytest.mark.postgres
class TestAsyncPostgresStore(AsyncStoreContract):
    @pytest.fixture
    def store(self, pg_schema: tuple[str, str]) -> Iterator[AccountStore]:
        from account_lifecycle import AsyncPostgresStore

        dsn, schema = pg_schema

        async def make() -> AsyncPostgresStore:
            store = AsyncPostgresStore(dsn, schema=schema)
            await store.migrate()
            return store

        with self.blocking(make) as store:
            yield store

    @staticmethod
    def _overwrite(store: AccountStore, table: str, where: str, values: tuple[object, ...]) -> None:
        import psycopg
        from psycopg import sql

        statement = sql.SQL("UPDATE {}.{} SET body = %s WHERE " + where).format(  # type: ignore[arg-type]
            sql.Identifier(_async_store_of(store).schema),  # type: ignore[attr-defined]
            sql.Identifier(table),
        )
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            assert conn.execute(statement, values).rowcount == 1

    def corrupt_record(self, store: AccountStore, account_id: str, body: str) -> None:
        self._overwrite(store, "accounts", "account_id = %s", (body, account_id))

    def corrupt_event(self, store: AccountStore, account_id: str, seq: int, body: str) -> None:
        self._overwrite(store, "events", "account_id = %s AND seq = %s", (body, account_id, seq))
