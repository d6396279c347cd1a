"""The operator console never pretends (issue 15): without --app there is no purger that can
erase anything, so ``confirm`` and ``sweep`` refuse (exit 2) unless ``--dry-run``, which changes
nothing and says what would be erased and when; a receipt never says "erased" for a no-op."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from account_lifecycle import (
    Actor,
    InvalidTransition,
    Lifecycle,
    ManualClock,
    MemoryStore,
    PurgeResult,
    SQLiteStore,
    State,
    policies,
)
from account_lifecycle.__main__ import main
from account_lifecycle.cli.console_setup import NoOpPurger

OWNER = Actor.user("u1")
SP_ACKS = ["--ack", "unported_numbers_lost", "--ack", "data_permanently_deleted", "--ack", "no_credit_refund"]
T0 = "2026-01-31T12:00:00+00:00"

HOST = """
import os
from datetime import datetime

from account_lifecycle import Lifecycle, ManualClock, policies
from account_lifecycle.testing import fake_purgers


def make(store):
    policy = policies.BUILTIN[os.environ["HONEST_POLICY"]]
    clock = ManualClock(datetime.fromisoformat(os.environ["HONEST_NOW"]))
    checks = dict.fromkeys(policy.prerequisites, lambda account_id: ())
    purgers = fake_purgers(policy, items=3).values()
    return Lifecycle(policy, store=store, clock=clock, purgers=purgers, prerequisites=checks)
"""


@pytest.fixture
def here(tmp_path: Path) -> Iterator[Path]:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(cwd)


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def snapshot(db: Path) -> tuple[bytes, list[tuple[object, ...]]]:
    """The database file's bytes and every row (a dry run must change neither)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT account_id, version, body FROM accounts ORDER BY account_id").fetchall()
        rows += conn.execute("SELECT account_id, seq, body FROM events ORDER BY account_id, seq").fetchall()
    return db.read_bytes(), rows


def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str, now: str) -> str:
    """A host module (fake purgers erasing 3 items each) for --app; a fresh name per test."""
    name = f"honest_host_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(HOST, encoding="utf-8")
    monkeypatch.setenv("HONEST_POLICY", policy)
    monkeypatch.setenv("HONEST_NOW", now)
    return f"{name}:make"


def pending_confirm(db: Path, policy: str = "smrtphone") -> None:
    console = ["--db", str(db), "--policy", policy, "--now", T0]
    assert run("open", "a-1", "--owner", "u1", *console)[0] == 0
    assert run("request", "a-1", "--as", "user:u1", *console)[0] == 0
    survey = ["--outcome", "cancel"] if policy == "smrtphone" else ["--skip"]
    assert run("survey", "a-1", "--as", "user:u1", *survey, *console)[0] == 0


@pytest.mark.parametrize(
    "args",
    [
        ["confirm", "a-1", "--as", "user:u1", "--token", "CONFIRM", *SP_ACKS],
        ["sweep"],
        ["sweep", "--limit", "5", "--json"],
    ],
)
def test_without_app_confirm_and_sweep_refuse_and_change_nothing(here: Path, args: list[str]) -> None:
    db = here / "accounts.db"
    pending_confirm(db)
    before = snapshot(db)
    code, out, err = run(*args, "--db", str(db), "--policy", "smrtphone", "--now", T0)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "without --app no purger can erase anything" in err
    assert "--dry-run" in err
    assert snapshot(db) == before


def test_a_refusal_creates_no_database(here: Path) -> None:
    assert run("sweep", "--policy", "smrtphone")[0] == 2
    assert run("sweep", "--policy", "smrtphone", "--dry-run")[0] == 2  # a dry run creates nothing
    assert list(here.iterdir()) == []


def test_confirm_dry_run_shows_what_and_when_and_changes_nothing(here: Path) -> None:
    db = here / "accounts.db"
    pending_confirm(db, "allclients")
    before = snapshot(db)
    console = ["--db", str(db), "--policy", "allclients", "--now", T0]
    code, out, err = run("confirm", "a-1", "--as", "user:u1", "--dry-run", *console)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert (
        lines[0]
        == "dry run: confirm a-1 would be accepted at 2026-01-31T12:00:00.000000Z; nothing was changed"
    )
    assert "  would erase contacts at 2026-01-31T12:00:00.000000Z (at confirm)" in lines
    assert "  would erase backups at 2026-04-30T12:00:00.000000Z (when the window ends)" in lines
    assert len(lines) == 1 + len(policies.ALLCLIENTS.purge.categories)
    code, out, _ = run("confirm", "a-1", "--as", "user:u1", "--dry-run", "--json", *console)
    data = json.loads(out)
    assert data["dry_run"] is True
    assert [(e["category"], e["moment"]) for e in data["would_erase"]] == [
        (c.name, c.at) for c in policies.ALLCLIENTS.purge.categories
    ]
    assert snapshot(db) == before
    code, out, err = run("status", "a-1", "--json", *console)
    assert json.loads(out)["state"] == "pending_confirm"


def test_confirm_dry_run_refuses_like_confirm(here: Path) -> None:
    """The same typed refusals: wrong token, missing acknowledgements (1), an unknown one (2),
    a stranger (1); each one line, nothing written."""
    db = here / "accounts.db"
    pending_confirm(db)
    before = snapshot(db)
    console = ["--db", str(db), "--policy", "smrtphone", "--now", T0, "--dry-run"]
    cases = [
        (["--as", "user:u1", "--token", "confirm", *SP_ACKS], 1, "refused: type exactly 'CONFIRM'"),
        (["--as", "user:u1", "--token", "CONFIRM"], 1, "refused: these acknowledgements are required"),
        (["--as", "user:u1", "--token", "CONFIRM", "--ack", "x"], 2, "error: unknown acknowledgement"),
        (["--as", "user:stranger", "--token", "CONFIRM", *SP_ACKS], 1, "refused: user:stranger"),
    ]
    for extra, expected, start in cases:
        code, out, err = run("confirm", "a-1", *extra, *console)
        assert (code, out) == (expected, "")
        assert err.startswith(start)
        assert len(err.strip().splitlines()) == 1
    assert snapshot(db) == before


def test_sweep_dry_run_predicts_the_sweep(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a real confirm (the host's purgers), a dry-run sweep past the window's end lists
    backups, at that moment, and changes nothing; the real sweep then erases exactly that."""
    db = here / "accounts.db"
    pending_confirm(db, "allclients")
    app = host(here, monkeypatch, "allclients", T0)
    code, out, err = run("confirm", "a-1", "--as", "user:u1", "--db", str(db), "--app", app, "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["state"] == "restorable"
    before = snapshot(db)
    later = "2026-05-01T12:00:00+00:00"
    early = run(
        "sweep", "--dry-run", "--db", str(db), "--policy", "allclients", "--now", "2026-02-01T00:00:00Z"
    )
    assert early == (
        0,
        "dry run: sweep at 2026-02-01T00:00:00.000000Z; nothing was changed\n  nothing is due\n",
        "",
    )
    code, out, err = run("sweep", "--dry-run", "--db", str(db), "--policy", "allclients", "--now", later)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "dry run: sweep at 2026-05-01T12:00:00.000000Z; nothing was changed",
        "  a-1: would erase backups at 2026-05-01T12:00:00.000000Z (expiry phase)",
    ]
    code, out, _ = run(
        "sweep", "--dry-run", "--json", "--db", str(db), "--policy", "allclients", "--now", later
    )
    plan = json.loads(out)["accounts"]
    assert plan == [
        {
            "account_id": "a-1",
            "due_since": "2026-04-30T12:00:00.000000Z",
            "would_erase": [{"at": "2026-05-01T12:00:00.000000Z", "category": "backups", "phase": "expiry"}],
            "would_run": [],
        }
    ]
    assert snapshot(db) == before
    monkeypatch.setenv("HONEST_NOW", later)
    code, out, err = run("sweep", "--json", "--db", str(db), "--app", app)
    assert (code, err) == (0, "")
    assert json.loads(out)["purged"] == ["a-1"]
    code, out, _ = run("receipt", "a-1", "--json", "--db", str(db), "--app", app)
    assert code == 0
    erased = json.loads(out)["erased"]
    assert [e["category"] for e in erased if e["category"] == "backups"] == ["backups"]
    assert {e["items"] for e in erased} == {3}


def test_no_op_purgers_never_count_as_erased() -> None:
    """Were the console's no-op purgers ever run, their steps fail: never PURGED, no receipt."""
    policy = policies.SMRTPHONE
    clock = ManualClock(datetime.fromisoformat(T0))
    lc = Lifecycle(
        policy,
        store=MemoryStore(),
        clock=clock,
        purgers=[NoOpPurger(c.name) for c in policy.purge.categories],
        prerequisites={"port_outs": lambda account_id: ()},
    )
    lc.open("a-1", owner="u1")
    lc.request_cancellation("a-1", OWNER)
    lc.submit_survey("a-1", OWNER, "cancel")
    record = lc.confirm("a-1", OWNER, "CONFIRM", [a.id for a in policy.confirmation.acknowledgements])
    assert record.state is State.CANCELLED
    assert all(p.error and "nothing was erased" in p.error for p in record.purge.values())
    clock.advance(timedelta(days=1))  # past any retry backoff
    assert lc.sweep().failed == ("a-1",)
    assert lc.get("a-1").state is State.CANCELLED
    with pytest.raises(InvalidTransition):
        lc.receipt("a-1")


def test_a_receipt_of_no_op_work_is_refused(here: Path) -> None:
    """An account purged by an earlier console's no-op purgers (which said "done"): the receipt
    command refuses instead of listing categories as erased."""
    db = here / "accounts.db"
    policy = policies.SMRTPHONE

    class OldNoOp:  # what the console ran before: succeeded having erased nothing
        def __init__(self, category: str) -> None:
            self.category = category
            self.name = f"no-op:{category}"

        def purge(self, account_id: str, context: object) -> PurgeResult:
            return PurgeResult(items=0, detail="nothing erased")

    store = SQLiteStore(db)
    lc = Lifecycle(policy, store=store, purgers=[OldNoOp(c.name) for c in policy.purge.categories],
                   prerequisites={"port_outs": lambda account_id: ()})  # fmt: skip
    lc.open("a-1", owner="u1")
    lc.request_cancellation("a-1", OWNER)
    lc.submit_survey("a-1", OWNER, "cancel")
    assert (
        lc.confirm("a-1", OWNER, "CONFIRM", [a.id for a in policy.confirmation.acknowledgements]).state
        is State.PURGED
    )
    store.close()
    code, out, err = run("receipt", "a-1", "--db", str(db), "--policy", "smrtphone")
    assert (code, out) == (1, "")
    assert err.startswith("refused: no receipt for a-1: ")
    assert "no-op purgers" in err
