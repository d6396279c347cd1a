"""The library's tables in a host's Alembic: autogenerate against an empty database proposes
exactly them, against a migrated one nothing; and the recipe of docs/sqlalchemy.md (env.py
listing both MetaData) generates a revision that upgrades a database the store then works on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import Engine
from sqlalchemy_support import pg_url

from account_lifecycle.adapters.sqlalchemy import PREFIX, SQLAlchemyStore, build_metadata, metadata
from account_lifecycle.testing.store_contract import new_account

TABLES = {
    f"{PREFIX}{name}"
    for name in (
        "accounts",
        "events",
        "identifiers",
        "sealed_values",
        "outbox",
        "outbox_cursors",
        "dead_letters",
        "meta",
    )
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, str | None]]:
    """An empty database (a SQLite file, or a fresh PostgreSQL schema) and its schema name."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        yield engine, None
        engine.dispose()
        return
    import pg

    with pg.throwaway_schema() as (dsn, schema):
        engine = create_engine(pg_url(dsn))
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        yield engine, schema
        engine.dispose()


def diff(engine: Engine, schema: str | None) -> list[Any]:
    def only_this_schema(name: str | None, type_: str, parent: Any) -> bool:
        return type_ != "schema" or name == schema

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_schemas": schema is not None,
                "include_name": only_this_schema,
                "compare_type": True,
            },
        )
        return list(compare_metadata(context, build_metadata(schema)))


def test_autogenerate_proposes_exactly_the_library_tables_then_nothing(
    target: tuple[Engine, str | None],
) -> None:
    engine, schema = target
    proposed = diff(engine, schema)
    added = {op[1].name for op in proposed if op[0] == "add_table"}
    assert added == TABLES
    assert all(op[0] in ("add_table", "add_index") for op in proposed), proposed

    store = SQLAlchemyStore(engine, schema=schema)
    assert store.migrate() == (2,)
    assert store.migrate() == ()
    assert diff(engine, schema) == []
    assert store.schema_version() == 2


def test_metadata_is_the_default_schemas_and_names_are_prefixed() -> None:
    assert metadata is build_metadata(None)
    assert build_metadata("lc") is build_metadata("lc")
    assert {t.name for t in metadata.sorted_tables} == TABLES
    with pytest.raises(ValueError, match="schema"):
        build_metadata("")


ENV_PY = """
from alembic import context
from sqlalchemy import engine_from_config, pool

from account_lifecycle.adapters.sqlalchemy import metadata as account_lifecycle_metadata
from host_models import metadata as host_metadata

target_metadata = [host_metadata, account_lifecycle_metadata]


def run_migrations_online() -> None:
    connectable = engine_from_config(
        context.config.get_section(context.config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
"""


def test_the_documented_recipe_generates_and_applies_a_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alembic import command
    from alembic.config import Config

    (tmp_path / "host_models.py").write_text(
        "from sqlalchemy import Column, MetaData, Table, Text\n"
        "metadata = MetaData()\n"
        "users = Table('users', metadata, Column('id', Text, primary_key=True))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    url = f"sqlite:///{tmp_path / 'host.db'}"
    config = Config(str(tmp_path / "alembic.ini"))
    config.set_main_option("script_location", str(tmp_path / "migrations"))
    config.set_main_option("sqlalchemy.url", url)
    command.init(config, str(tmp_path / "migrations"))
    (tmp_path / "migrations" / "env.py").write_text(ENV_PY)

    command.revision(config, message="users and account_lifecycle", autogenerate=True)
    [script] = (tmp_path / "migrations" / "versions").glob("*.py")
    assert f"{PREFIX}accounts" in script.read_text()
    command.upgrade(config, "head")

    engine = create_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) == TABLES | {"users", "alembic_version"}
        store = SQLAlchemyStore(engine)
        assert store.schema_version() == 0  # Alembic made the tables; migrate() records a version
        store.create(*new_account("acc-1"))
        assert store.account_ids() == ("acc-1",)
        assert store.migrate() == (2,)  # nothing to create: only the version row
        command.check(config)  # raises if autogenerate would propose anything more
    finally:
        engine.dispose()


def test_importing_the_library_loads_no_sqlalchemy() -> None:
    """import account_lifecycle loads no sqlalchemy; account_lifecycle.SQLAlchemyStore loads it."""
    import subprocess
    import sys

    code = (
        "import sys, account_lifecycle\n"
        "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported eagerly'\n"
        "from account_lifecycle import AsyncSQLAlchemyStore, SQLAlchemyStore\n"
        "assert 'sqlalchemy' in sys.modules\n"
        "print(SQLAlchemyStore.__module__, AsyncSQLAlchemyStore.__module__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)

    assert result.stderr == ""
    assert result.stdout.split() == ["account_lifecycle.adapters.sqlalchemy"] * 2
