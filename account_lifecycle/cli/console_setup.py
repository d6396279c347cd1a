"""What the operator console commands share: the store and lifecycle options
(``--db``/``--dsn``/``--schema``, ``--app`` or ``--policy``/``--now``, ``--json``) and the
``Lifecycle`` they build."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final

import click

from account_lifecycle.cli._common import USAGE, F, _load, _Stop, checked_path
from account_lifecycle.cli.schema_gate import refuse_outdated_postgres, refuse_outdated_sqlite
from account_lifecycle.clock import ManualClock
from account_lifecycle.errors import ConfigurationError, StoreError
from account_lifecycle.lifecycle import Lifecycle
from account_lifecycle.model import Actor
from account_lifecycle.policies import BUILTIN
from account_lifecycle.ports import AccountStore, PurgeContext, PurgeResult

# -- the operator console ---------------------------------------------------------------------


NO_OP_PREFIX = "no-op:"


class NoOpPurger:
    """The purger of each category when the console runs without ``--app``: there is nothing it
    could erase, so it never claims to have. Were it ever run, its step fails (recorded and
    retried, never counted as erased); ``confirm`` and ``sweep`` refuse to run without
    ``--app`` anyway, unless ``--dry-run``, which runs no purger."""

    def __init__(self, category: str) -> None:
        self.category = category
        self.name = f"{NO_OP_PREFIX}{category}"

    def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:
        raise RuntimeError(
            "no purger: the console ran without --app, so nothing was erased; run it with --app"
        )


def _require_real_purgers(options: dict[str, Any], command: str, dry_run: bool) -> None:
    """``confirm`` and ``sweep`` run purgers: without ``--app`` there are none (exit 2), unless
    ``--dry-run`` only shows what would be erased."""
    if options["app"] is None and not dry_run:
        raise _Stop(
            USAGE,
            f"error: {command} erases data, and without --app no purger can erase anything; "
            f"pass --app module:factory (the host's purgers), or --dry-run to see what would be erased",
        )


def _nothing_pending(account_id: str) -> Sequence[str]:
    return ()


def _open_store(
    db: str | None, dsn: str | None, schema: str | None, *, dry_run: bool = False
) -> AccountStore:
    """The store the options name. For a dry run it must exist already: nothing is created
    (no SQLite file, no PostgreSQL schema)."""
    if db is not None and dsn is not None:
        raise _Stop(USAGE, "error: give --db FILE or --dsn URL, not both")
    if schema is not None and dsn is None:
        raise _Stop(USAGE, "error: --schema applies to --dsn (PostgreSQL) only")
    if dsn is not None:
        try:
            from account_lifecycle.adapters.postgres import PostgresStore
        except ImportError as exc:
            raise _Stop(
                USAGE,
                f"error: --dsn needs the 'postgres' extra (pip install 'account-lifecycle[postgres]'): {exc}",
            ) from None
        # The pool logs each failed connection attempt; the one error below says it all.
        logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
        try:
            store = PostgresStore(dsn, schema=schema or "account_lifecycle", max_connections=2, timeout=10)
            refuse_outdated_postgres(store)  # never migrates: `account-lifecycle migrate` does
        except StoreError as exc:
            raise _Stop(USAGE, f"error: cannot use the PostgreSQL database: {exc}") from None
        return store
    from account_lifecycle.adapters.sqlite import SQLiteStore

    path = str(checked_path(db, "--db")) if db is not None else "accounts.db"
    if dry_run and not os.path.isfile(path):
        raise _Stop(USAGE, f"error: no SQLite database at {path!r}; a dry run creates nothing")
    refuse_outdated_sqlite(path)  # a new file is created; an older one is not migrated
    try:
        return SQLiteStore(path)
    except StoreError as exc:
        raise _Stop(USAGE, f"error: {exc}") from None
    except Exception as exc:  # sqlite3.DatabaseError for a file that is not a database
        if type(exc).__module__ == "sqlite3":
            raise _Stop(USAGE, f"error: cannot open SQLite database {path!r}: {exc}") from None
        raise


def _from_app(spec: str, store: AccountStore) -> Lifecycle:
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise _Stop(USAGE, f"error: --app expects module:factory, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: the host's modules are found from here
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise _Stop(USAGE, f"error: --app {spec}: cannot import {module_name!r}: {exc}") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise _Stop(USAGE, f"error: --app {spec}: {module_name} has no callable {attribute!r}")
    try:
        takes_store = bool(inspect.signature(factory).parameters)
        lifecycle = factory(store) if takes_store else factory()
    except ConfigurationError as exc:
        raise _Stop(USAGE, f"error: --app {spec}: {exc}") from None
    if not isinstance(lifecycle, Lifecycle):
        raise _Stop(USAGE, f"error: --app {spec} returned {type(lifecycle).__name__}, not a Lifecycle")
    return lifecycle


def _parse_now(text: str) -> datetime:
    return _parse_time(text, "--now")


#: The times the console takes: from 1970 to before 9000, so that the policy's windows, phases
#: and reminders added to one stay within what a datetime holds (year 9999).
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(9000, 1, 1, tzinfo=UTC)


def _parse_time(text: str, option: str) -> datetime:
    expected = f"error: {option} expects an ISO time like 2026-01-31T12:00:00Z"
    if len(text) > 64:
        raise _Stop(USAGE, f"{expected}, got {len(text)} characters")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _Stop(USAGE, f"{expected}, got {text!r}") from None
    try:
        moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        in_range = EARLIEST <= moment < LATEST
    except OverflowError:  # an offset that pushes it past year 1 or 9999
        in_range = False
    if not in_range:
        raise _Stop(
            USAGE,
            f"error: {option} must be from {EARLIEST.year} to before {LATEST.year} "
            f"(a policy's windows are added to it), got {text!r}",
        )
    return moment


@contextmanager
def _lifecycle(options: dict[str, Any]) -> Iterator[Lifecycle]:
    app, policy_name, now = options["app"], options["policy"], options["now"]
    if app is not None and (policy_name is not None or now is not None):
        raise _Stop(USAGE, "error: --app builds its own lifecycle; drop --policy and --now")
    if app is None and policy_name is None:
        names = ", ".join(sorted(BUILTIN))
        raise _Stop(USAGE, f"error: give --policy ({names} or a policy file), or --app module:factory")
    # Every argument is checked before the store is opened: a refusal creates nothing.
    policy = None if app is not None else _load(policy_name)
    clock = None if now is None else ManualClock(_parse_now(now))
    dry_run = bool(options.get("dry_run"))
    store = _open_store(options["db"], options["dsn"], options["schema"], dry_run=dry_run)
    try:
        if policy is None:
            lifecycle = _from_app(app, store)
        else:
            lifecycle = Lifecycle(
                policy,
                store=store,
                purgers=[NoOpPurger(c.name) for c in policy.purge.categories],
                prerequisites=dict.fromkeys(policy.prerequisites, _nothing_pending),
                clock=clock,
            )
        yield lifecycle
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()


def _same_policy(lifecycle: Lifecycle, account_id: str, options: dict[str, Any]) -> None:
    """With --policy, refuse to drive an account that was opened under another policy."""
    if options["app"] is not None:
        return
    events = lifecycle.history(account_id)
    if events:
        recorded = events[-1].policy
        if recorded.rpartition("@")[0] != lifecycle.policy.name:
            raise _Stop(
                USAGE,
                f"error: account {account_id!r} is governed by policy {recorded}, not "
                f"{lifecycle.policy.label}; pass --policy {recorded.rpartition('@')[0]}",
            )


def _console(command: F) -> F:
    """The store and lifecycle options every console command takes."""
    options = [
        click.option(
            "--db", metavar="FILE", envvar="ACCOUNT_LIFECYCLE_DB", help="SQLite file [default: accounts.db]."
        ),
        click.option(
            "--dsn", metavar="URL", envvar="ACCOUNT_LIFECYCLE_DSN", help="PostgreSQL connection string."
        ),
        click.option(
            "--schema",
            metavar="NAME",
            envvar="ACCOUNT_LIFECYCLE_SCHEMA",
            help="With --dsn: the schema [default: account_lifecycle].",
        ),
        click.option(
            "--app",
            metavar="MODULE:FACTORY",
            envvar="ACCOUNT_LIFECYCLE_APP",
            help="Host function returning a configured Lifecycle (given the store if it takes an argument).",
        ),
        click.option(
            "--policy",
            metavar="NAME|FILE",
            envvar="ACCOUNT_LIFECYCLE_POLICY",
            help="Without --app: a built-in policy or a policy file, with no-op purgers.",
        ),
        click.option(
            "--now", metavar="TIME", help="Without --app: pretend it is this ISO time (UTC if no zone)."
        ),
        click.option("--json", "as_json", is_flag=True, help="Print JSON."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _actor(ctx: click.Context, param: click.Parameter, value: str | None) -> Actor | None:
    if value is None:
        return None
    try:
        return Actor.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


_AS = click.option(
    "--as", "actor", required=True, callback=_actor, metavar="ACTOR", help="user:ID, support:ID or system."
)


def _split(options: dict[str, Any]) -> dict[str, Any]:
    keys = ("db", "dsn", "schema", "app", "policy", "now")
    return {key: options.pop(key) for key in keys}
