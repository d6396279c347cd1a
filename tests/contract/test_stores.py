"""The store contract suite (account_lifecycle.testing.store_contract) on every shipped store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from account_lifecycle import AccountStore, MemoryStore, SQLiteStore
from account_lifecycle.testing.store_contract import StoreContract


class TestMemoryStore(StoreContract):
    def make_store(self) -> AccountStore:
        return MemoryStore()


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[AccountStore]:
        store = SQLiteStore(tmp_path / "accounts.db")
        yield store
        store.close()


@pytest.mark.postgres
class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store(self, pg_store: AccountStore) -> AccountStore:
        return pg_store
