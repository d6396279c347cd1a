"""PostgreSQL for tests: where the server is, a throw-away schema per test, migrated stores.

The server is ``$ACCOUNT_LIFECYCLE_PG_DSN`` (``.ci/services`` exports a fresh database per
CI run) or else ``postgresql://postgres@127.0.0.1:5432/test``. When it cannot be reached the
test is skipped with the reason, except under ``CI=true``, where it fails: CI must never
pass by skipping the PostgreSQL tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"

_unreachable: list[str] = []  # the reason, once a connection attempt failed in this session
_checked: list[str] = []


def dsn() -> str:
    return os.environ.get("ACCOUNT_LIFECYCLE_PG_DSN") or DEFAULT_DSN


def _shown(target: str) -> str:
    """*target* without its password."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(target)
    return f"{params.get('host', 'localhost')}:{params.get('port', 5432)}/{params.get('dbname', '')}"


def require_server() -> str:
    """The DSN of a reachable server; skip the test without one (fail it under ``CI=true``)."""
    target = dsn()
    if not _checked and not _unreachable:
        import psycopg

        try:
            psycopg.connect(target, connect_timeout=3).close()
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split())
            _unreachable.append(f"PostgreSQL is not reachable at {_shown(target)}: {reason}")
        else:
            _checked.append(target)
    if _unreachable:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{_unreachable[0]} (CI=true: the PostgreSQL tests must run)", pytrace=False)
        pytest.skip(f"{_unreachable[0]}; set ACCOUNT_LIFECYCLE_PG_DSN or start the server")
    return target


def new_schema_name() -> str:
    return f"al_test_{uuid.uuid4().hex[:12]}"


def drop_schema(target: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(target, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextmanager
def throwaway_schema() -> Iterator[tuple[str, str]]:
    """``(dsn, schema)`` for a schema name nobody else uses; the schema is dropped afterwards."""
    target = require_server()
    schema = new_schema_name()
    try:
        yield target, schema
    finally:
        drop_schema(target, schema)


def migrated_store(target: str, schema: str, **options: Any) -> Any:
    """A ``PostgresStore`` on *schema*, migrated."""
    from account_lifecycle.adapters.postgres import PostgresStore

    store = PostgresStore(target, schema=schema, **options)
    store.migrate()
    return store
