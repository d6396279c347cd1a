"""The store contract suite on SQLAlchemyStore: a SQLite file and a PostgreSQL schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy_support import async_pg_store, async_sqlite_store, overwrite_body, pg_store, sqlite_store

from account_lifecycle import AccountStore
from account_lifecycle.testing.store_contract import StoreContract


class _Corrupting(StoreContract):
    def corrupt_record(self, store: AccountStore, account_id: str, body: str) -> None:
        overwrite_body(store, "accounts", body, account_id=account_id)

    def corrupt_event(self, store: AccountStore, account_id: str, seq: int, body: str) -> None:
        overwrite_body(store, "events", body, account_id=account_id, seq=seq)


class TestSQLAlchemyStoreOnSQLite(_Corrupting):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[AccountStore]:
        with sqlite_store(tmp_path / "accounts.db") as store:
            yield store


@pytest.mark.postgres
class TestSQLAlchemyStoreOnPostgres(_Corrupting):
    @pytest.fixture
    def store(self) -> Iterator[AccountStore]:
        with pg_store() as store:
            yield store


class TestAsyncSQLAlchemyStoreOnSQLite(_Corrupting):
    """AsyncSQLAlchemyStore (aiosqlite) behind a blocking facade (tests/sqlalchemy_support.py)."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[AccountStore]:
        with async_sqlite_store(tmp_path / "accounts.db") as store:
            yield store  # type: ignore[misc]


@pytest.mark.postgres
class TestAsyncSQLAlchemyStoreOnPostgres(_Corrupting):
    """AsyncSQLAlchemyStore (psycopg, async) behind a blocking facade."""

    @pytest.fixture
    def store(self) -> Iterator[AccountStore]:
        with async_pg_store() as store:
            yield store  # type: ignore[misc]
