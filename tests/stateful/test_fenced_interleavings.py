"""Hypothesis interleaves commands, sweeps on two workers, crashes inside purgers and lease
expiry, and checks the fence at every purger call and the outcome at the end (issue 13).

* At every purger call, the committed record says this step was started (``erasure``), is not
  under a legal hold, and belongs to an account that is cancelled, or restorable past its
  window (the cancel-time steps of a released "retain" hold aside).
* Commands queued "during the next purge" run inside a purger call: a second worker's sweep,
  a restore, a hold: the races that used to slip through.
* At the end, with every hold lifted and the clock far ahead, every cancelled account is
  purged, each category erased once per cancellation plus one re-run per crash inside it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from account_lifecycle import (
    AccountRecord,
    Actor,
    Lifecycle,
    LifecycleError,
    ManualClock,
    MemoryStore,
    Policy,
    PurgeContext,
    State,
    policies,
)
from account_lifecycle.decide import StepOutcome
from account_lifecycle.testing.fakes import FakePurger

OWNER = Actor.user("owner")
SUPPORT = Actor.support("agent-1")
T0 = datetime(2026, 1, 31, 9, 0, tzinfo=UTC)
ACCOUNTS = ("a", "b")
POLICY = Policy.from_toml(
    policies.ALLCLIENTS.to_toml()
    .replace("protected = []", 'protected = []\non_hold = "wait"')
    .replace(
        'restore = ["support"]', 'restore = ["support"]\nplace_hold = ["support"]\nrelease_hold = ["support"]'
    )
)
CATEGORIES = tuple(c.name for c in POLICY.purge.categories)
CANCEL_TIME = frozenset(POLICY.purge.at("cancel"))
LEASE = timedelta(minutes=5)


class Crash(BaseException):
    """The worker's process dies inside a purger."""


class LosingReleases(MemoryStore):
    """A dead worker releases nothing: its claim lasts until the lease lapses."""

    dead = False

    def release(self, account_id: str, owner: str) -> None:
        if not self.dead:
            super().release(account_id, owner)


class FencedInterleavings(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = LosingReleases()
        self.clock = ManualClock(T0)
        self.crash_next = False
        self.meanwhile: list[tuple[str, timedelta]] = []
        self.other_clock = ManualClock(T0)  # another host's clock, a little behind
        self.erased: Counter[tuple[str, str | None, str]] = Counter()
        self.crashed: Counter[tuple[str, str | None, str]] = Counter()
        purgers = [FakePurger(name, before=self.at_purge) for name in CATEGORIES]
        self.workers = [
            Lifecycle(POLICY, store=self.store, clock=self.clock, purgers=purgers, lease=LEASE)
            for _ in range(2)
        ]
        self.lc = self.workers[0]
        for account_id in ACCOUNTS:
            self.lc.open(account_id, owner="owner")

    # -- the fence, checked inside every purger call ----------------------------------------

    def at_purge(self, account_id: str, context: PurgeContext) -> None:
        record = self.store.get(account_id)
        category = context.category
        assert record.erasure is not None, f"{category} of {account_id} runs without a committed start"
        assert category in record.erasure.steps
        assert category not in record.holds, f"{category} of {account_id} is held"
        assert record.state in (State.CANCELLED, State.RESTORABLE), record.state
        if record.state is State.RESTORABLE and category not in CANCEL_TIME:
            assert record.restorable_until is not None
            assert context.now >= record.restorable_until
        key = (account_id, record.cancellation_id, category)
        pending, self.meanwhile = self.meanwhile, []
        for command, lag in pending:
            self.other_clock.set(self.clock.now() - lag)
            self._run(command, account_id, category)
        if self.crash_next:
            self.crash_next = False
            self.crashed[key] += 1
            self.store.dead = True
            raise Crash
        self.erased[key] += 1

    def _run(self, command: str, account_id: str, category: str) -> None:
        try:
            if command == "sweep":
                self.workers[1].sweep()
            elif command == "restore":
                self.workers[1].restore(account_id, SUPPORT)
            elif command == "hold":
                self.workers[1].place_hold(account_id, SUPPORT, category, "case 1")
            elif command == "hold_backups":
                self.workers[1].place_hold(account_id, SUPPORT, "backups", "case 2")
        except LifecycleError:
            pass

    # -- rules -------------------------------------------------------------------------------

    def _attempt(self, command: Any, *args: Any) -> AccountRecord | None:
        try:
            result: AccountRecord = command(*args)
            return result
        except LifecycleError:
            return None
        except Crash:
            self.store.dead = False
            return None

    @rule(account_id=st.sampled_from(ACCOUNTS))
    def cancel(self, account_id: str) -> None:
        if self.lc.get(account_id).state is State.ACTIVE:
            self._attempt(self.lc.request_cancellation, account_id, OWNER)
            self._attempt(self.lc.skip_survey, account_id, OWNER)
            self._attempt(self.lc.confirm, account_id, OWNER)

    @rule(account_id=st.sampled_from(ACCOUNTS))
    def restore(self, account_id: str) -> None:
        self._attempt(self.lc.restore, account_id, SUPPORT)

    @rule(account_id=st.sampled_from(ACCOUNTS), category=st.sampled_from(CATEGORIES))
    def place_hold(self, account_id: str, category: str) -> None:
        self._attempt(self.lc.place_hold, account_id, SUPPORT, category, "case 3")

    @rule(account_id=st.sampled_from(ACCOUNTS), category=st.sampled_from(CATEGORIES))
    def release_hold(self, account_id: str, category: str) -> None:
        self._attempt(self.lc.release_hold, account_id, SUPPORT, category)

    @rule(
        step=st.sampled_from(
            [timedelta(seconds=30), LEASE + timedelta(seconds=1), timedelta(days=45), timedelta(days=100)]
        )
    )
    def advance(self, step: timedelta) -> None:
        self.clock.advance(step)

    @rule(worker=st.sampled_from([0, 1]))
    def sweep(self, worker: int) -> None:
        self._attempt(self.workers[worker].sweep)

    @precondition(lambda self: not self.crash_next)
    @rule()
    def crash_in_the_next_purge(self) -> None:
        self.crash_next = True

    @rule(
        command=st.sampled_from(["sweep", "restore", "hold", "hold_backups"]),
        lag=st.sampled_from([timedelta(0), timedelta(microseconds=1), timedelta(days=30)]),
    )
    def during_the_next_purge(self, command: str, lag: timedelta) -> None:
        """Run *command* inside the next purger call, on a host whose clock is *lag* behind."""
        self.meanwhile.append((command, lag))

    @invariant()
    def chains_verify(self) -> None:
        for account_id in ACCOUNTS:
            self.lc.verify_history(account_id)

    @invariant()
    def a_restored_account_lost_nothing_of_its_window_end(self) -> None:
        for account_id in ACCOUNTS:
            record = self.store.get(account_id)
            if record.state is State.ACTIVE:
                assert record.erasure is None
                assert record.purge == {}

    @invariant()
    def nothing_held_was_erased_after_the_hold(self) -> None:
        for account_id in ACCOUNTS:
            record = self.store.get(account_id)
            for category, hold in record.holds.items():
                progress = record.purge.get(category)
                assert (
                    progress is None
                    or progress.at is None
                    or progress.at < hold.at
                    or (progress.status.value != "done")
                ), (account_id, category)

    def teardown(self) -> None:
        """Lift every hold, let every lease lapse, move past every window: all cancelled
        accounts end purged, each category erased once per cancellation (plus crash re-runs)."""
        self.crash_next = False
        self.meanwhile = []
        self.store.dead = False
        for account_id in ACCOUNTS:
            for category in self.store.get(account_id).holds:
                self.lc.release_hold(account_id, SUPPORT, category)
        self.clock.advance(timedelta(days=200))
        for _ in range(3):
            self.lc.sweep()
        for account_id in ACCOUNTS:
            record = self.store.get(account_id)
            if record.cancelled_at is not None or record.state is State.PURGED:
                assert record.state is State.PURGED, (account_id, record.state, dict(record.purge))
        for key, count in self.erased.items():
            assert count <= 1 + self.crashed[key], (key, count, self.crashed[key])
        for account_id in ACCOUNTS:
            if self.store.get(account_id).state is State.PURGED:
                request = self.store.get(account_id).cancellation_id
                erased = {c for (a, r, c), n in self.erased.items() if a == account_id and r == request and n}
                assert erased == set(CATEGORIES)


FencedInterleavings.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestFencedInterleavings = FencedInterleavings.TestCase


class LastFirstPool:
    """A purge pool whose calls end out of order, deterministically: each ``collect`` runs the
    call submitted last and returns it alone, so the other accounts' calls stay in flight while
    the batch commits (what threads do, without their nondeterminism)."""

    def __init__(self, concurrency: int) -> None:
        self._tasks: list[tuple[int, Callable[[], StepOutcome | None]]] = []

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def submit(self, token: int, task: Callable[[], StepOutcome | None]) -> None:
        self._tasks.append((token, task))

    def collect(self) -> list[tuple[int, StepOutcome | None]]:
        token, task = self._tasks.pop()
        return [(token, task())]

    def close(self) -> None:
        self._tasks = []


class FencedInterleavingsOutOfOrder(FencedInterleavings):
    """The same machine with each worker's purger calls ending out of order, as they do when a
    sweep runs them concurrently (``sweep_concurrency``): the fence holds all the same."""

    def __init__(self) -> None:
        super().__init__()
        for worker in self.workers:
            worker.runner.concurrency = 3
            worker.runner.pools = LastFirstPool


FencedInterleavingsOutOfOrder.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None
)
TestFencedInterleavingsOutOfOrder = FencedInterleavingsOutOfOrder.TestCase
