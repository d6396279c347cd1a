"""Schema 6 (SQLite), migration 6 (PostgreSQL) and SQLAlchemy tables version 2 add
``has_holds`` and ``has_failed_steps`` to a store that holds accounts: each is taken back to the
schema before (the columns and their indexes dropped, the older version recorded), migrated,
and then answers every query on holds and failed steps as the decoded records say; a body
that cannot be decoded gets both flags."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy_support import pg_url

from account_lifecycle import SQLiteStore, StoreError
from account_lifecycle.model import Hold, PurgeProgress, PurgeStatus, State
from account_lifecycle.testing.store_contract import NOW, due_record, new_account
from account_lifecycle.values import AccountQuery, CorruptRecord

HOLD = {"files": Hold(NOW, "support:ann", "case 6")}
FAILED = {"contacts": PurgeProgress(PurgeStatus.FAILED, attempts=1, error="timeout", at=NOW, retry_at=NOW)}
#: id -> (has a hold, has a failed step); "broken" is stored undecodable.
EXPECTED = {
    "acc-1": (True, False),
    "acc-2": (False, True),
    "acc-3": (True, True),
    "acc-4": (False, False),
    "broken": (True, True),
}


def _fill(store: Any) -> None:
    store.create(*new_account("acc-1", holds=HOLD))
    store.create(due_record("acc-2", NOW, purge=FAILED), ())
    store.create(due_record("acc-3", NOW, purge=FAILED, holds=HOLD), ())
    store.create(*new_account("acc-4"))
    store.create(*new_account("broken"))
    for n in range(20):  # accounts with neither, between the others
        store.create(*new_account(f"acc-5-{n:02d}"))


def _check(store: Any) -> None:
    """Every query on the flags lists what EXPECTED (and the decoded records) say."""
    every = [item.account_id for item in store.list_accounts(AccountQuery(), after=None, limit=100)]
    for with_holds in (True, False, None):
        for with_failed_steps in (True, False, None):
            query = AccountQuery(None, None, with_holds, with_failed_steps)
            listed = store.list_accounts(query, after=None, limit=100)
            wanted = [
                i
                for i in every
                if (with_holds is None or EXPECTED.get(i, (False, False))[0] is with_holds)
                and (with_failed_steps is None or EXPECTED.get(i, (False, False))[1] is with_failed_steps)
            ]
            assert [item.account_id for item in listed] == wanted, query
    cancelled = store.list_accounts(
        AccountQuery(frozenset({State.CANCELLED}), with_holds=True), after=None, limit=9
    )
    assert [item.account_id for item in cancelled] == ["acc-3"]
    [broken] = store.list_accounts(
        AccountQuery(with_holds=True, with_failed_steps=True), after="acc-4", limit=9
    )
    assert isinstance(broken, CorruptRecord)


# -- SQLite ----------------------------------------------------------------------------------------


def _sqlite_version_5(path: Path) -> None:
    store = SQLiteStore(path)
    _fill(store)
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE accounts SET body = 'not json' WHERE account_id = 'broken'")
        for index in ("accounts_held", "accounts_failed", "accounts_state"):
            conn.execute(f"DROP INDEX {index}")
        conn.execute("ALTER TABLE accounts DROP COLUMN has_holds")
        conn.execute("ALTER TABLE accounts DROP COLUMN has_failed_steps")
        conn.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    conn.close()


def test_a_schema_5_sqlite_file_with_accounts_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "accounts.db"
    _sqlite_version_5(path)
    reader = SQLiteStore.open_read_only(path)
    with pytest.raises(StoreError, match="no such"):  # an older file cannot answer (the console refuses it)
        reader.list_accounts(AccountQuery(with_holds=True), after=None, limit=1)
    reader.close()

    store = SQLiteStore(path)
    try:
        assert store.schema_version() == 6
        _check(store)
        store.migrate()  # again: nothing changes
        _check(store)
    finally:
        store.close()


def test_the_sql_of_migrate_from_schema_5_then_migrate_fills_the_flags(tmp_path: Path) -> None:
    """``migration_statements(5)`` run by hand adds the columns and indexes and leaves the
    version at 5 (a closing comment says why); the store's migrate then fills the flags."""
    path = tmp_path / "accounts.db"
    _sqlite_version_5(path)
    statements = SQLiteStore.migration_statements(5)
    assert statements[-1].startswith("-- schema 6 also fills has_holds and has_failed_steps")
    with sqlite3.connect(path) as conn:
        for statement in statements[:-1]:
            conn.execute(statement)
        assert conn.execute(
            "SELECT count(*) FROM accounts WHERE has_holds OR has_failed_steps"
        ).fetchone() == (0,)
    conn.close()
    reader = SQLiteStore.open_read_only(path)
    assert reader.schema_version() == 5
    reader.close()

    store = SQLiteStore(path)
    try:
        assert store.schema_version() == 6
        _check(store)
    finally:
        store.close()


def test_sqlite_walks_the_index_of_each_query(tmp_path: Path) -> None:
    """The statements name the index query_path chooses: the held accounts' partial index, the
    failed ones', (state, account_id); SQLite reads through it (its query plan says so)."""
    store = SQLiteStore(tmp_path / "accounts.db")
    store.close()
    with sqlite3.connect(tmp_path / "accounts.db") as conn:
        for where, index in (
            ("has_holds AND NOT has_failed_steps", "accounts_held"),
            ("has_failed_steps AND state IN ('cancelled')", "accounts_failed"),
            ("state = 'cancelled' AND NOT has_holds", "accounts_state"),
        ):
            plan = conn.execute(
                f"EXPLAIN QUERY PLAN SELECT account_id FROM accounts INDEXED BY {index}"
                f" WHERE {where} AND account_id > 'a' ORDER BY account_id LIMIT 5"
            ).fetchall()
            text = " ".join(str(row[-1]) for row in plan)
            assert f"USING INDEX {index}" in text or f"USING COVERING INDEX {index}" in text, text
            assert "TEMP B-TREE" not in text, text  # the index gives the order: no sort
    conn.close()


# -- PostgreSQL ------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_postgres_schema_at_version_5_with_accounts_gets_migration_6(pg_schema: tuple[str, str]) -> None:
    import psycopg
    from psycopg import sql

    from account_lifecycle import PostgresStore

    dsn, schema = pg_schema
    with PostgresStore(dsn, schema=schema) as store:
        store.migrate()
        _fill(store)
    name = sql.Identifier(schema)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("UPDATE {}.accounts SET body = 'not json' WHERE account_id = 'broken'").format(name)
        )
        for index in ("accounts_held_idx", "accounts_failed_idx", "accounts_state_idx"):
            conn.execute(sql.SQL("DROP INDEX {}.{}").format(name, sql.Identifier(index)))
        conn.execute(
            sql.SQL("ALTER TABLE {}.accounts DROP COLUMN has_holds, DROP COLUMN has_failed_steps").format(
                name
            )
        )
        conn.execute(sql.SQL("DELETE FROM {}.schema_migrations WHERE version >= 6").format(name))

    with PostgresStore(dsn, schema=schema) as store:
        assert store.schema_version() == 5
        statements = store.migration_statements(5)
        assert statements[-1].startswith("-- migration 6 also fills has_holds and has_failed_steps")
        assert not any("schema_migrations" in s for s in statements)  # 6 is not recorded by SQL alone
        assert store.migrate() == (6,)
        assert store.migrate() == ()
        _check(store)
    with psycopg.connect(dsn) as conn:
        names = {
            row[0]
            for row in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s", (schema,)
            ).fetchall()
        }
    assert {"accounts_held_idx", "accounts_failed_idx", "accounts_state_idx"} <= names


# -- SQLAlchemy ------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sqla_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    from sqlalchemy import create_engine

    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'sqla.db'}")
        yield engine
        engine.dispose()
        return
    import pg

    with pg.throwaway_schema() as (dsn, schema):
        engine = create_engine(pg_url(dsn), connect_args={"options": f"-csearch_path={schema}"})
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        yield engine
        engine.dispose()


def test_sqlalchemy_tables_at_version_1_with_accounts_are_migrated_to_2(sqla_engine: Any) -> None:
    from account_lifecycle.adapters.sqlalchemy import PREFIX, SQLAlchemyStore

    store = SQLAlchemyStore(sqla_engine)
    store.migrate()
    _fill(store)
    accounts = f"{PREFIX}accounts"
    with sqla_engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {accounts} SET body = 'not json' WHERE account_id = 'broken'")
        for index in ("held", "failed", "state"):
            conn.exec_driver_sql(f"DROP INDEX {accounts}_{index}")
        conn.exec_driver_sql(f"ALTER TABLE {accounts} DROP COLUMN has_holds")
        conn.exec_driver_sql(f"ALTER TABLE {accounts} DROP COLUMN has_failed_steps")
        conn.exec_driver_sql(f"UPDATE {PREFIX}meta SET value = '1' WHERE key = 'schema_version'")

    assert store.migrate() == (2,)
    assert store.migrate() == ()
    assert store.schema_version() == 2
    _check(store)


def test_the_accounts_command_refuses_a_schema_5_file_and_answers_once_migrated(tmp_path: Path) -> None:
    """The console never migrates: on a schema-5 file ``accounts`` is a usage error naming the
    command to run, and the file is left as it was; after ``migrate`` it lists the held accounts."""
    import json
    import os
    import subprocess
    import sys

    _sqlite_version_5(tmp_path / "accounts.db")
    before = (tmp_path / "accounts.db").read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCOUNT_LIFECYCLE_")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "account_lifecycle", *args]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)

    refused = cli("accounts", "--with-holds")
    assert refused.returncode == 2, refused
    assert "schema version 5, older than the library's 6; run: account-lifecycle migrate" in refused.stderr
    assert (tmp_path / "accounts.db").read_bytes() == before

    assert cli("migrate").returncode == 0
    listed = cli("accounts", "--with-holds", "--json")
    assert listed.returncode == 0, listed
    assert [row["account_id"] for row in json.loads(listed.stdout)["accounts"]] == [
        "acc-1",
        "acc-3",
        "broken",
    ]
