"""Operator commands over the transactional outbox: ``outbox`` (each durable listener's position,
lag, failing delivery and dead letters; read-only; exit 1 while there are dead letters),
``redeliver`` (delivers dead letters again through the host's listener: needs ``--app``) and
``dismiss`` (removes dead letters without delivering them)."""

from __future__ import annotations

from typing import Any

import click

from account_lifecycle.audit import format_time
from account_lifecycle.cli._common import REFUSED, USAGE, _error, _guarded, _json, _say, _Stop
from account_lifecycle.cli.console_setup import _console, _lifecycle, _open_store, _split
from account_lifecycle.cli.ops import _reader
from account_lifecycle.cli.tables import print_table
from account_lifecycle.clock import SystemClock
from account_lifecycle.outbox import OutboxStatus, Relay, outbox_store

__all__ = ["dismiss", "outbox", "redeliver"]

_STORE_OPTIONS = (
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
    click.option("--json", "as_json", is_flag=True, help="Print JSON."),
)


def _store_options(command: Any) -> Any:
    for option in reversed(_STORE_OPTIONS):
        command = option(command)
    return command


def _relay(store: Any) -> Relay:
    """A relay without listeners over *store*: enough to read and to dismiss."""
    if outbox_store(store) is None:
        raise _Stop(USAGE, f"error: {type(store).__name__} keeps no outbox")
    return Relay(store, {}, clock=SystemClock())


def _status_dict(status: OutboxStatus) -> dict[str, Any]:
    return {
        "head": status.head,
        "listeners": [
            {
                "listener": s.listener,
                "position": s.position,
                "lag": s.lag,
                "attempts": s.attempts,
                "retry_at": None if s.retry_at is None else format_time(s.retry_at),
                "error": s.error,
                "owner": s.owner,
                "until": None if s.until is None else format_time(s.until),
                "dead_letters": [
                    {
                        "position": d.position,
                        "account_id": d.account_id,
                        "seq": d.seq,
                        "error": d.error,
                        "at": format_time(d.at),
                    }
                    for d in s.dead_letters
                ],
            }
            for s in status.listeners
        ],
    }


def _show(status: OutboxStatus) -> None:
    rows = [
        (
            s.listener,
            str(s.position),
            str(s.lag),
            str(s.attempts),
            "-" if s.retry_at is None else format_time(s.retry_at),
            s.error or "-",
            str(len(s.dead_letters)),
        )
        for s in status.listeners
    ]
    print_table(
        f"outbox at head {status.head}",
        ("listener", "position", "lag", "attempts", "retry at", "error", "dead letters"),
        rows,
    )
    letters = [(d, s.listener) for s in status.listeners for d in s.dead_letters]
    if letters:
        print_table(
            "dead letters",
            ("listener", "position", "account", "seq", "at", "error"),
            [
                (name, str(d.position), d.account_id, str(d.seq), format_time(d.at), d.error)
                for d, name in letters
            ],
        )
    if not status.listeners:
        _say("no durable listener has been fed yet")


@click.command("outbox")
@_store_options
@_guarded
def outbox(db: str | None, dsn: str | None, schema: str | None, as_json: bool) -> int:
    """The transactional outbox, read-only: its head, and for each durable listener its position,
    lag, failing delivery (attempts, next retry, error) and dead letters. Exits 1 while a
    listener has dead letters (redeliver or dismiss them)."""
    with _reader(db, dsn, schema) as store:
        status = _relay(store).status()
    if as_json:
        _json(_status_dict(status))
    else:
        _show(status)
    dead = sum(len(s.dead_letters) for s in status.listeners)
    if dead:
        _error(f"outbox: {dead} dead letter(s); redeliver or dismiss them", as_json=as_json)
        return REFUSED
    return 0


def _positions(listener: str, positions: tuple[int, ...], every: bool, status: OutboxStatus) -> list[int]:
    if every == bool(positions):
        raise _Stop(USAGE, "error: give the dead letters' POSITIONS, or --all, not both")
    if every:
        return [d.position for s in status.listeners if s.listener == listener for d in s.dead_letters]
    return list(positions)


@click.command()
@click.argument("listener")
@click.argument("positions", nargs=-1, type=click.IntRange(min=1))
@click.option("--all", "every", is_flag=True, help="Every dead letter of LISTENER.")
@_console
@_guarded
def redeliver(listener: str, positions: tuple[int, ...], every: bool, **options: Any) -> int:
    """Deliver dead letters of LISTENER again, in position order, through the host's listener
    (needs --app, whose lifecycle has LISTENER among its outbox_listeners); each one delivered is
    removed. Exits 1 if one failed again or waits behind an earlier one of its account."""
    if options["app"] is None:
        raise _Stop(USAGE, "error: redeliver calls the host's listener: pass --app module:factory")
    as_json = options.pop("as_json")
    with _lifecycle(_split(options)) as lifecycle:
        wanted = _positions(listener, positions, every, lifecycle.outbox_status())
        report = lifecycle.redeliver(listener, wanted)
    if as_json:
        _json({"delivered": list(report.delivered), "failed": {str(p): e for p, e in report.failed.items()}})
    else:
        _say(f"delivered: {', '.join(map(str, report.delivered)) or 'none'}")
        for position, error in report.failed.items():
            _say(f"not delivered: {position}: {error}")
    if report.failed:
        _error(f"redeliver: {len(report.failed)} dead letter(s) not delivered; they stay", as_json=as_json)
        return REFUSED
    return 0


@click.command()
@click.argument("listener")
@click.argument("positions", nargs=-1, type=click.IntRange(min=1))
@click.option("--all", "every", is_flag=True, help="Every dead letter of LISTENER.")
@_store_options
@_guarded
def dismiss(
    listener: str,
    positions: tuple[int, ...],
    every: bool,
    db: str | None,
    dsn: str | None,
    schema: str | None,
    as_json: bool,
) -> None:
    """Remove dead letters of LISTENER without delivering them (the listener will never see
    those events). A position that is not one of its dead letters is refused, and nothing is
    removed."""
    store = _open_store(db, dsn, schema, dry_run=True)  # an existing store only: nothing is created
    try:
        relay = _relay(store)
        removed = relay.dismiss(listener, _positions(listener, positions, every, relay.status()))
    finally:
        store.close()  # type: ignore[attr-defined]
    if as_json:
        _json({"dismissed": removed})
    else:
        _say(f"dismissed {removed} dead letter(s) of {listener}")
