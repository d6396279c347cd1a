"""Operator commands over a store: ``status`` (read-only health: backlog, oldest due, failures,
claims, schema version; exit 1 when something is stuck) and ``migrate`` (the only command that
changes a schema; ``--sql`` prints the statements instead).

``status ACCOUNT_ID`` is still the console's per-account status (``cli/console.py``); without an
account id it reports on the whole store.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from account_lifecycle.audit import format_time
from account_lifecycle.cli import console as console_commands
from account_lifecycle.cli._common import REFUSED, USAGE, _error, _guarded, _json, _say, _Stop
from account_lifecycle.cli.console_setup import _actor, _console, _parse_time
from account_lifecycle.cli.tables import print_table
from account_lifecycle.duration import Duration
from account_lifecycle.errors import StoreError
from account_lifecycle.health import StoreStatus

__all__ = ["migrate", "status"]

_PER_ACCOUNT = ("actor", "preview", "window", "app", "policy")


def _stuck_after(ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    try:
        length = Duration.parse(value).fixed
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if length is None:
        raise click.BadParameter(f"expected minutes, hours, days or weeks, got {value!r}")
    return length


@contextmanager
def _reader(db: str | None, dsn: str | None, schema: str | None) -> Iterator[Any]:
    """The store opened for reading only: SQLite with ``mode=ro``, PostgreSQL unmigrated (its
    status runs in a ``READ ONLY`` transaction)."""
    if db is not None and dsn is not None:
        raise _Stop(USAGE, "error: give --db FILE or --dsn URL, not both")
    if schema is not None and dsn is None:
        raise _Stop(USAGE, "error: --schema applies to --dsn (PostgreSQL) only")
    store: Any
    if dsn is not None:
        store = _postgres(dsn, schema)
    else:
        from account_lifecycle.adapters.sqlite import SQLiteStore

        try:
            store = SQLiteStore.open_read_only(db if db is not None else "accounts.db")
        except StoreError as exc:
            raise _Stop(USAGE, f"error: {exc}") from None
    try:
        yield store
    except StoreError as exc:
        raise _Stop(USAGE, f"error: cannot read the store: {exc}") from None
    finally:
        store.close()


def _postgres(dsn: str, schema: str | None) -> Any:
    try:
        from account_lifecycle.adapters.postgres import PostgresStore
    except ImportError as exc:
        raise _Stop(
            USAGE,
            f"error: --dsn needs the 'postgres' extra (pip install 'account-lifecycle[postgres]'): {exc}",
        ) from None
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)  # the one error below says it all
    try:
        return PostgresStore(dsn, schema=schema or "account_lifecycle", max_connections=1, timeout=10)
    except StoreError as exc:
        raise _Stop(USAGE, f"error: cannot use the PostgreSQL database: {exc}") from None


def _age(status: StoreStatus) -> str:
    age = status.oldest_due_age
    return "-" if age is None else str(timedelta(seconds=int(age.total_seconds())))


def _show(status: StoreStatus, reasons: tuple[str, ...]) -> None:
    schema = f"{status.schema_version} (library {status.library_schema_version})"
    if status.schema_outdated:
        schema += ": run account-lifecycle migrate"
    rows = [
        ("schema version", schema),
        ("due now (backlog)", str(status.due)),
        ("oldest due", "-" if status.oldest_due is None else format_time(status.oldest_due)),
        ("oldest due waited", _age(status)),
        ("erasures started, not recorded", str(status.erasures)),
        ("failed steps", str(sum(status.failed.values()))),
        ("live claims", str(sum(status.claims.values()))),
        ("undecodable records", str(len(status.corrupt))),
    ]
    print_table(f"store status at {format_time(status.at)}", ("what", "value"), rows)
    if status.failed:
        print_table("failed steps by category", ("category", "steps"), list(_counts(status.failed)))
    if status.claims:
        print_table("live claims by owner", ("owner", "accounts"), list(_counts(status.claims)))
    if status.corrupt:
        print_table("undecodable records", ("account id",), [(a,) for a in status.corrupt])
    _say("healthy" if not reasons else "stuck:\n" + "\n".join(f"  {reason}" for reason in reasons))


def _counts(counts: Any) -> Iterator[tuple[str, str]]:
    for key, count in counts.items():
        yield key, str(count)


@click.command("status")
@click.argument("account_id", required=False)
@click.option(
    "--as", "actor", callback=_actor, metavar="ACTOR", help="With ACCOUNT_ID: what this actor may do."
)
@click.option("--preview", is_flag=True, help="With ACCOUNT_ID: its timeline instead.")
@click.option("--window", metavar="DURATION", help="With ACCOUNT_ID and --preview: the window to assume.")
@click.option(
    "--stuck-after",
    default="1 hour",
    show_default=True,
    callback=_stuck_after,
    metavar="DURATION",
    help="Without ACCOUNT_ID: exit 1 when due work or a started erasure is older than this.",
)
@_console
@click.pass_context
def status(ctx: click.Context, /, account_id: str | None, stuck_after: timedelta, **options: Any) -> int:
    """Without ACCOUNT_ID: the store's health, read-only (never migrates): the backlog of due
    accounts, the oldest due moment, failed steps by category, live claims by owner,
    undecodable records and the schema version. Exits 1 when something is stuck longer than
    --stuck-after, a record cannot be decoded, or the schema needs `migrate` (a health check).

    With ACCOUNT_ID: show the account (and, with --as, the actions allowed now), or with
    --preview its timeline."""
    if account_id is not None:
        result = ctx.invoke(console_commands.status, account_id=account_id, **options)
        return int(result or 0)
    return _store_status(stuck_after=stuck_after, **options)


@_guarded
def _store_status(stuck_after: timedelta, **options: Any) -> int:
    as_json = options["as_json"]
    given = [f"--{name.replace('actor', 'as')}" for name in _PER_ACCOUNT if options.get(name)]
    if given:
        raise _Stop(USAGE, f"error: {' and '.join(given)} only go with an ACCOUNT_ID")
    now = datetime.now(UTC) if options["now"] is None else _parse_time(options["now"], "--now")
    with _reader(options["db"], options["dsn"], options["schema"]) as store:
        report: StoreStatus = store.status(now=now)
    reasons = report.stuck(stuck_after)
    if as_json:
        _json(
            {**report.to_dict(), "stuck": list(reasons), "stuck_after_seconds": stuck_after.total_seconds()}
        )
    else:
        _show(report, reasons)
    if reasons:
        _error(f"status: {reasons[0]}" + (f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""))
        return REFUSED
    return 0


@click.command()
@click.option(
    "--db", metavar="FILE", envvar="ACCOUNT_LIFECYCLE_DB", help="SQLite file [default: accounts.db]."
)
@click.option("--dsn", metavar="URL", envvar="ACCOUNT_LIFECYCLE_DSN", help="PostgreSQL connection string.")
@click.option(
    "--schema",
    metavar="NAME",
    envvar="ACCOUNT_LIFECYCLE_SCHEMA",
    help="With --dsn: the schema [default: account_lifecycle].",
)
@click.option("--sql", "print_sql", is_flag=True, help="Print the statements it would run, and run nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_guarded
def migrate(db: str | None, dsn: str | None, schema: str | None, print_sql: bool, as_json: bool) -> int:
    """Create or upgrade the store's schema to this library's version (the only command that
    does; the others refuse an older schema). With --sql, print the statements instead."""
    if dsn is None and not print_sql:
        return _migrate_sqlite(db if db is not None else "accounts.db", as_json)
    if dsn is None:
        return _sqlite_sql(db if db is not None else "accounts.db", as_json)
    with _reader(db, dsn, schema) as store:
        found = store.schema_version()
        if print_sql:
            return _print_sql(store.migration_statements(found), found, as_json)
        store.migrate()
        after = store.schema_version()
    _report(f"PostgreSQL schema {store.schema!r}", found, after, as_json)
    return 0


def _sqlite_sql(path: str, as_json: bool) -> int:
    from account_lifecycle.adapters.sqlite import SQLiteStore

    with _reader(path, None, None) if _exists(path) else _nothing() as store:
        found = 0 if store is None else store.schema_version()
    return _print_sql(SQLiteStore.migration_statements(found), found, as_json)


def _migrate_sqlite(path: str, as_json: bool) -> int:
    from account_lifecycle.adapters.sqlite import SQLiteStore

    found = 0
    if _exists(path):
        with _reader(path, None, None) as reader:
            found = reader.schema_version()
    try:
        store = SQLiteStore(path)  # creates or upgrades the schema
    except StoreError as exc:
        raise _Stop(USAGE, f"error: {exc}") from None
    try:
        after = store.schema_version()
    finally:
        store.close()
    _report(f"SQLite database {path!r}", found, after, as_json)
    return 0


def _exists(path: str) -> bool:
    import os

    return os.path.isfile(path)


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def _print_sql(statements: tuple[str, ...], found: int, as_json: bool) -> int:
    if as_json:
        _json({"from_version": found, "statements": list(statements)})
    elif not statements:
        _say(f"-- schema version {found} is current: nothing to run")
    else:
        _say("\n".join(f"{statement};" for statement in statements))
    return 0


def _report(what: str, found: int, after: int, as_json: bool) -> None:
    if as_json:
        _json({"from_version": found, "to_version": after, "migrated": after != found})
    elif after == found:
        _say(f"{what} is at schema version {after}: nothing to do")
    else:
        _say(f"{what} migrated from schema version {found} to {after}")
