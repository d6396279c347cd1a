"""The purge runner: claims accounts whose work is due and runs it, fenced.

For each claimed account the runner decides with the record read under its claim
(``decide.start_work``) and commits the start of the steps (``AccountRecord.erasure``) with
compare-and-set *before* it calls any purger or effect hook. Commands that would change what
those steps depend on are refused from that commit on (``decide``'s fence), and a command
committed before it makes the start's compare-and-set fail, so the runner decides again on
the new record. The steps' outcomes are then committed together (``decide.finish_work``),
with the move on when the phase is settled, and the claim is dropped with the last write.

A crash loses at most the steps in flight, one per account (a batched sweep has one of each
account of its batch in flight, their outcomes committed together): their start stays on the
record, the claim lapses, and the next runner to claim the account runs them again (purgers
and hooks are idempotent) before anything else may change them. A step recorded done never
runs again.

A sweep runs a claimed batch at once (``run_batch``): the writes ready together go in one
store transaction (``Journal.commit_many``, a compare-and-set per account), and purger calls
of different accounts may run concurrently; each account's work is the same sequence of
decisions, writes and calls as when it runs alone (``run``). The next batch is claimed, and
joins, as soon as fewer calls are under way than the concurrency allows and no write waits.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Protocol

import attrs

from account_lifecycle import telemetry
from account_lifecycle.clock import require_aware
from account_lifecycle.decide import Decision, Rules, StepOutcome, apply, finish_work, remind, start_work
from account_lifecycle.errors import ConcurrentUpdate, LifecycleError
from account_lifecycle.journal import Commit, Journal
from account_lifecycle.model import AccountRecord, PurgeStatus, State
from account_lifecycle.ports import AccountStore, Clock, EffectHook, Purger
from account_lifecycle.schedule import EFFECT_PREFIX as EFFECT_PREFIX
from account_lifecycle.values import (
    CorruptRecord,
    EffectContext,
    Lease,
    PurgeContext,
    PurgeResult,
    purge_result_problem,
)

__all__ = ["Claim", "PurgeRunner", "SerialPool", "StepPool", "SweepReport", "ThreadPool", "purger_name"]

# Names that moved to their own modules, importable from here until every caller moved on
# (the receipts' on first use, by ``__getattr__`` at the end: a sweep does not need them).
from account_lifecycle.schedule import EFFECT_EVENTS as EFFECT_EVENTS
from account_lifecycle.schedule import effect_key as effect_key

log = logging.getLogger("account_lifecycle.purge")
_MAX_ERROR: Final = 500
#: How often a runner decides again after a command changed the account under it.
_RETRIES: Final = 8


def _plain_dict(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


@attrs.frozen
class SweepReport:
    """What one sweep did: accounts now purged, accounts whose purge failed or could not be
    read (retried by a later sweep; ``errors`` says why, by account id), and accounts that
    finished their cancel-time purge and are now restorable. *relayed*: events the sweep
    then delivered to the durable listeners (``Lifecycle(outbox_listeners=...)``)."""

    purged: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    restorable: tuple[str, ...] = ()
    errors: Mapping[str, str] = attrs.field(factory=dict, converter=_plain_dict, eq=False)
    relayed: int = 0


@attrs.frozen
class Claim:
    """Accounts claimed for *lease*'s owner until ``lease.until``: ``account_ids`` in due order,
    and ``corrupt``, due accounts whose stored record cannot be decoded (reported, not run)."""

    lease: Lease
    records: tuple[AccountRecord, ...]
    corrupt: tuple[CorruptRecord, ...] = ()

    @property
    def account_ids(self) -> tuple[str, ...]:
        """The claimed accounts' ids, in due order."""
        return tuple(r.account_id for r in self.records)


def purger_name(purger: object) -> str:
    """A purger's or hook's ``name`` attribute if it has one, else its qualified name."""
    name = getattr(purger, "name", None)
    if isinstance(name, str) and name:
        return name
    qualname = getattr(purger, "__qualname__", None)
    return qualname if isinstance(qualname, str) else type(purger).__qualname__


def _describe(exc: BaseException) -> str:
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # an exception whose __str__ fails still gets recorded
        text = type(exc).__name__
    return text[:_MAX_ERROR]


@attrs.frozen
class _Run:
    """A request of the work: run this started step (answered with its outcome)."""

    record: AccountRecord
    key: str
    until: datetime  # the claim as last renewed: the step is not run from this moment on


#: What the work asks the runner for: a write to commit (``Commit``, answered with the new
#: record) or a started step to run (``_Run``, answered with its outcome).
_Request = Commit | _Run
_Steps = Generator[_Request, Any, AccountRecord | None]


class StepPool(Protocol):
    """Runs the purger calls of a batch: ``submit`` one (a *token* and the call), ``collect``
    waits for at least one of those submitted to end and returns every one that has, with its
    outcome. An exception a call raises leaves from ``collect``."""

    @property
    def pending(self) -> int: ...

    def submit(self, token: int, task: Callable[[], StepOutcome | None]) -> None: ...

    def collect(self) -> list[tuple[int, StepOutcome | None]]: ...

    def close(self) -> None: ...


class SerialPool:
    """Runs the calls one after another, in the order submitted, when collected."""

    def __init__(self, concurrency: int = 1) -> None:
        self._tasks: list[tuple[int, Callable[[], StepOutcome | None]]] = []

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def submit(self, token: int, task: Callable[[], StepOutcome | None]) -> None:
        self._tasks.append((token, task))

    def collect(self) -> list[tuple[int, StepOutcome | None]]:
        tasks, self._tasks = self._tasks, []
        return [(token, task()) for token, task in tasks]  # an exception: nothing after it runs

    def close(self) -> None:
        self._tasks = []


class ThreadPool:
    """Runs up to *concurrency* calls at once on threads (purgers wait on I/O)."""

    def __init__(self, concurrency: int) -> None:
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="account_lifecycle-purge")
        self._ended: queue.SimpleQueue[tuple[int, Future[StepOutcome | None]]] = queue.SimpleQueue()
        self._pending = 0

    @property
    def pending(self) -> int:
        return self._pending

    def submit(self, token: int, task: Callable[[], StepOutcome | None]) -> None:
        # in the sweep's context (contextvars: a tracing span, say), not the worker thread's
        future = self._executor.submit(contextvars.copy_context().run, task)
        future.add_done_callback(lambda f: self._ended.put((token, f)))
        self._pending += 1

    def collect(self) -> list[tuple[int, StepOutcome | None]]:
        ended = [self._ended.get()]
        while True:
            try:
                ended.append(self._ended.get_nowait())
            except queue.Empty:
                break
        self._pending -= len(ended)
        return [(token, future.result()) for token, future in ended]

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def default_pool(concurrency: int) -> StepPool:
    """One call at a time for 1, threads beyond."""
    return SerialPool() if concurrency == 1 else ThreadPool(concurrency)


@attrs.define
class PurgeRunner:
    """Runs the purge work that is due on claimed accounts, fenced by the record."""

    rules: Rules
    store: AccountStore
    journal: Journal
    purgers: Mapping[str, Purger]
    clock: Clock
    lease_duration: timedelta = timedelta(minutes=5)
    effects: Mapping[str, EffectHook] = attrs.Factory(dict)
    #: How many purger calls of different accounts a sweep runs at once.
    concurrency: int = 1
    #: Builds the pool that runs a batch's purger calls, from ``concurrency``.
    pools: Callable[[int], StepPool] = default_pool
    #: The rules of the policy version an account is pinned to (a ``PolicyRegistry``'s), or
    #: None for an account this runner must leave alone; without it, ``rules`` for accounts of
    #: its policy's name.
    rules_for: Callable[[AccountRecord], Rules | None] | None = None

    def rules_of(self, record: AccountRecord) -> Rules | None:
        """The rules *record*'s work runs under, or None when it follows a policy this runner
        does not hold (its work is left to that policy's lifecycle)."""
        if self.rules_for is not None:
            return self.rules_for(record)
        if record.policy and record.policy != self.rules.policy.name:
            return None
        return self.rules

    # -- claiming ----------------------------------------------------------------------------

    def new_lease(self, owner: str) -> Lease:
        return Lease(owner, self._now() + self.lease_duration)

    def claim(self, owner: str, limit: int) -> Claim:
        """Claim up to *limit* accounts whose work is due, for *owner*."""
        lease = self.new_lease(owner)
        claimed = self.store.claim_due(now=self._now(), lease=lease, limit=limit)
        records = tuple(r for r in claimed if isinstance(r, AccountRecord))
        corrupt = tuple(r for r in claimed if isinstance(r, CorruptRecord))
        for bad in corrupt:
            log.error(
                "%s cannot be purged: its stored record cannot be decoded (%s)", bad.account_id, bad.reason
            )
        return Claim(lease, records, corrupt)

    def run_claimed(self, account_id: str, lease: Lease) -> AccountRecord | None:
        """Run the due work of *account_id* under a claim taken earlier by *lease*'s owner
        (say, by a dispatcher handing accounts to workers). None if the claim has lapsed, so
        someone else may hold it now, or if another worker took the account over."""
        if self._now() >= lease.until:
            log.info("claim of %s by %s lapsed before the work started", account_id, lease.owner)
            return None
        return self.run(self.store.get(account_id), lease)

    @telemetry.traced_sweep  # OpenTelemetry (extra otel): a span per sweep
    def sweep(self, *, limit: int | None, batch: int) -> SweepReport:
        """Claim due accounts in batches and run their work, until nothing is due or *limit*
        accounts were handled. An account that cannot be read or whose work fails is reported
        in ``failed`` with the reason; the others go on. The next batch is claimed as soon as
        fewer purger calls run than ``concurrency`` allows and no write waits (the current
        batch's last accounts still at work), so a batch's end does not leave the pool idle."""
        owner = f"sweep:{uuid.uuid4().hex}"
        purged: list[str] = []
        restorable: list[str] = []
        errors: dict[str, str] = {}
        seen: set[str] = set()

        def more() -> list[tuple[AccountRecord, Lease]]:
            """The next claimed batch's accounts not handled yet, each with its claim; empty
            when nothing more is due or *limit* accounts were taken."""
            while limit is None or len(seen) < limit:
                size = batch if limit is None else min(batch, limit - len(seen))
                claim = self.claim(owner, size)
                fresh = []
                for record in claim.records:
                    if record.account_id in seen:  # handled already, and due again (a zero backoff)
                        self.store.release(record.account_id, owner)
                    else:
                        fresh.append(record)
                for bad in claim.corrupt:
                    if bad.account_id not in seen:
                        seen.add(bad.account_id)
                        errors[bad.account_id] = f"its stored record cannot be decoded: {bad.reason}"
                if not fresh and not claim.corrupt:
                    return []
                seen.update(r.account_id for r in fresh)
                if self._now() >= claim.lease.until:
                    continue  # the batch outlived its claim: another sweeper may hold these accounts now
                if fresh:
                    return [(record, claim.lease) for record in fresh]
            return []

        for record, outcome in self._run_many(more(), more):
            if isinstance(outcome, LifecycleError):  # the store failed or the record went bad
                log.warning("sweep of %s failed: %s", record.account_id, outcome)
                errors[record.account_id] = str(outcome)
                continue
            if outcome is None:
                continue
            if outcome.state is State.PURGED:
                purged.append(outcome.account_id)
            elif failures := [p for p in outcome.purge.values() if p.status is PurgeStatus.FAILED]:
                errors[outcome.account_id] = "; ".join(p.error or "failed" for p in failures)
            elif outcome.state is State.RESTORABLE and record.state is State.CANCELLED:
                restorable.append(outcome.account_id)
        return SweepReport(
            purged=tuple(purged), failed=tuple(errors), restorable=tuple(restorable), errors=errors
        )

    # -- running -----------------------------------------------------------------------------

    def run(self, record: AccountRecord, lease: Lease) -> AccountRecord | None:
        """Do what is due on *record*, claimed by *lease*'s owner; return the latest record, or
        None when another worker took the account over. The claim is dropped when this ends,
        with the last write when there is one."""
        work = _Work(self, lease)
        try:
            return self._drive(work.run(record))
        except ConcurrentUpdate:
            log.info("%s moved on under another worker; leaving it to them", record.account_id)
            return None
        finally:
            if not work.released:
                self.store.release(record.account_id, lease.owner)

    def _drive(self, work: _Steps) -> AccountRecord | None:
        """Run one account's work alone: each write its own transaction, each step in turn."""
        try:
            request = next(work)
            while True:
                if isinstance(request, _Run):
                    request = work.send(self._run_claimed_step(request))
                    continue
                c = request
                try:
                    new = self.journal.commit(
                        c.record, c.decision, now=c.now, lease=c.lease, release=c.release
                    )
                except Exception as exc:  # the work decides (a compare-and-set lost: decide again)
                    request = work.throw(exc)
                else:
                    request = work.send(new)
        except StopIteration as stop:
            result: AccountRecord | None = stop.value
            return result

    def run_batch(
        self, records: Sequence[AccountRecord], lease: Lease
    ) -> list[AccountRecord | LifecycleError | None]:
        """``run`` on many claimed accounts at once, with the same decisions, fence and steps:
        the writes that are ready together go in one store transaction (``Journal.commit_many``:
        the starts of every account of the batch in one, then their outcomes), each with its own
        compare-and-set, so an account a command changed meanwhile decides again alone while
        the others commit; the purgers of different accounts run ``concurrency`` at a time
        (each account's steps one after another, in order). Returns, per account, what ``run``
        returns, or the ``LifecycleError`` that stopped that account's work."""
        return [result for _, result in self._run_many([(record, lease) for record in records])]

    def _run_many(
        self,
        claimed: Sequence[tuple[AccountRecord, Lease]],
        more: Callable[[], Sequence[tuple[AccountRecord, Lease]]] | None = None,
    ) -> list[tuple[AccountRecord, AccountRecord | LifecycleError | None]]:
        """``run_batch`` of *claimed* accounts, each under its own claim; with *more*, whenever
        fewer purger calls are under way than ``concurrency`` allows and no write waits, the
        accounts *more* claims join (until it gives none). Each account with what ``run``
        returns for it, or the ``LifecycleError`` that stopped its work, in the order taken."""
        records: list[AccountRecord] = []
        results: list[AccountRecord | LifecycleError | None] = []
        works: list[_Work] = []
        steps: list[_Steps | None] = []
        ready: list[tuple[int, Commit]] = []
        pool = self.pools(self.concurrency)

        def advance(i: int, value: object = None, error: Exception | None = None) -> None:
            work = steps[i]
            assert work is not None
            try:
                request = work.send(value) if error is None else work.throw(error)
            except StopIteration as stop:
                done(i, stop.value)
                return
            except ConcurrentUpdate:
                log.info("%s moved on under another worker; leaving it to them", records[i].account_id)
                done(i, None)
                return
            except LifecycleError as exc:
                done(i, exc)
                return
            if isinstance(request, _Run):
                pool.submit(i, partial(self._run_claimed_step, request))
            else:
                ready.append((i, request))

        def done(i: int, result: AccountRecord | LifecycleError | None) -> None:
            steps[i] = None
            if not works[i].released:
                try:
                    self.store.release(records[i].account_id, works[i].lease.owner)
                except LifecycleError as exc:
                    result = exc
            results[i] = result

        def take(accounts: Sequence[tuple[AccountRecord, Lease]]) -> None:
            for record, lease in accounts:
                i = len(records)
                records.append(record)
                results.append(None)
                works.append(_Work(self, lease))
                steps.append(works[i].run(record))
                advance(i)

        try:
            take(claimed)
            while True:
                if more is not None and not ready and pool.pending < self.concurrency:
                    joining = more()
                    if joining:
                        take(joining)
                        continue
                    more = None
                if not (ready or pool.pending):
                    break
                if ready:
                    batch, ready = ready, []
                    try:
                        written = self.journal.commit_many([c for _, c in batch])
                    except Exception as exc:  # nothing of the batch was written: each account decides
                        for i, _ in batch:
                            advance(i, error=exc)
                        continue
                    for (i, _), new in zip(batch, written, strict=True):
                        if isinstance(new, Exception):
                            advance(i, error=new)
                        else:
                            advance(i, new)
                else:
                    for i, outcome in pool.collect():
                        advance(i, outcome)
        finally:
            pool.close()
        return list(zip(records, results, strict=True))

    def _reread(self, record: AccountRecord, retries: int) -> AccountRecord:
        """The account as stored now, after a command changed it under the runner;
        ``ConcurrentUpdate`` once it kept changing for too many tries."""
        if retries > _RETRIES:
            raise ConcurrentUpdate(account_id=record.account_id, expected_version=record.version)
        return self.store.get(record.account_id)

    def _run_claimed_step(self, request: _Run) -> StepOutcome | None:
        """``_run_step``, unless the claim has lapsed by the time the call would start (None)."""
        now = self._now()
        if now >= request.until:
            return None
        return self._run_step(request.record, request.key, now)

    @telemetry.traced_step  # OpenTelemetry (extra otel): a span, a count and a duration per step
    def _run_step(self, record: AccountRecord, key: str, now: datetime | None = None) -> StepOutcome:
        """Call the purger or hook of one started step, outside any store transaction; *now*:
        the moment the call starts (the clock's, read again when not given)."""
        if now is None:
            now = self._now()
        progress = record.purge.get(key)  # none yet: a first attempt (``PurgeProgress().attempts``)
        attempt = (0 if progress is None else progress.attempts) + 1
        if key.startswith(EFFECT_PREFIX):
            return self._run_effect(record, key, attempt, now)
        return self._run_category(record, key, attempt, now)

    def _run_category(self, record: AccountRecord, category: str, attempt: int, now: datetime) -> StepOutcome:
        purger = self.purgers[category]
        name = purger_name(purger)
        rules = self.rules_of(record) or self.rules
        context = PurgeContext(
            account_id=record.account_id,
            category=category,
            policy=rules.policy.label,
            attempt=attempt,
            cancelled_at=record.cancelled_at,
            now=now,
        )
        try:
            result = purger.purge(record.account_id, context)
            if not isinstance(result, PurgeResult):
                raise TypeError(f"purger {name} returned {type(result).__name__}, not a PurgeResult")
            items, detail = result.items, result.detail
            problem = purge_result_problem(items, detail)
            if problem is not None:
                raise ValueError(f"purger {name} returned an invalid result: {problem}")
        except Exception as exc:  # a host purger may fail in any way; record it, retry later
            error = _describe(exc)
            log.warning("purge of %s/%s failed (attempt %d): %s", record.account_id, category, attempt, error)
            return StepOutcome(category, attempt, self._now(), name, error=error)
        return StepOutcome(category, attempt, self._now(), name, items=items, detail=detail)

    def _run_effect(self, record: AccountRecord, key: str, attempt: int, now: datetime) -> StepOutcome:
        effect = key.removeprefix(EFFECT_PREFIX)
        hook = self.effects.get(effect)
        name = None if hook is None else purger_name(hook)
        try:
            if hook is None:
                raise LookupError(
                    f"no hook for effect {effect!r} in this process; "
                    f"pass effects={{{effect!r}: hook}} to every Lifecycle that sweeps this store"
                )
            hook(
                record.account_id,
                EffectContext(
                    account_id=record.account_id,
                    effect=effect,
                    policy=(self.rules_of(record) or self.rules).policy.label,
                    attempt=attempt,
                    cancelled_at=record.cancelled_at,
                    now=now,
                    owner=record.owner,
                    members=record.members,
                ),
            )
        except Exception as exc:  # a host hook may fail in any way; record it, retry later
            error = _describe(exc)
            log.warning("effect %s on %s failed (attempt %d): %s", effect, record.account_id, attempt, error)
            return StepOutcome(key, attempt, self._now(), name, error=error)
        return StepOutcome(key, attempt, self._now(), name or "")

    def _now(self) -> datetime:
        return require_aware(self.clock.now(), "clock.now()")


class _Work:
    """One runner's work on one claimed account: the claim as last renewed, and whether the
    last write dropped it."""

    def __init__(self, runner: PurgeRunner, lease: Lease) -> None:
        self.runner = runner
        self.rules = runner.rules  # the rules of the account's pinned version, once run
        self.lease = lease
        self.released = False
        self.tried: frozenset[str] = frozenset()  # steps run in this run: not again before the next

    def run(self, record: AccountRecord) -> _Steps:
        """The work on *record*, as the writes and purger calls it asks the runner for (each
        ``yield``, answered with the new record or the step's outcome, or raising the write's
        error); it ends with the latest record, or None when the claim lapsed or another runner
        took over."""
        runner, owner = self.runner, self.lease.owner
        retries = 0
        while not self.released:
            pinned = runner.rules_of(record)  # again after every re-read: a migration may move it
            if pinned is None:
                # Never run one policy's purgers on another policy's account (a store shared by
                # two policies); the claim is released and the account left to its own lifecycle.
                log.error(
                    "%s follows policy %r, not %r: its purge work is left to that policy's lifecycle",
                    record.account_id,
                    record.policy_label,
                    runner.rules.policy.name,
                )
                return record
            self.rules = rules = pinned
            now = runner._now()
            if now >= self.lease.until:
                return None  # the claim lapsed: whoever holds it now goes on
            decision = start_work(rules, record, now, owner, self.tried)
            if decision is None:
                reminded = remind(record, now)
                if reminded is not None:
                    record = yield from self._commit(record, reminded, now)
                break
            if decision.work is not None and decision.work is record.erasure:
                erasure = decision.work  # started with the write that holds the claim (confirm)
            else:
                try:
                    record = yield from self._commit(record, decision, now)
                except ConcurrentUpdate:
                    retries += 1
                    record = runner._reread(record, retries)
                    continue
                if decision.work is None:
                    continue  # moved on: the next phase may be due already
                erasure = decision.work
            for key in erasure.steps:
                if runner._now() >= self.lease.until:
                    return None  # past the claim: the steps left wait for the next claim
                outcome = yield _Run(record, key, self.lease.until)
                if outcome is None:
                    return None  # the claim lapsed while the steps before it ran
                self.tried |= {key}
                finished = yield from self._finish(record, outcome)
                if finished is None:
                    return None  # another runner took the erasure over
                record = finished
        return record

    def _finish(self, record: AccountRecord, outcome: StepOutcome) -> _Steps:
        """Commit the outcome of one of this owner's steps, deciding again on the current record
        when a command changed it meanwhile; None when another runner took the erasure over."""
        retries = 0
        while True:
            now = self.runner._now()
            self.rules = self.runner.rules_of(record) or self.rules
            try:
                decision = finish_work(self.rules, record, (outcome,), now, self.lease.owner)
            except LifecycleError:
                return None
            try:
                return (yield from self._commit(record, decision, now))
            except ConcurrentUpdate:
                retries += 1
                record = self.runner._reread(record, retries)

    def _commit(
        self, record: AccountRecord, decision: Decision, now: datetime
    ) -> Generator[_Request, Any, AccountRecord]:
        """Write *decision*, renewing the claim, or dropping it when nothing more is due now."""
        after = apply(record, decision)
        more = decision.work is not None or (
            start_work(self.rules, after, now, self.lease.owner, self.tried) is not None
        )
        if more or remind(after, now) is not None:
            lease = Lease(self.lease.owner, now + self.runner.lease_duration)
            new: AccountRecord = yield Commit(record, decision, now, lease=lease, after=after)
            self.lease = lease
            return new
        new = yield Commit(record, decision, now, release=self.lease.owner, after=after)
        self.released = True
        return new


if TYPE_CHECKING:
    from account_lifecycle.receipts import ErasedCategory as ErasedCategory
    from account_lifecycle.receipts import ErasureReceipt as ErasureReceipt
    from account_lifecycle.receipts import RetainedCategory as RetainedCategory


def __getattr__(name: str) -> Any:
    if name in ("ErasedCategory", "ErasureReceipt", "RetainedCategory"):
        from account_lifecycle import receipts

        return getattr(receipts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
