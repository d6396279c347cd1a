"""Permission before replay, and a key bound to its command and its arguments (issue 15)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from world import MEMBER, OWNER, STRANGER, SUPPORT, World

from account_lifecycle import (
    AccountRecord,
    Action,
    Actor,
    IdempotencyKeyReused,
    LifecycleError,
    ManualClock,
    MemoryStore,
    NotPermitted,
    State,
    SurveyOutcome,
    policies,
)
from account_lifecycle.codec import record_from_json, record_to_json
from account_lifecycle.decide import KEPT_KEYS, Command, permitted_replay


def _unchanged(world: World, before: tuple[object, ...]) -> None:
    assert world.snapshot() == before, "a refused replay wrote something"


def test_a_stranger_replaying_the_owners_key_learns_nothing(sp: World) -> None:
    """The stranger gets the same NotPermitted with the owner's used key as with a fresh key:
    nothing says the key was used, nothing about the account is returned or written."""
    sp.open()
    sp.lc.request_cancellation("acct-1", OWNER, idempotency_key="owner-req")
    before = sp.snapshot()
    with pytest.raises(NotPermitted) as replayed:
        sp.lc.request_cancellation("acct-1", STRANGER, idempotency_key="owner-req")
    with pytest.raises(NotPermitted) as fresh:
        sp.lc.request_cancellation("acct-1", STRANGER, idempotency_key="never-used")
    assert str(replayed.value) == str(fresh.value)
    assert replayed.value.relation is None
    # nor with another command, or other arguments, under the owner's key
    with pytest.raises(NotPermitted):
        sp.lc.withdraw("acct-1", STRANGER, idempotency_key="owner-req")
    for text in (str(replayed.value), repr(replayed.value)):
        assert "owner" not in text.replace("stranger", "")
        assert "owner@example.com" not in text
    _unchanged(sp, before)


def test_a_member_replaying_the_owners_confirm_key_is_not_permitted(sp: World) -> None:
    """A member (not permitted to confirm) sending the owner's confirm with its key gets
    NotPermitted, not the purged record."""
    sp.open()
    sp.to_pending_confirm()
    done = sp.lc.confirm("acct-1", OWNER, sp.token, sp.acks, idempotency_key="k-confirm")
    assert done.state is State.PURGED
    before = sp.snapshot()
    with pytest.raises(NotPermitted) as caught:
        sp.lc.confirm("acct-1", MEMBER, sp.token, sp.acks, idempotency_key="k-confirm")
    assert caught.value.relation == "member"
    _unchanged(sp, before)


def test_the_owners_genuine_retry_returns_the_record(sp: World) -> None:
    """Same actor, same command, same arguments, same key: the current record, one write."""
    sp.open()
    sp.lc.request_cancellation("acct-1", OWNER, idempotency_key="r")
    first = sp.lc.submit_survey(
        "acct-1", OWNER, SurveyOutcome.CANCEL, {"why": "too dear"}, idempotency_key="s"
    )
    again = sp.lc.submit_survey(
        "acct-1", OWNER, SurveyOutcome.CANCEL, {"why": "too dear"}, idempotency_key="s"
    )
    assert again == first
    assert [e.action for e in sp.lc.history("acct-1")] == ["open", "request_cancellation", "submit_survey"]


def test_the_same_key_with_other_arguments_is_a_typed_error(sp: World) -> None:
    """Another outcome, other answers, another token: IdempotencyKeyReused, nothing written, and
    the message quotes none of the arguments."""
    sp.open()
    sp.lc.request_cancellation("acct-1", OWNER, idempotency_key="r")
    sp.lc.submit_survey("acct-1", OWNER, SurveyOutcome.CANCEL, {"why": "secret reason"}, idempotency_key="s")
    before = sp.snapshot()
    with pytest.raises(IdempotencyKeyReused) as other_answers:
        sp.lc.submit_survey("acct-1", OWNER, SurveyOutcome.CANCEL, {"why": "other"}, idempotency_key="s")
    with pytest.raises(IdempotencyKeyReused):
        sp.lc.submit_survey("acct-1", OWNER, SurveyOutcome.KEEP_ACCOUNT, idempotency_key="s")
    error = other_answers.value
    assert (error.account_id, error.key, error.action, error.applied) == (
        "acct-1",
        "s",
        "submit_survey",
        "submit_survey",
    )
    assert "secret reason" not in str(error)
    assert "zebra" not in str(error)
    assert isinstance(error, LifecycleError)
    assert isinstance(error, ValueError)
    _unchanged(sp, before)
    # a wrong confirmation token under the confirm's key is not its retry either
    sp.lc.confirm("acct-1", OWNER, sp.token, sp.acks, idempotency_key="c")
    with pytest.raises(IdempotencyKeyReused):
        sp.lc.confirm("acct-1", OWNER, "confirm", sp.acks, idempotency_key="c")


def test_another_permitted_actor_with_the_key_is_not_a_retry(ac: World) -> None:
    """Support may restore ALLCLIENTS accounts, but support sending the key of another support
    agent's restore is another request, not its retry."""
    ac.open()
    ac.cancel()
    assert ac.lc.get("acct-1").state is State.RESTORABLE
    ac.lc.restore("acct-1", SUPPORT, idempotency_key="restore-1")
    before = ac.snapshot()
    with pytest.raises(IdempotencyKeyReused):
        ac.lc.restore("acct-1", Actor.support("agent-8"), idempotency_key="restore-1")
    assert ac.lc.restore("acct-1", SUPPORT, idempotency_key="restore-1") == before[0]
    _unchanged(ac, before)


def test_a_key_used_for_another_command_names_it_only_to_a_permitted_actor(sp: World) -> None:
    """The owner learns which command the key was used for; a stranger learns nothing."""
    sp.open()
    sp.lc.request_cancellation("acct-1", OWNER, idempotency_key="k")
    with pytest.raises(IdempotencyKeyReused, match="already used for request_cancellation"):
        sp.lc.withdraw("acct-1", OWNER, idempotency_key="k")
    with pytest.raises(NotPermitted):
        sp.lc.withdraw("acct-1", STRANGER, idempotency_key="k")


def test_open_with_the_same_key_and_other_arguments_is_refused(sp: World) -> None:
    """An open's key is bound to its owner, members and identities too."""
    first = sp.lc.open("acct-9", owner="owner", identity="x@example.com", idempotency_key="open-9")
    assert sp.lc.open("acct-9", owner="owner", identity="x@example.com", idempotency_key="open-9") == first
    with pytest.raises(IdempotencyKeyReused):
        sp.lc.open("acct-9", owner="mallory", identity="x@example.com", idempotency_key="open-9")
    with pytest.raises(IdempotencyKeyReused):
        sp.lc.open("acct-9", owner="owner", members=["m"], identity="x@example.com", idempotency_key="open-9")
    assert sp.lc.get("acct-9") == first


def test_the_digest_is_stored_with_the_key_and_reveals_no_argument(sp: World) -> None:
    """(key, action, digest) is kept and round-trips through the codec; no answer in it."""
    sp.open()
    sp.lc.request_cancellation("acct-1", OWNER, idempotency_key="r")
    record = sp.lc.submit_survey(
        "acct-1", OWNER, SurveyOutcome.CANCEL, {"why": "a personal answer"}, idempotency_key="s"
    )
    key, action, digest = record.recent_keys[-1]
    assert (key, action) == ("s", "submit_survey")
    assert digest.startswith("v1:")
    assert len(digest) == 3 + 32
    assert "personal" not in record_to_json(record).split('"recent_keys"')[1].split("]]")[0]
    assert record_from_json(record_to_json(record), "acct-1") == record


def test_old_records_with_key_action_pairs_are_read_and_bound_to_the_action() -> None:
    """A record stored before the digest (pairs) is still read; its keys replay on the action."""
    world = World(policies.SMRTPHONE, MemoryStore(), ManualClock(datetime(2026, 1, 31, 12, 0, tzinfo=UTC)))
    world.open()
    world.lc.request_cancellation("acct-1", OWNER, idempotency_key="old")
    stored = world.lc.get("acct-1")
    data = json.loads(record_to_json(stored))
    data["recent_keys"] = [["old", "request_cancellation"]]
    old = record_from_json(json.dumps(data), "acct-1")
    assert old.recent_keys == (("old", "request_cancellation"),)
    assert old.key_digest("old") is None
    assert old.applied("old") == "request_cancellation"
    command = Command(Action.REQUEST_CANCELLATION, OWNER, idempotency_key="old")
    assert permitted_replay(world.lc.rules, old, command) is True
    with pytest.raises(NotPermitted):
        permitted_replay(
            world.lc.rules, old, Command(Action.REQUEST_CANCELLATION, STRANGER, idempotency_key="old")
        )


def test_kept_keys_stay_bounded_with_digests(sp: World) -> None:
    """Still the newest KEPT_KEYS keys, each with its digest."""
    sp.open()
    record: AccountRecord = sp.lc.get("acct-1")
    for number in range(KEPT_KEYS + 3):
        record = sp.lc.request_cancellation("acct-1", OWNER, idempotency_key=f"r{number}")
        record = sp.lc.withdraw("acct-1", OWNER, idempotency_key=f"w{number}")
    assert len(record.recent_keys) == KEPT_KEYS
    assert all(len(entry) == 3 for entry in record.recent_keys)
