"""Run synchronous code under asyncio, awaiting from inside it: the greenlet bridge.

``await run_in_greenlet(fn, *args)`` calls the synchronous *fn* in a child greenlet of the
awaiting task. Inside it, ``await_only(awaitable)`` switches back to the task, which awaits
the awaitable on the event loop and switches back in with its result (or throws its error
in). So one body of synchronous code (the decision core, the write path, the purge runner,
``PostgresStore``'s SQL) runs unchanged for a synchronous and an asynchronous front end,
and the loop runs other tasks wherever that code waits. SQLAlchemy's asyncio extension
works the same way (``greenlet_spawn`` / ``await_only``).

Needs the ``greenlet`` package (extra ``async``).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import greenlet

__all__ = ["BridgeError", "await_only", "in_greenlet", "run_in_greenlet"]

T = TypeVar("T")


class BridgeError(RuntimeError):
    """``await_only`` was called outside ``run_in_greenlet`` (synchronous code built for the
    asyncio front end was called directly, or from a thread): there is no task to await in."""


class _Done:
    """What a worker hands back when its function ended: the result, or the error it raised."""

    __slots__ = ("error", "value")

    def __init__(self) -> None:
        self.value: Any = None
        self.error: BaseException | None = None


class _Bridged(greenlet.greenlet):  # type: ignore[misc]  # greenlet is untyped
    """A greenlet that runs synchronous functions for the task that switches into it, one after
    another: kept idle between calls, since starting a fresh greenlet costs much more than
    switching into a waiting one."""

    def __init__(self) -> None:
        super().__init__(self._serve)

    def _serve(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        while True:
            done = _Done()
            try:
                done.value = fn(*args, **kwargs)
            except greenlet.GreenletExit:
                raise  # the worker itself is being collected
            except BaseException as exc:  # handed to the awaiting task, which raises it
                done.error = exc
            fn = args = kwargs = None  # type: ignore[assignment]  # hold nothing while idle
            fn, args, kwargs = self.parent.switch(done)


#: Idle workers, per thread (a greenlet only ever runs in the thread that made it).
_idle = threading.local()
_MAX_IDLE = 64


def in_greenlet() -> bool:
    """Whether the caller runs inside ``run_in_greenlet`` (so ``await_only`` may be called)."""
    return isinstance(greenlet.getcurrent(), _Bridged)


def await_only(awaitable: Awaitable[T]) -> T:
    """Await *awaitable* from synchronous code running under ``run_in_greenlet``: the task
    awaits it on the loop and this returns its result (or raises its error)."""
    current = greenlet.getcurrent()
    if not isinstance(current, _Bridged):
        close = getattr(awaitable, "close", None)
        if callable(close):  # a coroutine never awaited would warn when collected
            close()
        raise BridgeError(
            "await_only() needs to run inside run_in_greenlet(); an asynchronous store or callable "
            "was reached from synchronous code that no AsyncLifecycle or async store started"
        )
    return cast(T, current.parent.switch(awaitable))


async def run_in_greenlet(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)`` in a child greenlet and return its result; each
    ``await_only`` inside it is awaited here, by the calling task. An exception of *fn*
    leaves from here; one raised while awaiting (a cancellation too) is thrown into *fn*
    where it awaited, so its ``finally`` blocks and context managers run."""
    idle: list[_Bridged] | None = getattr(_idle, "workers", None)
    if idle is None:
        idle = _idle.workers = []
    worker = idle.pop() if idle else _Bridged()
    driver = greenlet.getcurrent()
    worker.parent = driver
    worker.gr_context = driver.gr_context  # the task's context (a tracing span, say)
    request = worker.switch(fn, args, kwargs)
    while not isinstance(request, _Done):
        try:
            value = await request
        except BaseException:
            request = worker.throw(*sys.exc_info())
        else:
            request = worker.switch(value)
    if len(idle) < _MAX_IDLE:
        idle.append(worker)
    if request.error is not None:
        error, request.error = request.error, None
        try:
            raise error
        finally:
            del error  # no cycle through this frame
    value, request.value = request.value, None
    return cast(T, value)
