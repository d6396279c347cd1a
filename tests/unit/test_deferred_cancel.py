"""Deferred cancel-time work: ``[purge] cancel_work = "deferred"`` or ``confirm(defer=True)``
commits the confirmation alone; the sweep erases the cancel-time categories under its claim."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest

from account_lifecycle import (
    Actor,
    ErasureInProgress,
    InvalidTransition,
    Lifecycle,
    ManualClock,
    MemoryStore,
    Policy,
    PolicyError,
    PurgeStatus,
    State,
    describe_policy,
    policies,
)
from account_lifecycle.model import AccountRecord
from account_lifecycle.testing import FakePurger, fake_purgers
from account_lifecycle.verify import diff_policies

OWNER = Actor.user("u-1")
SUPPORT = Actor.support("agent-7")
START = datetime(2026, 3, 1, tzinfo=UTC)
DEFERRED = attrs.evolve(
    policies.ALLCLIENTS,
    name="deferred",
    purge=attrs.evolve(policies.ALLCLIENTS.purge, cancel_work="deferred", on_hold="wait"),
)


class CountingStore(MemoryStore):
    """A memory store that counts the writes made to it (every save and batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def save(self, record: AccountRecord, **kwargs: Any) -> None:  # type: ignore[override]
        self.writes.append(f"save {record.state}")
        super().save(record, **kwargs)

    def save_many(self, writes: Sequence[Any], *, now: datetime) -> list[Exception | None]:
        self.writes.append(f"save_many {len(writes)}")
        return super().save_many(writes, now=now)


@attrs.define
class World:
    policy: Policy = DEFERRED
    store: CountingStore = attrs.Factory(CountingStore)
    clock: ManualClock = attrs.Factory(lambda: ManualClock(START))
    purgers: dict[str, FakePurger] = attrs.Factory(dict)

    def lifecycle(self, purgers: dict[str, FakePurger] | None = None) -> Lifecycle:
        self.purgers = purgers if purgers is not None else fake_purgers(self.policy)
        return Lifecycle(self.policy, store=self.store, purgers=self.purgers.values(), clock=self.clock)

    def calls(self) -> int:
        return sum(len(p.calls) for p in self.purgers.values())


def pending_confirm(world: World, purgers: dict[str, FakePurger] | None = None) -> Lifecycle:
    lc = world.lifecycle(purgers)
    lc.open("a", owner="u-1")
    lc.request_cancellation("a", OWNER)
    lc.skip_survey("a", OWNER)
    world.store.writes.clear()
    return lc


def test_a_deferred_confirm_is_one_write_and_calls_no_purger() -> None:
    """The policy's choice: one save, state ``CANCELLED``, the cancel-time steps due now."""
    world = World()
    lc = pending_confirm(world)
    record = lc.confirm("a", OWNER)
    assert world.store.writes == ["save cancelled"]
    assert world.calls() == 0
    assert record.state is State.CANCELLED
    assert record.erasure is None
    assert set(record.purge) == set(DEFERRED.purge.at("cancel"))
    assert {p.status for p in record.purge.values()} == {PurgeStatus.PENDING}
    assert lc.get("a") == record
    assert [e.action for e in lc.history("a")][-2:] == ["confirm", "team_access_revoked"]


def test_the_sweep_then_purges() -> None:
    """The next sweep claims the account, erases the categories and moves it on."""
    world = World()
    lc = pending_confirm(world)
    lc.confirm("a", OWNER)
    report = lc.sweep()
    assert report.restorable == ("a",)
    assert world.calls() == len(DEFERRED.purge.at("cancel"))
    assert lc.get("a").state is State.RESTORABLE
    actions = [e.action for e in lc.history("a")]
    assert actions[-1] == "recovery_window_opened"
    assert "erasure_started" in actions


def test_defer_true_overrides_an_inline_policy_and_false_a_deferred_one() -> None:
    """The call's choice wins over the policy's either way."""
    inline = World(policy=policies.ALLCLIENTS)
    lc = pending_confirm(inline)
    assert lc.confirm("a", OWNER, defer=True).state is State.CANCELLED
    assert inline.calls() == 0
    deferred = World()
    lc = pending_confirm(deferred)
    assert lc.confirm("a", OWNER, defer=False).state is State.RESTORABLE
    assert deferred.calls() == len(DEFERRED.purge.at("cancel"))


def test_inline_confirm_is_unchanged() -> None:
    """Inline (the default): the confirm write starts the steps, one write records each."""
    world = World(policy=policies.ALLCLIENTS)
    lc = pending_confirm(world)
    assert lc.confirm("a", OWNER).state is State.RESTORABLE
    assert world.store.writes[0] == "save cancelled"
    steps = len(policies.ALLCLIENTS.purge.at("cancel"))
    assert world.store.writes == ["save cancelled"] * steps + ["save restorable"]
    assert world.calls() == len(policies.ALLCLIENTS.purge.at("cancel"))


def test_a_bad_defer_is_a_type_error_that_writes_nothing() -> None:
    world = World()
    lc = pending_confirm(world)
    with pytest.raises(TypeError, match="defer"):
        lc.confirm("a", OWNER, defer="yes")  # type: ignore[arg-type]
    assert world.store.writes == []
    assert lc.get("a").state is State.PENDING_CONFIRM


def test_a_keyed_retry_of_a_deferred_confirm_writes_nothing() -> None:
    world = World()
    lc = pending_confirm(world)
    first = lc.confirm("a", OWNER, idempotency_key="k")
    assert lc.confirm("a", OWNER, idempotency_key="k") == first
    assert world.store.writes == ["save cancelled"]


class TestTheGap:
    """Between the deferred confirm and the sweep, the fence of docs/purging.md holds."""

    def test_restore_before_the_sweep_is_refused(self) -> None:
        """Not restorable yet: ``InvalidTransition``, nothing written."""
        world = World()
        lc = pending_confirm(world)
        lc.confirm("a", OWNER)
        with pytest.raises(InvalidTransition):
            lc.restore("a", SUPPORT)
        assert world.store.writes == ["save cancelled"]

    def test_a_hold_placed_in_the_gap_keeps_its_category(self) -> None:
        """A hold committed before the sweep's start is honoured: its purger is never called."""
        world = World()
        lc = pending_confirm(world)
        lc.confirm("a", OWNER)
        lc.place_hold("a", SUPPORT, "contacts", "case-1")
        lc.sweep()
        assert world.purgers["contacts"].calls == []
        record = lc.get("a")
        assert record.state is State.CANCELLED  # "wait": the account waits for the hold
        assert record.purge["contacts"].status is PurgeStatus.PENDING
        assert all(
            record.purge[c].status is PurgeStatus.DONE for c in DEFERRED.purge.at("cancel") if c != "contacts"
        )
        lc.release_hold("a", SUPPORT, "contacts")
        lc.sweep()
        assert lc.get("a").state is State.RESTORABLE
        assert len(world.purgers["contacts"].calls) == 1

    def test_a_hold_on_a_step_the_sweep_has_started_is_refused(self) -> None:
        """Interleaving built in the purger: while the sweep erases ``contacts`` a hold on it
        is ``ErasureInProgress``, retryable, and writes nothing."""
        world = World()
        refused: list[tuple[str, ...]] = []

        def meanwhile(account_id: str, context: Any) -> None:
            before = lc.get(account_id).version
            with pytest.raises(ErasureInProgress) as caught:
                lc.place_hold(account_id, SUPPORT, "contacts", "case-2")
            assert caught.value.retryable
            refused.append(caught.value.steps)
            assert lc.get(account_id).version == before

        purgers = {**fake_purgers(DEFERRED), "contacts": FakePurger("contacts", before=meanwhile)}
        lc = pending_confirm(world, purgers)
        lc.confirm("a", OWNER)
        lc.sweep()
        assert len(refused) == 1
        assert "contacts" in refused[0]
        assert lc.get("a").state is State.RESTORABLE
        assert "hold_placed" not in [e.action for e in lc.history("a")]


class TestThePolicyOption:
    def test_toml_round_trip_and_default(self) -> None:
        """``cancel_work`` is written only when deferred, and read back."""
        assert policies.ALLCLIENTS.purge.cancel_work == "inline"
        text = DEFERRED.to_toml()
        assert 'cancel_work = "deferred"' in text
        assert Policy.from_toml(text) == DEFERRED
        assert "cancel_work" not in policies.ALLCLIENTS.to_toml()

    def test_a_bad_value_names_the_key(self) -> None:
        with pytest.raises(PolicyError, match=r"purge\.cancel_work"):
            Policy.from_toml('name = "x"\n[purge]\ncancel_work = "later"\n')

    def test_describe_and_diff(self) -> None:
        """``describe`` says the sweep erases them; ``diff`` names the key."""
        assert any("by the next sweep" in line for line in describe_policy(DEFERRED))
        changes = diff_policies(
            attrs.evolve(
                DEFERRED,
                purge=policies.ALLCLIENTS.purge.__class__(
                    DEFERRED.purge.categories, DEFERRED.purge.protected, on_hold="wait"
                ),
            ),
            DEFERRED,
        ).changes
        assert [c.keys for c in changes] == [("purge.cancel_work",)]
