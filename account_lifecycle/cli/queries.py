"""``account-lifecycle accounts``: the operators' list of accounts by state, due time, legal
holds and failed steps, a page at a time (``Lifecycle.accounts``' pages and cursor). Read-only:
the store is opened as ``status`` opens it (SQLite ``mode=ro``, PostgreSQL unmigrated, in a
``READ ONLY`` transaction), so it never creates, migrates nor writes anything."""

from __future__ import annotations

from typing import Any

import click

from account_lifecycle.audit import format_time
from account_lifecycle.cli._common import _guarded, _json, _say
from account_lifecycle.cli.console_setup import _parse_time
from account_lifecycle.cli.ops import _reader
from account_lifecycle.cli.schema_gate import refuse_outdated_postgres, refuse_outdated_sqlite
from account_lifecycle.cli.tables import print_table
from account_lifecycle.model import AccountRecord, PurgeStatus, State
from account_lifecycle.queries import DEFAULT_PAGE, MAX_PAGE, AccountPage, account_page, query_of
from account_lifecycle.schedule import due_at
from account_lifecycle.values import CorruptRecord

__all__ = ["accounts"]


def _failed_steps(record: AccountRecord) -> list[str]:
    return sorted(name for name, p in record.purge.items() if p.status is PurgeStatus.FAILED)


def _row(item: AccountRecord | CorruptRecord) -> dict[str, Any]:
    """What the list shows of an account: no owner, identity or hold reason (personal data)."""
    if isinstance(item, CorruptRecord):
        return {"account_id": item.account_id, "undecodable": item.reason}
    due = due_at(item)
    return {
        "account_id": item.account_id,
        "state": item.state.value,
        "due_at": None if due is None else format_time(due),
        "holds": sorted(item.holds),
        "failed_steps": _failed_steps(item),
        "version": item.version,
    }


def _show(page: AccountPage) -> None:
    rows = []
    for item in map(_row, page.accounts):
        if "undecodable" in item:
            rows.append((item["account_id"], "undecodable", "-", "-", "-", item["undecodable"]))
            continue
        rows.append(
            (
                item["account_id"],
                item["state"],
                item["due_at"] or "-",
                ", ".join(item["holds"]) or "-",
                ", ".join(item["failed_steps"]) or "-",
                "",
            )
        )
    print_table(None, ("account id", "state", "due at", "holds", "failed steps", "problem"), rows)
    count = len(page.accounts)
    if page.next_cursor is None:
        _say(f"{count} account{'s' if count != 1 else ''}; no more match")
    else:
        _say(f"{count} accounts; more match: add --cursor {page.next_cursor}")


@click.command("accounts")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice([s.value for s in State]),
    help="Only accounts in this state (repeatable: any of them).",
)
@click.option(
    "--due-before",
    metavar="TIME",
    help="Only accounts whose purge work is due before this ISO time (UTC if no zone).",
)
@click.option(
    "--with-holds/--without-holds",
    "with_holds",
    default=None,
    help="Only accounts with (without) a legal hold.",
)
@click.option(
    "--failed/--not-failed",
    "failed",
    default=None,
    help="Only accounts with (without) a failed purge step.",
)
@click.option("--cursor", metavar="CURSOR", help="The next page: the cursor the previous page printed.")
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=MAX_PAGE),
    default=DEFAULT_PAGE,
    show_default=True,
    help="Accounts per page.",
)
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_guarded
def accounts(
    states: tuple[str, ...],
    due_before: str | None,
    with_holds: bool | None,
    failed: bool | None,
    cursor: str | None,
    limit: int,
    db: str | None,
    dsn: str | None,
    schema: str | None,
    as_json: bool,
) -> int:
    """List accounts by state, due time, legal holds and failed purge steps, in account id
    order, a page at a time; read-only (never creates nor migrates the store). Every condition
    given must hold. A record that cannot be decoded is listed as undecodable. Prints no
    owner, identity or hold reason."""
    query = query_of(
        states=states or None,
        due_before=None if due_before is None else _parse_time(due_before, "--due-before"),
        with_holds=with_holds,
        with_failed_steps=failed,
    )
    with _reader(db, dsn, schema) as store:
        if dsn is not None:
            refuse_outdated_postgres(store)  # with the command to run; it never migrates
        else:  # schema 6's columns answer the query: an older file is refused the same way
            refuse_outdated_sqlite(db if db is not None else "accounts.db")
        page = account_page(store, query, cursor=cursor, limit=limit)
    if as_json:
        _json({"accounts": [_row(item) for item in page.accounts], "next_cursor": page.next_cursor})
    else:
        _show(page)
    return 0
