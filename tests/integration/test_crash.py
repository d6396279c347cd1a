"""Crash safety: purges run in a real subprocess on a SQLite file, which is SIGKILLed at
seeded points; a later sweep in this process (its clock past the lease) finishes the work.

Every trial starts from the same database: accounts whose window has ended (the child's
sweep purges them), accounts the child confirms (their cancel-time purge runs inline), and
accounts inside their window (nothing of theirs may be erased early). The child is killed
either by itself at the N-th crash point (before or after a purger's work, before or after a
store write) or by this process after a seeded delay (which may land inside a SQLite commit).
Half of the trials then run a second child that may be killed again.

Purgers and effect hooks append one line to a ledger file per call, so the test sees what
was really run. Idempotency is the contract: a step may run again after a kill that hit it,
but each kill can cost at most one extra run per account (a batched sweep has a step of each
account of its batch in flight), and the record's audit chain says each step was done
exactly once.

This file is also the child's program: ``python test_crash.py '<json args>'``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from account_lifecycle import (
    AccountRecord,
    Actor,
    AuditEvent,
    Duration,
    Lease,
    Lifecycle,
    ManualClock,
    Policy,
    PurgeCategory,
    PurgePolicy,
    PurgeStatus,
    RecoveryPolicy,
    SQLiteStore,
    State,
    SurveyPolicy,
)
from account_lifecycle.testing.fakes import FakeEffectHook, FakePurger

POLICY = Policy(
    name="crashtest",
    version=1,
    survey=SurveyPolicy(mode="off"),
    recovery=RecoveryPolicy(window=Duration(3, "months")),
    purge=PurgePolicy(
        categories=(
            PurgeCategory("files"),
            PurgeCategory("mail"),
            PurgeCategory("calls"),
            PurgeCategory("notes"),
            PurgeCategory("backups", "expiry"),
        ),
        protected=("crm_contacts",),
    ),
    on_cancel=("revoke_team_access", "forfeit_credit"),
)
CANCEL_STEPS = ("effect:revoke_team_access", "effect:forfeit_credit", "files", "mail", "calls", "notes")
ALL_STEPS = (*CANCEL_STEPS, "backups")
OWNER = Actor.user("owner")

#: A month end: 31 January + 3 months is clamped to 30 April.
T0 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
INSIDE_CANCELLED = datetime(2026, 4, 15, 12, 0, tzinfo=UTC)  # window ends 15 July
CHILD_AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)  # after 30 April, before 15 July
LEASE = timedelta(minutes=5)

EXPIRED = ("e-1", "e-2", "e-3")  # RESTORABLE, window ended 30 April: the child's sweep purges them
INSIDE = ("w-1", "w-2")  # RESTORABLE until 15 July: must stay so
TO_CONFIRM = ("c-1", "c-2", "c-3")  # PENDING_CONFIRM: the child confirms them
ACCOUNTS = (*EXPIRED, *INSIDE, *TO_CONFIRM)

TRIALS = 32
SEED_BASE = 20260501


# -- the child's program ----------------------------------------------------------------------


class KillSwitch:
    """Counts crash points and SIGKILLs this process at point number ``at`` (never if 0)."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.count = 0

    def tick(self) -> None:
        self.count += 1
        if self.count == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


def append(ledger: Path, account_id: str, step: str) -> None:
    """One line per call, written with a single O_APPEND write: whole lines only."""
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{account_id} {step} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def ledger_step(ledger: Path, switch: KillSwitch, step: str) -> Callable[[str, object], None]:
    """What a purger or hook does: a crash point, one ledger line, a crash point."""

    def run(account_id: str, context: object) -> None:
        switch.tick()  # killed before the erasure
        append(ledger, account_id, step)
        switch.tick()  # killed after the erasure, before its commit

    return run


class CrashingStore(SQLiteStore):
    """A SQLite store with crash points just before and just after each write."""

    def __init__(self, path: Path, switch: KillSwitch) -> None:
        super().__init__(path, synchronous="NORMAL")  # durable against a process crash
        self.switch = switch

    def save(
        self,
        record: AccountRecord,
        *,
        expected_version: int,
        events: Sequence[AuditEvent],
        lease: Lease | None = None,
        release: str | None = None,
        now: datetime | None = None,
        erase_sealed: bool = False,
    ) -> None:
        self.switch.tick()
        super().save(
            record,
            expected_version=expected_version,
            events=events,
            lease=lease,
            release=release,
            now=now,
            erase_sealed=erase_sealed,
        )
        self.switch.tick()


def lifecycle(store: SQLiteStore, clock: ManualClock, ledger: Path, switch: KillSwitch) -> Lifecycle:
    names = [c.name for c in POLICY.purge.categories] + ["crm_contacts"]  # protected: never called
    return Lifecycle(
        POLICY,
        store=store,
        clock=clock,
        purgers=[FakePurger(name, before=ledger_step(ledger, switch, name)) for name in names],
        effects={
            e: FakeEffectHook(e, before=ledger_step(ledger, switch, f"effect:{e}")) for e in POLICY.on_cancel
        },
        lease=LEASE,
    )


def child_main(raw: str) -> None:
    """Confirm the accounts awaiting it, then sweep; print the number of crash points passed."""
    args = json.loads(raw)
    switch = KillSwitch(args["kill_at"])
    store = CrashingStore(Path(args["db"]), switch)
    clock = ManualClock(datetime.fromisoformat(args["now"]))
    lc = lifecycle(store, clock, Path(args["ledger"]), switch)
    print("ready", flush=True)
    for account_id in TO_CONFIRM:
        if lc.get(account_id).state is State.PENDING_CONFIRM:
            lc.confirm(account_id, OWNER)
    lc.sweep()
    print(json.dumps({"ticks": switch.count}), flush=True)


# -- the test ---------------------------------------------------------------------------------


def build_template(directory: Path) -> tuple[Path, Path]:
    """The database every trial starts from, and the ledger of what its set-up erased."""
    db, ledger = directory / "template.db", directory / "template.ledger"
    ledger.touch()
    store = SQLiteStore(db, synchronous="NORMAL")
    clock = ManualClock(T0)
    lc = lifecycle(store, clock, ledger, KillSwitch(0))
    for account_id in ACCOUNTS:
        lc.open(account_id, owner="owner", members=["member"])
        lc.request_cancellation(account_id, OWNER)
    for account_id in EXPIRED:
        assert lc.confirm(account_id, OWNER).restorable_until == datetime(2026, 4, 30, 12, 0, tzinfo=UTC)
    clock.set(INSIDE_CANCELLED)
    for account_id in INSIDE:
        assert lc.confirm(account_id, OWNER).state is State.RESTORABLE
    store.close()
    return db, ledger


def run_child(
    db: Path, ledger: Path, now: datetime, kill_at: int, kill_after: float | None
) -> tuple[bool, int | None, float]:
    """Run one child; return (killed, crash points passed if it finished, seconds of work)."""
    args = json.dumps({"db": str(db), "ledger": str(ledger), "now": now.isoformat(), "kill_at": kill_at})
    with (db.parent / "stderr").open("w+") as errors:
        child = subprocess.Popen(
            [sys.executable, __file__, args], stdout=subprocess.PIPE, stderr=errors, text=True
        )
        assert child.stdout is not None
        ready = child.stdout.readline()
        started = time.monotonic()
        if ready == "ready\n" and kill_after is not None:
            time.sleep(kill_after)
            child.send_signal(signal.SIGKILL)
        out = child.stdout.read()
        child.stdout.close()
        child.wait(timeout=30)
        errors.seek(0)
        err = errors.read()
    elapsed = time.monotonic() - started
    if child.returncode == -signal.SIGKILL:
        return True, None, elapsed
    assert child.returncode == 0, f"child failed:\n{err}"
    return False, json.loads(out)["ticks"], elapsed


def ledger_counts(ledger: Path) -> Counter[tuple[str, str]]:
    lines = ledger.read_text().splitlines()
    return Counter((account, step) for account, step, _pid in (line.split() for line in lines))


def check_trial(db: Path, ledger: Path, kills: int) -> None:
    """Finish with sweeps in this process and check every promise."""
    store = SQLiteStore(db)
    clock = ManualClock(CHILD_AT + 3 * LEASE)  # past any lease a killed child held
    lc = lifecycle(store, clock, ledger, KillSwitch(0))
    try:
        for account_id in TO_CONFIRM:  # a child killed before the confirm committed: confirm again
            if lc.get(account_id).state is State.PENDING_CONFIRM:
                lc.confirm(account_id, OWNER)
        lc.sweep()
        states = {a: lc.get(a).state for a in ACCOUNTS}
        assert states == {
            **dict.fromkeys(EXPIRED, State.PURGED),
            **dict.fromkeys(INSIDE + TO_CONFIRM, State.RESTORABLE),
        }
        early = ledger_counts(ledger)
        for account_id in INSIDE + TO_CONFIRM:  # not due: the expiry category is untouched
            assert early[(account_id, "backups")] == 0
            assert lc.get(account_id).purge["backups"].status is PurgeStatus.PENDING

        clock.set(datetime(2026, 8, 2, tzinfo=UTC))  # every window has ended
        lc.sweep()
        counts = ledger_counts(ledger)
        for account_id in ACCOUNTS:
            record = lc.get(account_id)
            assert record.state is State.PURGED
            assert {k: p.status for k, p in record.purge.items()} == dict.fromkeys(
                ALL_STEPS, PurgeStatus.DONE
            )
            done = Counter(
                e.details.get("category") or e.details.get("effect")
                for e in lc.history(account_id)
                if e.action in ("category_purged", "team_access_revoked", "credit_forfeited")
            )
            assert done == Counter({s.removeprefix("effect:"): 1 for s in ALL_STEPS})
            lc.verify_history(account_id)
            assert [e.category for e in lc.receipt(account_id).erased] == [
                "files",
                "mail",
                "calls",
                "notes",
                "backups",
            ]
            for step in ALL_STEPS:
                assert 1 <= counts[(account_id, step)] <= 1 + kills, (account_id, step, counts)
        assert not [key for key in counts if key[1] == "crm_contacts"]
        # A kill interrupts at most the steps in flight, and an account has at most one in
        # flight (its next step runs once the previous outcome is committed): at most one
        # extra run per kill for each account. A batched sweep has one in flight for each
        # account of its batch, whose outcomes are committed together.
        for account_id in ACCOUNTS:
            assert sum(n - 1 for (a, _), n in counts.items() if a == account_id) <= kills, account_id
        assert sum(n - 1 for n in counts.values()) <= kills * len(ACCOUNTS)
    finally:
        store.close()


@pytest.mark.slow
def test_purges_survive_sigkill_at_random_points(tmp_path: Path) -> None:
    """32 seeded trials, 1 or 2 SIGKILLs each: a later sweep always finishes every purge."""
    template_db, template_ledger = build_template(tmp_path)

    calibration = tmp_path / "calibration"
    calibration.mkdir()
    shutil.copy(template_db, calibration / "accounts.db")
    shutil.copy(template_ledger, calibration / "ledger")
    killed, points, work = run_child(calibration / "accounts.db", calibration / "ledger", CHILD_AT, 0, None)
    assert not killed
    assert points is not None
    assert points > 50  # confirms, sweeps, purgers and writes: plenty of places to die
    check_trial(calibration / "accounts.db", calibration / "ledger", kills=0)

    total_kills = 0
    stats: dict[str, Any] = {"points": points, "kills": 0, "extra_runs": 0, "second_kills": 0}
    for trial in range(TRIALS):
        rng = random.Random(SEED_BASE + trial)
        directory = tmp_path / f"trial-{trial:02d}"
        directory.mkdir()
        db, ledger = directory / "accounts.db", directory / "ledger"
        shutil.copy(template_db, db)
        shutil.copy(template_ledger, ledger)
        kills = 0
        runs = [(CHILD_AT, True)]
        if rng.random() < 0.5:  # a second child takes over after the first one's lease, and dies too
            runs.append((CHILD_AT + LEASE + timedelta(seconds=1), rng.random() < 0.7))
        for number, (now, kill) in enumerate(runs):
            if not kill:
                kill_at, kill_after = 0, None
            elif trial % 2 == 0:  # the child kills itself at a seeded crash point
                kill_at, kill_after = rng.randint(1, points if number == 0 else points // 2), None
            else:  # this process kills it after a seeded delay, maybe inside a commit
                kill_at, kill_after = 0, rng.uniform(0.0, 0.8 * work if number == 0 else 0.4 * work)
            was_killed, _, _ = run_child(db, ledger, now, kill_at, kill_after)
            kills += was_killed
            stats["second_kills"] += was_killed and number == 1
        check_trial(db, ledger, kills)
        total_kills += kills
        stats["extra_runs"] += sum(n - 1 for n in ledger_counts(ledger).values())
    stats["kills"] = total_kills
    print(f"\ncrash trials: {TRIALS}, {json.dumps(stats)}")
    assert total_kills >= TRIALS * 3 // 4  # most trials really died mid-purge


if __name__ == "__main__":
    child_main(sys.argv[1])
