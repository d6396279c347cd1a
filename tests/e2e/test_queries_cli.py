"""``account-lifecycle accounts``: the operators' list of accounts, run as an operator runs it,
on SQLite and PostgreSQL; read-only (it never creates, migrates nor writes a store)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import cli, ok, refused

from account_lifecycle import Actor, Lifecycle, ManualClock, Policy, SQLiteStore, policies
from account_lifecycle.testing import FakePurger

T0 = datetime(2026, 1, 31, 12, tzinfo=UTC)
#: SMRTPHONE with legal holds (support or the system may place one; the account then waits).
SP = Policy.from_toml(policies.SMRTPHONE.to_toml().replace("[purge]\n", '[purge]\non_hold = "wait"\n'))
OWNER = Actor.parse("user:u1")
HOLD_REASON = "litigation ann.secret@example.com"


def _desk(store: Any) -> None:
    """a1 active; a2, a4 cancelled with a failing purge of call_recordings; a3 active with a
    legal hold on agents; a5 purged."""
    purgers = [
        FakePurger(c.name, fail_when=lambda a, _c, n=c.name: n == "call_recordings" and a != "a5")
        for c in SP.purge.categories
    ]
    lc = Lifecycle(
        SP, store=store, purgers=purgers, prerequisites={"port_outs": lambda _: ()}, clock=ManualClock(T0)
    )
    acks = [a.id for a in SP.confirmation.acknowledgements]
    for account_id in ("a1", "a2", "a3", "a4", "a5"):
        lc.open(account_id, owner="u1")
    for account_id in ("a2", "a4", "a5"):
        lc.request_cancellation(account_id, OWNER)
        lc.submit_survey(account_id, OWNER, "cancel")
        lc.confirm(account_id, OWNER, token="CONFIRM", acknowledgements=acks)
    lc.place_hold("a3", Actor.support("ann"), "agents", HOLD_REASON)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ids(output: str) -> list[str]:
    return [item["account_id"] for item in json.loads(output)["accounts"]]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "accounts.db"
    store = SQLiteStore(path)
    _desk(store)
    store.checkpoint()
    store.close()
    return path


class TestSQLite:
    def test_lists_every_account_as_a_table(self, tmp_path: Path, db: Path) -> None:
        out = ok(cli("accounts", cwd=tmp_path))

        lines = out.splitlines()
        assert lines[0].split() == [
            "account",
            "id",
            "┃",
            "state",
            "┃",
            "due",
            "at",
            "┃",
            "holds",
            "┃",
            "failed",
            "steps",
            "┃",
            "problem",
        ]
        rows = [[cell.strip() for cell in line.split("│")] for line in lines[2:7]]
        assert [row[0] for row in rows] == ["a1", "a2", "a3", "a4", "a5"]
        assert rows[1] == ["a2", "cancelled", "2026-01-31T12:01:00.000000Z", "-", "call_recordings", ""]
        assert rows[2] == ["a3", "active", "-", "agents", "-", ""]
        assert rows[4] == ["a5", "purged", "-", "-", "-", ""]
        assert lines[-1] == "5 accounts; no more match"
        assert HOLD_REASON not in out
        assert "u1" not in out

    def test_conditions_and_json(self, tmp_path: Path, db: Path) -> None:
        def ids(*args: str) -> list[str]:
            return _ids(ok(cli("accounts", "--json", *args, cwd=tmp_path)))

        assert ids("--state", "cancelled") == ["a2", "a4"]
        assert ids("--state", "purged", "--state", "active") == ["a1", "a3", "a5"]
        assert ids("--failed") == ["a2", "a4"]
        assert ids("--not-failed") == ["a1", "a3", "a5"]
        assert ids("--with-holds") == ["a3"]
        assert ids("--without-holds", "--state", "active") == ["a1"]
        assert ids("--due-before", "2026-01-31T12:01:00Z") == []
        assert ids("--due-before", "2026-01-31T12:01:01") == ["a2", "a4"]  # no zone: UTC
        data = json.loads(ok(cli("accounts", "--json", "--state", "cancelled", "--limit", "1", cwd=tmp_path)))
        assert data["accounts"] == [
            {
                "account_id": "a2",
                "state": "cancelled",
                "due_at": "2026-01-31T12:01:00.000000Z",
                "holds": [],
                "failed_steps": ["call_recordings"],
                "version": data["accounts"][0]["version"],
            }
        ]
        assert data["next_cursor"].startswith("ac1.")

    def test_pages_follow_the_printed_cursor(self, tmp_path: Path, db: Path) -> None:
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(5):
            args = ["accounts", "--json", "--limit", "2"] + ([] if cursor is None else ["--cursor", cursor])
            data = json.loads(ok(cli(*args, cwd=tmp_path)))
            seen += [item["account_id"] for item in data["accounts"]]
            cursor = data["next_cursor"]
            if cursor is None:
                break
        table = ok(cli("accounts", "--limit", "2", cwd=tmp_path))

        assert seen == ["a1", "a2", "a3", "a4", "a5"]
        assert table.splitlines()[-1].startswith("2 accounts; more match: add --cursor ac1.")

    def test_reads_only_and_never_migrates(self, tmp_path: Path, db: Path) -> None:
        """The file is not changed, and an older schema is refused with the command to run (its
        queries need schema 6's columns), not migrated."""
        before = _digest(db)
        ok(cli("accounts", "--failed", cwd=tmp_path))
        assert _digest(db) == before
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        sqlite3.connect(db).close()
        older = _digest(db)

        refusal = cli("accounts", "--json", "--with-holds", cwd=tmp_path)
        assert refusal.returncode == 2
        assert "older than the library's 6; run: account-lifecycle migrate --db accounts.db" in refusal.stderr
        assert _digest(db) == older
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT value FROM meta").fetchone() == ("1",)

    def test_an_undecodable_record_is_listed_as_such(self, tmp_path: Path, db: Path) -> None:
        with sqlite3.connect(db) as conn:
            conn.execute(
                "UPDATE accounts SET body = ? WHERE account_id = 'a2'", ('{"owner": "' + HOLD_REASON,)
            )
        sqlite3.connect(db).close()

        table = ok(cli("accounts", "--state", "cancelled", cwd=tmp_path))
        data = json.loads(ok(cli("accounts", "--json", "--state", "cancelled", cwd=tmp_path)))

        row = [cell.strip() for cell in table.splitlines()[2].split("│")]
        assert row[:5] == ["a2", "undecodable", "-", "-", "-"]
        assert row[5].startswith("it is not valid JSON")
        assert data["accounts"][0] == {"account_id": "a2", "undecodable": row[5]}
        assert HOLD_REASON not in table + json.dumps(data)

    def test_a_missing_file_is_not_created(self, tmp_path: Path) -> None:
        assert (
            refused(cli("accounts", cwd=tmp_path), 2) == "error: SQLite database 'accounts.db' does not exist"
        )
        assert not (tmp_path / "accounts.db").exists()

    def test_bad_input_is_a_usage_error_naming_it(self, tmp_path: Path, db: Path) -> None:
        cursor = json.loads(ok(cli("accounts", "--json", "--limit", "1", cwd=tmp_path)))["next_cursor"]
        cases = {
            ("--cursor", "ac1.eyJ4IjoxfQ.0000000000000000"): "error: the cursor is garbled or was edited",
            ("--cursor", cursor, "--failed"): "error: the cursor was made for another query",
            ("--due-before", "yesterday"): "error: --due-before expects an ISO time",
        }
        for args, message in cases.items():
            assert refused(cli("accounts", *args, cwd=tmp_path), 2).startswith(message)
        for args in (("--state", "closed"), ("--limit", "0"), ("--limit", "1001")):
            result = cli("accounts", *args, cwd=tmp_path)
            assert result.returncode == 2, result
            assert "Traceback" not in result.stderr


@pytest.mark.postgres
def test_postgresql_lists_read_only(tmp_path: Path, pg_store: Any) -> None:
    """The same list from PostgreSQL, in a read-only transaction; an outdated schema is refused
    with the command to run, never migrated."""
    import pg
    import psycopg

    _desk(pg_store)
    schema = pg_store.schema

    def run(*args: str) -> Any:
        return cli("accounts", "--dsn", pg.dsn(), "--schema", schema, *args, cwd=tmp_path)

    assert _ids(ok(run("--json"))) == ["a1", "a2", "a3", "a4", "a5"]
    assert _ids(ok(run("--json", "--failed", "--state", "cancelled"))) == ["a2", "a4"]
    first = json.loads(ok(run("--json", "--limit", "3")))
    rest = json.loads(ok(run("--json", "--limit", "3", "--cursor", first["next_cursor"])))
    assert _ids(json.dumps(first)) + _ids(json.dumps(rest)) == ["a1", "a2", "a3", "a4", "a5"]
    assert rest["next_cursor"] is None
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        [(top,)] = conn.execute(f'SELECT max(version) FROM "{schema}".schema_migrations').fetchall()
        conn.execute(f'DELETE FROM "{schema}".schema_migrations WHERE version = %s', (top,))
        message = refused(run(), 2)
        [(after,)] = conn.execute(f'SELECT max(version) FROM "{schema}".schema_migrations').fetchall()

    assert message == (
        f"error: PostgreSQL schema {schema!r} has schema version {top - 1}, older than the "
        f"library's {top}; run: account-lifecycle migrate --dsn URL --schema {schema}"
    )
    assert after == top - 1  # not migrated


_WORDS = [
    "--state", "cancelled", "closed", "--due-before", "2026-13-40", "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+23:59", "--with-holds", "--without-holds", "--failed", "--not-failed",
    "--cursor", "ac1.", "ac1.x.0000000000000000", "a" * 5000, "--limit", "0", "-1", "1001",
    "99999999999999999999", "--json", "--db", "a\x00b", "/dev/zero", "--dsn", "", " ", "--",
]  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    args=st.lists(
        st.sampled_from(_WORDS)
        | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12),
        max_size=6,
    )
)
def test_hostile_arguments_exit_0_1_or_2_and_change_nothing(
    tmp_path: Path, db: Path, args: list[str]
) -> None:
    """Whatever the arguments: exit 0, 1 or 2, no traceback, and the file exactly as it was (the
    command reads only, whether it succeeds or not)."""
    import contextlib
    import io
    import os

    from account_lifecycle.__main__ import main

    before = _digest(db)
    err = io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                code = main(["accounts", *args, "--db", str(db)])
            except SystemExit as exc:  # --help ends through click's exit
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.chdir(cwd)

    assert code in (0, 1, 2), (args, code, err.getvalue())
    assert "Traceback" not in err.getvalue()
    assert _digest(db) == before
