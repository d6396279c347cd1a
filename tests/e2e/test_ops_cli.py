"""``account-lifecycle status`` (the store's health, read-only) and ``migrate`` on SQLite and
PostgreSQL, run as an operator runs them; the console refuses an older schema."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_cli import cli, ok, refused

from account_lifecycle import Actor, Lifecycle, ManualClock, SQLiteStore, policies
from account_lifecycle.testing import FakePurger

T0 = datetime(2026, 1, 31, 12, tzinfo=UTC)
SP = policies.SMRTPHONE
OWNER = Actor.parse("user:u1")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _failing_purge(store: object) -> None:
    """Two cancelled accounts whose purge of call_recordings keeps failing."""
    purgers = [FakePurger(c.name, fail_when=c.name == "call_recordings") for c in SP.purge.categories]
    lc = Lifecycle(
        SP, store=store, purgers=purgers, prerequisites={"port_outs": lambda _: ()}, clock=ManualClock(T0)
    )  # type: ignore[arg-type]
    acks = [a.id for a in SP.confirmation.acknowledgements]
    for account_id in ("a1", "a2"):
        lc.open(account_id, owner="u1")
        lc.request_cancellation(account_id, OWNER)
        lc.submit_survey(account_id, OWNER, "cancel")
        lc.confirm(account_id, OWNER, token="CONFIRM", acknowledgements=acks)


def _version_1(path: Path) -> None:
    store = SQLiteStore(path)
    _failing_purge(store)
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE identities")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    sqlite3.connect(path).close()


class TestSQLite:
    def test_status_of_a_missing_file_creates_nothing(self, tmp_path: Path) -> None:
        assert (
            refused(cli("status", cwd=tmp_path), 2) == "error: SQLite database 'accounts.db' does not exist"
        )
        assert not (tmp_path / "accounts.db").exists()

    def test_migrate_creates_then_has_nothing_to_do(self, tmp_path: Path) -> None:
        sql = ok(cli("migrate", "--sql", cwd=tmp_path))
        assert sql.splitlines()[-1] == "INSERT INTO meta VALUES ('schema_version', '6');"
        assert not (tmp_path / "accounts.db").exists()  # --sql runs nothing
        assert (
            ok(cli("migrate", cwd=tmp_path))
            == "SQLite database 'accounts.db' migrated from schema version 0 to 6\n"
        )
        assert (
            ok(cli("migrate", cwd=tmp_path))
            == "SQLite database 'accounts.db' is at schema version 6: nothing to do\n"
        )
        assert ok(cli("migrate", "--sql", cwd=tmp_path)) == "-- schema version 6 is current: nothing to run\n"
        assert json.loads(ok(cli("migrate", "--json", cwd=tmp_path))) == {
            "from_version": 6,
            "to_version": 6,
            "migrated": False,
        }

    def test_an_older_file_is_reported_refused_and_migrated_only_by_migrate(self, tmp_path: Path) -> None:
        path = tmp_path / "old.db"
        _version_1(path)
        digest = _digest(path)

        result = cli("status", "--db", "old.db", "--now", "2026-02-01T12:00:00Z", cwd=tmp_path)
        assert result.returncode == 1
        assert "1 (library 6): run account-lifecycle migrate" in result.stdout
        assert result.stderr.startswith("status: schema version 1 is older than the library's 6")
        data = json.loads(cli("status", "--db", "old.db", "--json", cwd=tmp_path).stdout)
        assert (data["schema_version"], data["schema_outdated"]) == (1, True)

        for command in (
            ["history", "a1", "--policy", "smrtphone"],
            ["status", "a1", "--policy", "smrtphone"],
            ["sweep", "--policy", "smrtphone", "--dry-run"],
        ):
            assert refused(cli(*command, "--db", "old.db", cwd=tmp_path), 2) == (
                "error: SQLite database 'old.db' has schema version 1, older than the library's 6; "
                "run: account-lifecycle migrate --db old.db"
            )
        sql = ok(cli("migrate", "--db", "old.db", "--sql", cwd=tmp_path))
        # schema 3's last step (plain identities to digests) is no SQL: migrate does it
        assert sql.splitlines()[-1].startswith("-- schema 3 also turns identities stored in plain text")
        assert _digest(path) == digest  # status, refusals and --sql changed nothing

        assert ok(cli("migrate", "--db", "old.db", cwd=tmp_path)) == (
            "SQLite database 'old.db' migrated from schema version 1 to 6\n"
        )
        assert "a1: cancelled" in ok(
            cli("status", "a1", "--policy", "smrtphone", "--db", "old.db", cwd=tmp_path)
        )

    def test_status_exits_1_when_work_is_stuck(self, tmp_path: Path) -> None:
        store = SQLiteStore(tmp_path / "accounts.db")
        _failing_purge(store)
        store.close()
        soon = (T0 + timedelta(minutes=30)).isoformat()
        result = cli("status", "--now", soon, cwd=tmp_path)
        assert (result.returncode, result.stderr) == (0, "")
        assert "failed steps by category" in result.stdout
        assert result.stdout.splitlines()[-1] == "healthy"

        later = (T0 + timedelta(hours=3)).isoformat()
        result = cli("status", "--now", later, cwd=tmp_path)
        assert result.returncode == 1
        assert result.stderr == "status: 2 account(s) due, the oldest waiting 2h59m (> 1h00m)\n"
        assert (
            ok(cli("status", "--now", later, "--stuck-after", "1 day", cwd=tmp_path)).splitlines()[-1]
            == "healthy"
        )
        data = json.loads(cli("status", "--now", later, "--json", cwd=tmp_path).stdout)
        assert (data["due"], data["failed"], data["stuck_after_seconds"]) == (
            2,
            {"call_recordings": 2},
            3600.0,
        )
        assert data["stuck"] == ["2 account(s) due, the oldest waiting 2h59m (> 1h00m)"]

    def test_bad_options(self, tmp_path: Path) -> None:
        ok(cli("migrate", cwd=tmp_path))
        assert (
            refused(cli("status", "--preview", cwd=tmp_path), 2)
            == "error: --preview only go with an ACCOUNT_ID"
        )
        result = cli("status", "--stuck-after", "3 months", cwd=tmp_path)
        assert result.returncode == 2
        assert "expected minutes, hours, days or weeks, got '3 months'" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.postgres
def test_postgresql_status_migrate_and_refusal(tmp_path: Path, pg_schema: tuple[str, str]) -> None:
    """An unmigrated schema: status reports it and creates nothing, the console refuses it with
    the command to run (never showing the DSN's password), migrate --sql prints and runs nothing,
    migrate brings it up."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    dsn, schema = pg_schema
    secret = "pw-never-shown-7"
    with_password = make_conninfo(dsn, password=secret)
    assert conninfo_to_dict(with_password)["password"] == secret

    def run(*args: str) -> object:
        return cli(*args, "--dsn", with_password, "--schema", schema, cwd=tmp_path)

    def schema_exists() -> bool:
        with psycopg.connect(dsn) as conn:
            return (
                conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
                is not None
            )

    result = run("status", "--json")
    assert result.returncode == 1  # type: ignore[attr-defined]
    assert json.loads(result.stdout)["schema_version"] == 0  # type: ignore[attr-defined]
    assert refused(run("open", "pg-1", "--owner", "u1", "--policy", "smrtphone"), 2) == (  # type: ignore[arg-type]
        f"error: PostgreSQL schema {schema!r} was never migrated; "
        f"run: account-lifecycle migrate --dsn URL --schema {schema}"
    )
    sql = ok(run("migrate", "--sql"))  # type: ignore[arg-type]
    assert sql.splitlines()[0] == f'CREATE SCHEMA "{schema}";'
    assert not schema_exists()

    assert ok(run("migrate")) == f"PostgreSQL schema {schema!r} migrated from schema version 0 to 6\n"  # type: ignore[arg-type]
    ok(run("open", "pg-1", "--owner", "u1", "--policy", "smrtphone"))  # type: ignore[arg-type]
    data = json.loads(ok(run("status", "--json")))  # type: ignore[arg-type]
    assert (data["schema_version"], data["due"], data["stuck"]) == (6, 0, [])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DELETE FROM "{schema}".schema_migrations WHERE version >= 4')
    assert "older than the library's 6" in refused(run("history", "pg-1", "--policy", "smrtphone"), 2)  # type: ignore[arg-type]
    for text in (run("status").stdout, run("status").stderr, run("migrate", "--sql").stdout):  # type: ignore[attr-defined]
        assert secret not in text
