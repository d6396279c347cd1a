"""Accounts created under random versions, random migrations between them and sweeps: every
account's promised ``restorable_until`` is honoured, and each version's erasure plan holds for
the accounts pinned to it (no category erased that the version an account confirmed under
kept, none erased before the window it was promised ended, every purger call under a version
that erases that category), and each purged account's receipt names the version in force."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from versions_fixtures import V1, phased

from account_lifecycle import (
    Actor,
    Lifecycle,
    ManualClock,
    MemoryStore,
    MigrationRefused,
    Policy,
    PolicyRegistry,
    PurgeResult,
    State,
)
from account_lifecycle.duration import Duration
from account_lifecycle.policy import PurgeCategory, PurgePolicy, RecoveryPolicy

OWNER = Actor.user("u-1")
T0 = datetime(2026, 1, 31, tzinfo=UTC)  # month ends clamp
WINDOWS = ("30 days", "3 months", "60 days", "phased")
FATES = ("cancel", "expiry", "protected", None)


@st.composite
def versions(draw: st.DrawFn) -> tuple[Policy, ...]:
    out = []
    for number in range(1, draw(st.integers(2, 4)) + 1):
        window = draw(st.sampled_from(WINDOWS))
        base = (
            phased(V1, number)
            if window == "phased"
            else attrs.evolve(V1, version=number, recovery=RecoveryPolicy(window=Duration.parse(window)))
        )
        categories = [PurgeCategory("contacts", "cancel")]
        protected = []
        for name in ("backups", "notes"):
            fate = draw(st.sampled_from(FATES))
            if fate in ("cancel", "expiry"):
                categories.append(PurgeCategory(name, fate))
            elif fate == "protected":
                protected.append(name)
        out.append(attrs.evolve(base, purge=PurgePolicy(tuple(categories), tuple(protected))))
    return tuple(out)


steps = st.lists(
    st.one_of(
        st.tuples(st.just("cancel"), st.integers(0, 3)),
        st.tuples(st.just("open"), st.integers(0, 3)),
        st.tuples(st.just("migrate"), st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.just("advance"), st.integers(1, 80)),
    ),
    min_size=4,
    max_size=25,
)


@settings(max_examples=40)
@given(versions(), steps)
def test_promises_hold_across_versions_migrations_and_sweeps(
    pool: tuple[Policy, ...], plan: list[tuple[Any, ...]]
) -> None:
    clock = ManualClock(T0)
    store = MemoryStore()
    calls: list[tuple[str, str, str, datetime]] = []

    class Recorder:
        def __init__(self, category: str) -> None:
            self.category = category

        def purge(self, account_id: str, context: Any) -> PurgeResult:
            calls.append((account_id, self.category, context.policy, clock.now()))
            return PurgeResult(items=1)

    def deployed(current: Policy) -> Lifecycle:  # the same registry, another current version
        registry = PolicyRegistry(pool, current=current.label)
        return Lifecycle(
            registry,
            store=store,
            clock=clock,
            purgers=[Recorder(n) for n in ("contacts", "backups", "notes")],
        )

    lifecycles = [deployed(p) for p in pool]
    by_label = {p.label: p for p in pool}
    promised: dict[str, datetime] = {}
    kept: dict[str, set[str]] = {}  # categories the confirm-time version did not erase
    later: dict[str, set[str]] = {}  # categories it erased when the window ends
    opened = 0

    for step in plan:
        kind = step[0]
        if kind in ("open", "cancel"):
            lc = lifecycles[step[1] % len(pool)]
            account_id = f"a{opened}"
            opened += 1
            lc.open(account_id, owner="u-1")
            if kind == "cancel":
                lc.request_cancellation(account_id, OWNER)
                lc.skip_survey(account_id, OWNER)
                record = lc.confirm(account_id, OWNER)
                version = by_label[record.policy_label]
                assert version == lc.policy  # a new cancellation: the current version
                assert record.restorable_until is not None
                promised[account_id] = record.restorable_until
                erased = {c.name for c in version.purge.categories}
                kept[account_id] = {"contacts", "backups", "notes"} - erased
                later[account_id] = set(version.purge.at("expiry"))
        elif kind == "migrate":
            source, target = pool[step[1] % len(pool)], pool[step[2] % len(pool)]
            if source == target:
                continue
            lc = lifecycles[0]
            if lc.plan_migration(source.label, target.label).refused:  # the plan says it first
                with pytest.raises(MigrationRefused):
                    lc.migrate_accounts(source.label, target.label, dry_run=False)
            else:
                lc.migrate_accounts(source.label, target.label, dry_run=False)
        else:
            clock.advance(timedelta(days=step[1]))
            lifecycles[step[1] % len(pool)].sweep()

        now = clock.now()
        for account_id, until in promised.items():
            record = store.get(account_id)
            assert record.restorable_until is not None
            assert record.restorable_until >= until  # never shortened
            if now < until:
                assert record.state is not State.PURGED
        for account_id, category, label, at in calls:
            assert category in {c.name for c in by_label[label].purge.categories}
            if account_id in kept:
                assert category not in kept[account_id]
                if category in later[account_id]:
                    assert at >= promised[account_id]

    for account_id in promised:
        record = store.get(account_id)
        if record.state is State.PURGED:
            receipt = lifecycles[0].receipt(account_id)
            assert receipt.policy == record.policy_label
            assert {e.category for e in receipt.erased}.isdisjoint(kept[account_id])
            assert set(receipt.versions.values()) <= set(by_label)
            lifecycles[0].verify_history(account_id)
