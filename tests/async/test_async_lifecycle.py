"""AsyncLifecycle end to end on both async stores (ThreadedStore of SQLite, AsyncPostgresStore),
with async purgers, checks, listeners and effect hooks: the seed flows of both built-in
policies, the same errors, idempotency, the fence, concurrent purgers, a loop never blocked.

Races are built inside the async purgers with asyncio.Event; waits are bounded (a hang fails
the test instead of stalling it), and nothing is timed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from account_lifecycle import (
    Action,
    Actor,
    AsyncAccountStore,
    AsyncLifecycle,
    AuditEvent,
    ConfigurationError,
    EffectContext,
    ErasureInProgress,
    IdempotencyKeyReused,
    InvalidTransition,
    ManualClock,
    MissingAcknowledgements,
    NotPermitted,
    Policy,
    PrerequisitesPending,
    PurgeContext,
    PurgeResult,
    PurgeStatus,
    RecoveryWindowExpired,
    SQLiteStore,
    State,
    SurveyOutcome,
    SweepReport,
    ThreadedStore,
    WrongConfirmationToken,
    policies,
)
from account_lifecycle._bridge import BridgeError, await_only
from account_lifecycle.testing.fakes import fake_identity_keys

OWNER = Actor.user("owner")
MEMBER = Actor.user("member")
STRANGER = Actor.user("stranger")
SUPPORT = Actor.support("agent-7")
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)
#: How long a test waits, at most, for what another task must do (a hang fails, not stalls).
BOUND = 60.0

MakeStore = Callable[[], Awaitable[AsyncAccountStore]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> MakeStore:
    """Builds a fresh async store inside the test's event loop (a pool belongs to its loop)."""
    if request.param == "sqlite":

        async def threaded() -> AsyncAccountStore:
            return ThreadedStore(SQLiteStore(tmp_path / "accounts.db"))

        return threaded
    dsn, schema = request.getfixturevalue("pg_schema")

    async def postgres() -> AsyncAccountStore:
        from account_lifecycle import AsyncPostgresStore

        store = AsyncPostgresStore(dsn, schema=schema)
        await store.migrate()
        return store

    return postgres


def run(scenario: Callable[[AsyncAccountStore], Awaitable[None]], make_store: MakeStore) -> None:
    """Run *scenario* on a fresh store in a fresh event loop, and close the store."""

    async def main() -> None:
        store = await make_store()
        try:
            await scenario(store)
        finally:
            await store.close()  # type: ignore[attr-defined]

    asyncio.run(main())


class AsyncPurger:
    """An async purger that records its calls; *gate* (if given) is awaited inside each call."""

    def __init__(self, category: str, gate: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.category = category
        self.calls: list[str] = []
        self.gate = gate
        self.fail_next = 0

    async def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:
        self.calls.append(account_id)
        await asyncio.sleep(0)  # a real await: the task gives the loop away here
        if self.gate is not None:
            await self.gate(account_id)
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("the backup host did not answer")
        return PurgeResult(items=2)


class AsyncWorld:
    """An AsyncLifecycle whose purgers, check, listener and hooks are all coroutine functions."""

    def __init__(
        self,
        policy: Policy,
        store: AsyncAccountStore,
        *,
        clock: ManualClock | None = None,
        gates: dict[str, Callable[[str], Awaitable[None]]] | None = None,
        sweep_concurrency: int = 1,
        purgers: dict[str, AsyncPurger] | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock or ManualClock(T0)
        gates = gates or {}
        self.purgers = purgers or {
            c.name: AsyncPurger(c.name, gates.get(c.name))
            for c in (*policy.purge.categories, *(_protected(policy)))
        }
        self.pending: list[str] = []
        self.seen: list[AuditEvent] = []
        self.effects: list[tuple[str, str, frozenset[str]]] = []

        async def port_outs(account_id: str) -> list[str]:
            await asyncio.sleep(0)
            return list(self.pending)

        async def listen(event: AuditEvent) -> None:
            await asyncio.sleep(0)
            self.seen.append(event)

        def hook(name: str) -> Callable[[str, EffectContext], Awaitable[None]]:
            async def run_effect(account_id: str, context: EffectContext) -> None:
                await asyncio.sleep(0)
                self.effects.append((name, account_id, context.members))

            return run_effect

        self.lc = AsyncLifecycle(
            policy,
            store=store,
            clock=self.clock,
            purgers=self.purgers.values(),
            prerequisites={"port_outs": port_outs} if "port_outs" in policy.prerequisites else {},
            listeners=[listen],
            effects={name: hook(name) for name in policy.on_cancel},
            identity_keys=fake_identity_keys(),
            sweep_concurrency=sweep_concurrency,
        )

    @property
    def acks(self) -> list[str]:
        return [a.id for a in self.policy.confirmation.acknowledgements]

    def called(self) -> set[str]:
        return {name for name, p in self.purgers.items() if p.calls}

    async def cancelled(self, account_id: str = "acct-1") -> None:
        await self.lc.open(account_id, owner="owner", members=["member"])
        await self.lc.request_cancellation(account_id, OWNER)
        await self.lc.skip_survey(account_id, OWNER)
        await self.lc.confirm(account_id, OWNER)


def _protected(policy: Policy) -> Iterable[Any]:
    """Stand-ins for the protected categories, so a test can prove their purgers never run."""

    class Protected:
        def __init__(self, name: str) -> None:
            self.name = name

    return [Protected(name) for name in policy.purge.protected]


async def _snapshot(lc: AsyncLifecycle, account_id: str) -> tuple[object, ...]:
    return (await lc.get(account_id), await lc.history(account_id))


# -- the seed flows ------------------------------------------------------------------------


def test_smrtphone_seed_flow_end_to_end(make_store: MakeStore) -> None:
    """smrtPhone: a required survey (keep, then cancel), the exact token, every acknowledgement,
    numbers ported out first, owner only; confirm purges everything but the CRM at once and
    forfeits the credit; no reactivation; the listener hears every event; a valid receipt."""

    async def scenario(store: AsyncAccountStore) -> None:
        w = AsyncWorld(policies.SMRTPHONE, store)
        lc = w.lc
        await lc.open("acct-1", owner="owner", members=["member"], identity="owner@example.com")
        assert await lc.holds_identity("acct-1", "owner@example.com")
        assert await lc.allowed_actions("acct-1", OWNER) >= {Action.REQUEST_CANCELLATION}
        with pytest.raises(NotPermitted):
            await lc.request_cancellation("acct-1", MEMBER)
        assert (await lc.request_cancellation("acct-1", OWNER)).state is State.SURVEYED
        with pytest.raises(InvalidTransition):
            await lc.skip_survey("acct-1", OWNER)
        kept = await lc.submit_survey("acct-1", OWNER, SurveyOutcome.KEEP_ACCOUNT, {"reason": "price"})
        assert kept.state is State.ACTIVE
        await lc.request_cancellation("acct-1", OWNER)
        pending = await lc.submit_survey("acct-1", OWNER, SurveyOutcome.CANCEL)
        assert pending.state is State.PENDING_CONFIRM

        before = await _snapshot(lc, "acct-1")
        with pytest.raises(WrongConfirmationToken):
            await lc.confirm("acct-1", OWNER, "Confirm", w.acks)
        with pytest.raises(MissingAcknowledgements) as missing:
            await lc.confirm("acct-1", OWNER, "CONFIRM", w.acks[:-1])
        assert missing.value.missing == (w.acks[-1],)
        w.pending = ["+15550100"]
        with pytest.raises(PrerequisitesPending) as ported:
            await lc.confirm("acct-1", OWNER, "CONFIRM", w.acks)
        assert list(ported.value.pending) == ["port_outs"]
        with pytest.raises(NotPermitted):
            await lc.confirm("acct-1", SUPPORT, "CONFIRM", w.acks)
        assert await _snapshot(lc, "acct-1") == before  # a refused command writes nothing

        w.pending = []
        purged = await lc.confirm("acct-1", OWNER, "CONFIRM", w.acks)

        assert purged.state is State.PURGED
        erased = {c.name for c in w.policy.purge.categories}
        assert w.called() == erased  # the CRM's purgers are never called
        assert not erased & set(w.policy.purge.protected)
        assert sorted(name for name, *_ in w.effects) == sorted(w.policy.on_cancel)
        for actor in (OWNER, SUPPORT):
            with pytest.raises((InvalidTransition, NotPermitted)):
                await lc.restore("acct-1", actor)
        history = await lc.history("acct-1")
        assert [e.seq for e in w.seen] == [e.seq for e in history]
        await lc.verify_history("acct-1")
        receipt = await lc.receipt("acct-1")
        assert {c.category for c in receipt.erased} == erased
        assert set(receipt.kept) == set(w.policy.purge.protected)

    run(scenario, make_store)


def test_allclients_seed_flow_end_to_end(make_store: MakeStore) -> None:
    """AllClients: optional survey, plain confirm, team access revoked (with the members), six
    categories erased at once, support restores within three months, a failed purge recorded
    and retried by the sweep, backups erased by the sweep once the window ends."""

    async def scenario(store: AsyncAccountStore) -> None:
        w = AsyncWorld(policies.ALLCLIENTS, store)
        lc = w.lc
        await lc.open("acct-1", owner="owner", members=["member"])
        assert (await lc.cancel_service("acct-1", OWNER, "messages")).state is State.ACTIVE
        await lc.request_cancellation("acct-1", OWNER)
        await lc.skip_survey("acct-1", OWNER)
        restorable = await lc.confirm("acct-1", OWNER)
        assert restorable.state is State.RESTORABLE
        assert restorable.restorable_until == datetime(2027, 2, 28, 12, 0, tzinfo=UTC)
        assert w.effects == [("revoke_team_access", "acct-1", frozenset({"member"}))]
        assert "backups" not in w.called()
        with pytest.raises(NotPermitted):
            await lc.restore("acct-1", OWNER)  # the owner goes through support
        assert (await lc.restore("acct-1", SUPPORT)).state is State.ACTIVE

        await lc.request_cancellation("acct-1", OWNER)
        await lc.submit_survey("acct-1", OWNER, SurveyOutcome.CANCEL)
        w.purgers["contacts"].fail_next = 1
        failed = await lc.confirm("acct-1", OWNER)
        assert failed.state is State.CANCELLED
        assert failed.purge["contacts"].status is PurgeStatus.FAILED
        w.clock.advance(timedelta(minutes=1))
        report = await lc.sweep()
        assert report == SweepReport(restorable=("acct-1",))

        w.clock.set((await lc.get("acct-1")).restorable_until)  # type: ignore[arg-type]
        with pytest.raises(RecoveryWindowExpired):
            await lc.restore("acct-1", SUPPORT)
        assert await lc.sweep() == SweepReport(purged=("acct-1",))
        assert w.purgers["backups"].calls == ["acct-1"]
        await lc.verify_history("acct-1")
        assert {c.category for c in (await lc.receipt("acct-1")).erased} == {
            c.name for c in w.policy.purge.categories
        }
        assert [e.seq for e in w.seen] == [e.seq for e in await lc.history("acct-1")]

    run(scenario, make_store)


# -- errors and idempotency -----------------------------------------------------------------


#: Refused calls: (method, arguments), each on an open ALLCLIENTS account "acct-1".
REFUSED: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("get", ("nobody",), {}),
    ("get", (7,), {}),
    ("withdraw", ("acct-1", OWNER), {}),
    ("confirm", ("acct-1", OWNER), {}),
    ("restore", ("acct-1", SUPPORT), {}),
    ("request_cancellation", ("acct-1", STRANGER), {}),
    ("request_cancellation", ("acct-1", "owner"), {}),
    ("open", ("acct-1",), {"owner": "owner"}),
    ("open", ("",), {"owner": "owner"}),
    ("open", ("acct-2",), {"owner": "owner", "members": "member"}),
    ("cancel_service", ("acct-1", OWNER, "fax"), {}),
    ("place_hold", ("acct-1", SUPPORT, "contacts", ""), {}),
    ("transfer_ownership", ("acct-1", OWNER, "stranger"), {}),
    ("submit_survey", ("acct-1", OWNER, SurveyOutcome.CANCEL), {}),
    ("receipt", ("acct-1",), {}),
    ("sweep", (-1,), {}),
    ("claim_due", (), {"limit": "ten"}),
]


def test_bad_input_gets_the_sync_error_types_and_changes_nothing(make_store: MakeStore) -> None:
    """Each refused call raises, on AsyncLifecycle, the very error type Lifecycle raises for it
    (on a MemoryStore beside it), and writes nothing."""
    from account_lifecycle import Lifecycle, LifecycleError, MemoryStore
    from account_lifecycle.testing.fakes import fake_purgers

    sync = Lifecycle(
        policies.ALLCLIENTS,
        store=MemoryStore(),
        purgers=fake_purgers(policies.ALLCLIENTS).values(),
        identity_keys=fake_identity_keys(),
    )
    sync.open("acct-1", owner="owner", members=["member"])
    expected: list[type[Exception]] = []
    for name, args, kwargs in REFUSED:
        with pytest.raises((LifecycleError, TypeError, ValueError)) as refused:
            getattr(sync, name)(*args, **kwargs)
        expected.append(type(refused.value))

    async def scenario(store: AsyncAccountStore) -> None:
        lc = AsyncWorld(policies.ALLCLIENTS, store).lc
        await lc.open("acct-1", owner="owner", members=["member"])
        before = await _snapshot(lc, "acct-1")
        got: list[type[Exception]] = []
        for name, args, kwargs in REFUSED:
            with pytest.raises(Exception) as refused:
                await getattr(lc, name)(*args, **kwargs)
            got.append(type(refused.value))
        assert got == expected
        assert await _snapshot(lc, "acct-1") == before

    run(scenario, make_store)


def test_a_replayed_idempotency_key_writes_nothing_and_answers_only_the_permitted(
    make_store: MakeStore,
) -> None:
    """The same key returns the first result and adds no event; to anyone else, NotPermitted;
    the key reused for another command is IdempotencyKeyReused."""

    async def scenario(store: AsyncAccountStore) -> None:
        lc = AsyncWorld(policies.ALLCLIENTS, store).lc
        await lc.open("acct-1", owner="owner", members=["member"])
        first = await lc.request_cancellation("acct-1", OWNER, idempotency_key="req-1")
        events = await lc.history("acct-1")

        again = await lc.request_cancellation("acct-1", OWNER, idempotency_key="req-1")

        assert again == first
        assert await lc.history("acct-1") == events
        with pytest.raises(NotPermitted):
            await lc.request_cancellation("acct-1", STRANGER, idempotency_key="req-1")
        with pytest.raises(IdempotencyKeyReused):
            await lc.skip_survey("acct-1", OWNER, idempotency_key="req-1")
        assert await lc.history("acct-1") == events

    run(scenario, make_store)


def test_two_tasks_racing_one_command_have_one_winner(make_store: MakeStore) -> None:
    """Two tasks confirm at once: compare-and-set lets one win; the other is refused with a
    typed error (the state moved on or the write lost), and one confirm is recorded."""

    async def scenario(store: AsyncAccountStore) -> None:
        w = AsyncWorld(policies.ALLCLIENTS, store)
        await w.lc.open("acct-1", owner="owner")
        await w.lc.request_cancellation("acct-1", OWNER)
        await w.lc.skip_survey("acct-1", OWNER)

        results = await asyncio.gather(
            w.lc.confirm("acct-1", OWNER), w.lc.confirm("acct-1", OWNER), return_exceptions=True
        )

        winners = [r for r in results if not isinstance(r, BaseException)]
        assert len(winners) == 1, results
        [loser] = [r for r in results if isinstance(r, BaseException)]
        assert type(loser).__name__ in {"ConcurrentUpdate", "InvalidTransition", "ErasureInProgress"}
        actions = [e.action for e in await w.lc.history("acct-1")]
        assert actions.count("confirm") == 1

    run(scenario, make_store)


# -- the fence ------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_restore_while_an_async_purger_erases_backups_is_erasure_in_progress(
    make_store: MakeStore, concurrency: int
) -> None:
    """While the window-end sweep's async backups purger runs (held on an asyncio.Event; in a
    task of its own with sweep_concurrency=4), a support restore decided a microsecond before
    the deadline is refused with ErasureInProgress; the purge then completes and no restore is
    recorded."""

    async def scenario(store: AsyncAccountStore) -> None:
        erasing = asyncio.Event()
        go_on = asyncio.Event()

        async def hold(account_id: str) -> None:
            erasing.set()
            await asyncio.wait_for(go_on.wait(), BOUND)

        sweeper = AsyncWorld(
            policies.ALLCLIENTS, store, gates={"backups": hold}, sweep_concurrency=concurrency
        )
        user = AsyncWorld(policies.ALLCLIENTS, store, clock=ManualClock(T0))
        await user.cancelled()
        until = (await user.lc.get("acct-1")).restorable_until
        assert until is not None
        sweeper.clock.set(until)
        user.clock.set(until - TICK)

        sweep = asyncio.create_task(sweeper.lc.sweep())
        await asyncio.wait_for(erasing.wait(), BOUND)
        with pytest.raises(ErasureInProgress):
            await user.lc.restore("acct-1", SUPPORT)
        go_on.set()

        assert await sweep == SweepReport(purged=("acct-1",))
        actions = [e.action for e in await user.lc.history("acct-1")]
        assert "restore" not in actions
        assert (await user.lc.get("acct-1")).state is State.PURGED

    run(scenario, make_store)


# -- concurrency ----------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
def test_sweep_runs_k_async_purgers_at_once(make_store: MakeStore, concurrency: int) -> None:
    """With sweep_concurrency=K, the backups purgers of K accounts are all inside their call at
    once (each waits until K are in: counted, not timed); with 1, never two at once."""

    async def scenario(store: AsyncAccountStore) -> None:
        accounts = 4
        inside = 0
        most = 0
        all_in = asyncio.Event()

        async def rendezvous(account_id: str) -> None:
            nonlocal inside, most
            inside += 1
            most = max(most, inside)
            if inside == concurrency:
                all_in.set()
            if concurrency > 1:
                await asyncio.wait_for(all_in.wait(), BOUND)
            await asyncio.sleep(0)
            inside -= 1

        w = AsyncWorld(
            policies.ALLCLIENTS, store, gates={"backups": rendezvous}, sweep_concurrency=concurrency
        )
        ids = [f"acct-{i}" for i in range(accounts)]
        for account_id in ids:
            await w.cancelled(account_id)
        until = (await w.lc.get(ids[-1])).restorable_until
        assert until is not None
        w.clock.set(until)

        report = await w.lc.sweep()

        assert sorted(report.purged) == ids
        assert most == concurrency
        assert sorted(w.purgers["backups"].calls) == ids

    run(scenario, make_store)


@pytest.mark.postgres
def test_a_query_waiting_on_a_row_lock_does_not_block_the_loop(pg_schema: tuple[str, str]) -> None:
    """A second connection holds the account's row lock; the command's UPDATE waits for it on
    the server, and meanwhile other tasks (another read through the same store, the poll that
    sees the wait) run on the loop. Released, the command completes."""
    import psycopg
    from psycopg import sql

    from account_lifecycle import AsyncPostgresStore

    dsn, schema = pg_schema
    locked = threading.Event()
    release = threading.Event()
    locker_pid: list[int] = []

    def hold_the_row() -> None:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert row is not None
            locker_pid.append(row[0])
            conn.execute(
                sql.SQL("SELECT 1 FROM {}.accounts WHERE account_id = 'acct-1' FOR UPDATE").format(
                    sql.Identifier(schema)
                )
            )
            locked.set()
            release.wait(BOUND)  # bounded: if the loop never gets to release it, the test fails
            conn.rollback()

    async def scenario() -> None:
        store = AsyncPostgresStore(dsn, schema=schema)
        await store.migrate()
        w = AsyncWorld(policies.ALLCLIENTS, store)
        await w.lc.open("acct-1", owner="owner")
        await w.lc.open("acct-2", owner="owner")
        locker = threading.Thread(target=hold_the_row)
        locker.start()
        try:
            assert await asyncio.to_thread(locked.wait, BOUND)
            command = asyncio.create_task(w.lc.request_cancellation("acct-1", OWNER))
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as watcher:
                for _ in range(10_000):  # until the server shows the command waiting on the lock
                    cursor = await watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                        (locker_pid[0],),
                    )
                    row = await cursor.fetchone()
                    if row is not None and row[0] > 0:
                        break
                    await asyncio.sleep(0.001)
                else:
                    pytest.fail("the command never waited on the row lock")
            other = await w.lc.get("acct-2")  # another task's store call, while the command waits

            assert other.state is State.ACTIVE
            assert not command.done()
            release.set()
            assert (await command).state is State.SURVEYED
        finally:
            release.set()
            await asyncio.to_thread(locker.join)
            await store.close()

    asyncio.run(scenario())


# -- construction and the bridge ------------------------------------------------------------


def test_a_synchronous_store_is_refused_with_the_fix(tmp_path: Path) -> None:
    """AsyncLifecycle takes async stores only; a synchronous one is a TypeError naming
    ThreadedStore, and ThreadedStore refuses a store that is already async."""
    store = SQLiteStore(tmp_path / "accounts.db")
    with pytest.raises(TypeError, match=r"ThreadedStore\(store\)"):
        AsyncLifecycle(policies.ALLCLIENTS, store=store)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="already asynchronous"):
        ThreadedStore(ThreadedStore(store))  # type: ignore[arg-type]
    store.close()


def test_the_constructor_refuses_what_lifecycle_refuses(tmp_path: Path) -> None:
    """A missing purger or check is the same ConfigurationError as Lifecycle's."""

    async def scenario() -> None:
        store = ThreadedStore(SQLiteStore(tmp_path / "accounts.db"))
        try:
            with pytest.raises(ConfigurationError, match="no purger"):
                AsyncLifecycle(policies.ALLCLIENTS, store=store)
            purgers = [AsyncPurger(c.name) for c in policies.SMRTPHONE.purge.categories]
            with pytest.raises(ConfigurationError, match="port_outs"):
                AsyncLifecycle(policies.SMRTPHONE, store=store, purgers=purgers)
        finally:
            await store.close()

    asyncio.run(scenario())


def test_await_only_outside_the_bridge_is_a_bridge_error() -> None:
    """Synchronous code reaching an async callable outside run_in_greenlet fails loudly."""

    async def nothing() -> None:
        return None

    with pytest.raises(BridgeError):
        await_only(nothing())


def test_cancelling_a_command_cancels_its_awaiting_purger(tmp_path: Path) -> None:
    """A task cancelled while its async purger awaits: the purger sees the cancellation (thrown
    into the greenlet where it awaited), the confirmation stays committed and a later sweep
    finishes the purge."""

    async def scenario() -> None:
        store = ThreadedStore(SQLiteStore(tmp_path / "accounts.db"))
        inside = asyncio.Event()
        cancelled: list[str] = []

        async def forever(account_id: str) -> None:
            inside.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(account_id)
                raise

        w = AsyncWorld(policies.ALLCLIENTS, store, gates={"contacts": forever})
        try:
            await w.lc.open("acct-1", owner="owner")
            await w.lc.request_cancellation("acct-1", OWNER)
            await w.lc.skip_survey("acct-1", OWNER)
            confirm = asyncio.create_task(w.lc.confirm("acct-1", OWNER))
            await asyncio.wait_for(inside.wait(), BOUND)
            confirm.cancel()
            with pytest.raises(asyncio.CancelledError):
                await confirm
            assert cancelled == ["acct-1"]
            assert (await w.lc.get("acct-1")).state is State.CANCELLED

            w.purgers["contacts"].gate = None
            w.clock.advance(timedelta(minutes=10))  # the confirm's claim has lapsed
            assert await w.lc.sweep() == SweepReport(restorable=("acct-1",))
        finally:
            await store.close()

    asyncio.run(scenario())


def test_plain_callables_and_a_dispatchers_claims_work_too(make_store: MakeStore) -> None:
    """Plain (not async) purgers and listeners are called as they are; a dispatcher claims due
    accounts with claim_due and a worker task runs each with run_claimed."""
    from account_lifecycle.testing.fakes import fake_purgers

    async def scenario(store: AsyncAccountStore) -> None:
        clock = ManualClock(T0)
        purgers = fake_purgers(policies.ALLCLIENTS)
        heard: list[str] = []
        lc = AsyncLifecycle(
            policies.ALLCLIENTS,
            store=store,
            clock=clock,
            purgers=purgers.values(),
            listeners=[lambda e: heard.append(e.action)],
        )
        for account_id in ("acct-1", "acct-2"):
            await lc.open(account_id, owner="owner")
            await lc.request_cancellation(account_id, OWNER)
            await lc.skip_survey(account_id, OWNER)
            await lc.confirm(account_id, OWNER)
        until = (await lc.get("acct-2")).restorable_until
        assert until is not None
        clock.set(until)

        claim = await lc.claim_due()
        assert claim.account_ids == ("acct-1", "acct-2")
        done = await asyncio.gather(*(lc.run_claimed(a, claim.lease) for a in claim.account_ids))

        assert [r.state if r else None for r in done] == [State.PURGED, State.PURGED]
        assert sorted(purgers["backups"].accounts()) == ["acct-1", "acct-2"]
        assert heard.count("category_purged") == 14  # 6 at cancel and backups, per account

    run(scenario, make_store)


@pytest.mark.postgres
def test_a_host_async_pool_is_used_and_left_open(pg_schema: tuple[str, str]) -> None:
    """AsyncPostgresStore on an AsyncConnectionPool the host manages: commands run on it, and
    closing the store leaves the host's pool open."""
    from psycopg_pool import AsyncConnectionPool

    from account_lifecycle import AsyncPostgresStore

    dsn, schema = pg_schema

    async def scenario() -> None:
        pool = AsyncConnectionPool(dsn, min_size=1, max_size=2, open=False, kwargs={"autocommit": True})
        await pool.open()
        try:
            store = AsyncPostgresStore(pool, schema=schema)
            assert "pool" in repr(store)
            await store.migrate()
            w = AsyncWorld(policies.ALLCLIENTS, store)
            await w.cancelled()
            assert (await w.lc.get("acct-1")).state is State.RESTORABLE
            await store.close()
            async with pool.connection() as conn:  # still open
                assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
        finally:
            await pool.close()

    asyncio.run(scenario())
