"""Purge orchestration: the stored ledger, retries with backoff, sweeps, claims and leases,
durable effect hooks and erasure receipts. The toolkit's fakes and a ManualClock; no I/O."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from account_lifecycle import (
    AccountRecord,
    Actor,
    AuditEvent,
    ConfigurationError,
    Duration,
    ErasedCategory,
    InvalidTransition,
    Lease,
    Lifecycle,
    ManualClock,
    MemoryStore,
    Policy,
    PurgeCategory,
    PurgeContext,
    PurgePolicy,
    PurgeProgress,
    PurgeResult,
    PurgeStatus,
    RecoveryPolicy,
    State,
    StoreError,
    SurveyOutcome,
    SurveyPolicy,
    SweepReport,
    policies,
)
from account_lifecycle.schedule import backoff_delay, due_at
from account_lifecycle.testing.fakes import FakeEffectHook, FakePurger
from account_lifecycle.values import EffectContext

START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
OWNER = Actor.user("owner")
MINUTE = timedelta(minutes=1)

#: Survey off, no token, no window: confirm erases files and mail and the account is PURGED.
QUICK = Policy(
    name="quick",
    version=3,
    survey=SurveyPolicy(mode="off"),
    purge=PurgePolicy(
        categories=(PurgeCategory("files"), PurgeCategory("mail")),
        protected=("crm",),
    ),
)
#: A 3-month window: files and mail at cancel, backups when the window ends; both effects.
WINDOWED = Policy(
    name="windowed",
    version=2,
    survey=SurveyPolicy(mode="off"),
    recovery=RecoveryPolicy(window=Duration(3, "months")),
    purge=PurgePolicy(
        categories=(PurgeCategory("files"), PurgeCategory("mail"), PurgeCategory("backups", "expiry")),
        protected=("crm",),
    ),
    on_cancel=("revoke_team_access", "forfeit_credit"),
)
#: 30 November + 3 calendar months, clamped to the end of February.
WINDOW_END = datetime(2027, 2, 28, 12, 0, tzinfo=UTC)


# -- hand-written fakes (purgers and hooks: FakePurger, FakeEffectHook) -----------------------


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("cannot describe myself")


class FailingSaves(MemoryStore):
    """A MemoryStore whose saves of purge progress fail while ``broken`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False

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
        if self.broken and any(e.action == "category_purged" for e in events):
            raise StoreError("disk full; nothing was written")
        super().save(
            record,
            expected_version=expected_version,
            events=events,
            lease=lease,
            release=release,
            now=now,
            erase_sealed=erase_sealed,
        )


def purgers_for(policy: Policy, **overrides: FakePurger) -> dict[str, FakePurger]:
    """A FakePurger per category of *policy* and per protected category, unless overridden."""
    names = [c.name for c in policy.purge.categories] + list(policy.purge.protected)
    return {name: overrides.get(name, FakePurger(name)) for name in names}


def build(
    policy: Policy,
    store: MemoryStore,
    clock: ManualClock,
    purgers: Mapping[str, FakePurger],
    **kwargs: Any,
) -> Lifecycle:
    return Lifecycle(policy, store=store, clock=clock, purgers=purgers.values(), **kwargs)


def cancel(lc: Lifecycle, account_id: str = "acct-1", members: Sequence[str] = ("m-1",)) -> AccountRecord:
    """Open an account and confirm its cancellation (policies with the survey off)."""
    lc.open(account_id, owner="owner", members=members)
    lc.request_cancellation(account_id, OWNER)
    return lc.confirm(account_id, OWNER)


def actions(lc: Lifecycle, account_id: str = "acct-1") -> list[str]:
    return [e.action for e in lc.history(account_id)]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


# -- the ledger -------------------------------------------------------------------------------


class TestLedger:
    def test_confirm_stores_each_category_done_with_its_result(self, store, clock) -> None:
        """Each category's progress is stored with the account: done, items, attempt, when, by whom."""
        purgers = purgers_for(QUICK, files=FakePurger("files", items=7), mail=FakePurger("mail", items=0))
        record = cancel(build(QUICK, store, clock, purgers))
        assert record.state is State.PURGED
        assert dict(record.purge) == {
            "files": PurgeProgress(PurgeStatus.DONE, attempts=1, items=7, at=START, purger="fake:files"),
            "mail": PurgeProgress(PurgeStatus.DONE, attempts=1, items=0, at=START, purger="fake:mail"),
        }
        assert store.get("acct-1") == record

    def test_failure_is_recorded_with_error_attempt_and_retry_time(self, store, clock) -> None:
        """A purger that raises leaves the account CANCELLED with the failure stored; the other
        categories still run."""
        purgers = purgers_for(QUICK, files=FakePurger("files", fail_times=1))
        record = cancel(build(QUICK, store, clock, purgers))
        assert record.state is State.CANCELLED
        assert dict(record.purge) == {
            "files": PurgeProgress(
                PurgeStatus.FAILED,
                attempts=1,
                error="RuntimeError: files backend unavailable",
                at=START,
                retry_at=START + MINUTE,
                purger="fake:files",
            ),
            "mail": PurgeProgress(PurgeStatus.DONE, attempts=1, items=1, at=START, purger="fake:mail"),
        }
        assert store.get("acct-1") == record
        assert due_at(record) == START + MINUTE

    def test_failure_in_a_restorable_account_keeps_it_restorable(self, store, clock) -> None:
        """An expiry purger that fails leaves the account RESTORABLE with the failure stored."""
        purgers = purgers_for(WINDOWED, backups=FakePurger("backups", fail_times=1))
        cancel(build(WINDOWED, store, clock, purgers))
        clock.set(WINDOW_END)
        report = build(WINDOWED, store, clock, purgers).sweep()
        record = store.get("acct-1")
        assert report == SweepReport(failed=("acct-1",))
        assert record.state is State.RESTORABLE
        assert record.purge["backups"] == PurgeProgress(
            PurgeStatus.FAILED,
            attempts=1,
            error="RuntimeError: backups backend unavailable",
            at=WINDOW_END,
            retry_at=WINDOW_END + MINUTE,
            purger="fake:backups",
        )

    def test_each_completion_is_committed_before_the_next_purger_starts(self, store, clock) -> None:
        """While mail is being purged, the stored record already shows files done."""
        seen: list[dict[str, str]] = []

        def look(account_id: str) -> None:
            seen.append({k: p.status.value for k, p in store.get(account_id).purge.items()})

        purgers = purgers_for(QUICK, mail=FakePurger("mail", before=lambda account_id, _: look(account_id)))
        cancel(build(QUICK, store, clock, purgers))
        assert seen == [{"files": "done", "mail": "pending"}]

    def test_every_attempt_is_an_audit_event(self, store, clock) -> None:
        """A failed attempt and the successful retry are each one event, with their details."""
        purgers = purgers_for(QUICK, files=FakePurger("files", fail_times=1, items=4))
        lc = build(QUICK, store, clock, purgers)
        cancel(lc)
        clock.advance(MINUTE)
        lc.sweep()
        events = lc.history("acct-1")
        assert [(e.action, e.from_state, e.to_state, dict(e.details)) for e in events[3:]] == [
            (
                "purge_failed",
                State.CANCELLED,
                State.CANCELLED,
                {
                    "category": "files",
                    "attempt": 1,
                    "error": "RuntimeError: files backend unavailable",
                    "purger": "fake:files",
                },
            ),
            (
                "category_purged",
                State.CANCELLED,
                State.CANCELLED,
                {
                    "category": "mail",
                    "attempt": 1,
                    "items": 1,
                    "detail": "erased mail",
                    "purger": "fake:mail",
                },
            ),
            # the sweep commits that the retry starts before it calls the purger
            ("erasure_started", State.CANCELLED, State.CANCELLED, {"phase": "cancel", "steps": ("files",)}),
            (
                "category_purged",
                State.CANCELLED,
                State.CANCELLED,
                {
                    "category": "files",
                    "attempt": 2,
                    "items": 4,
                    "detail": "erased files",
                    "purger": "fake:files",
                },
            ),
            ("purge", State.CANCELLED, State.PURGED, {}),
        ]
        assert [e.actor for e in events[3:]] == [Actor.system()] * 5
        assert [e.at for e in events[3:]] == [START, START] + [START + MINUTE] * 3
        lc.verify_history("acct-1")

    def test_automatic_moves_are_audit_events(self, store, clock) -> None:
        """CANCELLED -> RESTORABLE and RESTORABLE -> PURGED are recorded as system events."""
        lc = build(WINDOWED, store, clock, purgers_for(WINDOWED))
        cancel(lc)
        clock.set(WINDOW_END)
        lc.sweep()
        moves = [
            (e.action, e.from_state, e.to_state) for e in lc.history("acct-1") if e.from_state != e.to_state
        ]
        assert moves == [
            ("open", None, State.ACTIVE),
            ("request_cancellation", State.ACTIVE, State.PENDING_CONFIRM),
            ("confirm", State.PENDING_CONFIRM, State.CANCELLED),
            ("recovery_window_opened", State.CANCELLED, State.RESTORABLE),
            ("purge", State.RESTORABLE, State.PURGED),
        ]
        opened = next(e for e in lc.history("acct-1") if e.action == "recovery_window_opened")
        assert dict(opened.details) == {"restorable_until": "2027-02-28T12:00:00.000000Z"}

    def test_a_category_done_is_never_run_again(self, store, clock) -> None:
        """Retries run only what is not done: mail ran once though files needed three attempts."""
        purgers = purgers_for(QUICK, files=FakePurger("files", fail_times=2))
        lc = build(QUICK, store, clock, purgers)
        cancel(lc)
        for _ in range(4):
            clock.advance(timedelta(hours=1))
            lc.sweep()
        assert len(purgers["files"].calls) == 3
        assert len(purgers["mail"].calls) == 1
        assert actions(lc).count("category_purged") == 2

    def test_protected_categories_are_never_handed_to_a_purger(self, store, clock) -> None:
        """Through the cancel purge, retries and the expiry purge, crm is never touched."""
        purgers = purgers_for(WINDOWED, files=FakePurger("files", fail_times=1))
        lc = build(WINDOWED, store, clock, purgers)
        cancel(lc)
        clock.advance(MINUTE)
        lc.sweep()
        clock.set(WINDOW_END)
        lc.sweep()
        assert store.get("acct-1").state is State.PURGED
        assert purgers["crm"].calls == []
        assert "crm" not in store.get("acct-1").purge
        assert lc.receipt("acct-1").kept == ("crm",)

    def test_purge_context_says_which_attempt(self, store, clock) -> None:
        """The purger is told the account, category, policy, attempt number and moments."""
        purgers = purgers_for(QUICK, files=FakePurger("files", fail_times=1))
        lc = build(QUICK, store, clock, purgers)
        cancel(lc)
        clock.advance(MINUTE)
        lc.sweep()
        assert purgers["files"].calls == [
            PurgeContext("acct-1", "files", "quick@3", 1, START, START),
            PurgeContext("acct-1", "files", "quick@3", 2, START, START + MINUTE),
        ]


# -- what a purger may do wrong ---------------------------------------------------------------


class TestMisbehavingPurgers:
    @pytest.mark.parametrize(
        ("returned", "kind"),
        [(3, "int"), ({"items": 3}, "dict"), ("done", "str"), (True, "bool")],
    )
    def test_a_result_that_is_not_a_purge_result_is_a_failure(self, store, clock, returned, kind) -> None:
        """Returning anything but a PurgeResult counts as a failed attempt, never as done."""
        purgers = purgers_for(QUICK, files=FakePurger("files", result=lambda *_: returned))
        record = cancel(build(QUICK, store, clock, purgers))
        assert record.state is State.CANCELLED
        assert record.purge["files"].status is PurgeStatus.FAILED
        assert (
            record.purge["files"].error == f"TypeError: purger fake:files returned {kind}, not a PurgeResult"
        )

    def test_a_purger_returning_none_fails(self, store, clock) -> None:
        """A purger that forgets to return is a failure too."""

        class Forgetful:
            category = "files"

            def purge(self, account_id: str, context: PurgeContext) -> None:
                return None

        lc = Lifecycle(QUICK, store=store, clock=clock, purgers=[Forgetful(), FakePurger("mail")])
        record = cancel(lc)
        assert record.purge["files"].error == (
            "TypeError: purger TestMisbehavingPurgers.test_a_purger_returning_none_fails.<locals>.Forgetful "
            "returned NoneType, not a PurgeResult"
        )

    def test_an_exception_that_cannot_be_printed_is_still_recorded(self, store, clock) -> None:
        """An exception whose str() raises is recorded by its type name."""
        purgers = purgers_for(QUICK, files=FakePurger("files", fail_times=1, fail_with=UnprintableError))
        record = cancel(build(QUICK, store, clock, purgers))
        assert record.purge["files"].error == "UnprintableError"

    def test_a_long_error_is_cut_to_500_characters(self, store, clock) -> None:
        """The stored error is bounded, whatever the purger raised."""
        purgers = purgers_for(
            QUICK, files=FakePurger("files", fail_times=1, fail_with=lambda: ValueError("x" * 5000))
        )
        record = cancel(build(QUICK, store, clock, purgers))
        assert record.purge["files"].error == "ValueError: " + "x" * 488

    def test_a_negative_item_count_is_refused_by_the_result_itself(self) -> None:
        """PurgeResult validates what a purger reports."""
        with pytest.raises(ValueError, match="whole number from 0 to 9223372036854775807, got -1"):
            PurgeResult(items=-1)


# -- confirm ----------------------------------------------------------------------------------


class TestConfirm:
    def test_confirm_with_a_failing_purger_returns_cancelled_and_does_not_raise(self, store, clock) -> None:
        """The confirmation stands; the record comes back CANCELLED with the failure in purge."""
        purgers = purgers_for(QUICK, mail=FakePurger("mail", fail_times=1))
        lc = build(QUICK, store, clock, purgers)
        record = cancel(lc)
        assert (record.state, record.cancelled_at) == (State.CANCELLED, START)
        assert record.purge["mail"].status is PurgeStatus.FAILED
        assert record.purge["mail"].error == "RuntimeError: mail backend unavailable"
        assert actions(lc) == ["open", "request_cancellation", "confirm", "category_purged", "purge_failed"]

    def test_sweep_finishes_what_confirm_left(self, store, clock) -> None:
        """Once the retry is due, a sweep erases the rest and moves the account on."""
        purgers = purgers_for(QUICK, mail=FakePurger("mail", fail_times=1))
        lc = build(QUICK, store, clock, purgers)
        cancel(lc)
        clock.advance(MINUTE)
        assert lc.sweep() == SweepReport(purged=("acct-1",))
        assert store.get("acct-1").state is State.PURGED

    def test_confirm_survives_a_store_failure_during_its_purge(self, clock) -> None:
        """The store failing after the confirm was committed does not make confirm raise: the
        committed CANCELLED record comes back, and a later sweep finishes the purge."""
        store = FailingSaves()
        purgers = purgers_for(QUICK)
        lc = build(QUICK, store, clock, purgers)
        lc.open("acct-1", owner="owner")
        lc.request_cancellation("acct-1", OWNER)
        store.broken = True
        record = lc.confirm("acct-1", OWNER)
        assert record.state is State.CANCELLED
        assert {k: p.status for k, p in record.purge.items()} == {
            "files": PurgeStatus.PENDING,
            "mail": PurgeStatus.PENDING,
        }
        store.broken = False
        assert lc.sweep() == SweepReport(purged=("acct-1",))  # the claim was released
        assert len(purgers["files"].calls) == 2  # the lost commit means one more, idempotent, call
        assert actions(lc).count("category_purged") == 2

    def test_confirm_holds_the_claim_until_its_purge_ends(self, store, clock) -> None:
        """A sweep running while confirm's inline purge works finds nothing to claim."""
        reports: list[SweepReport] = []
        purgers = purgers_for(QUICK)
        lc = build(QUICK, store, clock, purgers)
        other = build(QUICK, store, clock, purgers_for(QUICK))
        purgers["files"].before = lambda *_: reports.append(other.sweep())
        purgers["files"].before_times = 1  # once: the other sweeper's own call is plain
        cancel(lc)
        assert reports == [SweepReport()]
        assert store.get("acct-1").state is State.PURGED


# -- backoff ----------------------------------------------------------------------------------


class TestBackoff:
    def test_backoff_doubles_from_the_base_up_to_the_cap(self) -> None:
        """1, 2, 4, ... minutes after attempts 1, 2, 3, ..., never more than six hours."""
        delays = [backoff_delay(n, MINUTE, timedelta(hours=6)) for n in range(1, 13)]
        assert [d // MINUTE for d in delays] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 360, 360, 360]

    def test_backoff_of_a_huge_attempt_number_is_the_cap(self) -> None:
        """No overflow however many attempts were made."""
        assert backoff_delay(10_000, MINUTE, timedelta(hours=6)) == timedelta(hours=6)

    def test_attempt_numbers_start_at_one(self) -> None:
        with pytest.raises(ValueError, match="start at 1, got 0"):
            backoff_delay(0, MINUTE, MINUTE)

    def test_stored_retry_times_follow_the_schedule(self, store, clock) -> None:
        """With a 1-minute base and a 5-minute cap, each failure waits 1, 2, 4, 5, 5 minutes."""
        purgers = purgers_for(QUICK, files=FakePurger("files", fail_times=5))
        lc = build(QUICK, store, clock, purgers, max_retry_backoff=timedelta(minutes=5))
        cancel(lc)
        schedule = []
        for _ in range(5):
            progress = store.get("acct-1").purge["files"]
            schedule.append((progress.attempts, progress.at, progress.retry_at))
            assert progress.retry_at is not None
            clock.set(progress.retry_at)
            lc.sweep()
        minutes = [START + timedelta(minutes=m) for m in (0, 1, 3, 7, 12, 17)]
        assert schedule == [(n + 1, minutes[n], minutes[n + 1]) for n in range(5)]
        assert store.get("acct-1").state is State.PURGED
        assert store.get("acct-1").purge["files"].attempts == 6

    def test_sweep_retries_only_when_due(self, store, clock) -> None:
        """Before retry_at nothing is claimed or called; at retry_at the purger runs again."""
        purgers = purgers_for(QUICK, files=FakePurger("files", fail_times=1))
        lc = build(QUICK, store, clock, purgers)
        cancel(lc)
        clock.set(START + MINUTE - timedelta(microseconds=1))
        assert lc.sweep() == SweepReport()
        assert len(purgers["files"].calls) == 1
        clock.set(START + MINUTE)
        assert lc.sweep() == SweepReport(purged=("acct-1",))
        assert len(purgers["files"].calls) == 2

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"retry_backoff": -MINUTE}, "retry_backoff must be a timedelta >= 0"),
            ({"max_retry_backoff": -MINUTE}, "max_retry_backoff must be a timedelta >= 0"),
            ({"lease": timedelta(0)}, "lease must be a positive timedelta"),
            ({"retry_backoff": timedelta(hours=7)}, "must not be shorter than retry_backoff"),
        ],
    )
    def test_bad_timing_settings_are_refused(self, store, clock, kwargs, message) -> None:
        """A negative backoff means nothing; a zero lease would never hold a claim."""
        with pytest.raises(ValueError, match=message):
            build(QUICK, store, clock, purgers_for(QUICK), **kwargs)


# -- sweeps and recovery windows --------------------------------------------------------------


class TestSweep:
    def test_window_ends_at_the_clamped_calendar_month(self, store, clock) -> None:
        """30 November + 3 months is 28 February; the sweep purges at that moment, not before."""
        purgers = purgers_for(WINDOWED)
        lc = build(WINDOWED, store, clock, purgers)
        record = cancel(lc)
        assert (record.state, record.restorable_until) == (State.RESTORABLE, WINDOW_END)
        clock.set(WINDOW_END - timedelta(microseconds=1))
        assert lc.sweep() == SweepReport()
        assert purgers["backups"].calls == []
        clock.set(WINDOW_END)
        assert lc.sweep() == SweepReport(purged=("acct-1",))
        assert purgers["backups"].accounts() == ["acct-1"]

    def test_report_lists_purged_failed_and_restorable_accounts(self, store, clock) -> None:
        """One sweep: an expired window is purged, a retried cancel purge opens its window, a
        purge failing again is reported failed, and an account inside its window is left alone."""
        purgers = purgers_for(WINDOWED)
        lc = build(WINDOWED, store, clock, purgers)
        cancel(lc, "a-expired")
        clock.set(WINDOW_END - timedelta(days=1))
        failing = {"b-retried", "c-failing"}
        purgers["files"].fail_when = lambda account_id, _: account_id in failing
        for name in ("b-retried", "c-failing", "d-inside"):
            cancel(lc, name)
        failing.remove("b-retried")
        clock.set(WINDOW_END)
        assert lc.sweep() == SweepReport(
            purged=("a-expired",), failed=("c-failing",), restorable=("b-retried",)
        )
        assert store.get("d-inside").state is State.RESTORABLE
        assert store.get("d-inside").purge["backups"] == PurgeProgress()
        assert purgers["backups"].accounts() == ["a-expired"]

    def test_a_cancel_purge_finishing_after_the_window_goes_on_to_purged(self, store, clock) -> None:
        """A cancel-time purge retried only after the window ended: one sweep erases the rest,
        opens the window (already over) and erases the expiry categories, under one claim."""
        purgers = purgers_for(WINDOWED, files=FakePurger("files", fail_times=1))
        lc = build(WINDOWED, store, clock, purgers)
        cancel(lc)
        clock.set(WINDOW_END + timedelta(days=1))
        assert lc.sweep() == SweepReport(purged=("acct-1",))
        assert actions(lc)[-6:] == [
            "erasure_started",
            "category_purged",
            "recovery_window_opened",
            "erasure_started",
            "category_purged",
            "purge",
        ]
        assert purgers["backups"].accounts() == ["acct-1"]

    def test_limit_bounds_the_accounts_handled(self, store, clock) -> None:
        """sweep(limit=2) handles the two accounts due first; the next sweep handles the rest."""
        lc = build(WINDOWED, store, clock, purgers_for(WINDOWED))
        for index, name in enumerate(["a", "b", "c", "d", "e"]):
            clock.set(START + timedelta(hours=index))
            cancel(lc, name)
        clock.set(WINDOW_END + timedelta(days=1))
        assert lc.sweep(limit=0) == SweepReport()
        assert lc.sweep(limit=2) == SweepReport(purged=("a", "b"))
        assert lc.sweep(limit=2) == SweepReport(purged=("c", "d"))
        assert lc.sweep() == SweepReport(purged=("e",))
        assert lc.sweep() == SweepReport()

    @pytest.mark.parametrize("limit", [-1, True, 1.5, "3"])
    def test_a_bad_limit_is_refused(self, store, clock, limit) -> None:
        with pytest.raises(ValueError, match="limit must be a whole number >= 0 or None"):
            build(QUICK, store, clock, purgers_for(QUICK)).sweep(limit=limit)

    def test_sweep_works_through_several_batches(self, store, clock) -> None:
        """With batches of 2, one sweep still purges all seven expired accounts, in due order."""
        purgers = purgers_for(WINDOWED)
        lc = build(WINDOWED, store, clock, purgers, sweep_batch=2)
        names = [f"acct-{n}" for n in range(7)]
        for index, name in enumerate(names):
            clock.set(START + timedelta(minutes=index))
            cancel(lc, name)
        clock.set(WINDOW_END + timedelta(hours=1))
        assert lc.sweep() == SweepReport(purged=tuple(names))
        assert purgers["backups"].accounts() == names

    def test_an_account_failing_again_is_handled_once_per_sweep(self, store, clock) -> None:
        """A failure is not retried within the same sweep, whatever the batch size."""
        purgers = purgers_for(QUICK, files=FakePurger("files", fail_times=99))
        lc = build(QUICK, store, clock, purgers, sweep_batch=1)
        cancel(lc)
        clock.advance(MINUTE)
        assert lc.sweep() == SweepReport(failed=("acct-1",))
        assert len(purgers["files"].calls) == 2

    def test_a_zero_backoff_retries_at_the_next_sweep_not_within_the_same_one(self, store, clock) -> None:
        """With retry_backoff=0 a failure is due again at once, yet one sweep tries it once."""
        purgers = purgers_for(QUICK, files=FakePurger("files", fail_times=2))
        lc = build(QUICK, store, clock, purgers, retry_backoff=timedelta(0), sweep_batch=1)
        cancel(lc)
        assert store.get("acct-1").purge["files"].retry_at == START
        assert lc.sweep() == SweepReport(failed=("acct-1",))
        assert lc.sweep() == SweepReport(purged=("acct-1",))
        assert len(purgers["files"].calls) == 3

    def test_nothing_due_means_an_empty_report(self, store, clock) -> None:
        """Active, pending and restorable-in-window accounts are not touched."""
        lc = build(WINDOWED, store, clock, purgers_for(WINDOWED))
        lc.open("active", owner="owner")
        lc.open("pending", owner="owner")
        lc.request_cancellation("pending", OWNER)
        cancel(lc, "restorable")
        before = {a: store.get(a) for a in ("active", "pending", "restorable")}
        assert lc.sweep() == SweepReport()
        assert {a: store.get(a) for a in before} == before


# -- claims and leases ------------------------------------------------------------------------


class TestLeases:
    def _failed_once(
        self, store: MemoryStore, clock: ManualClock, names: Sequence[str]
    ) -> dict[str, FakePurger]:
        purgers = purgers_for(QUICK, files=FakePurger("files", fail_times=len(names)))
        lc = build(QUICK, store, clock, purgers)
        for name in names:
            cancel(lc, name)
        return purgers

    def test_a_dead_claimers_work_is_finished_after_its_lease(self, store, clock) -> None:
        """A claim left by a process that died blocks sweeps until the lease ends, then a sweep
        finishes the work."""
        self._failed_once(store, clock, ["acct-1"])
        clock.advance(MINUTE)
        dead = Lease("sweep:dead", clock.now() + timedelta(minutes=5))
        assert [r.account_id for r in store.claim_due(now=clock.now(), lease=dead, limit=10)] == ["acct-1"]
        purgers = purgers_for(QUICK)
        lc = build(QUICK, store, clock, purgers)
        clock.advance(timedelta(minutes=5) - timedelta(microseconds=1))
        assert lc.sweep() == SweepReport()
        assert purgers["files"].calls == []
        clock.advance(timedelta(microseconds=1))
        assert lc.sweep() == SweepReport(purged=("acct-1",))
        assert purgers["files"].accounts() == ["acct-1"]

    def test_the_lease_length_is_the_lifecycles(self, store, clock) -> None:
        """A lifecycle built with lease=30s claims for 30 seconds."""
        self._failed_once(store, clock, ["acct-1"])
        clock.advance(MINUTE)
        seen: list[Lease] = []
        lc = build(QUICK, store, clock, purgers_for(QUICK), lease=timedelta(seconds=30))
        original = store.claim_due

        def spy(*, now: datetime, lease: Lease, limit: int) -> list[AccountRecord]:
            seen.append(lease)
            return original(now=now, lease=lease, limit=limit)

        store.claim_due = spy  # type: ignore[method-assign]
        lc.sweep()
        assert [lease.until for lease in seen] == [START + MINUTE + timedelta(seconds=30)] * 2

    def test_a_slow_purger_outliving_its_lease_loses_to_the_next_sweeper(self, store, clock) -> None:
        """The purger takes 6 minutes of a 5-minute lease; meanwhile another sweeper claims the
        account and finishes it. The slow worker's late commit is refused, confirm still returns
        the latest record, and each category is recorded done exactly once."""
        reports: list[SweepReport] = []
        other_purgers = purgers_for(QUICK)
        other = build(QUICK, store, clock, other_purgers)
        slow = FakePurger(
            "files",
            before=lambda *_: (clock.advance(timedelta(minutes=6)), reports.append(other.sweep())),
            before_times=1,  # once: the other sweeper's own call is plain
        )
        lc = build(QUICK, store, clock, purgers_for(QUICK, files=slow))
        record = cancel(lc)
        assert reports == [SweepReport(purged=("acct-1",))]
        assert record == store.get("acct-1")
        assert record.state is State.PURGED
        assert actions(lc).count("category_purged") == 2
        assert [len(slow.calls), len(other_purgers["files"].calls), len(other_purgers["mail"].calls)] == [
            1,
            1,
            1,
        ]
        lc.verify_history("acct-1")

    def test_each_commit_renews_the_claim(self, store, clock) -> None:
        """Three categories of 4 minutes each outlast a 5-minute lease taken once, but each
        commit renews it: a sweeper trying in between finds nothing to claim."""
        policy = Policy(
            name="three",
            survey=SurveyPolicy(mode="off"),
            purge=PurgePolicy(categories=(PurgeCategory("a"), PurgeCategory("b"), PurgeCategory("c"))),
        )
        other = build(policy, store, clock, purgers_for(policy))
        reports: list[SweepReport] = []
        slow = {
            name: FakePurger(
                name,
                before=lambda *_: (clock.advance(timedelta(minutes=4)), reports.append(other.sweep())),
                before_times=1,
            )
            for name in "abc"
        }
        record = cancel(build(policy, store, clock, slow))
        assert reports == [SweepReport()] * 3
        assert record.state is State.PURGED
        assert [len(p.calls) for p in slow.values()] == [1, 1, 1]

    def test_accounts_of_a_batch_that_outlived_its_claim_are_left_to_the_next_sweep(
        self, store, clock
    ) -> None:
        """The first account of a batch takes longer than the lease; the rest of the batch may be
        claimed by someone else by then, so this sweeper leaves them alone."""
        self._failed_once(store, clock, ["a", "b", "c"])
        clock.advance(MINUTE)
        purgers = purgers_for(QUICK)
        purgers["files"].before = lambda *_: clock.advance(timedelta(minutes=6))
        lc = build(QUICK, store, clock, purgers, sweep_batch=3)
        assert lc.sweep() == SweepReport(purged=("a",))
        assert purgers["files"].accounts() == ["a"]
        purgers["files"].before = None
        assert lc.sweep() == SweepReport(purged=("b", "c"))

    def test_the_claim_is_released_when_the_work_ends(self, store, clock) -> None:
        """After a sweep that failed again, the account is free for the next due sweep at once."""
        self._failed_once(store, clock, ["acct-1"])
        clock.advance(MINUTE)
        failing = purgers_for(QUICK, files=FakePurger("files", fail_times=1))
        assert build(QUICK, store, clock, failing).sweep() == SweepReport(failed=("acct-1",))
        clock.advance(2 * MINUTE)  # due again, well inside the 5-minute lease had it been kept
        assert build(QUICK, store, clock, purgers_for(QUICK)).sweep() == SweepReport(purged=("acct-1",))


# -- durable effects --------------------------------------------------------------------------


def unreachable() -> ConnectionError:
    return ConnectionError("billing service unreachable")


def hooks() -> dict[str, FakeEffectHook]:
    return {
        "revoke_team_access": FakeEffectHook("revoke_team_access", fail_with=unreachable),
        "forfeit_credit": FakeEffectHook("forfeit_credit", fail_with=unreachable),
    }


class TestEffects:
    def test_without_hooks_effects_are_audit_events_at_confirm(self, store, clock) -> None:
        """No hooks: the effects are recorded with the confirm, for listeners; no ledger entries."""
        lc = build(WINDOWED, store, clock, purgers_for(WINDOWED))
        record = cancel(lc)
        assert actions(lc)[2:5] == ["confirm", "team_access_revoked", "credit_forfeited"]
        assert sorted(record.purge) == ["backups", "files", "mail"]

    def test_hooks_run_once_each_before_the_categories(self, store, clock) -> None:
        """Each hooked effect runs once, durably, and is recorded under its usual event name."""
        effect_hooks = hooks()
        seen: list[str] = []
        lc = build(
            WINDOWED,
            store,
            clock,
            purgers_for(WINDOWED),
            effects=effect_hooks,
            listeners=[lambda e: seen.append(e.action)],
        )
        record = cancel(lc, members=("m-2", "m-1"))
        assert actions(lc) == [
            "open",
            "request_cancellation",
            "confirm",
            "team_access_revoked",
            "credit_forfeited",
            "category_purged",
            "category_purged",
            "recovery_window_opened",
        ]
        assert seen == actions(lc)
        revoked = lc.history("acct-1")[3]
        assert (revoked.actor, revoked.from_state, revoked.to_state) == (
            Actor.system(),
            State.CANCELLED,
            State.CANCELLED,
        )
        assert dict(revoked.details) == {
            "members": ("m-1", "m-2"),
            "effect": "revoke_team_access",
            "attempt": 1,
            "hook": "hook:revoke_team_access",
        }
        assert effect_hooks["revoke_team_access"].calls == [
            EffectContext(
                account_id="acct-1",
                effect="revoke_team_access",
                policy="windowed@2",
                attempt=1,
                cancelled_at=START,
                now=START,
                owner="owner",
                members=frozenset({"m-1", "m-2"}),
            )
        ]
        assert len(effect_hooks["forfeit_credit"].calls) == 1
        assert record.purge["effect:revoke_team_access"] == PurgeProgress(
            PurgeStatus.DONE, attempts=1, at=START, purger="hook:revoke_team_access"
        )
        assert record.state is State.RESTORABLE

    def test_a_failing_hook_is_retried_and_done_exactly_once(self, store, clock) -> None:
        """The hook fails at confirm: the account stays CANCELLED (its categories erased), an
        effect_failed event is written, and a due sweep runs only that hook again."""
        effect_hooks = hooks()
        effect_hooks["forfeit_credit"].fail_times = 1
        purgers = purgers_for(WINDOWED)
        lc = build(WINDOWED, store, clock, purgers, effects=effect_hooks)
        record = cancel(lc)
        assert record.state is State.CANCELLED
        assert record.purge["effect:forfeit_credit"] == PurgeProgress(
            PurgeStatus.FAILED,
            attempts=1,
            error="ConnectionError: billing service unreachable",
            at=START,
            retry_at=START + MINUTE,
            purger="hook:forfeit_credit",
        )
        failed = next(e for e in lc.history("acct-1") if e.action == "effect_failed")
        assert dict(failed.details) == {
            "effect": "forfeit_credit",
            "attempt": 1,
            "error": "ConnectionError: billing service unreachable",
            "hook": "hook:forfeit_credit",
        }
        clock.advance(MINUTE)
        assert lc.sweep() == SweepReport(restorable=("acct-1",))
        assert [len(h.calls) for h in effect_hooks.values()] == [1, 2]
        assert [len(p.calls) for p in purgers.values()] == [1, 1, 0, 0]
        assert actions(lc).count("credit_forfeited") == 1
        assert actions(lc).count("team_access_revoked") == 1

    def test_a_sweeper_without_the_hook_records_a_failure_instead_of_skipping(self, store, clock) -> None:
        """A process that sweeps without the hook cannot do the effect: it records why and leaves
        it for a process configured with the hook."""
        effect_hooks = hooks()
        effect_hooks["revoke_team_access"].fail_times = 1
        cancel(build(QUICK_EFFECTS, store, clock, purgers_for(QUICK_EFFECTS), effects=effect_hooks))
        clock.advance(MINUTE)
        bare = build(QUICK_EFFECTS, store, clock, purgers_for(QUICK_EFFECTS))
        assert bare.sweep() == SweepReport(failed=("acct-1",))
        progress = store.get("acct-1").purge["effect:revoke_team_access"]
        assert (progress.status, progress.attempts, progress.purger) == (PurgeStatus.FAILED, 2, None)
        assert progress.error == (
            "LookupError: no hook for effect 'revoke_team_access' in this process; "
            "pass effects={'revoke_team_access': hook} to every Lifecycle that sweeps this store"
        )
        clock.advance(2 * MINUTE)
        configured = build(QUICK_EFFECTS, store, clock, purgers_for(QUICK_EFFECTS), effects=effect_hooks)
        assert configured.sweep() == SweepReport(purged=("acct-1",))
        assert len(effect_hooks["revoke_team_access"].calls) == 2

    def test_smrtphone_releases_numbers_and_runs_each_effect_once(self, store, clock) -> None:
        """smrtPhone: credit forfeited and team access revoked through hooks, the phone numbers
        released by the phone_numbers purger, each once, all in the audit chain."""
        effect_hooks = hooks()
        policy = policies.SMRTPHONE
        purgers = purgers_for(policy)
        lc = Lifecycle(
            policy,
            store=store,
            clock=clock,
            purgers=purgers.values(),
            prerequisites={"port_outs": lambda account_id: ()},
            effects=effect_hooks,
        )
        lc.open("sp-1", owner="owner", members=["agent-2"])
        lc.request_cancellation("sp-1", OWNER)
        lc.submit_survey("sp-1", OWNER, SurveyOutcome.CANCEL)
        record = lc.confirm("sp-1", OWNER, "CONFIRM", [a.id for a in policy.confirmation.acknowledgements])
        assert record.state is State.PURGED
        assert [len(h.calls) for h in effect_hooks.values()] == [1, 1]
        assert purgers["phone_numbers"].accounts() == ["sp-1"]
        assert purgers["crm_contacts"].calls == purgers["crm_logs"].calls == []
        assert actions(lc, "sp-1")[4:] == [
            "team_access_revoked",
            "credit_forfeited",
            "category_purged",
            "category_purged",
            "category_purged",
            "category_purged",
            "category_purged",
            "purge",
        ]
        lc.verify_history("sp-1")

    def test_a_hook_for_an_effect_the_policy_lacks_is_never_called(self, store, clock) -> None:
        """AllClients forfeits no credit: a forfeit_credit hook is accepted and never called."""
        effect_hooks = hooks()
        policy = policies.ALLCLIENTS
        lc = Lifecycle(
            policy, store=store, clock=clock, purgers=purgers_for(policy).values(), effects=effect_hooks
        )
        lc.open("ac-1", owner="owner")
        lc.request_cancellation("ac-1", OWNER)
        lc.skip_survey("ac-1", OWNER)
        record = lc.confirm("ac-1", OWNER)
        assert [len(h.calls) for h in effect_hooks.values()] == [1, 0]
        assert "effect:forfeit_credit" not in record.purge

    def test_an_unknown_effect_name_is_a_configuration_error(self, store, clock) -> None:
        """A misspelt effect name fails when the lifecycle is built."""
        with pytest.raises(ConfigurationError, match="no on_cancel effect named 'revoke_team_acess'"):
            build(QUICK, store, clock, purgers_for(QUICK), effects={"revoke_team_acess": FakeEffectHook("x")})

    def test_a_hook_that_is_not_callable_is_a_type_error(self, store, clock) -> None:
        with pytest.raises(TypeError, match="the hook for effect 'forfeit_credit' must be callable"):
            build(QUICK, store, clock, purgers_for(QUICK), effects={"forfeit_credit": "charge"})

    def test_restore_then_cancel_runs_the_effects_again(self, store, clock) -> None:
        """A restored account cancelled again gets a fresh ledger: each effect runs once more."""
        effect_hooks = hooks()
        lc = build(WINDOWED, store, clock, purgers_for(WINDOWED), effects=effect_hooks)
        cancel(lc)
        lc.restore("acct-1", OWNER)  # WINDOWED keeps the default permissions: the owner restores
        lc.request_cancellation("acct-1", OWNER)
        lc.confirm("acct-1", OWNER)
        assert [len(h.calls) for h in effect_hooks.values()] == [2, 2]


QUICK_EFFECTS = Policy(
    name="quick-effects",
    survey=SurveyPolicy(mode="off"),
    purge=PurgePolicy(categories=(PurgeCategory("files"),)),
    on_cancel=("revoke_team_access",),
)


# -- receipts ---------------------------------------------------------------------------------


class TestReceipts:
    def test_receipt_before_purged_is_an_invalid_transition(self, store, clock) -> None:
        """CANCELLED and RESTORABLE accounts have no receipt yet."""
        lc = build(WINDOWED, store, clock, purgers_for(WINDOWED, files=FakePurger("files", fail_times=1)))
        cancel(lc)
        with pytest.raises(InvalidTransition) as caught:
            lc.receipt("acct-1")
        assert (caught.value.state, caught.value.action) == (State.CANCELLED, "receipt")
        clock.advance(MINUTE)
        lc.sweep()
        with pytest.raises(InvalidTransition) as caught:
            lc.receipt("acct-1")
        assert caught.value.state is State.RESTORABLE

    def test_receipt_lists_what_was_erased_and_kept(self, store, clock) -> None:
        """Category, items, when and purger for each erased category (cancel and expiry), the
        protected ones kept, the policy name@version, and the account's chain head."""
        purgers = purgers_for(
            WINDOWED, files=FakePurger("files", items=12), backups=FakePurger("backups", items=2)
        )
        lc = build(WINDOWED, store, clock, purgers)
        cancel(lc)
        clock.set(WINDOW_END + timedelta(hours=2))
        lc.sweep()
        record = store.get("acct-1")
        receipt = lc.receipt("acct-1")
        assert receipt.erased == (
            ErasedCategory("files", 12, START, "fake:files"),
            ErasedCategory("mail", 1, START, "fake:mail"),
            ErasedCategory("backups", 2, WINDOW_END + timedelta(hours=2), "fake:backups"),
        )
        assert (receipt.account_id, receipt.policy, receipt.kept) == ("acct-1", "windowed@2", ("crm",))
        assert receipt.chain_head == record.chain_head == lc.history("acct-1")[-1].hash
        assert json.loads(receipt.to_json()) == {
            "account_id": "acct-1",
            "chain_head": record.chain_head,
            "erased": [
                {
                    "at": "2026-11-30T12:00:00.000000Z",
                    "category": "files",
                    "items": 12,
                    "purger": "fake:files",
                },
                {"at": "2026-11-30T12:00:00.000000Z", "category": "mail", "items": 1, "purger": "fake:mail"},
                {
                    "at": "2027-02-28T14:00:00.000000Z",
                    "category": "backups",
                    "items": 2,
                    "purger": "fake:backups",
                },
            ],
            "kept": ["crm"],
            "policy": "windowed@2",
        }

    def test_receipt_json_is_sorted_and_indented(self, store, clock) -> None:
        """The exact bytes: sorted keys, two-space indent, ASCII only."""
        cancel(build(QUICK, store, clock, purgers_for(QUICK, files=FakePurger("files", items=2))))
        receipt = build(QUICK, store, clock, purgers_for(QUICK)).receipt("acct-1")
        head = store.get("acct-1").chain_head
        assert receipt.to_json() == (
            "{\n"
            '  "account_id": "acct-1",\n'
            f'  "chain_head": "{head}",\n'
            '  "erased": [\n'
            "    {\n"
            '      "at": "2026-11-30T12:00:00.000000Z",\n'
            '      "category": "files",\n'
            '      "items": 2,\n'
            '      "purger": "fake:files"\n'
            "    },\n"
            "    {\n"
            '      "at": "2026-11-30T12:00:00.000000Z",\n'
            '      "category": "mail",\n'
            '      "items": 1,\n'
            '      "purger": "fake:mail"\n'
            "    }\n"
            "  ],\n"
            '  "kept": [\n'
            '    "crm"\n'
            "  ],\n"
            '  "policy": "quick@3"\n'
            "}"
        )

    def test_same_history_gives_byte_identical_receipts(self) -> None:
        """Two separate runs of the same history, with retries, give the same bytes; a different
        history gives different bytes."""

        def run(items: int) -> str:
            clock = ManualClock(START)
            store = MemoryStore()
            purgers = purgers_for(WINDOWED, mail=FakePurger("mail", fail_times=2, items=items))
            lc = build(WINDOWED, store, clock, purgers, effects=hooks())
            cancel(lc)
            clock.advance(MINUTE)
            lc.sweep()
            clock.advance(2 * MINUTE)
            lc.sweep()
            clock.set(WINDOW_END)
            lc.sweep()
            return lc.receipt("acct-1").to_json()

        first, second = run(5), run(5)
        assert first == second
        assert first.encode("ascii") == second.encode("ascii")
        assert run(6) != first


class TestConcurrentSweeps:
    """``sweep_concurrency``: purger calls of different accounts run at once, each account's
    steps in order, and the batch's writes go in few transactions."""

    def _due(self, store: MemoryStore, clock: ManualClock, names: Sequence[str]) -> None:
        failing = {c: FakePurger(c, fail_times=len(names)) for c in ("files", "mail")}
        lc = build(QUICK, store, clock, purgers_for(QUICK, **failing))
        for name in names:
            cancel(lc, name)
        clock.advance(MINUTE)

    def test_four_accounts_purgers_run_at_once_each_accounts_steps_in_order(self, store, clock) -> None:
        """Each of the four first ``files`` calls waits at a barrier of four: the sweep gets
        past it only if the four calls are in flight together (a serial sweep would break the
        barrier after its timeout, failing the step). Every account's ``mail`` comes after its
        ``files``."""
        names = ["a", "b", "c", "d"]
        self._due(store, clock, names)
        barrier = threading.Barrier(4, timeout=60)
        order: list[tuple[str, str]] = []

        def files_then_wait(account_id: str, _: object) -> None:
            order.append((account_id, "files"))
            barrier.wait()

        purgers = purgers_for(
            QUICK,
            files=FakePurger("files", before=files_then_wait),
            mail=FakePurger("mail", before=lambda account_id, _: order.append((account_id, "mail"))),
        )
        lc = build(QUICK, store, clock, purgers, sweep_concurrency=4)

        report = lc.sweep()

        assert report.failed == ()
        assert sorted(report.purged) == names
        for name in names:
            assert order.index((name, "files")) < order.index((name, "mail"))
            lc.verify_history(name)

    def test_a_serial_sweep_writes_the_starts_and_the_outcomes_of_a_batch_together(
        self, store, clock
    ) -> None:
        """With no ``save_many`` wrapper in between, one sweep of 5 accounts with two steps each
        makes 3 writes: the starts, the ``files`` outcomes, the ``mail`` outcomes (with the
        move to PURGED, which drops the claims)."""
        names = ["a", "b", "c", "d", "e"]
        self._due(store, clock, names)
        sizes: list[int] = []
        save_many = store.save_many

        def counting(writes: Sequence[Any], *, now: datetime) -> list[Exception | None]:
            sizes.append(len(writes))
            return save_many(writes, now=now)

        store.save_many = counting  # type: ignore[method-assign]
        lc = build(QUICK, store, clock, purgers_for(QUICK))

        assert sorted(lc.sweep().purged) == names
        assert sizes == [5, 5, 5]

    def test_the_next_batch_is_claimed_while_the_last_account_of_a_batch_is_at_work(
        self, store, clock
    ) -> None:
        """Batches of 2, two calls at once: the first ``files`` call waits until a third
        account's ``files`` call has begun. Only a sweep that claims the next batch while the
        first batch's last account is still at work gets a third account going (the wait is
        bounded: without it the call gives up and the test fails on its flag)."""
        names = ["a", "b", "c", "d", "e"]
        self._due(store, clock, names)
        started: list[str] = []
        third = threading.Event()
        waited: list[bool] = []
        lock = threading.Lock()

        def files(account_id: str, _: object) -> None:
            with lock:
                first = not started
                started.append(account_id)
                if len(set(started)) >= 3:
                    third.set()
            if first:
                waited.append(third.wait(timeout=30))

        purgers = purgers_for(QUICK, files=FakePurger("files", before=files))
        lc = build(QUICK, store, clock, purgers, sweep_concurrency=2, sweep_batch=2)

        report = lc.sweep()

        assert waited == [True], "no account of the next batch started while the first batch ran"
        assert report.failed == ()
        assert sorted(report.purged) == names
        assert sorted(started) == names  # each account's files once
        for name in names:
            lc.verify_history(name)

    def test_sweep_concurrency_must_be_a_whole_number_from_1(self, store, clock) -> None:
        for bad in (0, -1, 1.5, True):
            with pytest.raises(ValueError, match="sweep_concurrency"):
                build(QUICK, store, clock, purgers_for(QUICK), sweep_concurrency=bad)
