"""The configurable fakes of account_lifecycle.testing: FakePurger, FakeEffectHook, fake_purgers.

They stand in for dozens of hand-written doubles, so each switch is pinned here: recording,
fake data erased for real, failures on demand, the ``before`` hook, arbitrary results. That a
seeded FakePurger keeps the purger contract is shown in test_purger_contract.py."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

import account_lifecycle.testing as testing
from account_lifecycle import (
    Actor,
    Lifecycle,
    ManualClock,
    MemoryStore,
    Policy,
    PurgeCategory,
    PurgeContext,
    PurgePolicy,
    PurgeResult,
    PurgeStatus,
    State,
    SurveyPolicy,
    policies,
)
from account_lifecycle.purge import EffectContext
from account_lifecycle.testing.fakes import (
    FakeEffectHook,
    FakePurger,
    RecordingPurger,
    fake_purgers,
    recording_purgers,
)
from account_lifecycle.testing.purger_contract import purge_context

START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
OWNER = Actor.user("owner")
QUICK = Policy(
    name="quick",
    survey=SurveyPolicy(mode="off"),
    purge=PurgePolicy(categories=(PurgeCategory("files"), PurgeCategory("mail")), protected=("crm",)),
    on_cancel=("forfeit_credit",),
)


def call(purger: FakePurger, account_id: str = "acct-1", attempt: int = 1) -> PurgeResult:
    return purger.purge(account_id, purge_context(purger, account_id, attempt=attempt))


def effect_context(account_id: str = "acct-1", attempt: int = 1) -> EffectContext:
    return EffectContext(
        account_id=account_id,
        effect="forfeit_credit",
        policy="quick@1",
        attempt=attempt,
        cancelled_at=START,
        now=START,
        owner="owner",
        members=frozenset(),
    )


class TestRecording:
    def test_every_call_is_recorded_in_order(self) -> None:
        """calls holds each context; accounts() and count() read them."""
        purger = FakePurger("files")
        first = call(purger, "a")
        call(purger, "b")
        call(purger, "a", attempt=2)
        assert first == PurgeResult(items=1, detail="erased files")
        assert purger.accounts() == ["a", "b", "a"]
        assert [c.attempt for c in purger.calls] == [1, 1, 2]
        assert (purger.count("a"), purger.count("b"), purger.count("c")) == (2, 1, 0)
        assert purger.failed == []

    def test_items_detail_and_name_are_configurable(self) -> None:
        purger = FakePurger("files", items=7, detail="deleted 7 rows", name="host:files")
        assert call(purger) == PurgeResult(items=7, detail="deleted 7 rows")
        assert purger.name == "host:files"
        assert FakePurger("files").name == "fake:files"

    def test_an_invalid_report_is_refused_when_built(self) -> None:
        """items must be a valid PurgeResult count: a wrong one is a result= on purpose, not a typo."""
        with pytest.raises(ValueError, match="items"):
            FakePurger("files", items=-1)
        with pytest.raises(ValueError, match="negative"):
            FakePurger("files", fail_times=-1)

    def test_calls_from_many_threads_are_all_recorded(self) -> None:
        purger = FakePurger("files", fail_times=50)
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def work(n: int) -> None:
            barrier.wait()
            for k in range(25):
                try:
                    call(purger, f"acct-{n}", attempt=k + 1)
                except RuntimeError as exc:
                    errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(purger.calls) == 200
        assert len(errors) == len(purger.failed) == 50  # fail_times counted down exactly once each
        assert {purger.count(f"acct-{n}") for n in range(8)} == {25}


class TestFakeData:
    def test_a_purge_erases_what_was_seeded_and_a_second_reports_nothing(self) -> None:
        purger = FakePurger("files", items=99)
        purger.seed("acct-1", 3)
        purger.seed("acct-1", 2)
        purger.seed("acct-2", 4)
        assert purger.remaining("acct-1") == 5
        assert call(purger, "acct-1").items == 5
        assert (purger.remaining("acct-1"), purger.remaining("acct-2")) == (0, 4)
        assert call(purger, "acct-1").items == 0  # idempotent: nothing more to erase
        assert call(purger, "acct-3").items == 99  # never seeded: reports items

    def test_a_failed_purge_erases_nothing(self) -> None:
        purger = FakePurger("files", fail_times=1)
        purger.seed("acct-1", 3)
        with pytest.raises(RuntimeError):
            call(purger)
        assert purger.remaining("acct-1") == 3
        assert call(purger).items == 3

    def test_seeding_a_negative_count_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="-1"):
            FakePurger("files").seed("acct-1", -1)


class TestFailures:
    def test_the_first_n_calls_fail_with_the_default_error(self) -> None:
        purger = FakePurger("files", fail_times=2)
        for attempt in (1, 2):
            with pytest.raises(RuntimeError, match=r"^files backend unavailable$"):
                call(purger, attempt=attempt)
        assert call(purger, attempt=3).items == 1
        assert [c.attempt for c in purger.failed] == [1, 2]
        assert purger.fail_times == 0

    @pytest.mark.parametrize(
        "fail_with",
        [TimeoutError("no answer in 30 s"), TimeoutError, lambda: TimeoutError("no answer in 30 s")],
        ids=["instance", "class", "factory"],
    )
    def test_fail_with_takes_an_exception_or_a_callable_making_one(self, fail_with: object) -> None:
        purger = FakePurger("files", fail_times=2, fail_with=fail_with)  # type: ignore[arg-type]
        for _ in range(2):
            with pytest.raises(TimeoutError):
                call(purger)

    def test_fail_when_a_predicate_per_account_and_attempt(self) -> None:
        purger = FakePurger("files", fail_when=lambda account_id, c: account_id == "bad" and c.attempt < 3)
        assert call(purger, "good").items == 1
        for attempt in (1, 2):
            with pytest.raises(RuntimeError):
                call(purger, "bad", attempt=attempt)
        assert call(purger, "bad", attempt=3).items == 1

    def test_fail_when_true_fails_until_switched_off(self) -> None:
        purger = FakePurger("files", fail_when=True)
        for _ in range(3):
            with pytest.raises(RuntimeError):
                call(purger)
        purger.fail_when = False
        assert call(purger).items == 1
        assert len(purger.failed) == 3


class TestBeforeAndResult:
    def test_before_runs_inside_the_call_before_it_fails(self) -> None:
        seen: list[tuple[str, int, int]] = []
        purger = FakePurger("files", fail_times=1)
        purger.before = lambda account_id, c: seen.append((account_id, c.attempt, len(purger.calls)))
        with pytest.raises(RuntimeError):
            call(purger, "acct-1")
        call(purger, "acct-1", attempt=2)
        assert seen == [("acct-1", 1, 1), ("acct-1", 2, 2)]

    def test_before_times_limits_the_hook_so_it_may_call_the_purger_again(self) -> None:
        """A competing command calling the same purger from the hook does not recurse."""
        inner: list[PurgeResult] = []
        purger = FakePurger("files", before_times=1)
        purger.before = lambda account_id, c: inner.append(call(purger, "other"))
        call(purger, "acct-1")
        call(purger, "acct-1")
        assert inner == [PurgeResult(items=1, detail="erased files")]
        assert purger.accounts() == ["acct-1", "other", "acct-1"]
        assert purger.before_times == 0

    def test_result_returns_anything_after_erasing(self) -> None:
        returned = object()
        purger = FakePurger("files", result=lambda account_id, c: returned)
        purger.seed("acct-1", 2)
        assert call(purger) is returned
        assert purger.remaining("acct-1") == 0

    def test_a_shared_journal_orders_successful_purges_across_categories(self) -> None:
        journal: list[tuple[str, str]] = []
        files = FakePurger("files", journal=journal, fail_times=1)
        mail = FakePurger("mail", journal=journal)
        with pytest.raises(RuntimeError):
            call(files)
        call(mail)
        call(files)
        assert journal == [("acct-1", "mail"), ("acct-1", "files")]

    def test_latency_sleeps_per_call(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """For bench only; measured here without a clock: the sleep asked for is recorded."""
        slept: list[float] = []
        monkeypatch.setattr(time, "sleep", slept.append)
        purger = FakePurger("files", latency=0.25)
        call(purger)
        call(purger)
        assert slept == [0.25, 0.25]
        assert FakePurger("files").latency == 0.0


class TestFakeEffectHook:
    def test_records_fails_on_demand_and_runs_before(self) -> None:
        order: list[str] = []
        hook = FakeEffectHook(
            "forfeit_credit",
            fail_times=1,
            fail_with=ConnectionError("billing service unreachable"),
            before=lambda account_id, c: order.append(f"{account_id}#{c.attempt}"),
        )
        with pytest.raises(ConnectionError, match="billing service unreachable"):
            hook("acct-1", effect_context(attempt=1))
        hook("acct-1", effect_context(attempt=2))
        assert order == ["acct-1#1", "acct-1#2"]
        assert hook.calls == [effect_context(attempt=1), effect_context(attempt=2)]
        assert [c.attempt for c in hook.failed] == [1]
        assert (hook.accounts(), hook.count("acct-1"), hook.name) == (
            ["acct-1", "acct-1"],
            2,
            "hook:forfeit_credit",
        )

    def test_default_error_names_the_effect(self) -> None:
        hook = FakeEffectHook("revoke_team_access", fail_when=True)
        with pytest.raises(RuntimeError, match=r"^revoke_team_access service unavailable$"):
            hook("acct-1", effect_context())


class TestInALifecycle:
    def test_failures_are_retried_and_seeded_counts_reach_the_record(self) -> None:
        """Through a real Lifecycle: failing purgers and a failing hook leave the account
        CANCELLED with the fakes' errors; a sweep finishes it, reporting what was seeded."""
        clock = ManualClock(START)
        purgers = fake_purgers(QUICK, extra=QUICK.purge.protected, fail_times=1)
        purgers["files"].seed("acct-1", 6)
        hook = FakeEffectHook("forfeit_credit", fail_times=1)
        lc = Lifecycle(
            QUICK,
            store=MemoryStore(),
            clock=clock,
            purgers=purgers.values(),
            effects={"forfeit_credit": hook},
        )
        lc.open("acct-1", owner="owner")
        lc.request_cancellation("acct-1", OWNER)
        record = lc.confirm("acct-1", OWNER)
        assert record.state is State.CANCELLED
        assert {k: p.error for k, p in record.purge.items()} == {
            "effect:forfeit_credit": "RuntimeError: forfeit_credit service unavailable",
            "files": "RuntimeError: files backend unavailable",
            "mail": "RuntimeError: mail backend unavailable",
        }
        assert purgers["files"].remaining("acct-1") == 6  # a failed call erased nothing
        clock.set(datetime(2026, 12, 1, tzinfo=UTC))
        assert lc.sweep().purged == ("acct-1",)
        record = lc.get("acct-1")
        assert record.state is State.PURGED
        assert {k: p.status for k, p in record.purge.items()} == dict.fromkeys(
            ("effect:forfeit_credit", "files", "mail"), PurgeStatus.DONE
        )
        assert (record.purge["files"].items, record.purge["mail"].items) == (6, 1)
        assert purgers["files"].failed[0].account_id == "acct-1"
        assert purgers["crm"].calls == []  # protected: never handed to its purger
        assert hook.count("acct-1") == purgers["mail"].count("acct-1") == 2


class TestFactoriesAndExports:
    def test_fake_purgers_one_per_category_with_the_options(self) -> None:
        journal: list[tuple[str, str]] = []
        purgers = fake_purgers(policies.ALLCLIENTS, extra=["crm"], items=3, journal=journal)
        assert list(purgers) == [c.name for c in policies.ALLCLIENTS.purge.categories] + ["crm"]
        assert all(name == p.category and p.items == 3 for name, p in purgers.items())
        assert len({id(p) for p in purgers.values()}) == len(purgers)
        assert all(p.journal is journal for p in purgers.values())

    def test_recording_purgers_keep_their_first_name(self) -> None:
        purgers = recording_purgers(policies.SMRTPHONE, extra=["crm_contacts"])
        assert all(type(p) is RecordingPurger for p in purgers.values())
        assert purgers["agents"].name == "recording:agents"
        assert isinstance(purgers["agents"], FakePurger)
        failing = RecordingPurger("agents", fail_times=1, items=2)
        with pytest.raises(RuntimeError, match="agents backend unavailable"):
            call(failing)
        assert call(failing).items == 2

    def test_the_package_re_exports_the_fakes(self) -> None:
        assert testing.FakePurger is FakePurger
        assert testing.FakeEffectHook is FakeEffectHook
        assert testing.fake_purgers is fake_purgers
        assert {"FakePurger", "FakeEffectHook", "fake_purgers"} <= set(testing.__all__)


def test_purge_context_is_recorded_as_given() -> None:
    purger = FakePurger("files")
    context = PurgeContext("acct-1", "files", "quick@1", 4, START, START)
    purger.purge("acct-1", context)
    assert purger.calls == [context]
