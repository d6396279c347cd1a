"""``AsyncLifecycle``: the asyncio front end of ``Lifecycle``.

It holds a ``Lifecycle`` and runs each of its commands in a greenlet (``_bridge``): the same
synchronous code decides, writes and purges, and wherever it would wait (a store call, an
async purger, check, listener or effect hook) the calling task awaits on the loop instead.
Nothing is decided here: the commands, their errors and guarantees are ``Lifecycle``'s.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from account_lifecycle._bridge import await_only, run_in_greenlet
from account_lifecycle.decide import StepOutcome
from account_lifecycle.identity_keys import IdentityKeys
from account_lifecycle.lifecycle import Lifecycle
from account_lifecycle.policy import Policy
from account_lifecycle.ports import AccountStore, Clock, EffectHook, Listener, PrerequisiteCheck, Purger
from account_lifecycle.purge import SerialPool, StepPool, purger_name
from account_lifecycle.registry import PolicyRegistry
from account_lifecycle.values import PurgeContext, PurgeResult

from .ports import AsyncAccountStore, AsyncEffectHook, AsyncListener, AsyncPrerequisiteCheck, AsyncPurger

__all__ = ["AsyncLifecycle", "TaskPool"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

#: The methods every store has (``AccountStore``): an async store has them as coroutines.
_STORE_METHODS = ("create", "get", "save", "history", "account_ids", "claim_due", "release")


def _settled(value: T | Coroutine[Any, Any, T]) -> T:
    """*value*, awaited on the calling task if it is awaitable (an async host callable)."""
    if inspect.isawaitable(value):
        return await_only(cast("Coroutine[Any, Any, T]", value))
    return value


class _AwaitingStore:
    """The synchronous face of an async store, for ``Lifecycle`` running in a greenlet: each
    method calls the async one and awaits it on the calling task. Every method of the async
    store is there, and none other (``save_many``, the outbox methods: the same as the store's)."""

    def __init__(self, store: AsyncAccountStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            return _settled(attribute(*args, **kwargs))

        call.__name__ = name
        self.__dict__[name] = call  # found directly from now on
        return call

    def __repr__(self) -> str:
        return repr(self._store)


class _AwaitingPurger:
    """A purger whose ``purge`` may be a coroutine, called as a synchronous one."""

    def __init__(self, purger: Purger | AsyncPurger) -> None:
        self._purger = purger

    @property
    def category(self) -> str:
        return self._purger.category

    @property
    def name(self) -> str:
        return purger_name(self._purger)

    def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:
        return _settled(self._purger.purge(account_id, context))

    def __repr__(self) -> str:
        return repr(self._purger)


class _Awaiting:
    """A host callable (check, listener, effect hook) that may be a coroutine function,
    called as a synchronous one; its result is awaited when it is awaitable."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._fn = fn
        self.name = purger_name(fn)

    def __call__(self, *args: Any) -> Any:
        return _settled(self._fn(*args))

    def __repr__(self) -> str:
        return repr(self._fn)


class TaskPool:
    """The purge runner's ``StepPool`` for asyncio: each purger call of a sweep's batch runs in
    a task of its own (in a greenlet of that task), up to *concurrency* at once; ``collect``
    awaits the first to end. Used by ``AsyncLifecycle(..., sweep_concurrency=K)`` for K > 1."""

    def __init__(self, concurrency: int) -> None:
        self._limit = concurrency
        self._running: dict[asyncio.Task[StepOutcome | None], int] = {}
        self._waiting: deque[tuple[int, Callable[[], StepOutcome | None]]] = deque()

    @property
    def pending(self) -> int:
        """Calls submitted and not yet collected."""
        return len(self._running) + len(self._waiting)

    def submit(self, token: int, task: Callable[[], StepOutcome | None]) -> None:
        """Start *task* in a task of its own, or queue it while *concurrency* run."""
        self._waiting.append((token, task))
        self._start()

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting and len(self._running) < self._limit:
            token, task = self._waiting.popleft()
            self._running[loop.create_task(run_in_greenlet(task))] = token

    def collect(self) -> list[tuple[int, StepOutcome | None]]:
        """Await until at least one call ended; return every ended one with its outcome (an
        exception a call raised leaves from here)."""
        done, _ = await_only(asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED))
        ended = [(self._running.pop(task), task) for task in done]
        self._start()
        return [(token, task.result()) for token, task in sorted(ended, key=lambda e: e[0])]

    def close(self) -> None:
        """Drop the queued calls and cancel the running ones (only an error or a cancelled
        sweep leaves calls running), and await their end."""
        self._waiting.clear()
        running, self._running = list(self._running), {}
        for task in running:
            task.cancel()
        if running:
            await_only(asyncio.gather(*running, return_exceptions=True))


def _pools(concurrency: int) -> StepPool:
    """One call at a time in the sweep's own greenlet for 1, tasks beyond."""
    return SerialPool() if concurrency == 1 else TaskPool(concurrency)


def _awaitable(
    method: Callable[Concatenate[Lifecycle, P], R],
) -> Callable[Concatenate[AsyncLifecycle, P], Coroutine[Any, Any, R]]:
    """The coroutine method running ``Lifecycle``'s *method* (same parameters, result, errors
    and docstring) in a greenlet of the awaiting task."""
    name = method.__name__

    @functools.wraps(method)
    async def call(self: AsyncLifecycle, /, *args: P.args, **kwargs: P.kwargs) -> R:
        bound: Callable[P, R] = getattr(self._lifecycle, name)
        return await run_in_greenlet(bound, *args, **kwargs)

    return call


def _check_async_store(store: object) -> None:
    """``TypeError`` unless every method of ``AccountStore`` is a coroutine method of *store*."""
    missing = [name for name in _STORE_METHODS if not inspect.iscoroutinefunction(getattr(store, name, None))]
    if missing:
        raise TypeError(
            f"store must be an async store (AsyncAccountStore), got {type(store).__name__}, whose "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not async; wrap a "
            "synchronous store in ThreadedStore(store)"
        )


class AsyncLifecycle:
    """``Lifecycle`` for asyncio: the same constructor arguments, the same commands and queries
    as coroutine methods, the same errors and guarantees (compare-and-set, fenced erasure,
    idempotency keys, the audit chain), decided by the same code.

    *store* is an async store (``AsyncAccountStore``): ``ThreadedStore(SQLiteStore(...))``,
    ``ThreadedStore`` around any synchronous store, or ``AsyncPostgresStore``. Purgers, checks,
    listeners and effect hooks may be coroutine functions (``async def purge``, ``async def
    check``...) or plain ones; a plain one runs on the loop's thread, so keep those short.

    ``sweep`` with ``sweep_concurrency=K`` runs the purger calls of up to K accounts at once,
    as asyncio tasks; each account's steps still run one after another, each after its start
    is committed. Needs the ``greenlet`` package (extra ``async``).
    """

    def __init__(
        self,
        policy: Policy | PolicyRegistry,
        *,
        store: AsyncAccountStore,
        purgers: Iterable[Purger | AsyncPurger] = (),
        prerequisites: Mapping[str, PrerequisiteCheck | AsyncPrerequisiteCheck] | None = None,
        clock: Clock | None = None,
        listeners: Iterable[Listener | AsyncListener] = (),
        lease: timedelta = timedelta(minutes=5),
        retry_backoff: timedelta = timedelta(minutes=1),
        max_retry_backoff: timedelta = timedelta(hours=6),
        sweep_batch: int = 100,
        effects: Mapping[str, EffectHook | AsyncEffectHook] | None = None,
        sweep_concurrency: int = 1,
        identity_keys: IdentityKeys | None = None,
        outbox_listeners: Mapping[str, Listener | AsyncListener] | None = None,
        outbox_max_attempts: int = 8,
        outbox_advance_every: int = 1,
    ) -> None:
        _check_async_store(store)
        #: The async store the commands read and write.
        self.store = store
        checks: Mapping[str, Any] | None = prerequisites
        if isinstance(prerequisites, Mapping):
            checks = {k: _Awaiting(v) if callable(v) else v for k, v in prerequisites.items()}
        hooks: Mapping[str, Any] | None = effects
        if isinstance(effects, Mapping):
            hooks = {k: _Awaiting(v) if callable(v) else v for k, v in effects.items()}
        durable: Mapping[str, Any] | None = outbox_listeners
        if isinstance(outbox_listeners, Mapping):
            durable = {k: _Awaiting(v) if callable(v) else v for k, v in outbox_listeners.items()}
        sync_store = getattr(store, "_greenlet_store", None)  # AsyncPostgresStore: no second hop
        self._lifecycle = Lifecycle(
            policy,
            store=cast(AccountStore, sync_store if sync_store is not None else _AwaitingStore(store)),
            purgers=[_AwaitingPurger(p) for p in purgers],
            prerequisites=cast("Mapping[str, PrerequisiteCheck] | None", checks),
            clock=clock,
            listeners=[cast(Listener, _Awaiting(listener)) for listener in listeners],
            lease=lease,
            retry_backoff=retry_backoff,
            max_retry_backoff=max_retry_backoff,
            sweep_batch=sweep_batch,
            effects=cast("Mapping[str, EffectHook] | None", hooks),
            sweep_concurrency=sweep_concurrency,
            identity_keys=identity_keys,
            outbox_listeners=cast("Mapping[str, Listener] | None", durable),
            outbox_max_attempts=outbox_max_attempts,
            outbox_advance_every=outbox_advance_every,
        )
        self._lifecycle.runner.pools = _pools  # the runner's seam: tasks instead of threads
        #: The policy new accounts follow (the registry's current version).
        self.policy = self._lifecycle.policy
        #: Where the lifecycle reads the time.
        self.clock = self._lifecycle.clock

    def __repr__(self) -> str:
        return f"AsyncLifecycle({self.policy.label}, store={self.store!r})"

    def using(
        self, store: AsyncAccountStore, *, listeners: Iterable[Listener | AsyncListener] = ()
    ) -> AsyncLifecycle:
        """This lifecycle (policy, purgers, checks, effects, clock, keys, timings) on the async
        *store*: most often a view writing inside the host's transaction,
        ``alc.using(async_store.bound(async_session))``, so that a command commits or rolls back
        with the host's own writes. No I/O (a plain method, not a coroutine): see
        ``Lifecycle.using``, whose rules it keeps, in-process *listeners* included."""
        _check_async_store(store)
        other = copy.copy(self)
        other.store = store
        sync_store = getattr(store, "_greenlet_store", None)
        other._lifecycle = self._lifecycle.using(
            cast(AccountStore, sync_store if sync_store is not None else _AwaitingStore(store)),
            listeners=[cast(Listener, _Awaiting(listener)) for listener in listeners],
        )
        return other

    # One line per public method of Lifecycle (tests/async/test_counterparts.py checks that
    # none is missing and that the parameters are the same).
    open = _awaitable(Lifecycle.open)
    request_cancellation = _awaitable(Lifecycle.request_cancellation)
    submit_survey = _awaitable(Lifecycle.submit_survey)
    skip_survey = _awaitable(Lifecycle.skip_survey)
    withdraw = _awaitable(Lifecycle.withdraw)
    confirm = _awaitable(Lifecycle.confirm)
    restore = _awaitable(Lifecycle.restore)
    transfer_ownership = _awaitable(Lifecycle.transfer_ownership)
    cancel_service = _awaitable(Lifecycle.cancel_service)
    place_hold = _awaitable(Lifecycle.place_hold)
    release_hold = _awaitable(Lifecycle.release_hold)
    add_member = _awaitable(Lifecycle.add_member)
    remove_member = _awaitable(Lifecycle.remove_member)
    change_identity = _awaitable(Lifecycle.change_identity)
    sweep = _awaitable(Lifecycle.sweep)
    relay = _awaitable(Lifecycle.relay)
    outbox_status = _awaitable(Lifecycle.outbox_status)
    redeliver = _awaitable(Lifecycle.redeliver)
    dismiss = _awaitable(Lifecycle.dismiss)
    claim_due = _awaitable(Lifecycle.claim_due)
    run_claimed = _awaitable(Lifecycle.run_claimed)
    get = _awaitable(Lifecycle.get)
    accounts = _awaitable(Lifecycle.accounts)
    preview = _awaitable(Lifecycle.preview)
    allowed_actions = _awaitable(Lifecycle.allowed_actions)
    history = _awaitable(Lifecycle.history)
    verify_history = _awaitable(Lifecycle.verify_history)
    receipt = _awaitable(Lifecycle.receipt)
    holds_identity = _awaitable(Lifecycle.holds_identity)
    rekey_identities = _awaitable(Lifecycle.rekey_identities)
    plan_migration = _awaitable(Lifecycle.plan_migration)
    migrate_accounts = _awaitable(Lifecycle.migrate_accounts)
