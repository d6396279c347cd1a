"""Erasure is fenced by the state it depends on (issue 13), on MemoryStore, SQLite and PostgreSQL.

Each race is built inside a purger or a store wrapper: the competing command runs at the exact
point where it used to slip through (while the ``backups`` purger erases, right after a sweep
claimed its batch, while a sweeper holds its claim), and the test checks what a committed record
says must be kept was never handed to a purger.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from account_lifecycle import (
    AccountRecord,
    AccountStore,
    Actor,
    AuditEvent,
    CorruptRecord,
    ErasureInProgress,
    InvalidTransition,
    Lease,
    Lifecycle,
    ManualClock,
    MemoryStore,
    Policy,
    PurgeResult,
    PurgeStatus,
    RecordCorrupt,
    SQLiteStore,
    State,
    SweepReport,
    policies,
)
from account_lifecycle.ports import Write, save_many
from account_lifecycle.testing.fakes import FakePurger, fake_purgers

OWNER = Actor.user("owner")
SUPPORT = Actor.support("agent-1")
T0 = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)

#: AllClients with legal holds that make the account wait, placed and lifted by support.
HOLDING = Policy.from_toml(
    policies.ALLCLIENTS.to_toml()
    .replace("protected = []", 'protected = []\non_hold = "wait"')
    .replace(
        'restore = ["support"]', 'restore = ["support"]\nplace_hold = ["support"]\nrelease_hold = ["support"]'
    )
)


class Crash(BaseException):
    """A process dying inside a purger: nothing after it runs, nothing catches it."""


#: How the sweeper writes and runs purgers: one write per transaction (a store without
#: save_many), batches of writes (save_many), batches with purgers on 4 threads.
MODES = ("one-by-one", "batched", "threads")


@pytest.fixture(
    params=[
        pytest.param(
            (kind, mode), id=f"{kind}-{mode}", marks=[pytest.mark.postgres] if kind == "postgres" else []
        )
        for kind in ("memory", "sqlite", "postgres")
        for mode in MODES
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AccountStore]:
    kind, mode = request.param
    inner: AccountStore
    if kind == "memory":
        inner = MemoryStore()
    elif kind == "sqlite":
        inner = SQLiteStore(tmp_path / "fenced.db")
    else:
        inner = request.getfixturevalue("pg_store")
    yield Hooked(inner) if mode == "one-by-one" else Batched(inner, concurrency=4 if mode == "threads" else 1)
    if isinstance(inner, SQLiteStore):
        inner.close()


class Hooked:
    """A store that runs ``after_claim`` once right after ``claim_due`` returned (the moment a
    sweep holds its batch and has decided nothing yet), and can lose ``release`` calls (a
    process that died keeps its claim until the lease lapses)."""

    def __init__(self, inner: AccountStore) -> None:
        self.inner = inner
        self.after_claim: Callable[[], None] | None = None
        self.lose_releases = False

    def create(
        self, record: AccountRecord, events: Sequence[AuditEvent], *, now: datetime | None = None
    ) -> None:
        self.inner.create(record, events, now=now)

    def get(self, account_id: str) -> AccountRecord:
        return self.inner.get(account_id)

    def save(self, record: AccountRecord, **kwargs: Any) -> None:
        self.inner.save(record, **kwargs)

    def history(self, account_id: str) -> tuple[AuditEvent, ...]:
        return self.inner.history(account_id)

    def claim_due(
        self, *, now: datetime, lease: Lease, limit: int
    ) -> Sequence[AccountRecord | CorruptRecord]:
        claimed = self.inner.claim_due(now=now, lease=lease, limit=limit)
        hook, self.after_claim = self.after_claim, None
        if hook is not None and claimed:
            hook()
        return claimed

    def release(self, account_id: str, owner: str) -> None:
        if not self.lose_releases:
            self.inner.release(account_id, owner)


class Batched(Hooked):
    """``Hooked`` with ``save_many`` passed through to the store: the sweeper writes in batches,
    and runs its purgers *concurrency* at a time. ``batches`` has the size of each batch."""

    def __init__(self, inner: AccountStore, concurrency: int = 1) -> None:
        super().__init__(inner)
        self.concurrency = concurrency
        self.batches: list[int] = []

    def save_many(self, writes: Sequence[Write], *, now: datetime) -> list[Exception | None]:
        self.batches.append(len(writes))
        return save_many(self.inner, writes, now=now)


class Setup:
    """One store shared by a sweeper and a user-facing lifecycle, each with its own clock."""

    def __init__(self, store: AccountStore, policy: Policy = HOLDING, **purgers: FakePurger) -> None:
        self.store = store if isinstance(store, Hooked) else Hooked(store)
        self.policy = policy
        self.purgers = {**fake_purgers(policy), **purgers}
        self.sweeper_clock = ManualClock(T0)
        self.user_clock = ManualClock(T0)
        self.sweeper = self.lifecycle(self.sweeper_clock)
        self.user = self.lifecycle(self.user_clock)

    def lifecycle(self, clock: ManualClock) -> Lifecycle:
        return Lifecycle(
            self.policy,
            store=self.store,
            clock=clock,
            purgers=self.purgers.values(),
            sweep_concurrency=getattr(self.store, "concurrency", 1),
        )

    def cancelled(self, account_id: str = "acct-1") -> AccountRecord:
        self.user.open(account_id, owner="owner")
        self.user.request_cancellation(account_id, OWNER)
        self.user.skip_survey(account_id, OWNER)
        return self.user.confirm(account_id, OWNER)

    def at_window_end(self, record: AccountRecord) -> None:
        """The sweeper's clock at the window's end; the user's a microsecond before it."""
        assert record.restorable_until is not None
        self.sweeper_clock.set(record.restorable_until)
        self.user_clock.set(record.restorable_until - TICK)

    def actions(self, account_id: str = "acct-1") -> list[str]:
        return [e.action for e in self.user.history(account_id)]


def attempt(command: Callable[[], object]) -> object:
    """What the command returned, or the error it raised."""
    try:
        return command()
    except Exception as exc:
        return exc


# -- 1. a restore while the window-end purge runs -----------------------------------------------


def test_a_restore_while_backups_are_erased_is_refused_and_retryable(store: AccountStore) -> None:
    """The restore is decided a microsecond before the deadline, while the backups purger runs:
    it is refused with ErasureInProgress, the account is purged, and no restore is recorded."""
    seen: list[object] = []
    backups = FakePurger("backups", before=lambda account_id, _: seen.append(attempt(restore)))
    world = Setup(store, backups=backups)
    record = world.cancelled()
    world.at_window_end(record)

    def restore() -> object:
        return world.user.restore("acct-1", SUPPORT)

    assert world.sweeper.sweep() == SweepReport(purged=("acct-1",))
    [refusal] = seen
    assert isinstance(refusal, ErasureInProgress)
    assert refusal.steps == ("backups",)
    assert getattr(refusal, "retryable", False) is True
    assert world.user.get("acct-1").state is State.PURGED
    assert "restore" not in world.actions()
    assert backups.accounts() == ["acct-1"]
    world.user.verify_history("acct-1")


def test_a_restore_committed_after_the_claim_stops_the_sweep_before_any_purger(store: AccountStore) -> None:
    """The sweep has claimed the account; before it decides, a restore (decided a microsecond
    before the deadline) commits. The sweep decides again on the restored record: no purger runs."""
    world = Setup(store)
    record = world.cancelled()
    world.at_window_end(record)
    world.store.after_claim = lambda: world.user.restore("acct-1", SUPPORT) and None
    assert world.sweeper.sweep() == SweepReport()
    assert world.user.get("acct-1").state is State.ACTIVE
    assert world.purgers["backups"].calls == []


def test_no_restore_once_the_window_end_erasure_has_begun(store: AccountStore) -> None:
    """The backups purger failed once at the window's end: the data may be partly gone, so a
    restore decided on a clock still before the deadline is refused, and the retry finishes."""
    world = Setup(store, backups=FakePurger("backups", fail_times=1))
    record = world.cancelled()
    world.at_window_end(record)
    report = world.sweeper.sweep()
    assert report.failed == ("acct-1",)
    assert "backups backend unavailable" in report.errors["acct-1"]
    refused = attempt(lambda: world.user.restore("acct-1", SUPPORT))
    assert isinstance(refused, InvalidTransition)
    assert "has begun (backups)" in str(refused)
    assert world.actions().count("restore") == 0
    world.sweeper_clock.advance(timedelta(hours=1))
    assert world.sweeper.sweep().purged == ("acct-1",)


def test_a_restore_after_a_batchs_claim_stops_that_account_alone(store: AccountStore) -> None:
    """Three accounts are claimed in one batch; before the sweep decides, a restore of the middle
    one commits. Its start is refused by compare-and-set inside the batch's write and decided
    again (nothing left to do); the others start in that same write and are purged, and no
    purger ever runs for the restored account."""
    world = Setup(store)
    records = [world.cancelled(account_id) for account_id in ("acct-1", "acct-2", "acct-3")]
    world.at_window_end(records[0])
    world.store.after_claim = lambda: world.user.restore("acct-2", SUPPORT) and None
    assert world.sweeper.sweep() == SweepReport(purged=("acct-1", "acct-3"))
    assert world.user.get("acct-2").state is State.ACTIVE
    assert "acct-2" not in world.purgers["backups"].accounts()
    assert sorted(world.purgers["backups"].accounts()) == ["acct-1", "acct-3"]
    if isinstance(world.store, Batched):  # the starts of all three in one write, then the outcomes
        first, *outcomes = world.store.batches
        assert first == 3
        assert sum(outcomes) == 2  # together when serial; as they end when on threads
        if world.store.concurrency == 1:
            assert outcomes == [2]
    for account_id in ("acct-1", "acct-2", "acct-3"):
        world.user.verify_history(account_id)


def test_a_hold_committed_while_a_batch_erases_is_decided_again_for_that_account(store: AccountStore) -> None:
    """While the backups of the first account of a batch are erased, support places a hold on
    the last account's backups: its start, committed with the batch's, makes the hold wait
    (ErasureInProgress), and the first account's outcome commits with the others'."""
    seen: list[object] = []
    backups = FakePurger(
        "backups",
        before=lambda account_id, _: seen.append(
            attempt(lambda: world.user.place_hold("acct-3", SUPPORT, "backups", "case 5"))
        ),
        before_times=1,
    )
    world = Setup(store, backups=backups)
    records = [world.cancelled(account_id) for account_id in ("acct-1", "acct-2", "acct-3")]
    world.at_window_end(records[0])
    assert world.sweeper.sweep() == SweepReport(purged=("acct-1", "acct-2", "acct-3"))
    [refusal] = seen
    assert isinstance(refusal, ErasureInProgress)
    assert "hold" not in world.actions("acct-3")
    for account_id in ("acct-1", "acct-2", "acct-3"):
        world.user.verify_history(account_id)


# -- 2. a hold accepted after the claim -------------------------------------------------------------


def test_a_hold_placed_after_the_claim_is_honoured(store: AccountStore) -> None:
    world = Setup(store)
    record = world.cancelled()
    world.at_window_end(record)
    world.store.after_claim = lambda: world.user.place_hold("acct-1", SUPPORT, "backups", "case 42") and None
    assert world.sweeper.sweep() == SweepReport()
    assert world.purgers["backups"].calls == []
    assert world.user.get("acct-1").state is State.RESTORABLE  # waits for the hold
    world.user.release_hold("acct-1", SUPPORT, "backups")
    assert world.sweeper.sweep().purged == ("acct-1",)
    assert world.purgers["backups"].accounts() == ["acct-1"]


def test_a_hold_on_the_category_being_erased_is_refused_another_is_kept(store: AccountStore) -> None:
    """While the cancel-time purgers run: a hold on one of them is refused (ErasureInProgress);
    a hold on ``backups``, erased only at the window's end, is accepted and then honoured."""
    seen: list[object] = []

    def hold_both(account_id: str, _: object) -> None:
        seen.append(attempt(lambda: world.user.place_hold(account_id, SUPPORT, "todos", "case 7")))
        seen.append(attempt(lambda: world.user.place_hold(account_id, SUPPORT, "backups", "case 7")))

    world = Setup(store, contacts=FakePurger("contacts", before=hold_both, before_times=1))
    record = world.cancelled()
    assert isinstance(seen[0], ErasureInProgress)
    assert isinstance(seen[1], AccountRecord)
    assert record.state is State.RESTORABLE
    assert set(record.holds) == {"backups"}
    world.at_window_end(record)
    assert world.sweeper.sweep() == SweepReport()
    assert world.purgers["backups"].calls == []


# -- 3. a user command keeps a running sweeper's claim -------------------------------------------------


def test_a_user_command_keeps_the_sweepers_claim(store: AccountStore) -> None:
    """While sweeper A retries a failed purge, the owner's support places a hold (a write without
    a lease) and sweeper B sweeps: B finds nothing to claim, so no step runs twice at once."""
    other: list[SweepReport] = []
    todos = FakePurger("todos", fail_times=1)

    def meanwhile(account_id: str, _: object) -> None:
        if len(todos.calls) == 2:  # the retry, under sweeper A's claim
            world.user.place_hold(account_id, SUPPORT, "backups", "case 9")
            other.append(second.sweep())

    todos.before = meanwhile
    world = Setup(store, todos=todos)
    second = world.lifecycle(world.sweeper_clock)
    assert world.cancelled().state is State.CANCELLED
    world.sweeper_clock.advance(timedelta(hours=1))
    assert world.sweeper.sweep().restorable == ("acct-1",)
    assert other == [SweepReport()]
    assert len(todos.calls) == 2
    assert [c.account_id for c in world.purgers["contacts"].calls] == ["acct-1"]


# -- crashes and leases ---------------------------------------------------------------------------


def test_a_crash_mid_erasure_keeps_the_fence_until_a_later_sweep_finishes(store: AccountStore) -> None:
    """The sweeper dies inside the backups purger and its claim stays until the lease lapses.
    Meanwhile a restore is refused; once the lease lapsed the next sweep runs the step again."""
    crashes = [Crash()]

    def die(account_id: str, _: object) -> None:
        if crashes:
            raise crashes.pop()

    world = Setup(store, backups=FakePurger("backups", before=die))
    record = world.cancelled()
    world.at_window_end(record)
    world.store.lose_releases = True
    with pytest.raises(Crash):
        world.sweeper.sweep()
    world.store.lose_releases = False
    stored = world.user.get("acct-1")
    assert stored.erasure is not None
    assert stored.erasure.steps == ("backups",)
    assert isinstance(attempt(lambda: world.user.restore("acct-1", SUPPORT)), ErasureInProgress)
    assert world.sweeper.sweep() == SweepReport()  # the dead sweeper's claim still holds
    world.sweeper_clock.advance(timedelta(minutes=5))
    assert world.sweeper.sweep() == SweepReport(purged=("acct-1",))
    assert len(world.purgers["backups"].calls) == 2  # the documented re-run after a crash
    assert world.user.get("acct-1").erasure is None
    world.user.verify_history("acct-1")


# -- 4. invalid purger results ---------------------------------------------------------------------


def _forged(items: object, detail: object = "") -> PurgeResult:
    """A PurgeResult whose fields were set past its own validation."""
    result = object.__new__(PurgeResult)
    object.__setattr__(result, "items", items)
    object.__setattr__(result, "detail", detail)
    return result


@pytest.mark.parametrize(
    ("returned", "error"),
    [
        (_forged(10**5000), "a number too large to store"),
        (_forged(-3), "got -3"),
        (_forged("3"), "got str"),
        (_forged(1, 42), "detail must be a str"),
        ({"items": 1}, "returned dict, not a PurgeResult"),
        (None, "returned NoneType, not a PurgeResult"),
    ],
)
def test_an_invalid_purger_result_is_that_step_failing(
    store: AccountStore, returned: object, error: str
) -> None:
    """Confirm returns the committed record with the step failed; the next sweeps go on."""
    calls: list[int] = []

    def once(account_id: str, context: object) -> object:
        calls.append(1)
        return returned if len(calls) == 1 else PurgeResult(items=2)

    world = Setup(store, history=FakePurger("history", result=once))
    record = world.cancelled()
    assert record.state is State.CANCELLED
    progress = record.purge["history"]
    assert progress.status is PurgeStatus.FAILED
    assert progress.error is not None
    assert error in progress.error
    world.sweeper_clock.advance(timedelta(hours=1))
    assert world.sweeper.sweep().restorable == ("acct-1",)
    assert world.user.get("acct-1").purge["history"].items == 2
    world.user.verify_history("acct-1")


# -- 5. one corrupted row among a hundred ------------------------------------------------------------


def _corrupt(store: AccountStore, account_id: str) -> None:
    if isinstance(store, SQLiteStore):
        conn = store._conn()
        conn.execute("UPDATE accounts SET body = ? WHERE account_id = ?", ('{"owner": "ann@exa', account_id))
        return
    from account_lifecycle import PostgresStore

    assert isinstance(store, PostgresStore)
    with store._transaction("corrupting a row for a test") as cursor:
        cursor.execute(
            f"UPDATE {store.schema}.accounts SET body = %s WHERE account_id = %s",
            ('{"owner": "ann@exa', account_id),
        )


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_one_corrupted_row_among_100_harms_one_account(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store: AccountStore = (
        SQLiteStore(tmp_path / "hundred.db") if kind == "sqlite" else request.getfixturevalue("pg_store")
    )
    world = Setup(store, policy=policies.ALLCLIENTS)
    ids = [f"acct-{n:03}" for n in range(100)]
    for account_id in ids:
        world.cancelled(account_id)
    bad = ids[0]  # first in due order: it would be first in every batch
    _corrupt(store, bad)
    world.sweeper_clock.advance(timedelta(days=100))
    report = world.sweeper.sweep()
    assert sorted(report.purged) == ids[1:]
    assert report.failed == (bad,)
    assert "cannot be decoded" in report.errors[bad]
    assert "ann@exa" not in report.errors[bad]
    for read in (world.user.get, world.user.verify_history, world.user.receipt, world.user.preview):
        with pytest.raises(RecordCorrupt):
            read(bad)
    assert [e.seq for e in world.user.history(bad)][:2] == [1, 2]  # the audit trail is intact
    with pytest.raises(RecordCorrupt) as caught:
        world.user.allowed_actions(bad, OWNER)
    assert "ann@exa" not in str(caught.value)
    if isinstance(store, SQLiteStore):
        store.close()
