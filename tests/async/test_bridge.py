"""The greenlet bridge: synchronous code awaiting through await_only, run by run_in_greenlet."""

from __future__ import annotations

import asyncio
import contextvars

import pytest
from hypothesis import given
from hypothesis import strategies as st

from account_lifecycle._bridge import BridgeError, await_only, in_greenlet, run_in_greenlet

REQUEST = contextvars.ContextVar("REQUEST", default="none")


async def echo(value: object) -> object:
    await asyncio.sleep(0)
    return value


def test_a_function_gets_what_it_awaits_and_returns_its_result() -> None:
    def add(a: int, *, b: int) -> int:
        assert in_greenlet()
        return int(await_only(echo(a))) + int(await_only(echo(b)))  # type: ignore[call-overload]

    assert asyncio.run(run_in_greenlet(add, 2, b=3)) == 5
    assert not in_greenlet()


def test_errors_cross_the_bridge_both_ways_with_their_types() -> None:
    """An error of the awaited coroutine is raised where the function awaited (and may be
    caught there); one the function lets out is raised to the awaiting task."""

    async def fail() -> None:
        raise KeyError("inner")

    def catches() -> str:
        try:
            await_only(fail())
        except KeyError:
            return "caught"
        return "not raised"

    def lets_out() -> None:
        await_only(fail())

    assert asyncio.run(run_in_greenlet(catches)) == "caught"
    with pytest.raises(KeyError, match="inner"):
        asyncio.run(run_in_greenlet(lets_out))


def test_cancelling_the_task_unwinds_the_function_where_it_awaited() -> None:
    unwound: list[str] = []

    def waits_forever() -> None:
        try:
            await_only(asyncio.Event().wait())
        finally:
            unwound.append("finally")

    async def main() -> None:
        task = asyncio.create_task(run_in_greenlet(waits_forever))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the worker is reused afterwards and still works
        assert await run_in_greenlet(lambda: await_only(echo("again"))) == "again"

    asyncio.run(main())
    assert unwound == ["finally"]


def test_the_function_sees_the_tasks_context() -> None:
    def read() -> str:
        return REQUEST.get()

    async def main() -> list[str]:
        async def one(name: str) -> str:
            REQUEST.set(name)
            await asyncio.sleep(0)
            return await run_in_greenlet(read)

        return list(await asyncio.gather(one("a"), one("b")))

    assert asyncio.run(main()) == ["a", "b"]


def test_await_only_outside_the_bridge_is_a_bridge_error_and_closes_the_coroutine() -> None:
    coroutine = echo(1)
    with pytest.raises(BridgeError, match="run_in_greenlet"):
        await_only(coroutine)
    assert coroutine.cr_frame is None  # closed: no "never awaited" warning


@given(st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=8))
def test_concurrent_tasks_each_get_their_own_results(awaits: list[int]) -> None:
    """Tasks whose functions await different numbers of times, interleaved on one loop, each
    get back exactly their own values (workers are shared between calls, never mixed)."""

    def work(task: int, count: int) -> list[tuple[int, int]]:
        return [(task, int(await_only(echo(i)))) for i in range(count)]  # type: ignore[call-overload]

    async def main() -> list[list[tuple[int, int]]]:
        return list(await asyncio.gather(*(run_in_greenlet(work, t, n) for t, n in enumerate(awaits))))

    assert asyncio.run(main()) == [[(t, i) for i in range(n)] for t, n in enumerate(awaits)]
