"""The store contract suite, run on an async store (``AsyncAccountStore``).

``StoreContract`` calls a synchronous store, from the test's thread and, in its race tests,
from several threads at once. ``BlockingStore`` gives it one: an async store whose every
coroutine method runs on an event loop in a background thread (``LoopThread``) while the
calling thread waits for it. Calls from several threads run concurrently on that loop, as
tasks do. Every method of the async store is there, so the whole contract, including tests
added to it later, runs on the async store. Subclass ``AsyncStoreContract`` and implement
``make_async_store()``::

    from account_lifecycle.testing.async_store_contract import AsyncStoreContract

    class TestMyAsyncStore(AsyncStoreContract):
        def make_async_store(self) -> MyAsyncStore:
            return MyAsyncStore(...)

The suite needs pytest (extra ``testing``) and the ``async`` extra.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import pytest

from account_lifecycle.aio.ports import AsyncAccountStore
from account_lifecycle.ports import AccountStore
from account_lifecycle.testing.store_contract import StoreContract

__all__ = ["AsyncStoreContract", "BlockingStore", "LoopThread"]

T = TypeVar("T")


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


class LoopThread:
    """An asyncio event loop running in a daemon thread until ``close()``; ``run`` waits, in the
    calling thread, for a coroutine run on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="account_lifecycle-loop", daemon=True
        )
        self._thread.start()

    def run(self, awaitable: Awaitable[T]) -> T:
        """The result of *awaitable*, awaited on the loop (its error is raised here)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("LoopThread.run() called from its own loop: it would wait forever")
        return asyncio.run_coroutine_threadsafe(_awaited(awaitable), self.loop).result()

    def close(self) -> None:
        """Stop the loop, end its thread and close it."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def __enter__(self) -> LoopThread:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class BlockingStore:
    """A synchronous face of an async store: each method calls the coroutine method of the same
    name on *loop*'s thread and waits for it; the async store is ``async_store``."""

    def __init__(self, async_store: AsyncAccountStore, loop: LoopThread) -> None:
        #: The async store every call goes to.
        self.async_store = async_store
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        attribute = getattr(self.async_store, name)
        if not callable(attribute):
            return attribute
        method: Callable[..., Any] = attribute

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            async def on_the_loop() -> Any:
                result = method(*args, **kwargs)
                return await result if asyncio.iscoroutine(result) or asyncio.isfuture(result) else result

            return self._loop.run(on_the_loop())

        return call

    def __repr__(self) -> str:
        return f"BlockingStore({self.async_store!r})"


class AsyncStoreContract(StoreContract):
    """The ``AccountStore`` contract on an async store. Implement ``make_async_store()`` (a
    fresh, empty store per test, built on the loop's thread: it may be a coroutine function) or
    override the ``store`` fixture with ``blocking()``; the damage hooks (``corrupt_record``,
    ``corrupt_event``) receive the ``BlockingStore``, whose ``async_store`` is the store."""

    def make_async_store(self) -> AsyncAccountStore | Awaitable[AsyncAccountStore]:
        raise NotImplementedError(
            f"{type(self).__name__} must implement make_async_store() or override the store fixture"
        )

    @staticmethod
    @contextmanager
    def blocking(
        make: Callable[[], AsyncAccountStore | Awaitable[AsyncAccountStore]],
    ) -> Iterator[AccountStore]:
        """A ``BlockingStore`` of the store *make* builds on a fresh ``LoopThread``; the store
        is closed (if it has ``close``) and the loop ended afterwards."""
        with LoopThread() as loop:

            async def build() -> AsyncAccountStore:
                made = make()
                return await made if inspect.isawaitable(made) else made

            facade = BlockingStore(loop.run(build()), loop)
            try:
                yield cast(AccountStore, facade)
            finally:
                if callable(getattr(facade.async_store, "close", None)):
                    facade.close()

    @pytest.fixture
    def store(self) -> Iterator[AccountStore]:
        with self.blocking(self.make_async_store) as store:
            yield store
