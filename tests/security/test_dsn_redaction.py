"""A PostgreSQL password never appears: not in a StoreError, a log line, ``repr`` or the command
line's output (issue 15). Each test plants a password and greps everything captured for it, in
every form a message could quote it (as written, percent-encoded, percent-decoded)."""

from __future__ import annotations

import contextlib
import io
import logging
import traceback
from urllib.parse import quote

import pg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from account_lifecycle.__main__ import main
from account_lifecycle.adapters.postgres import PostgresStore
from account_lifecycle.errors import AccountNotFound, StoreError
from account_lifecycle.redact import MASK, REDACTOR, dsn_secrets, redact

PLANTED = "Pl4nted-s3cret"
ODD = "Pl4nted s3cr@t/ä%'"  # a space, an @, a slash, non-ASCII, a % and a quote


def forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote(secret, safe="@"), quote(secret)}


def leaked(text: str, secret: str) -> list[str]:
    return [form for form in forms(secret) if form in text]


def everything(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


# -- finding and hiding the secrets (pure) ----------------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "secret"),
    [
        (f"postgresql+asyncpg://app:{PLANTED}@db.internal/app", PLANTED),
        (f"postgresql://app:{quote(ODD, safe='')}@db.internal:5432/app", ODD),
        (f"postgres://app:{PLANTED}@db.internal/app?sslmode=require", PLANTED),
        (f"postgresql://app@db.internal/app?password={PLANTED}", PLANTED),
        (f"host=db.internal user=app password={PLANTED} dbname=app", PLANTED),
        (f"host=db.internal password = '{PLANTED} with spaces' dbname=app", f"{PLANTED} with spaces"),
        (f"host=db.internal dbname='postgresql://app:{PLANTED}@other/app'", PLANTED),
        (f"host=db.internal sslpassword={PLANTED}", PLANTED),
    ],
)
def test_every_form_of_the_password_is_found_and_masked(dsn: str, secret: str) -> None:
    secrets = dsn_secrets(dsn)
    assert secret in secrets
    message = f"could not connect with {dsn!r}; the password was {secret} ({quote(secret, safe='')})"
    clean = redact(message, secrets)
    assert leaked(clean, secret) == []
    assert MASK in clean
    assert "db.internal" in clean  # the rest stays readable


def test_shaped_like_a_password_is_masked_even_when_unknown() -> None:
    text = "postgresql://u:hunter2@h/db and host=h password=hunter2 and ?password=hunter2&x=1"
    assert "hunter2" not in redact(text)


def test_the_log_filter_masks_registered_secrets() -> None:
    """A record psycopg's pool writes with the DSN in it is rewritten before any handler sees it."""
    secrets = dsn_secrets(f"host=h password={PLANTED}")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    pool_logger = logging.getLogger("psycopg.pool")
    pool_logger.addHandler(handler)
    REDACTOR.register(secrets)
    try:
        pool_logger.warning("error connecting with %s", f"password is {PLANTED}")
    finally:
        REDACTOR.unregister(secrets)
        pool_logger.removeHandler(handler)
    assert PLANTED not in stream.getvalue()
    assert "error connecting with password is ***" in stream.getvalue()


# -- the store: invalid DSNs need no server ---------------------------------------------------


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql+asyncpg://app:{PLANTED}@db.internal/app",
        f"host=db.internal password={PLANTED} oops",
        f"host=db.internal password='{PLANTED}",
        f"postgresql://app:{PLANTED}%zz@db.internal/app",
        f"{PLANTED} host=db.internal",
    ],
)
def test_an_invalid_dsn_is_a_store_error_without_the_password(dsn: str) -> None:
    with pytest.raises(StoreError, match="invalid PostgreSQL DSN") as caught:
        PostgresStore(dsn)
    assert leaked(everything(caught.value), PLANTED) == []
    assert caught.value.__cause__ is None


def test_a_sqlalchemy_url_says_what_to_drop() -> None:
    with pytest.raises(StoreError, match=r"drop the '\+asyncpg'"):
        PostgresStore(f"postgresql+asyncpg://app:{PLANTED}@db.internal/app")


def test_a_password_nested_in_dbname_is_not_shown_by_repr() -> None:
    store = PostgresStore(f"host=db.internal dbname='postgresql://app:{PLANTED}@other/app'")
    try:
        assert leaked(repr(store), PLANTED) == []
    finally:
        store.close()


# -- against a server: errors, logs, the command line ------------------------------------------


def _with_password(target: str, password: str, *, url: bool) -> str:
    params = conninfo_to_dict(target)
    params["password"] = password
    if not url:
        return make_conninfo(**params)
    user = params.get("user", "postgres")
    host, port, dbname = params.get("host", "127.0.0.1"), params.get("port", 5432), params.get("dbname", "")
    return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{dbname}"


@pytest.mark.postgres
@pytest.mark.parametrize("url", [True, False], ids=["url", "keywords"])
def test_store_errors_and_logs_never_carry_the_password(url: bool, caplog: pytest.LogCaptureFixture) -> None:
    """Every failing path we can provoke against a live server (a schema never migrated, a
    missing database, a closed pool), with every logger at DEBUG: the password is nowhere."""
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    with pg.throwaway_schema() as (target, schema):
        for secret in (PLANTED, ODD):
            dsn = _with_password(target, secret, url=url)
            never = PostgresStore(dsn, schema=pg.new_schema_name(), timeout=2)  # never created
            with pytest.raises(StoreError, match=r"run store\.migrate") as unmigrated:
                never.get("acct-1")  # no tables
            seen.append(everything(unmigrated.value))
            never.close()
            store = PostgresStore(dsn, schema=schema, timeout=2)
            seen.append(repr(store))
            store.migrate()
            with pytest.raises(AccountNotFound) as missing:
                store.get("acct-1")
            seen.append(everything(missing.value))
            store.close()
            with pytest.raises(StoreError) as closed:
                store.get("acct-1")
            seen.append(everything(closed.value))
            params = conninfo_to_dict(dsn)
            params["dbname"] = "al_no_such_database"
            nowhere = PostgresStore(make_conninfo(**params), schema=schema, timeout=1)
            with pytest.raises(StoreError) as unreachable:
                nowhere.migrate()
            seen.append(everything(unreachable.value))
            nowhere.close()
    logged = "\n".join([record.getMessage() for record in caplog.records] + [caplog.text])
    assert "al_no_such_database" in logged or "couldn't get a connection" in "\n".join(seen)
    for secret in (PLANTED, ODD):
        assert leaked("\n".join(seen), secret) == []
        assert leaked(logged, secret) == []


def _cli(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue() + err.getvalue()


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql+asyncpg://app:{PLANTED}@db.internal/app",
        f"host=db.internal password={PLANTED} oops",
        f"postgresql://app:{quote(ODD, safe='')}%zz@db.internal/app",
    ],
)
def test_the_command_line_never_prints_the_password_of_a_bad_dsn(dsn: str) -> None:
    code, output = _cli("status", "acct-1", "--dsn", dsn, "--policy", "smrtphone")
    assert code == 2
    assert len(output.strip().splitlines()) == 1
    assert leaked(output, PLANTED) == []
    assert leaked(output, ODD) == []


@pytest.mark.postgres
def test_the_console_on_a_live_server_never_prints_the_password(caplog: pytest.LogCaptureFixture) -> None:
    """A whole session of console commands, succeeding and refused, with --dsn and via the
    environment: the planted password is in no output and no log line."""
    caplog.set_level(logging.DEBUG)
    outputs = []
    with pg.throwaway_schema() as (target, schema):
        pg.migrated_store(target, schema).close()  # the console never migrates on its own
        for url in (True, False):
            dsn = _with_password(target, ODD, url=url)
            common = ["--dsn", dsn, "--schema", schema, "--policy", "smrtphone"]
            for args in (
                ["open", "acct-1", "--owner", "owner"],
                ["open", "acct-1", "--owner", "owner"],  # refused: exists
                ["status", "acct-1", "--json"],
                ["request", "acct-1", "--as", "user:stranger"],  # refused
                ["history", "acct-1"],
                ["receipt", "acct-1"],  # refused: not purged
                ["status", "nobody"],
            ):
                code, output = _cli(*args, *common)
                outputs.append(output)
                assert code in (0, 1, 2)
            other = pg.new_schema_name()  # never migrated by the console: it names the command to run
            try:
                code, output = _cli(
                    "status", "acct-1", "--dsn", dsn, "--schema", other, "--policy", "smrtphone"
                )
            finally:
                pg.drop_schema(target, other)
            assert code == 2
            assert "account-lifecycle migrate --dsn URL" in output
            outputs.append(output)
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert leaked("\n".join(outputs), ODD) == []
    assert leaked(logged, ODD) == []
    assert any("acct-1" in output for output in outputs)  # the commands did run
