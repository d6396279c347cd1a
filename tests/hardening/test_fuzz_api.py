"""Hostile input through the API: odd Unicode, huge strings, control characters, wrong types.

Only the library's typed errors (or ValueError/TypeError for misuse) come out, and a
refused call writes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from world import OWNER, World

from account_lifecycle import LifecycleError, ManualClock, MemoryStore, State, policies

ODD_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.text(alphabet=st.characters(categories=("Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Co")), max_size=10),
    st.sampled_from(
        ["", " ", "\x00", "\ud800", "CONFIRM\x00", "a" * 10_000, "\u202eMRIFNOC", "\uff23", "\ufb01"]
    ),
)
ANYTHING = st.one_of(
    ODD_TEXT, st.none(), st.integers(), st.binary(max_size=10), st.lists(st.text(max_size=3), max_size=3)
)
SETTINGS = settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])


def fresh() -> World:
    world = World(policies.SMRTPHONE, MemoryStore(), ManualClock(datetime(2026, 11, 30, tzinfo=UTC)))
    world.open()
    world.to_pending_confirm()
    return world


def refuses_cleanly(world: World, call: Any) -> None:
    before = world.snapshot()
    try:
        call()
    except (LifecycleError, ValueError, TypeError):
        assert world.snapshot() == before
    else:  # accepted: only the exact inputs may get through, checked by the caller
        pass


@SETTINGS
@given(token=ANYTHING)
def test_any_token_but_the_exact_one_is_refused(token: object) -> None:
    """Whatever is typed, only the exact 'CONFIRM' confirms; the rest changes nothing."""
    world = fresh()
    before = world.snapshot()
    try:
        record = world.lc.confirm("acct-1", OWNER, token, world.acks)  # type: ignore[arg-type]
    except LifecycleError:
        assert world.snapshot() == before
        assert token != "CONFIRM"
    else:
        assert token == "CONFIRM"
        assert record.state is State.PURGED


@SETTINGS
@given(account_id=ANYTHING, owner=ANYTHING, identity=ANYTHING)
def test_open_with_any_ids(account_id: object, owner: object, identity: object) -> None:
    """open() accepts only sane printable ids; anything else is a ValueError/TypeError and
    no account appears."""
    store = MemoryStore()
    world = World(policies.ALLCLIENTS, store, ManualClock(datetime(2026, 11, 30, tzinfo=UTC)))
    try:
        record = world.lc.open(account_id, owner=owner, identity=identity)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        assert store.account_ids() == ()
    else:
        assert isinstance(account_id, str)
        assert account_id.isprintable()
        assert account_id == account_id.strip()
        assert record.account_id == account_id
        assert world.lc.get(account_id) == record
        world.lc.verify_history(account_id)


@SETTINGS
@given(answers=st.dictionaries(ODD_TEXT, ANYTHING, max_size=5), outcome=ANYTHING)
def test_survey_answers_and_outcomes(answers: dict[str, object], outcome: object) -> None:
    """Survey answers of any shape are either stored intact (and hash-chained) or refused."""
    world = World(policies.ALLCLIENTS, MemoryStore(), ManualClock(datetime(2026, 11, 30, tzinfo=UTC)))
    world.open()
    world.lc.request_cancellation("acct-1", OWNER)
    before = world.snapshot()
    try:
        world.lc.submit_survey("acct-1", OWNER, outcome, answers)  # type: ignore[arg-type]
    except (LifecycleError, ValueError, TypeError):
        assert world.snapshot() == before
    else:
        stored = dict(world.lc.history("acct-1")[-1].details)["answers"]
        assert stored == answers
        world.lc.verify_history("acct-1")


@SETTINGS
@given(account_id=ANYTHING)
def test_queries_with_any_id(account_id: object) -> None:
    """get/history/allowed_actions on hostile ids raise typed errors, never something else."""
    world = fresh()
    for call in (world.lc.get, world.lc.history, world.lc.verify_history, world.lc.receipt):
        with pytest.raises((LifecycleError, TypeError)):
            call(account_id)  # type: ignore[arg-type]


@SETTINGS
@given(acks=st.lists(ANYTHING, max_size=5))
def test_acknowledgements_of_any_shape(acks: list[object]) -> None:
    """Acknowledgements that are not exactly the policy's ids are refused and change nothing."""
    world = fresh()
    refuses_cleanly(world, lambda: world.lc.confirm("acct-1", OWNER, "CONFIRM", acks))  # type: ignore[arg-type]
    if world.lc.get("acct-1").state is not State.PENDING_CONFIRM:
        assert set(world.acks) <= set(acks)  # type: ignore[arg-type]
