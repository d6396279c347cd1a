"""``DjangoStore.status(now=...)`` keeps the contract of the other stores' ``status``
(tests/contract/test_store_status.py, run here on DjangoStore on SQLite and PostgreSQL): the
backlog, failed steps, live claims, started erasures, undecodable rows, read without writing.
Its schema versions are the app's migrations: the latest applied and the latest shipped."""

from __future__ import annotations

from datetime import timedelta

import pytest
from contract import test_store_status as contract
from django.db import connections, transaction
from django.db.migrations.recorder import MigrationRecorder

from account_lifecycle import ManualClock, StoreError
from account_lifecycle.contrib.django.models import AccountRow
from account_lifecycle.contrib.django.store import DjangoStore
from account_lifecycle.health import StatusSource


@pytest.fixture(params=["sqlite_db", pytest.param("pg_db", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> DjangoStore:
    return DjangoStore(request.getfixturevalue(request.param))


def test_an_empty_store_is_healthy(store: DjangoStore) -> None:
    contract.test_an_empty_store_is_healthy(store)
    assert store.status(now=contract.T0).schema_version == 2  # 0001_initial and 0002 (query indexes), applied


def test_backlog_failures_claims_and_erasures(store: DjangoStore) -> None:
    contract.test_backlog_failures_claims_and_erasures(store)


def test_status_writes_nothing(store: DjangoStore) -> None:
    contract.test_status_writes_nothing(store)


def test_status_needs_an_aware_time(store: DjangoStore) -> None:
    contract.test_status_needs_an_aware_time(store)


def test_it_is_a_status_source(store: DjangoStore) -> None:
    source: StatusSource = store  # typed: the health protocol the CLI and telemetry read
    assert source.status(now=contract.T0).library_schema_version == 2


def test_an_undecodable_row_is_reported_by_id(store: DjangoStore) -> None:
    contract._cancel(contract._lifecycle(store, ManualClock(contract.T0)), "a1")
    AccountRow.objects.using(store.using).filter(account_id="a1").update(body="not json")
    status = store.status(now=contract.T0 + timedelta(days=1))
    assert status.corrupt == ("a1",)
    assert status.due == 1  # its due column still counts
    assert any("cannot be decoded: a1" in reason for reason in status.stuck(timedelta(hours=1)))


def test_a_database_missing_the_apps_migration_is_outdated(store: DjangoStore) -> None:
    """With the app's migration unrecorded (rolled back afterwards), the schema is 0 and older
    than the library's: ``stuck`` says to migrate, and no row is read."""
    with transaction.atomic(using=store.using):
        MigrationRecorder(connections[store.using]).migration_qs.filter(app="account_lifecycle").delete()
        status = store.status(now=contract.T0)
        transaction.set_rollback(True, using=store.using)
    assert (status.schema_version, status.library_schema_version) == (0, 2)
    assert status.schema_outdated
    assert status.stuck(timedelta(days=1))[0].startswith("schema version 0 is older")
    assert not store.status(now=contract.T0).schema_outdated


def test_an_unreachable_database_is_a_store_error_without_secrets() -> None:
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[postgres]'")
    with pytest.raises(StoreError) as info:
        DjangoStore("unreachable").status(now=contract.T0)
    assert "hunter2" not in str(info.value)
    assert info.value.__cause__ is None
