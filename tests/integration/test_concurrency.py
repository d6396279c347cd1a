"""Races through the real Lifecycle API, with real parallelism, on SQLite and PostgreSQL.

Four workers (threads sharing one store, or spawned processes each building its own store
and Lifecycle) run the same conflicting commands at the same moment:

* two confirms of one account,
* a confirm against a withdraw,
* two opens of one identity (and two opens of one account id),
* a restore against a sweep, at the moment the recovery window ends.

Every worker counts what it wrote through a thin wrapper around the store. Afterwards:
exactly one command won each race; the losers got ConcurrentUpdate, AccountExists,
InvalidTransition, RecoveryWindowExpired or ErasureInProgress and wrote nothing; every account's version is
one plus the number of saves made to it, its events run 1, 2, 3, ... with nothing lost, and
its hash chain verifies.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from backends import Backend

from account_lifecycle import (
    AccountExists,
    AccountNotFound,
    AccountRecord,
    AccountStore,
    Actor,
    AuditEvent,
    ConcurrentUpdate,
    ErasureInProgress,
    InvalidTransition,
    Lease,
    Lifecycle,
    ManualClock,
    RecoveryWindowExpired,
    State,
    policies,
)
from account_lifecycle.testing.fakes import recording_purgers

POLICY = policies.ALLCLIENTS
OWNER = Actor.user("owner")
SUPPORT = Actor.support("agent-1")
WORKERS = 4
PER_RACE = 8
SETUP_AT = datetime(2031, 1, 10, 9, 0, tzinfo=UTC)  # windows of the restore race end 3 months on
RACE_AT = datetime(2032, 6, 1, 9, 0, tzinfo=UTC)  # the confirms: their windows end long after
STEP = timedelta(milliseconds=25)  # between the ends of two restore-race windows
LEAD = timedelta(milliseconds=150)  # from the start of the restore race to the first window end
JITTER_MS = 6  # a restorer aims at the window's end, give or take this
BARRIER_TIMEOUT = 60

_LOSING = (ConcurrentUpdate, InvalidTransition, RecoveryWindowExpired, ErasureInProgress, AccountExists)
LOSSES = {
    "confirm": ("ConcurrentUpdate", "InvalidTransition"),
    "withdraw": ("ConcurrentUpdate", "InvalidTransition"),
    "open": ("AccountExists",),
    # a restore that meets the window-end erasure under way is refused, retryable
    "restore": ("ConcurrentUpdate", "InvalidTransition", "RecoveryWindowExpired", "ErasureInProgress"),
}


# -- what the workers share and report ----------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    confirm_confirm: tuple[str, ...]
    confirm_withdraw: tuple[str, ...]
    identities: tuple[str, ...]
    same_ids: tuple[str, ...]
    restore_sweep: tuple[tuple[str, datetime], ...]  # account id, end of its window


@dataclass
class Report:
    worker: int
    attempts: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    # (action, account id, "won" or the error's class name, the error's identity if any)
    swept: list[str] = field(default_factory=list)  # accounts this worker's sweeps purged
    saves: Counter[str] = field(default_factory=Counter)
    creates: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    purges: Counter[tuple[str, str]] = field(default_factory=Counter)  # (account, category)
    unexpected: list[str] = field(default_factory=list)


class CountingStore:
    """Passes every call through, counting the writes that succeeded, per account."""

    def __init__(self, inner: AccountStore, report: Report) -> None:
        self.inner = inner
        self.report = report

    def create(
        self, record: AccountRecord, events: Sequence[AuditEvent], *, now: datetime | None = None
    ) -> None:
        self.inner.create(record, events, now=now)
        self.report.creates[record.account_id] += 1
        self.report.events[record.account_id] += len(events)

    def save(
        self,
        record: AccountRecord,
        *,
        expected_version: int,
        events: Sequence[AuditEvent],
        lease: Lease | None = None,
        release: str | None = None,
        now: datetime | None = None,
    ) -> None:
        self.inner.save(
            record, expected_version=expected_version, events=events, lease=lease, release=release, now=now
        )
        self.report.saves[record.account_id] += 1
        self.report.events[record.account_id] += len(events)

    def get(self, account_id: str) -> AccountRecord:
        return self.inner.get(account_id)

    def history(self, account_id: str) -> tuple[AuditEvent, ...]:
        return self.inner.history(account_id)

    def claim_due(self, *, now: datetime, lease: Lease, limit: int) -> list[AccountRecord]:
        return self.inner.claim_due(now=now, lease=lease, limit=limit)

    def release(self, account_id: str, owner: str) -> None:
        self.inner.release(account_id, owner)


class OffsetClock:
    """The machine's clock moved by a fixed offset: every worker reads the same time."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def lifecycle(store: AccountStore, clock: Any, report: Report) -> tuple[Lifecycle, dict[str, Any]]:
    """A Lifecycle writing through a CountingStore, and its recording purgers by category."""
    purgers = recording_purgers(POLICY)
    lc = Lifecycle(POLICY, store=CountingStore(store, report), purgers=purgers.values(), clock=clock)
    return lc, purgers


def collect_purges(purgers: dict[str, Any], report: Report) -> None:
    for category, purger in purgers.items():
        for account_id in purger.accounts():
            report.purges[account_id, category] += 1


# -- one worker ---------------------------------------------------------------------------------


def attempt(report: Report, action: str, account_id: str, call: Callable[[], object]) -> None:
    try:
        call()
    except (
        ConcurrentUpdate,
        InvalidTransition,
        RecoveryWindowExpired,
        ErasureInProgress,
        AccountExists,
    ) as exc:
        report.attempts.append((action, account_id, type(exc).__name__, getattr(exc, "identity", None)))
    except Exception as exc:  # anything else fails the test, with its traceback
        report.unexpected.append(f"{action} {account_id}: {traceback.format_exc()}")
        report.attempts.append((action, account_id, type(exc).__name__, None))
    else:
        report.attempts.append((action, account_id, "won", None))


def run_races(worker: int, store: AccountStore, plan: Plan, barrier: Any, start: Any) -> Report:
    """Every race, in order, each started by all workers at once."""
    report = Report(worker)
    fixed, fixed_purgers = lifecycle(store, ManualClock(RACE_AT), report)

    barrier.wait(BARRIER_TIMEOUT)
    for account_id in plan.confirm_confirm:
        attempt(report, "confirm", account_id, lambda a=account_id: fixed.confirm(a, OWNER))

    barrier.wait(BARRIER_TIMEOUT)
    for account_id in plan.confirm_withdraw:
        if worker % 2 == 0:
            attempt(report, "confirm", account_id, lambda a=account_id: fixed.confirm(a, OWNER))
        else:
            attempt(report, "withdraw", account_id, lambda a=account_id: fixed.withdraw(a, OWNER))

    barrier.wait(BARRIER_TIMEOUT)
    for identity in plan.identities:
        attempt(
            report,
            "open",
            f"{identity}#{worker}",
            lambda i=identity: fixed.open(f"{i}#{worker}", owner=f"owner-{worker}", identity=i),
        )
    for account_id in plan.same_ids:
        attempt(report, "open", account_id, lambda a=account_id: fixed.open(a, owner=f"owner-{worker}"))
    collect_purges(fixed_purgers, report)

    # The restore race runs on the real clock, shifted so that the windows end during it.
    if barrier.wait(BARRIER_TIMEOUT) == 0:
        start.value = time.time()
    barrier.wait(BARRIER_TIMEOUT)
    began = datetime.fromtimestamp(start.value, UTC)
    first_end = plan.restore_sweep[0][1]
    clock = OffsetClock(first_end - LEAD - began)
    live, live_purgers = lifecycle(store, clock, report)
    last_end = plan.restore_sweep[-1][1]
    if worker % 2 == 0:
        jitter = random.Random(worker)
        for account_id, end in plan.restore_sweep:
            aim = end + timedelta(milliseconds=jitter.uniform(-JITTER_MS, JITTER_MS))
            time.sleep(max(0.0, (aim - clock.now()).total_seconds()))
            attempt(report, "restore", account_id, lambda a=account_id: live.restore(a, SUPPORT))
    else:
        while True:
            finished = clock.now() > last_end + LEAD
            try:
                swept = live.sweep()
            except Exception:
                report.unexpected.append(f"sweep: {traceback.format_exc()}")
                break
            report.swept.extend(swept.purged)
            if swept.failed:
                report.unexpected.append(f"sweep failed on {swept.failed}")
            if finished:
                break
            time.sleep(0.002)
    collect_purges(live_purgers, report)
    barrier.wait(BARRIER_TIMEOUT)
    return report


def process_main(backend: Backend, worker: int, plan: Plan, barrier: Any, start: Any, results: Any) -> None:
    """A spawned process: its own store and Lifecycle; the report goes back through *results*."""
    store = None
    try:
        store = backend.build()
        results.put(run_races(worker, store, plan, barrier, start))
    except BaseException:
        barrier.abort()
        results.put(f"worker {worker} crashed:\n{traceback.format_exc()}")
    finally:
        if store is not None:
            store.close()


def thread_main(store: AccountStore, worker: int, plan: Plan, sync: Any, results: list[Any]) -> None:
    try:
        results.append(run_races(worker, store, plan, sync.barrier, sync.start))
    except BaseException:
        sync.barrier.abort()
        results.append(f"worker {worker} crashed:\n{traceback.format_exc()}")


# -- the parent: setup, race, verification -------------------------------------------------------


def set_up(store: AccountStore) -> tuple[Plan, Report]:
    """Accounts waiting for each race; the writes made here are counted as worker -1's."""
    report = Report(-1)
    clock = ManualClock(SETUP_AT)
    lc, purgers = lifecycle(store, clock, report)
    pending = [f"confirm-{n}" for n in range(PER_RACE)] + [f"withdraw-{n}" for n in range(PER_RACE)]
    for account_id in pending:
        lc.open(account_id, owner=OWNER.id)
        lc.request_cancellation(account_id, OWNER)
        lc.skip_survey(account_id, OWNER)
    restorable = []
    for n in range(PER_RACE):
        clock.set(SETUP_AT + n * STEP)
        account_id = f"restore-{n}"
        lc.open(account_id, owner=OWNER.id)
        lc.request_cancellation(account_id, OWNER)
        lc.skip_survey(account_id, OWNER)
        record = lc.confirm(account_id, OWNER)
        assert record.state is State.RESTORABLE
        assert record.restorable_until is not None
        restorable.append((account_id, record.restorable_until))
    collect_purges(purgers, report)
    plan = Plan(
        confirm_confirm=tuple(pending[:PER_RACE]),
        confirm_withdraw=tuple(pending[PER_RACE:]),
        identities=tuple(f"person-{n}@example.com" for n in range(PER_RACE)),
        same_ids=tuple(f"same-{n}" for n in range(PER_RACE)),
        restore_sweep=tuple(restorable),
    )
    return plan, report


def race_in_threads(store: AccountStore, plan: Plan) -> list[Any]:
    sync = SimpleNamespace(barrier=threading.Barrier(WORKERS), start=SimpleNamespace(value=0.0))
    results: list[Any] = []
    threads = [
        threading.Thread(target=thread_main, args=(store, n, plan, sync, results)) for n in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def race_in_processes(backend: Backend, plan: Plan) -> list[Any]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    start = ctx.Value("d", 0.0)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=process_main, args=(backend, n, plan, barrier, start, results))
        for n in range(WORKERS)
    ]
    for process in processes:
        process.start()
    reports = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    return reports


def verify(store: AccountStore, plan: Plan, setup: Report, reports: list[Any]) -> None:
    crashed = [r for r in reports if isinstance(r, str)]
    assert crashed == []
    assert sorted(r.worker for r in reports) == list(range(WORKERS))
    assert [u for r in reports for u in r.unexpected] == []
    lc = Lifecycle(
        POLICY, store=store, purgers=recording_purgers(POLICY).values(), clock=ManualClock(RACE_AT)
    )

    def writers(account_id: str) -> set[int]:
        return {r.worker for r in reports if r.saves[account_id] or r.creates[account_id]}

    def outcomes(action: str, account_id: str) -> list[tuple[int, str, str | None]]:
        return [
            (r.worker, outcome, identity)
            for r in reports
            for (act, acc, outcome, identity) in r.attempts
            if act == action and acc == account_id
        ]

    # Two confirms: one wins, and the cancel-time purge runs once.
    for account_id in plan.confirm_confirm:
        tried = outcomes("confirm", account_id)
        winners = [w for w, outcome, _ in tried if outcome == "won"]
        assert len(tried) == WORKERS
        assert len(winners) == 1, tried
        assert {o for _, o, _ in tried if o != "won"} <= set(LOSSES["confirm"])
        assert writers(account_id) == set(winners)
        assert lc.get(account_id).state is State.RESTORABLE
        for category in POLICY.purge.at("cancel"):
            assert sum(r.purges[account_id, category] for r in reports) == 1

    # Confirm against withdraw: one command wins, whichever it is.
    for account_id in plan.confirm_withdraw:
        tried = outcomes("confirm", account_id) + outcomes("withdraw", account_id)
        winners = [w for w, outcome, _ in tried if outcome == "won"]
        assert len(tried) == WORKERS
        assert len(winners) == 1, tried
        assert {o for _, o, _ in tried if o != "won"} <= set(LOSSES["confirm"])
        assert writers(account_id) == set(winners)
        won_confirm = bool([w for w, o, _ in outcomes("confirm", account_id) if o == "won"])
        assert lc.get(account_id).state is (State.RESTORABLE if won_confirm else State.ACTIVE)

    # Two opens of one identity, and of one id: one account exists, the others got AccountExists.
    for identity in plan.identities:
        tried = [t for w in range(WORKERS) for t in outcomes("open", f"{identity}#{w}")]
        winners = [w for w, outcome, _ in tried if outcome == "won"]
        assert len(winners) == 1, tried
        assert [(o, i) for _, o, i in tried if o != "won"] == [("AccountExists", identity)] * (WORKERS - 1)
        for w in range(WORKERS):
            if w in winners:
                assert writers(f"{identity}#{w}") == {w}
                assert lc.get(f"{identity}#{w}").identity == identity
            else:
                assert writers(f"{identity}#{w}") == set()
                with pytest.raises(AccountNotFound):
                    lc.get(f"{identity}#{w}")
    for account_id in plan.same_ids:
        tried = outcomes("open", account_id)
        winners = [w for w, outcome, _ in tried if outcome == "won"]
        assert len(winners) == 1, tried
        assert [(o, i) for _, o, i in tried if o != "won"] == [("AccountExists", None)] * (WORKERS - 1)
        assert writers(account_id) == set(winners)
        assert lc.get(account_id).owner == f"owner-{winners[0]}"

    # Restore against sweep: the account is either restored or purged, by exactly one worker.
    for account_id, _ in plan.restore_sweep:
        tried = outcomes("restore", account_id)
        restorers = [w for w, outcome, _ in tried if outcome == "won"]
        sweepers = [r.worker for r in reports if account_id in r.swept]
        assert len(restorers) + len(sweepers) == 1, (tried, sweepers)
        assert {o for _, o, _ in tried if o != "won"} <= set(LOSSES["restore"])
        assert writers(account_id) == set(restorers + sweepers)
        assert lc.get(account_id).state is (State.ACTIVE if restorers else State.PURGED)
        # Sweepers never work on one account at once: its backups are erased at most once.
        backups = sum(r.purges[account_id, "backups"] for r in reports)
        assert backups == 1 if sweepers else backups <= 1

    # Nothing lost, nothing doubled: versions and events add up to what the winners wrote.
    all_reports = [setup, *reports]
    ids = {acc for r in all_reports for acc in (*r.creates, *r.saves)}
    for account_id in sorted(ids):
        record = lc.get(account_id)
        history = lc.history(account_id)
        assert sum(r.creates[account_id] for r in all_reports) == 1
        assert record.version == 1 + sum(r.saves[account_id] for r in all_reports)
        assert len(history) == sum(r.events[account_id] for r in all_reports)
        assert [e.seq for e in history] == list(range(1, len(history) + 1))
        assert record.last_seq == len(history)
        lc.verify_history(account_id)


# -- the tests ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_races_between_threads_have_exactly_one_winner(backend: Backend) -> None:
    """Four threads sharing one store race every conflicting command: one winner per race,
    losers write nothing, and no version or event is lost."""
    store = backend.build(connections=WORKERS)
    try:
        plan, setup = set_up(store)
        reports = race_in_threads(store, plan)
        verify(store, plan, setup, reports)
    finally:
        store.close()


@pytest.mark.slow
def test_races_between_processes_have_exactly_one_winner(backend: Backend) -> None:
    """Four spawned processes, each with its own store and Lifecycle, race every conflicting
    command: one winner per race, losers write nothing, and no version or event is lost."""
    store = backend.build()
    try:
        plan, setup = set_up(store)
        reports = race_in_processes(backend, plan)
        verify(store, plan, setup, reports)
    finally:
        store.close()
