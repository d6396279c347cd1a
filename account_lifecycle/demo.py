"""The README's main job: both built-in policies walked through their flows on SQLite.

Run it with ``python -m account_lifecycle demo [--db FILE]``. It uses a ``ManualClock`` so
that three months pass in an instant, and purgers that only count what they would erase.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from account_lifecycle.audit import AuditEvent
from account_lifecycle.clock import ManualClock
from account_lifecycle.errors import LifecycleError
from account_lifecycle.lifecycle import Lifecycle
from account_lifecycle.model import AccountRecord, Actor, SurveyOutcome
from account_lifecycle.policies import ALLCLIENTS, SMRTPHONE
from account_lifecycle.policy import Policy
from account_lifecycle.testing.fakes import FakePurger, fake_identity_keys

__all__ = ["run_demo"]


def demo_purgers(policy: Policy) -> list[FakePurger]:
    """Stand-ins that only say they erased three items of their category."""
    return [
        FakePurger(c.name, items=3, detail=f"demo erased {c.name}", name=f"demo:{c.name}")
        for c in policy.purge.categories
    ]


class _Narrator:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def say(self, text: str = "") -> None:
        print(text, file=self.out)

    def step(self, label: str, action: Callable[[], AccountRecord]) -> AccountRecord | None:
        try:
            record = action()
        except LifecycleError as exc:
            self.say(f"  {label:<44} refused: {type(exc).__name__}: {exc}")
            return None
        self.say(f"  {label:<44} -> {record.state.value} (version {record.version})")
        return record

    def events(self, events: Sequence[AuditEvent], since: int = 0) -> None:
        for event in events[since:]:
            self.say(f"      #{event.seq:<2} {event.action:<22} {event.from_state} -> {event.to_state}")


def _smrtphone(lc: Lifecycle, clock: ManualClock, ported: list[str], n: _Narrator) -> None:
    owner, member = Actor.user("owner-1"), Actor.user("agent-2")
    acks = [a.id for a in SMRTPHONE.confirmation.acknowledgements]
    n.say("smrtPhone (permanent cancellation, typed CONFIRM, numbers ported out first)")
    n.step(
        "open sp-1 for owner-1 with agent-2",
        lambda: lc.open("sp-1", owner="owner-1", members=["agent-2"], identity="ceo@example.com"),
    )
    n.step("agent-2 asks to cancel", lambda: lc.request_cancellation("sp-1", member))
    n.step("owner-1 presses Cancel subscription", lambda: lc.request_cancellation("sp-1", owner))
    n.step(
        "survey: book a meeting with Customer Success",
        lambda: lc.submit_survey("sp-1", owner, SurveyOutcome.BOOK_MEETING),
    )
    n.step("owner-1 presses Cancel subscription again", lambda: lc.request_cancellation("sp-1", owner))
    n.step("survey: cancel", lambda: lc.submit_survey("sp-1", owner, SurveyOutcome.CANCEL))
    n.step("types 'confirm'", lambda: lc.confirm("sp-1", owner, "confirm", acks))
    n.step("types 'CONFIRM' with a number not ported", lambda: lc.confirm("sp-1", owner, "CONFIRM", acks))
    ported.clear()
    clock.advance(timedelta(days=2))
    record = n.step("types 'CONFIRM' after porting out", lambda: lc.confirm("sp-1", owner, "CONFIRM", acks))
    n.events(lc.history("sp-1"))
    if record is not None:
        receipt = lc.receipt("sp-1")
        erased = ", ".join(e.category for e in receipt.erased)
        n.say(f"  receipt: erased {erased}; kept {', '.join(receipt.kept)}")
    n.step(
        "same e-mail opens a fresh account sp-2",
        lambda: lc.open("sp-2", owner="owner-1", identity="ceo@example.com"),
    )
    lc.verify_history("sp-1")
    n.say("  audit chain of sp-1 verifies")


def _allclients(lc: Lifecycle, clock: ManualClock, n: _Narrator) -> None:
    owner, support = Actor.user("owner-9"), Actor.support("cases-desk")
    n.say("AllClients (optional survey, plain confirm, restorable by support for 3 months)")
    n.step(
        "open ac-1 for owner-9 with two team members",
        lambda: lc.open("ac-1", owner="owner-9", members=["t-1", "t-2"], identity="me@example.com"),
    )
    n.step("owner-9 cancels only the Messages service", lambda: lc.cancel_service("ac-1", owner, "messages"))
    n.step("owner-9 presses Cancel & Permanently Delete", lambda: lc.request_cancellation("ac-1", owner))
    n.step("skips the optional survey", lambda: lc.skip_survey("ac-1", owner))
    record = n.step("confirms", lambda: lc.confirm("ac-1", owner))
    if record is not None and record.restorable_until is not None:
        n.say(f"      restorable until {record.restorable_until:%Y-%m-%d}")
    n.step("owner-9 tries to restore alone", lambda: lc.restore("ac-1", owner))
    clock.advance(timedelta(days=30))
    n.step("support restores on the owner's request", lambda: lc.restore("ac-1", support))
    n.step("owner-9 cancels again", lambda: lc.request_cancellation("ac-1", owner))
    n.step("skips the survey", lambda: lc.skip_survey("ac-1", owner))
    n.step("confirms", lambda: lc.confirm("ac-1", owner))
    clock.advance(timedelta(days=93))
    n.step("support tries to restore after 3 months", lambda: lc.restore("ac-1", support))
    report = lc.sweep()
    n.say(f"  sweep: purged {list(report.purged)}, failed {list(report.failed)}")
    n.events(lc.history("ac-1"), since=len(lc.history("ac-1")) - 4)
    lc.verify_history("ac-1")
    n.say("  audit chain of ac-1 verifies")


def run_demo(db: str | None = None, out: TextIO | None = None) -> int:
    """Run the demo on SQLite file *db* (a fresh temporary file if None); return an exit code."""
    import sys

    from account_lifecycle.adapters.sqlite import SQLiteStore

    narrator = _Narrator(out or sys.stdout)
    if db and Path(db).exists():
        print(f"demo: {db} already exists; give a new file name", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(db) if db else Path(tmp) / "demo.db"
        store = SQLiteStore(path)
        narrator.say(f"store: SQLite at {path}")
        narrator.say()
        clock = ManualClock(datetime(2026, 11, 30, 9, 0, tzinfo=UTC))
        pending = ["+1 555 0100"]
        keys = fake_identity_keys("demo")  # a demo's key: a host keeps a random one secret
        smrtphone = Lifecycle(
            SMRTPHONE,
            store=store,
            clock=clock,
            purgers=demo_purgers(SMRTPHONE),
            prerequisites={"port_outs": lambda account_id: tuple(pending)},
            identity_keys=keys,
        )
        _smrtphone(smrtphone, clock, pending, narrator)
        narrator.say()
        allclients = Lifecycle(
            ALLCLIENTS, store=store, clock=clock, purgers=demo_purgers(ALLCLIENTS), identity_keys=keys
        )
        _allclients(allclients, clock, narrator)
        store.close()
    return 0
