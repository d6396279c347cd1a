"""Behaviours a review found no test pinning (a mutant of each survived), each checked through
the public ``Lifecycle`` API on both sides of its boundary: how many idempotency keys an
account remembers, the longest confirmation token, when ``release_hold`` is offered, an audit
event without an account version, and an identifier reused once its quarantine is over."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from account_lifecycle import (
    AccountExists,
    AccountRecord,
    Action,
    Actor,
    HistoryTampered,
    InvalidTransition,
    Lifecycle,
    ManualClock,
    MemoryStore,
    Policy,
    PolicyError,
    PurgeContext,
    PurgeResult,
    State,
)
from account_lifecycle.audit import GENESIS, AuditEvent, chain_event
from account_lifecycle.testing.fakes import fake_identity_keys

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
OWNER = Actor.user("u-1")
AGENT = Actor.support("agent-1")

POLICY = """
name = "review"
[survey]
mode = "off"
[confirmation]
{token}
[permissions]
request_cancellation = ["owner"]
withdraw = ["owner"]
confirm = ["owner"]
restore = ["owner"]
[purge]
on_hold = "wait"
categories = [{{ name = "files", at = "cancel" }}]
[identity]
phone = "after 30 days"
"""


def policy(token: str | None = None) -> Policy:
    return Policy.from_toml(POLICY.format(token="" if token is None else f"token = {token!r}"))


class Eraser:
    category = "files"

    def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:
        return PurgeResult(items=1)


def lifecycle(store: MemoryStore | None = None, token: str | None = None) -> tuple[Lifecycle, ManualClock]:
    clock = ManualClock(START)
    lc = Lifecycle(
        policy(token),
        store=store or MemoryStore(),
        purgers=[Eraser()],
        clock=clock,
        identity_keys=fake_identity_keys(),
    )
    return lc, clock


# -- idempotency keys: the 32 newest are remembered ----------------------------------------


def test_the_32_newest_idempotency_keys_replay_and_the_33rd_oldest_does_not() -> None:
    """33 commands, each with its own key, alternating request_cancellation and withdraw (the
    account ends PENDING_CONFIRM). Sent again, the newest key and the 32nd newest (a withdraw,
    which would otherwise move the account) replay: nothing is written. The 33rd newest (the
    first request) is forgotten: sent again it is a new request, refused in PENDING_CONFIRM."""
    lc, _ = lifecycle()
    lc.open("acc-1", owner="u-1")
    keys = [f"key-{n:02d}" for n in range(1, 34)]
    for n, key in enumerate(keys):
        if n % 2 == 0:
            lc.request_cancellation("acc-1", OWNER, idempotency_key=key)
        else:
            lc.withdraw("acc-1", OWNER, idempotency_key=key)
    after = lc.get("acc-1")
    assert after.state is State.PENDING_CONFIRM
    events = len(lc.history("acc-1"))

    newest = lc.request_cancellation("acc-1", OWNER, idempotency_key=keys[-1])
    oldest_kept = lc.withdraw("acc-1", OWNER, idempotency_key=keys[1])  # the 32nd newest

    assert newest == after
    assert oldest_kept == after
    assert lc.get("acc-1").state is State.PENDING_CONFIRM
    assert len(lc.history("acc-1")) == events
    with pytest.raises(InvalidTransition):
        lc.request_cancellation("acc-1", OWNER, idempotency_key=keys[0])  # forgotten: applied anew


# -- the confirmation token: at most 200 characters ----------------------------------------


def test_a_confirmation_token_of_200_characters_confirms() -> None:
    """A 200-character token is a valid policy, and typing it exactly confirms."""
    token = "C" * 199 + "!"
    lc, _ = lifecycle(token=token)
    lc.open("acc-1", owner="u-1")
    lc.request_cancellation("acc-1", OWNER)

    assert lc.confirm("acc-1", OWNER, token).state is State.PURGED


@pytest.mark.parametrize("length", [201, 1_000])
def test_a_confirmation_token_longer_than_200_characters_is_a_policy_error(length: int) -> None:
    with pytest.raises(PolicyError) as info:
        policy(token="C" * length)

    assert info.value.key == "confirmation.token"
    assert "at most 200 characters" in str(info.value)


# -- release_hold is offered only while something is held ----------------------------------


def test_release_hold_is_offered_only_while_a_category_is_held() -> None:
    """Support may place holds; release_hold is in allowed_actions once a category is held, and
    not before it nor after the hold is released."""
    lc, _ = lifecycle()
    lc.open("acc-1", owner="u-1")

    nothing_held = lc.allowed_actions("acc-1", AGENT)
    lc.place_hold("acc-1", AGENT, "files", "case 7")
    held = lc.allowed_actions("acc-1", AGENT)
    lc.release_hold("acc-1", AGENT, "files")
    released = lc.allowed_actions("acc-1", AGENT)

    assert Action.PLACE_HOLD in nothing_held
    assert Action.RELEASE_HOLD not in nothing_held
    assert Action.RELEASE_HOLD in held
    assert Action.RELEASE_HOLD not in released


# -- an audit event must carry the account version it was committed with --------------------


def _chain(versions: Iterable[int]) -> tuple[AccountRecord, tuple[AuditEvent, ...]]:
    """An account whose events are correctly hash-chained, with the given versions."""
    head, events = GENESIS, []
    for seq, version in enumerate(versions, start=1):
        event = chain_event(
            prev_hash=head,
            seq=seq,
            account_id="acc-1",
            at=START + timedelta(seconds=seq),
            actor=OWNER,
            action="open" if seq == 1 else "note",
            from_state=None if seq == 1 else State.ACTIVE,
            to_state=State.ACTIVE,
            policy="review@1",
            version=version,
        )
        head = event.hash
        events.append(event)
    record = AccountRecord(
        account_id="acc-1",
        state=State.ACTIVE,
        owner="u-1",
        version=max(versions),
        chain_head=head,
        last_seq=len(events),
        policy="review",
    )
    return record, tuple(events)


@pytest.mark.parametrize(("versions", "bad_seq"), [((0,), 1), ((1, 0), 2), ((1, -1), 2)])
def test_an_event_without_an_account_version_does_not_verify(versions: tuple[int, ...], bad_seq: int) -> None:
    """A history whose hashes all check out, but with an event of version 0 (or less), fails
    verify_history at that event."""
    store = MemoryStore()
    store.create(*_chain(versions))
    lc, _ = lifecycle(store)

    with pytest.raises(HistoryTampered) as info:
        lc.verify_history("acc-1")

    assert info.value.seq == bad_seq
    assert info.value.reason == "has no account version"


def test_a_chain_of_versioned_events_verifies() -> None:
    """The same chain with versions 1 and more verifies (version 1 is the first valid one)."""
    store = MemoryStore()
    store.create(*_chain((1, 1, 2)))
    lc, _ = lifecycle(store)

    lc.verify_history("acc-1")


# -- an identifier is reusable once its quarantine is over ---------------------------------


def test_a_quarantined_identifier_is_reusable_after_its_free_at_and_held_again() -> None:
    """phone = "after 30 days": once acc-1 is purged its phone is refused to a new account until
    exactly 30 days later, then taken (the store gives it up because the lifecycle passes its
    clock as now=). The new holder keeps it through its own commands and its own purge, and
    the quarantine starts again from that purge."""
    lc, clock = lifecycle()
    lc.open("acc-1", owner="u-1", identifiers={"phone": "+15550100"})
    lc.request_cancellation("acc-1", OWNER)
    purged = lc.confirm("acc-1", OWNER)
    assert purged.state is State.PURGED
    free_at = purged.identifiers["phone"].free_at
    assert free_at == START + timedelta(days=30)

    clock.set(free_at - timedelta(microseconds=1))
    with pytest.raises(AccountExists):
        lc.open("acc-2", owner="u-2", identifiers={"phone": "+15550100"})
    clock.set(free_at)
    lc.open("acc-2", owner="u-2", identifiers={"phone": "+15550100"})

    new_owner = Actor.user("u-2")
    lc.request_cancellation("acc-2", new_owner)
    lc.withdraw("acc-2", new_owner)
    with pytest.raises(AccountExists):
        lc.open("acc-3", owner="u-3", identifiers={"phone": "+15550100"})
    lc.request_cancellation("acc-2", new_owner)
    second = lc.confirm("acc-2", new_owner)
    assert second.identifiers["phone"].free_at == free_at + timedelta(days=30)
    clock.set(free_at + timedelta(days=30) - timedelta(microseconds=1))
    with pytest.raises(AccountExists):
        lc.open("acc-3", owner="u-3", identifiers={"phone": "+15550100"})
    clock.set(free_at + timedelta(days=30))
    assert lc.open("acc-3", owner="u-3", identifiers={"phone": "+15550100"}).identifiers["phone"].value == (
        fake_identity_keys().digest("phone", "+15550100")
    )
