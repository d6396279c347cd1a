"""The store contract suite on SQLAlchemyStore: a SQLite file and a PostgreSQL schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy_support import overwrite_body, pg_store, sqlite_store

from account_lifecycle import AccountStore
from account_lifecycle.adapters.sqlalchemy import SQLAlchemyStore
from account_lifecycle.testing.store_contract import StoreContract


class _Corrupting(StoreContract):
    def corrupt_record(self, store: AccountStore, account_id: str, body: str) -> None:
        assert isinstance(store, SQLAlchemyStore)
        overwrite_body(store, "accounts", body, account_id=account_id)

    def corrupt_event(self, store: AccountStore, account_id: str, seq: int, body: str) -> None:
        assert isinstance(store, SQLAlchemyStore)
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
