"""``account-lifecycle outbox``, ``redeliver`` and ``dismiss``, run as an operator runs them on a
SQLite file whose durable listener gave up on some events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from test_cli import cli, ok, refused

from account_lifecycle import Actor, AuditEvent, Lifecycle, ManualClock, SQLiteStore, policies
from account_lifecycle.testing.fakes import fake_purgers

T0 = datetime(2026, 1, 31, 12, tzinfo=UTC)
POLICY = policies.ALLCLIENTS
OWNER = Actor.user("u1")
ANSWER = "ann.private@example.com moved abroad"

#: The host's app: its lifecycle with a durable mailer that appends to ledger.txt.
HOST_APP = """
from pathlib import Path

from account_lifecycle import Lifecycle, policies
from account_lifecycle.testing.fakes import fake_purgers


def mail(event):
    with Path("ledger.txt").open("a") as out:
        out.write(f"{event.account_id} {event.seq} {event.action}\\n")


def make(store):
    policy = policies.ALLCLIENTS
    return Lifecycle(
        policy, store=store, purgers=fake_purgers(policy).values(), outbox_listeners={"mailer": mail}
    )
"""


def _broken_mailer(event: AuditEvent) -> None:
    if event.account_id == "a1":
        raise ConnectionError(
            f"smtp refused {event.sealed_values['answers'].value if event.sealed_values else ''}"
        )


def _populate(tmp_path: Path) -> None:
    """a1's events are dead letters of the mailer (the first failed once, the others parked
    behind it); a2's were delivered."""
    store = SQLiteStore(tmp_path / "accounts.db")
    lc = Lifecycle(
        POLICY,
        store=store,
        clock=ManualClock(T0),
        purgers=fake_purgers(POLICY).values(),
        outbox_listeners={"mailer": _broken_mailer},
        outbox_max_attempts=1,
    )
    for account_id in ("a1", "a2"):
        lc.open(account_id, owner="u1")
        lc.request_cancellation(account_id, OWNER)
        lc.submit_survey(account_id, OWNER, "cancel", {"reason": ANSWER})
    lc.relay()
    store.close()
    (tmp_path / "host_outbox.py").write_text(HOST_APP, encoding="utf-8")


def test_outbox_shows_cursors_lag_and_dead_letters_and_exits_1_while_there_are_some(tmp_path: Path) -> None:
    _populate(tmp_path)

    result = cli("outbox", "--db", "accounts.db", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "outbox: 3 dead letter(s); redeliver or dismiss them"
    assert "outbox at head 6" in result.stdout
    assert "mailer" in result.stdout
    assert "parked behind dead letter 1 of the same account" in result.stdout

    shown = json.loads(cli("outbox", "--db", "accounts.db", "--json", cwd=tmp_path).stdout)
    [mailer] = shown["listeners"]
    assert (shown["head"], mailer["listener"], mailer["position"], mailer["lag"]) == (6, "mailer", 6, 0)
    assert [(d["account_id"], d["seq"]) for d in mailer["dead_letters"]] == [("a1", 1), ("a1", 2), ("a1", 3)]
    assert mailer["dead_letters"][2]["error"] == "parked behind dead letter 1 of the same account"
    for text in (result.stdout, result.stderr, json.dumps(shown)):
        assert "ann.private" not in text


def test_redeliver_through_the_hosts_listener_then_the_outbox_is_clear(tmp_path: Path) -> None:
    _populate(tmp_path)
    run = ("--db", "accounts.db", "--app", "host_outbox:make")

    alone = cli("redeliver", "mailer", "3", *run, cwd=tmp_path)  # a1's third waits behind its first
    assert alone.returncode == 1
    assert (
        alone.stdout == "delivered: none\nnot delivered: 3: waits behind dead letter 1 of the same account\n"
    )
    assert alone.stderr == "redeliver: 1 dead letter(s) not delivered; they stay\n"
    assert ok(cli("redeliver", "mailer", "--all", *run, cwd=tmp_path)) == "delivered: 1, 2, 3\n"

    assert (tmp_path / "ledger.txt").read_text().splitlines() == [
        "a1 1 open",
        "a1 2 request_cancellation",
        "a1 3 submit_survey",
    ]
    assert (
        json.loads(ok(cli("outbox", "--db", "accounts.db", "--json", cwd=tmp_path)))["listeners"][0][
            "dead_letters"
        ]
        == []
    )


def test_dismiss_removes_dead_letters_and_refuses_unknown_positions(tmp_path: Path) -> None:
    _populate(tmp_path)

    assert "no dead letter at position(s) 99" in refused(
        cli("dismiss", "mailer", "1", "99", "--db", "accounts.db", cwd=tmp_path), 2
    )
    assert ok(cli("dismiss", "mailer", "1", "--db", "accounts.db", cwd=tmp_path)) == (
        "dismissed 1 dead letter(s) of mailer\n"
    )
    assert json.loads(
        ok(cli("dismiss", "mailer", "--all", "--db", "accounts.db", "--json", cwd=tmp_path))
    ) == {"dismissed": 2}
    assert ok(cli("outbox", "--db", "accounts.db", cwd=tmp_path))
    assert not (tmp_path / "ledger.txt").exists()


def test_usage_errors(tmp_path: Path) -> None:
    _populate(tmp_path)
    assert refused(
        cli("redeliver", "mailer", "1", "--db", "accounts.db", "--policy", "allclients", cwd=tmp_path), 2
    ) == ("error: redeliver calls the host's listener: pass --app module:factory")
    assert refused(cli("dismiss", "mailer", "--db", "accounts.db", cwd=tmp_path), 2) == (
        "error: give the dead letters' POSITIONS, or --all, not both"
    )
    assert refused(cli("outbox", "--db", "missing.db", cwd=tmp_path), 2) == (
        "error: SQLite database 'missing.db' does not exist"
    )
    assert "no SQLite database at 'missing.db'" in refused(
        cli("dismiss", "mailer", "--all", "--db", "missing.db", cwd=tmp_path), 2
    )
    assert not (tmp_path / "missing.db").exists()
