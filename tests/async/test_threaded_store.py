"""ThreadedStore: one dedicated thread runs every call of the store it wraps."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from account_lifecycle import AccountNotFound, MemoryStore, StoreError, ThreadedStore

BOUND = 60.0


class Recording(MemoryStore):
    """A MemoryStore that records the thread of each call and can be held inside one."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []
        self.calls: list[str] = []
        self.entered = threading.Event()
        self.go_on = threading.Event()
        self.hold = False

    def get(self, account_id: str) -> Any:
        self.threads.append(threading.get_ident())
        self.calls.append(account_id)
        if self.hold:
            self.entered.set()
            assert self.go_on.wait(BOUND)
        return super().get(account_id)


def test_every_call_runs_on_one_thread_that_is_not_the_loops() -> None:
    inner = Recording()

    async def main() -> None:
        store = ThreadedStore(inner)
        for account_id in ("a", "b"):
            with pytest.raises(AccountNotFound):  # the store's error, with its type
                await store.get(account_id)
        await asyncio.gather(*(store.account_ids() for _ in range(3)))
        await store.close()

    asyncio.run(main())
    assert len(set(inner.threads)) == 1
    assert inner.threads[0] != threading.get_ident()


def test_a_call_cancelled_before_it_starts_is_not_made() -> None:
    """The thread is held inside a first call; a second call's task is cancelled meanwhile: it
    never reaches the store. The first finishes."""
    inner = Recording()
    inner.hold = True

    async def main() -> None:
        store = ThreadedStore(inner)
        first = asyncio.create_task(store.get("first"))
        assert await asyncio.to_thread(inner.entered.wait, BOUND)
        inner.hold = False
        second = asyncio.create_task(store.get("second"))
        await asyncio.sleep(0)  # the second call is queued behind the first
        second.cancel()
        inner.go_on.set()
        with pytest.raises(AccountNotFound):
            await first
        with pytest.raises(asyncio.CancelledError):
            await second
        with pytest.raises(AccountNotFound):
            await store.get("third")  # the thread goes on after a cancelled call
        await store.close()

    asyncio.run(main())
    assert inner.calls == ["first", "third"]


def test_a_closed_store_refuses_calls_with_store_error() -> None:
    async def main() -> None:
        store = ThreadedStore(MemoryStore())
        await store.close()
        await store.close()  # twice is harmless
        with pytest.raises(StoreError, match="closed"):
            await store.get("a")

    asyncio.run(main())


def test_a_write_waiting_for_sqlites_lock_leaves_the_loop_running(tmp_path: Any) -> None:
    """Another connection holds the file's write lock: the command's save waits for it on the
    store's thread while the loop runs another task to its end; released, the save commits."""
    import sqlite3

    from account_lifecycle import Actor, AsyncLifecycle, SQLiteStore, State, policies
    from account_lifecycle.testing.fakes import fake_purgers

    entered = threading.Event()

    class Signalling(SQLiteStore):
        def save(self, *args: Any, **kwargs: Any) -> None:
            entered.set()
            super().save(*args, **kwargs)

    path = tmp_path / "accounts.db"
    owner = Actor.user("owner")

    async def main() -> None:
        store = ThreadedStore(Signalling(path))
        lc = AsyncLifecycle(
            policies.ALLCLIENTS, store=store, purgers=fake_purgers(policies.ALLCLIENTS).values()
        )
        await lc.open("acct-1", owner="owner")
        entered.clear()
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # the write lock, held
        try:
            command = asyncio.create_task(lc.request_cancellation("acct-1", owner))
            assert await asyncio.to_thread(entered.wait, BOUND)
            other = await asyncio.to_thread(lambda: "another task ran")  # the loop is free
            assert other == "another task ran"
            assert not command.done()  # the save cannot commit while the lock is held
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert (await command).state is State.SURVEYED
        await store.close()

    asyncio.run(main())
