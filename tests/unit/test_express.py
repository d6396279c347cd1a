"""The express decisions give what the decision core gives (issue 14, target 1).

``decide_express`` decides the commands that carry only their actor (``request_cancellation``,
``withdraw``, ``skip_survey``) by a lookup where the machine's only transition is guarded by
permission checks alone, and answers None for everything else. It must be ``decide_command``
wherever it answers: the same ``Decision``, field for field. And a lifecycle whose commands take
the express path must write what the general path writes, byte for byte: records, events and
their hashes, outbox entries.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from account_lifecycle import Actor, Lifecycle, ManualClock, MemoryStore, policies
from account_lifecycle.decide import Command, Rules, decide_command, decide_express
from account_lifecycle.machine import PolicyMachine
from account_lifecycle.model import AccountRecord, Action, Erasure, State
from account_lifecycle.policy import Policy
from account_lifecycle.testing.fakes import fake_identity_keys, fake_purgers
from account_lifecycle.testing.strategies import policies as drawn_policies

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EXPRESS = (Action.REQUEST_CANCELLATION, Action.WITHDRAW, Action.SKIP_SURVEY)
ACTORS = (
    Actor.user("owner"),
    Actor.user("member"),
    Actor.user("stranger"),
    Actor.support("agent"),
    Actor.system(),
)


def _core(rules: Rules, record: AccountRecord, action: Action, actor: Actor) -> Any:
    try:
        return decide_command(rules, record, Command(action, actor), NOW)
    except Exception as exc:  # a refusal: express must not decide it
        return exc


@st.composite
def records(draw: st.DrawFn, policy: Policy) -> AccountRecord:
    """An account of *policy* in any state, on its version or another, erasing or not."""
    state = draw(st.sampled_from(list(State)))
    return AccountRecord(
        account_id="acct-1",
        state=state,
        owner="owner",
        members=draw(st.sampled_from([frozenset(), frozenset({"member"})])),
        version=draw(st.integers(min_value=1, max_value=40)),
        cancellation_id=draw(st.none() | st.just("cr-3")),
        policy=draw(st.sampled_from([policy.name, policy.name, "", "other"])),
        policy_version=draw(st.sampled_from([policy.version, policy.version, policy.version + 1])),
        erasure=draw(st.none() | st.just(Erasure("runner", "expiry", ("backups",), NOW))),
    )


def _check(policy: Policy, record: AccountRecord, action: Action, actor: Actor) -> bool:
    rules = Rules(policy=policy, machine=PolicyMachine(policy))
    express = decide_express(rules, record, action, actor)
    if express is None:
        return False
    core = _core(rules, record, action, actor)
    assert not isinstance(core, Exception), (action, record.state, actor, core)
    assert express == core
    assert [type(e.action) for e in express.events] == [type(e.action) for e in core.events]
    assert dict(express.changes) == dict(core.changes)
    return True


@pytest.mark.parametrize("policy", [policies.ALLCLIENTS, policies.SMRTPHONE], ids=lambda p: p.name)
def test_express_is_the_decision_core_for_every_state_action_and_actor(policy: Policy) -> None:
    """Exhaustive on the built-in policies; and it does decide their owner's accepted commands."""
    decided = set()
    for state in State:
        for action in EXPRESS:
            for actor in ACTORS:
                for members in (frozenset(), frozenset({"member"})):
                    for erasure in (None, Erasure("runner", "expiry", ("backups",), NOW)):
                        record = AccountRecord(
                            account_id="acct-1",
                            state=state,
                            owner="owner",
                            members=members,
                            version=7,
                            cancellation_id="cr-7" if state is not State.ACTIVE else None,
                            policy=policy.name,
                            policy_version=policy.version,
                            erasure=erasure,
                        )
                        if _check(policy, record, action, actor):
                            decided.add((action, state, str(actor)))
    assert (Action.REQUEST_CANCELLATION, State.ACTIVE, "user:owner") in decided
    assert (Action.WITHDRAW, State.SURVEYED, "user:owner") in decided
    assert (Action.WITHDRAW, State.PENDING_CONFIRM, "user:owner") in decided
    assert not any(actor == "user:stranger" for _, _, actor in decided)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), policy=drawn_policies())
def test_express_is_the_decision_core_on_drawn_policies(policy: Policy, data: st.DataObject) -> None:
    record = data.draw(records(policy))
    _check(policy, record, data.draw(st.sampled_from(EXPRESS)), data.draw(st.sampled_from(ACTORS)))


def _lifecycle(policy: Policy, clock: ManualClock) -> Lifecycle:
    return Lifecycle(
        policy,
        store=MemoryStore(),
        purgers=list(fake_purgers(policy).values()),
        prerequisites={name: lambda account_id: [] for name in policy.prerequisites},
        clock=clock,
        identity_keys=fake_identity_keys(),
    )


def _general(lc: Lifecycle, account_id: str, action: Action, actor: Actor) -> Any:
    return lc._command(account_id, Command(action, actor))


def _express(lc: Lifecycle, account_id: str, action: Action, actor: Actor) -> Any:
    return getattr(lc, action.value)(account_id, actor)


def _outcome(call: Any) -> Any:
    try:
        return call()
    except Exception as exc:
        return (type(exc), str(exc))


def _stored(lc: Lifecycle) -> Any:
    store = lc.store
    assert isinstance(store, MemoryStore)
    records = {i: store.get(i) for i in ("acct-1", "acct-2")}
    histories = {i: [e.stored_json() for e in store.history(i)] for i in records}
    outbox = [(entry.position, entry.event.stored_json()) for entry in store.outbox_read(after=0, limit=1000)]
    return records, histories, outbox


@pytest.mark.parametrize("policy", [policies.ALLCLIENTS, policies.SMRTPHONE], ids=lambda p: p.name)
@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["acct-1", "acct-2"]), st.sampled_from(EXPRESS), st.sampled_from(ACTORS)),
        max_size=14,
    )
)
def test_a_lifecycle_on_the_express_path_writes_the_general_paths_bytes(
    policy: Policy, steps: list[tuple[str, Action, Actor]]
) -> None:
    """The public commands (express where it decides) against ``_apply`` alone (the general
    path), on twin stores at the same moments: the same results, refusals, records, event
    texts (hashes included) and outbox."""
    clocks = ManualClock(NOW), ManualClock(NOW)
    fast, slow = (_lifecycle(policy, clock) for clock in clocks)
    for lc in (fast, slow):
        for account_id in ("acct-1", "acct-2"):
            lc.open(account_id, owner="owner", members=["member"])
        # acct-2 as a record written before policy versions were recorded: its first accepted
        # command moves it to the version in force (the general path's repin)
        store = lc.store
        assert isinstance(store, MemoryStore)
        store._records["acct-2"] = attrs.evolve(store._records["acct-2"], policy_version=0)
    for account_id, action, actor in steps:
        for clock in clocks:
            clock.advance(timedelta(seconds=1, microseconds=7))
        got = _outcome(lambda: _express(fast, account_id, action, actor))  # noqa: B023
        want = _outcome(lambda: _general(slow, account_id, action, actor))  # noqa: B023
        assert got == want
    assert _stored(fast) == _stored(slow)


def test_the_express_event_is_the_attrs_event() -> None:
    """``_event`` sets every field of ``Event`` (a field added later must be set there too)."""
    from account_lifecycle.decide import Decision, Event, _event

    actor = Actor.user("owner")
    fast = _event(Action.WITHDRAW, State.SURVEYED, State.ACTIVE, {"cancellation_id": "cr-2"}, actor)
    assert fast == Event(Action.WITHDRAW, State.SURVEYED, State.ACTIVE, {"cancellation_id": "cr-2"}, actor)
    assert [f.name for f in attrs.fields(Event)] == [
        "action",
        "from_state",
        "to_state",
        "details",
        "actor",
        "at",
    ]
    # decide_express sets the slots of its Decision too
    assert [f.name for f in attrs.fields(Decision)] == ["changes", "events", "work", "erase_sealed"]
