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
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import greenlet

__all__ = ["BridgeError", "await_only", "in_greenlet", "run_in_greenlet"]

T = TypeVar("T")


class BridgeError(RuntimeError):
    """``await_only`` was called outside ``run_in_greenlet`` (synchronous code built for the
    asyncio front end was called directly, or from a thread): there is no task to await in."""


class _Bridged(greenlet.greenlet):  # type: ignore[misc]  # greenlet is untyped
    """A child greenlet running synchronous code for the task that spawned it."""

    def __init__(self, fn: Callable[..., Any], driver: greenlet.greenlet) -> None:
        super().__init__(fn, driver)
        # The task's context (contextvars: a tracing span, say), not an empty one.
        self.gr_context = driver.gr_context


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
    assert current.parent is not None
    return cast(T, current.parent.switch(awaitable))


async def run_in_greenlet(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)`` in a child greenlet and return its result; each
    ``await_only`` inside it is awaited here, by the calling task. An exception of *fn*
    leaves from here; one raised while awaiting (a cancellation too) is thrown into *fn*
    where it awaited, so its ``finally`` blocks and context managers run."""
    child = _Bridged(fn, greenlet.getcurrent())
    request = child.switch(*args, **kwargs)
    while not child.dead:
        try:
            value = await request
        except BaseException:
            request = child.throw(*sys.exc_info())
        else:
            request = child.switch(value)
    return cast(T, request)
