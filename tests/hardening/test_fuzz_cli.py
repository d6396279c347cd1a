"""Hostile arguments through the command line: exit 0, 1 or 2, never a traceback, and a refused
console command leaves the database exactly as it was."""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from account_lifecycle import Actor, Lifecycle, SQLiteStore, policies
from account_lifecycle.__main__ import main
from account_lifecycle.testing.fakes import PendingItems, recording_purgers

CONSOLE = [
    "open",
    "request",
    "survey",
    "confirm",
    "withdraw",
    "restore",
    "sweep",
    "status",
    "history",
    "receipt",
]
POLICY_TOOLS = ["check", "show", "diagram", "verify", "diff"]
COMMANDS = CONSOLE + POLICY_TOOLS
WORDS = [
    "acct-1", "user:owner", "support:desk", "system", "CONFIRM", "confirm", "cancel", "smrtphone",
    "", " ", "\x00", "-", "--", "--json", "--as", "--token", "--ack", "--outcome", "--skip",
    "--policy", "--db", "--now", "2026-13-40", "a" * 5000, "../../etc/passwd", "user:", ":",
]  # fmt: skip
HOSTILE = st.one_of(
    st.sampled_from(WORDS),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12),
)  # fmt: skip


def _dump(db: Path) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(
            "SELECT account_id, version, body FROM accounts ORDER BY account_id"
        ).fetchall() + [
            (row,) for row in conn.execute("SELECT body FROM events ORDER BY account_id, seq").fetchall()
        ]


def _seed(db: Path) -> None:
    store = SQLiteStore(db)
    policy = policies.SMRTPHONE
    lc = Lifecycle(policy, store=store, purgers=recording_purgers(policy).values(),
                   prerequisites={"port_outs": PendingItems()})  # fmt: skip
    lc.open("acct-1", owner="owner", members=["member"])
    lc.request_cancellation("acct-1", Actor.user("owner"))
    store.close()


@settings(max_examples=150, deadline=None)
@given(command=st.sampled_from(COMMANDS), args=st.lists(HOSTILE, max_size=6))
def test_hostile_arguments(command: str, args: list[str]) -> None:
    """Whatever the arguments, the exit code is 0, 1 or 2 and no exception escapes; when the
    command is refused, the database is unchanged."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "accounts.db"
        _seed(db)
        before = _dump(db)
        argv = [command, *args, "--db", str(db), "--policy", "smrtphone"]
        if command in POLICY_TOOLS:
            argv = [command, *args]
        out, err = io.StringIO(), io.StringIO()
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(argv)
                except SystemExit as exc:  # --help and --version end through click's exit
                    code = exc.code if isinstance(exc.code, int) else 2
        finally:
            os.chdir(cwd)
        assert code in (0, 1, 2), (argv, code, err.getvalue())
        assert "Traceback" not in err.getvalue()
        if code != 0:
            assert _dump(db) == before, f"{argv} was refused with {code} but changed the database"
