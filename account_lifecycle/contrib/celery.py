"""Celery tasks for purging: periodic sweeps, and a fan-out that spreads due accounts over
workers. Needs the ``celery`` extra.

::

    from celery import Celery
    from account_lifecycle.contrib.celery import beat_schedule, register_tasks

    app = Celery("accounts", broker="redis://127.0.0.1:6379/0")
    tasks = register_tasks(app, "myapp.accounts:make_lifecycle")
    app.conf.beat_schedule = beat_schedule(every=timedelta(minutes=5))

Five tasks are registered, named ``<prefix>.<task>`` (prefix ``account_lifecycle``):

``sweep(limit=None)``
    ``Lifecycle.sweep`` in the worker: claims due accounts batch by batch and runs their
    work there, then relays the outbox. Returns the report as ``{"purged": [...], "failed":
    [...], "restorable": [...], "errors": {...}, "relayed": n}``.
``dispatch(limit=None, chunk=1)``
    Claims one batch of due accounts (``limit``, default the lifecycle's ``sweep_batch``) and
    enqueues one ``purge_account`` task per account, handing over the claim, so the batch is
    worked on by many workers at once; with ``chunk=n`` > 1, one ``purge_accounts`` task per
    *n* accounts instead. Returns ``{"dispatched": [...], "tasks": [...]}``.
``purge_account(account_id, lease_owner, lease_until)``
    Runs the due work of one account under the claim ``dispatch`` took. If the claim lapsed
    before the task ran (a long queue), it does nothing: another sweeper may hold the account
    by then, and a later sweep or dispatch takes it up.
``purge_accounts(account_ids, lease_owner, lease_until)``
    ``purge_account`` for several accounts of one claim at once, as a sweep runs a batch: the
    writes ready together in one transaction, the purgers of ``sweep_concurrency`` accounts at
    once, each account's steps in order. One account's work costs several commits of its own
    in ``purge_account``; here the chunk shares them.
``relay(limit=None)``
    ``Lifecycle.relay`` in the worker: feeds the durable listeners (``outbox_listeners``) from
    the store's outbox, at least once and in order per account (``sweep`` relays too, after its
    purges). Returns ``{"delivered": {listener: n}, "dead_lettered": {...}, "retrying":
    {listener: error}, "busy": [...]}``. Schedule it more often than the sweep
    (``beat_schedule(relay_every=...)``) when listeners send e-mails that should not wait.

The lifecycle is built by the host's factory (a ``"module:function"`` path, or a callable)
once per worker process, on first use, so a prefork worker never shares a database
connection across ``fork()``. Every task is idempotent (claims guard the accounts), so
they are acknowledged late: a task lost with its worker is delivered again.
"""

from __future__ import annotations

import importlib
import os
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

import attrs

from account_lifecycle.errors import LifecycleError
from account_lifecycle.lifecycle import Lifecycle
from account_lifecycle.model import AccountRecord, PurgeStatus
from account_lifecycle.ports import Lease

__all__ = ["DEFAULT_PREFIX", "LifecycleTasks", "beat_schedule", "register_tasks", "resolve_factory"]

DEFAULT_PREFIX: Final = "account_lifecycle"

LifecycleFactory = Callable[[], Lifecycle]


def resolve_factory(factory: str | LifecycleFactory) -> LifecycleFactory:
    """A callable returning a ``Lifecycle``, from itself or from ``"package.module:function"``."""
    if callable(factory):
        return factory
    if not isinstance(factory, str):
        raise TypeError(f"factory must be a callable or a 'module:function' string, got {factory!r}")
    module_name, sep, attribute = factory.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"factory must look like 'package.module:function', got {factory!r}")
    target: object = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{factory!r} is {target!r}, not a callable returning a Lifecycle")
    return target  # what it returns is checked when it is called


class _PerProcess:
    """Builds the lifecycle once per process (again in a forked child), thread-safely."""

    def __init__(self, factory: LifecycleFactory) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._lifecycle: Lifecycle | None = None

    def get(self) -> Lifecycle:
        with self._lock:
            if self._lifecycle is None or self._pid != os.getpid():
                built = self._factory()
                if not isinstance(built, Lifecycle):
                    raise TypeError(f"the lifecycle factory returned {type(built).__name__}, not a Lifecycle")
                self._lifecycle, self._pid = built, os.getpid()
            return self._lifecycle


def _check_chunk(chunk: object) -> int:
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a whole number >= 1, got {chunk!r}")
    return chunk


def _outcome(account_id: str, record: AccountRecord | None) -> dict[str, Any]:
    if record is None:
        return {"account_id": account_id, "state": None, "failed": [], "skipped": True}
    failed = sorted(k for k, p in record.purge.items() if p.status is PurgeStatus.FAILED)
    return {"account_id": account_id, "state": record.state.value, "failed": failed, "skipped": False}


def _check_limit(limit: object) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a whole number >= 0 or None, got {limit!r}")
    return limit


@attrs.frozen
class LifecycleTasks:
    """The registered Celery tasks (``task.delay(...)``, ``task.apply_async(...)``)."""

    sweep: Any
    dispatch: Any
    purge_account: Any
    prefix: str
    relay: Any = None
    purge_accounts: Any = None


def register_tasks(
    app: Any,
    factory: str | LifecycleFactory,
    *,
    prefix: str = DEFAULT_PREFIX,
) -> LifecycleTasks:
    """Register the ``sweep``, ``dispatch``, ``purge_account``, ``purge_accounts`` and ``relay``
    tasks on the host's Celery *app*, each building its lifecycle with *factory*. Use one
    *prefix* per policy when a host runs several."""
    lifecycles = _PerProcess(resolve_factory(factory))
    options: dict[str, Any] = {"acks_late": True, "bind": False}

    @app.task(name=f"{prefix}.sweep", **options)  # type: ignore[untyped-decorator]
    def sweep(limit: int | None = None) -> dict[str, Any]:
        report = lifecycles.get().sweep(limit=_check_limit(limit))
        return {
            "purged": list(report.purged),
            "failed": list(report.failed),
            "restorable": list(report.restorable),
            "errors": dict(report.errors),
            "relayed": report.relayed,
        }

    @app.task(name=f"{prefix}.relay", **options)  # type: ignore[untyped-decorator]
    def relay(limit: int | None = None) -> dict[str, Any]:
        report = lifecycles.get().relay(limit=_check_limit(limit))
        return {
            "delivered": dict(report.delivered),
            "dead_lettered": dict(report.dead_lettered),
            "retrying": dict(report.retrying),
            "busy": list(report.busy),
        }

    @app.task(name=f"{prefix}.purge_account", **options)  # type: ignore[untyped-decorator]
    def purge_account(account_id: str, lease_owner: str, lease_until: str) -> dict[str, Any]:
        lease = Lease(lease_owner, datetime.fromisoformat(lease_until))
        return _outcome(account_id, lifecycles.get().run_claimed(account_id, lease))

    @app.task(name=f"{prefix}.purge_accounts", **options)  # type: ignore[untyped-decorator]
    def purge_accounts(account_ids: list[str], lease_owner: str, lease_until: str) -> list[dict[str, Any]]:
        lease = Lease(lease_owner, datetime.fromisoformat(lease_until))
        lifecycle = lifecycles.get()
        runner = lifecycle.runner
        if lifecycle.clock.now() >= lease.until:  # the claim lapsed in the queue: someone else may hold them
            return [_outcome(a, None) for a in account_ids]
        outcomes: dict[str, dict[str, Any]] = {}
        records: list[AccountRecord] = []
        for account_id in account_ids:
            try:
                records.append(lifecycle.store.get(account_id))
            except LifecycleError as exc:  # as purge_account would fail: the claim lapses, a sweep reports it
                outcomes[account_id] = {"account_id": account_id, "state": None, "error": str(exc)}
        for record, result in zip(records, runner.run_batch(records, lease), strict=True):
            if isinstance(result, LifecycleError):
                outcomes[record.account_id] = {
                    "account_id": record.account_id,
                    "state": None,
                    "error": str(result),
                }
            else:
                outcomes[record.account_id] = _outcome(record.account_id, result)
        return [outcomes[a] for a in account_ids]

    @app.task(name=f"{prefix}.dispatch", **options)  # type: ignore[untyped-decorator]
    def dispatch(limit: int | None = None, chunk: int = 1) -> dict[str, list[str]]:
        lifecycle = lifecycles.get()
        size = _check_limit(limit)
        per_task = _check_chunk(chunk)
        owner = f"celery:{uuid.uuid4().hex}"
        claim = lifecycle.claim_due(size, owner=owner)
        claimed = claim.account_ids
        dispatched: list[str] = []
        task_ids: list[str] = []
        lease = {"lease_owner": owner, "lease_until": claim.lease.until.isoformat()}
        try:
            for start in range(0, len(claimed), per_task):
                part = list(claimed[start : start + per_task])
                task, kwargs = (
                    (purge_account, {"account_id": part[0]})
                    if per_task == 1
                    else (purge_accounts, {"account_ids": part})
                )
                # A message older than the claim is pointless: drop it unread.
                result = task.apply_async(kwargs={**kwargs, **lease}, expires=lifecycle.lease.total_seconds())
                dispatched += part
                task_ids.append(str(result.id))
        finally:
            for account_id in claimed[len(dispatched) :]:  # not handed over (the broker failed): free them
                lifecycle.store.release(account_id, owner)
        return {
            "dispatched": dispatched,
            "tasks": task_ids,
            "corrupt": [bad.account_id for bad in claim.corrupt],
        }

    return LifecycleTasks(
        sweep=sweep,
        dispatch=dispatch,
        purge_account=purge_account,
        prefix=prefix,
        relay=relay,
        purge_accounts=purge_accounts,
    )


def beat_schedule(
    every: timedelta | float = timedelta(minutes=5),
    *,
    prefix: str = DEFAULT_PREFIX,
    fan_out: bool = False,
    limit: int | None = None,
    relay_every: timedelta | float | None = None,
    chunk: int = 1,
) -> dict[str, dict[str, Any]]:
    """A ``beat_schedule`` entry running the sweep every *every* (a timedelta or seconds):
    ``sweep`` in one worker, or with ``fan_out=True`` ``dispatch`` to spread each batch over
    the workers (*chunk* accounts a task); with *relay_every*, a second entry runs ``relay``
    that often. Merge it into ``app.conf.beat_schedule``."""
    seconds = every.total_seconds() if isinstance(every, timedelta) else float(every)
    if not seconds > 0:
        raise ValueError(f"every must be a positive interval, got {every!r}")
    _check_limit(limit)
    if _check_chunk(chunk) != 1 and not fan_out:
        raise ValueError("chunk applies to dispatch: pass fan_out=True with it")
    kwargs: dict[str, Any] = {"limit": limit} if chunk == 1 else {"limit": limit, "chunk": chunk}
    schedule: dict[str, dict[str, Any]] = {
        f"{prefix}.periodic-sweep": {
            "task": f"{prefix}.dispatch" if fan_out else f"{prefix}.sweep",
            "schedule": seconds,
            "kwargs": kwargs,
            # A sweep that waited a whole interval in the queue is superseded by the next one.
            "options": {"expires": seconds},
        }
    }
    if relay_every is not None:
        relay_seconds = (
            relay_every.total_seconds() if isinstance(relay_every, timedelta) else float(relay_every)
        )
        if not relay_seconds > 0:
            raise ValueError(f"relay_every must be a positive interval, got {relay_every!r}")
        schedule[f"{prefix}.periodic-relay"] = {
            "task": f"{prefix}.relay",
            "schedule": relay_seconds,
            "kwargs": {},
            "options": {"expires": relay_seconds},
        }
    return schedule
