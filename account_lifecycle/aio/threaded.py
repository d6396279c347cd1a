"""``ThreadedStore``: any synchronous store, confined to one thread of its own, as an async store."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import queue
import threading
import weakref
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar

from account_lifecycle.audit import AuditEvent
from account_lifecycle.errors import StoreError
from account_lifecycle.model import AccountRecord
from account_lifecycle.ports import AccountStore, save_many
from account_lifecycle.values import CorruptRecord, Lease, Write

__all__ = ["ThreadedStore"]

T = TypeVar("T")

_Job = tuple["asyncio.Future[Any]", Callable[[], Any]]
#: Tells the store's thread to end.
_STOP: Final = None


def _serve(jobs: queue.SimpleQueue[_Job | None]) -> None:
    """The store's thread: run each job's call and hand its outcome to the job's loop."""
    while True:
        job = jobs.get()
        if job is _STOP:
            return
        future, call = job
        del job
        if future.cancelled():  # its task was cancelled before the call started: not made
            continue
        try:
            outcome: tuple[bool, Any] = (True, call())
        except BaseException as exc:  # the awaiting task raises it
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody awaits the call any more
            future.get_loop().call_soon_threadsafe(_settle, future, *outcome)
        del future, call, outcome


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class ThreadedStore:
    """An ``AsyncAccountStore`` made of a synchronous *store*: every call of it runs on one
    dedicated thread, one call at a time, while the event loop goes on with other tasks.

    Right for ``SQLiteStore`` (its file is written by one thread, so a writer never waits for
    another inside the process) and for a host's own synchronous store. ``MemoryStore`` works
    too, though its calls never block the loop long enough to need a thread.

    Every public method of *store* is available as a coroutine method of the same name
    (``save_many``, the outbox and query methods, ``status``, ``close``...). A call whose
    awaiting task is cancelled before the thread starts it is not made; one already running
    finishes on the thread, and a write it began is committed or not as a whole, as the store
    guarantees. ``close()`` closes *store* (if it has ``close``) and ends the thread (which also
    ends when the ``ThreadedStore`` is collected).
    """

    def __init__(self, store: AccountStore, *, name: str = "account_lifecycle-store") -> None:
        if not callable(getattr(store, "get", None)) or not callable(getattr(store, "save", None)):
            raise TypeError(f"ThreadedStore needs a synchronous AccountStore, got {type(store).__name__}")
        if asyncio.iscoroutinefunction(store.get):
            raise TypeError(
                f"{type(store).__name__} is already asynchronous: pass it to AsyncLifecycle as it is"
            )
        #: The synchronous store every call runs on.
        self.store = store
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._starting = threading.Lock()

    def __repr__(self) -> str:
        return f"ThreadedStore({self.store!r})"

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on the store's thread, in the caller's context."""
        if self._closed:
            raise StoreError(f"{self!r} is closed")
        if self._thread is None:
            self._start()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put((future, functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)))
        return await future

    def _start(self) -> None:
        with self._starting:
            if self._thread is None:
                thread = threading.Thread(target=_serve, args=(self._jobs,), name=self._name, daemon=True)
                thread.start()
                weakref.finalize(self, self._jobs.put, _STOP)  # collected unclosed: the thread ends
                self._thread = thread

    def __getattr__(self, name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        """Any other public method of the store, as a coroutine method run on its thread."""
        if name.startswith("_"):
            raise AttributeError(name)
        method = getattr(self.store, name)  # AttributeError when the store has no such method
        if not callable(method):
            raise AttributeError(f"{type(self.store).__name__}.{name} is not a method")

        @functools.wraps(method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self._call(method, *args, **kwargs)

        return call

    async def create(
        self,
        record: AccountRecord,
        events: Sequence[AuditEvent],
        *,
        now: datetime | None = None,
        aliases: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """``store.create`` on the store's thread."""
        if aliases:
            await self._call(self.store.create, record, events, now=now, aliases=aliases)
        else:  # a host store written before aliases existed need not take them
            await self._call(self.store.create, record, events, now=now)

    async def get(self, account_id: str) -> AccountRecord:
        """``store.get`` on the store's thread."""
        return await self._call(self.store.get, account_id)

    async def save(
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
        """``store.save`` on the store's thread."""
        options: dict[str, Any] = {"erase_sealed": True} if erase_sealed else {}
        await self._call(
            self.store.save,
            record,
            expected_version=expected_version,
            events=events,
            lease=lease,
            release=release,
            now=now,
            **options,
        )

    async def save_many(self, writes: Sequence[Write], *, now: datetime) -> list[Exception | None]:
        """``store.save_many`` on the store's thread, or one ``save`` per write for a store
        without it (``ports.save_many``)."""
        return await self._call(save_many, self.store, writes, now=now)

    async def history(self, account_id: str) -> tuple[AuditEvent, ...]:
        """``store.history`` on the store's thread."""
        return await self._call(self.store.history, account_id)

    async def account_ids(self) -> tuple[str, ...]:
        """``store.account_ids`` on the store's thread."""
        return await self._call(self.store.account_ids)

    async def claim_due(
        self, *, now: datetime, lease: Lease, limit: int
    ) -> Sequence[AccountRecord | CorruptRecord]:
        """``store.claim_due`` on the store's thread."""
        return await self._call(self.store.claim_due, now=now, lease=lease, limit=limit)

    async def release(self, account_id: str, owner: str) -> None:
        """``store.release`` on the store's thread."""
        await self._call(self.store.release, account_id, owner)

    async def close(self) -> None:
        """Close the store (on its thread, if it has ``close``), then end the thread."""
        close = getattr(self.store, "close", None)
        try:
            if callable(close) and not self._closed:
                await self._call(close)
        finally:
            self._closed = True
            self._jobs.put(_STOP)
