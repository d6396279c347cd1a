"""Hypothesis: any sequence of commands, actors and clock moves gives the same answers on
AsyncLifecycle (async purgers and checks, ThreadedStore) as on Lifecycle (sync ones,
MemoryStore): the same records or the same error types, step by step, and the same audit
trail, hash for hash."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from account_lifecycle import (
    Actor,
    AsyncLifecycle,
    Lifecycle,
    ManualClock,
    MemoryStore,
    Policy,
    PurgeContext,
    PurgeResult,
    SurveyOutcome,
    ThreadedStore,
    policies,
)
from account_lifecycle.testing.fakes import fake_identity_keys

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ACTORS = [Actor.user("owner"), Actor.user("member"), Actor.user("stranger"), Actor.support("agent-7")]


class SyncPurger:
    def __init__(self, category: str) -> None:
        self.category = category

    def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:
        return PurgeResult(items=context.attempt)


class AsyncPurger(SyncPurger):
    async def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:  # type: ignore[override]
        await asyncio.sleep(0)
        return PurgeResult(items=context.attempt)


def _steps(policy: Policy) -> st.SearchStrategy[list[tuple[str, tuple[Any, ...], dict[str, Any]]]]:
    actor = st.sampled_from(ACTORS)
    token = st.sampled_from([policy.confirmation.token, "confirm", None])
    acks = st.sampled_from([[a.id for a in policy.confirmation.acknowledgements], []])
    key = st.sampled_from([None, "k-1", "k-2"])
    step = st.one_of(
        st.tuples(
            st.just("request_cancellation"), st.tuples(actor), st.fixed_dictionaries({"idempotency_key": key})
        ),
        st.tuples(st.just("skip_survey"), st.tuples(actor), st.just({})),
        st.tuples(
            st.just("submit_survey"), st.tuples(actor, st.sampled_from(list(SurveyOutcome))), st.just({})
        ),
        st.tuples(st.just("withdraw"), st.tuples(actor), st.just({})),
        st.tuples(
            st.just("confirm"), st.tuples(actor, token, acks), st.fixed_dictionaries({"idempotency_key": key})
        ),
        st.tuples(st.just("restore"), st.tuples(actor), st.just({})),
        st.tuples(
            st.just("cancel_service"), st.tuples(actor, st.sampled_from(["messages", "fax"])), st.just({})
        ),
        st.tuples(st.just("advance"), st.tuples(st.sampled_from([1, 60 * 24, 60 * 24 * 40])), st.just({})),
        st.tuples(st.just("sweep"), st.just(()), st.just({})),
    )
    return st.lists(step, max_size=12)


def _outcome(value: object) -> object:
    if isinstance(value, BaseException):
        return type(value)
    return value


@given(
    st.sampled_from([policies.ALLCLIENTS, policies.SMRTPHONE]).flatmap(
        lambda p: st.tuples(st.just(p), _steps(p))
    )
)
def test_async_and_sync_lifecycles_answer_every_sequence_alike(drawn: tuple[Policy, list[Any]]) -> None:
    policy, steps = drawn
    checks = {"port_outs": lambda account_id: []} if policy.prerequisites else {}
    sync_clock = ManualClock(T0)
    sync = Lifecycle(
        policy,
        store=MemoryStore(),
        clock=sync_clock,
        purgers=[SyncPurger(c.name) for c in policy.purge.categories],
        prerequisites=checks,
        identity_keys=fake_identity_keys(),
    )
    expected: list[object] = []

    def on_sync(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
        if name == "advance":
            sync_clock.advance(timedelta(minutes=args[0]))
            return None
        if name == "sweep":
            return sync.sweep()
        try:
            return getattr(sync, name)("acct-1", *args, **kwargs)
        except Exception as exc:
            return exc

    sync.open("acct-1", owner="owner", members=["member"])
    expected = [_outcome(on_sync(*step)) for step in steps]
    expected_history = [(e.action, e.hash) for e in sync.history("acct-1")]

    async def on_async() -> tuple[list[object], list[tuple[str, str]]]:
        async def check(account_id: str) -> list[str]:
            return []

        clock = ManualClock(T0)
        store = ThreadedStore(MemoryStore())
        lc = AsyncLifecycle(
            policy,
            store=store,
            clock=clock,
            purgers=[AsyncPurger(c.name) for c in policy.purge.categories],
            prerequisites={"port_outs": check} if policy.prerequisites else {},
            identity_keys=fake_identity_keys(),
        )
        await lc.open("acct-1", owner="owner", members=["member"])
        got: list[object] = []
        for name, args, kwargs in steps:
            if name == "advance":
                clock.advance(timedelta(minutes=args[0]))
                got.append(None)
                continue
            try:
                if name == "sweep":
                    got.append(await lc.sweep())
                else:
                    got.append(await getattr(lc, name)("acct-1", *args, **kwargs))
            except Exception as exc:
                got.append(type(exc))
        history = [(e.action, e.hash) for e in await lc.history("acct-1")]
        await store.close()
        return got, history

    got, history = asyncio.run(on_async())
    assert got == expected
    assert history == expected_history
