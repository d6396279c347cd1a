"""The store contract suite (account_lifecycle.testing.store_contract) on ``DjangoStore``, on
SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from account_lifecycle import AccountStore
from account_lifecycle.contrib.django.models import AccountRow, EventRow
from account_lifecycle.contrib.django.store import DjangoStore
from account_lifecycle.testing.store_contract import StoreContract


class _Damage:
    """Writes damaged text into a stored row through the ORM, as a bad hand edit would."""

    def corrupt_record(self, store: AccountStore, account_id: str, body: str) -> None:
        assert isinstance(store, DjangoStore)
        assert AccountRow.objects.using(store.using).filter(account_id=account_id).update(body=body) == 1

    def corrupt_event(self, store: AccountStore, account_id: str, seq: int, body: str) -> None:
        assert isinstance(store, DjangoStore)
        assert (
            EventRow.objects.using(store.using).filter(account_id=account_id, seq=seq).update(body=body) == 1
        )


class TestDjangoStoreOnSQLite(_Damage, StoreContract):
    @pytest.fixture
    def store(self, sqlite_db: str) -> AccountStore:
        return DjangoStore(sqlite_db)


class TestDjangoStoreOnDeferredSQLite(_Damage, StoreContract):
    """Without ``"transaction_mode": "IMMEDIATE"``: every write transaction of the store starts
    with a write statement, so it takes SQLite's lock before it reads."""

    @pytest.fixture
    def store(self, sqlite_db: str) -> AccountStore:
        return DjangoStore("deferred")


@pytest.mark.postgres
class TestDjangoStoreOnPostgres(_Damage, StoreContract):
    @pytest.fixture
    def store(self, pg_db: str) -> AccountStore:
        return DjangoStore(pg_db)
