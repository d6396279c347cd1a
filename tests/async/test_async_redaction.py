"""AsyncPostgresStore keeps the PostgreSQL password out of its errors, its repr and every log
line, as PostgresStore does (it is PostgresStore, run in greenlets): each failing path planted
with a password, every logger at DEBUG, everything captured grepped for it."""

from __future__ import annotations

import asyncio
import logging
import traceback
from urllib.parse import quote

import pg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from account_lifecycle import AccountNotFound, StoreError

PLANTED = "Pl4nted-s3cret"
ODD = "Pl4nted s3cr@t/ä%'"


def leaked(text: str, secret: str) -> list[str]:
    forms = {secret, quote(secret, safe=""), quote(secret, safe="@"), quote(secret)}
    return [form for form in forms if form in text]


def everything(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


@pytest.mark.postgres
def test_async_store_errors_and_logs_never_carry_the_password(caplog: pytest.LogCaptureFixture) -> None:
    from account_lifecycle import AsyncPostgresStore

    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    async def paths(target: str, schema: str, secret: str) -> None:
        params = conninfo_to_dict(target)
        params["password"] = secret
        dsn = make_conninfo(**params)
        never = AsyncPostgresStore(dsn, schema=pg.new_schema_name(), timeout=2)
        with pytest.raises(StoreError, match=r"run store\.migrate") as unmigrated:
            await never.get("acct-1")
        seen.append(everything(unmigrated.value))
        await never.close()
        store = AsyncPostgresStore(dsn, schema=schema, timeout=2)
        seen.append(repr(store))
        await store.migrate()
        with pytest.raises(AccountNotFound) as missing:
            await store.get("acct-1")
        seen.append(everything(missing.value))
        await store.close()
        with pytest.raises(StoreError) as closed:
            await store.get("acct-1")
        seen.append(everything(closed.value))
        params["dbname"] = "al_no_such_database"
        nowhere = AsyncPostgresStore(make_conninfo(**params), schema=schema, timeout=1)
        with pytest.raises(StoreError) as unreachable:
            await nowhere.migrate()
        seen.append(everything(unreachable.value))
        await nowhere.close()

    with pg.throwaway_schema() as (target, schema):
        for secret in (PLANTED, ODD):
            asyncio.run(paths(target, schema, secret))
    logged = "\n".join([record.getMessage() for record in caplog.records] + [caplog.text])
    assert any("PostgreSQL at" in text for text in seen)
    for secret in (PLANTED, ODD):
        assert leaked("\n".join(seen), secret) == []
        assert leaked(logged, secret) == []


def test_a_bad_argument_is_a_type_error_naming_the_fix() -> None:
    pytest.importorskip("psycopg")
    from account_lifecycle import AsyncPostgresStore

    with pytest.raises(TypeError, match="AsyncConnectionPool"):
        AsyncPostgresStore(42)  # type: ignore[arg-type]
