"""Policy versions in production: accounts keep the version they cancelled under, new
cancellations get the current one (or a roll-out's), accounts migrate with a plan, receipts
and history name the version in force at each step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from versions_fixtures import V1, V2, lifecycle

from account_lifecycle import (
    Actor,
    ManualClock,
    MemoryStore,
    MigrationRefused,
    NotPermitted,
    PolicyMismatch,
    PolicyRegistry,
    Rollout,
    State,
    UnknownPolicyVersion,
    policies,
)
from account_lifecycle.migration import MigrationRule, policy_rules_broken
from account_lifecycle.policy import PurgeCategory, PurgePolicy
from account_lifecycle.registry import bucket_of

OWNER = Actor.user("u-1")
SUPPORT = Actor.support("agent")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def cancel(lc: Any, account_id: str) -> Any:
    lc.request_cancellation(account_id, OWNER)
    lc.skip_survey(account_id, OWNER)
    return lc.confirm(account_id, OWNER)


@pytest.fixture
def world() -> tuple[MemoryStore, ManualClock, list[tuple[str, str, str]]]:
    return MemoryStore(), ManualClock(T0), []


def test_a_cancelled_account_keeps_the_date_it_was_shown(world: Any) -> None:
    store, clock, calls = world
    old = lifecycle([V1], store, clock, calls)
    old.open("a", owner="u-1")
    old.open("b", owner="u-1")
    shown = cancel(old, "a").restorable_until
    assert shown == datetime(2026, 4, 1, tzinfo=UTC)

    new = lifecycle(PolicyRegistry([V1, V2], current="allclients@2"), store, clock, calls)
    assert new.get("a").restorable_until == shown  # nothing moved it
    b = cancel(new, "b")  # a new cancellation: the current version's phased window
    assert (b.policy_label, b.restorable_until) == ("allclients@2", datetime(2026, 4, 30, tzinfo=UTC))
    assert b.pins["pending_confirm"] == "allclients@2"
    assert b.pins["active"] == "allclients@1"
    # the owner may restore b in its first phase (v2), not a (v1: support only)
    assert new.restore("b", OWNER).state is State.ACTIVE
    with pytest.raises(NotPermitted):
        new.restore("a", OWNER)

    clock.advance(timedelta(days=95))
    new.sweep()
    purged = new.get("a")
    assert purged.state is State.PURGED
    receipt = new.receipt("a")
    assert receipt.policy == "allclients@1"  # the version in force, not the one sweeping
    assert {e.policy for e in new.history("a")} == {"allclients@1"}
    assert {policy for account, _, policy in calls if account == "a"} == {"allclients@1"}


def test_lifecycle_of_one_policy_keeps_working_as_before(world: Any) -> None:
    store, clock, _ = world
    one = lifecycle([V1], store, clock)
    assert one.registry.labels == ("allclients@1",)
    assert one.policy is V1
    one.open("a", owner="u-1")
    with pytest.raises(PolicyMismatch):
        lifecycle([policies.SMRTPHONE], store, clock, prerequisites={"port_outs": list}).request_cancellation(
            "a", OWNER
        )
    # a revised single policy takes the accounts of its name, as before registries
    revised = lifecycle([V2], store, clock)
    assert cancel(revised, "a").policy_label == "allclients@2"


def test_an_unknown_version_among_several_is_a_mismatch(world: Any) -> None:
    store, clock, _ = world
    lc = lifecycle([V1], store, clock)
    lc.open("a", owner="u-1")
    cancel(lc, "a")
    v3 = attrs.evolve(V2, version=3)
    with pytest.raises(PolicyMismatch):
        lifecycle([V2, v3], store, clock).restore("a", SUPPORT)
    with pytest.raises(UnknownPolicyVersion):
        PolicyRegistry([V1]).get("allclients@9")
    with pytest.raises(UnknownPolicyVersion):
        PolicyRegistry([V1]).get("no-version")
    with pytest.raises(ValueError, match="two different policies"):
        PolicyRegistry([V1, attrs.evolve(V1, description="other")])


def test_rollout_by_share_is_stable_and_grows(world: Any) -> None:
    store, clock, _ = world
    ids = [f"acct-{n}" for n in range(400)]
    five = PolicyRegistry([V1, V2], current="allclients@1", rollout=Rollout("allclients@2", 0.05))
    twenty = PolicyRegistry([V1, V2], current="allclients@1", rollout=Rollout("allclients@2", 0.20))
    in_five = {i for i in ids if five.current_for(i) == V2}
    in_twenty = {i for i in ids if twenty.current_for(i) == V2}
    assert in_five <= in_twenty  # raising the share only adds accounts
    assert 5 <= len(in_five) <= 40
    assert len(in_twenty) > len(in_five)
    assert in_five == {i for i in ids if bucket_of(i) < 500}
    lc = lifecycle(five, store, clock)
    chosen = sorted(in_five)[0]
    other = next(i for i in ids if i not in in_five)
    lc.open(chosen, owner="u-1")
    lc.open(other, owner="u-1")
    assert cancel(lc, chosen).policy_label == "allclients@2"
    assert cancel(lc, other).policy_label == "allclients@1"
    with pytest.raises(ValueError, match="share"):
        Rollout("allclients@2", 1.5)
    host = PolicyRegistry(
        [V1, V2], current="allclients@1", rollout=lambda i: "allclients@2" if i == "x" else None
    )
    assert (host.current_for("x"), host.current_for("y")) == (V2, V1)


def test_plan_and_migration_refuse_a_shorter_window_unless_allowed(world: Any) -> None:
    store, clock, _ = world
    lc = lifecycle(PolicyRegistry([V1, V2], current="allclients@2"), store, clock)
    for account_id in ("a", "b", "c"):
        lc.open(account_id, owner="u-1")
    cancel(lc, "a")
    cancel(lc, "b")
    plan = lc.plan_migration("allclients@2", "allclients@1")
    assert plan.accounts == 3
    assert plan.refused == {"shorten-window": 2}
    text = plan.to_text()
    assert "REFUSED (--allow shorten-window)" in text
    assert "RISKY the recovery window: 2 phases: 30 days then 3 months -> 3 months" in text
    before = {i: lc.get(i) for i in "abc"}
    with pytest.raises(MigrationRefused) as refused:
        lc.migrate_accounts("allclients@2", "allclients@1", dry_run=False)
    assert refused.value.rules == {"shorten-window": 2}
    assert {i: lc.get(i) for i in "abc"} == before  # nothing written
    assert lc.migrate_accounts("allclients@2", "allclients@1").dry_run  # the default: a plan only
    assert {i: lc.get(i) for i in "abc"} == before

    report = lc.migrate_accounts("allclients@2", "allclients@1", dry_run=False, allow=["shorten-window"])
    assert report.migrated == ("a", "b", "c")
    a = lc.get("a")
    assert (a.policy_label, a.restorable_until) == ("allclients@1", datetime(2026, 4, 1, tzinfo=UTC))
    event = lc.history("a")[-1]
    assert event.action == "policy_migrated"
    assert (event.details["from"], event.details["to"], event.policy) == (
        "allclients@2",
        "allclients@1",
        "allclients@1",
    )
    assert list(event.details["rules_allowed"]) == ["shorten-window"]
    lc.verify_history("a")
    # resumable: nothing is pinned to the source any more, a second run moves nothing
    again = lc.migrate_accounts("allclients@2", "allclients@1", dry_run=False)
    assert again.migrated == ()
    assert again.plan.accounts == 0
    with pytest.raises(ValueError, match="no migration rule"):
        lc.plan_migration("allclients@2", "allclients@1", allow=["shorten"])
    with pytest.raises(UnknownPolicyVersion):
        lc.plan_migration("allclients@7", "allclients@1")


def _erasing(
    base: Any, version: int, categories: tuple[PurgeCategory, ...], protected: tuple[str, ...] = ()
) -> Any:
    return attrs.evolve(base, version=version, purge=PurgePolicy(categories, protected))


def test_erasing_earlier_or_erasing_what_was_kept_is_refused_unless_allowed(world: Any) -> None:
    store, clock, calls = world
    keeps = _erasing(
        V1, 1, (PurgeCategory("contacts", "cancel"), PurgeCategory("backups", "expiry")), ("notes",)
    )
    sooner = _erasing(
        V1,
        2,
        (
            PurgeCategory("contacts", "cancel"),
            PurgeCategory("backups", "cancel"),
            PurgeCategory("notes", "expiry"),
        ),
    )
    assert set(policy_rules_broken(keeps, sooner)) == {MigrationRule.ERASE_EARLIER, MigrationRule.ERASE_KEPT}
    assert policy_rules_broken(V1, V2) == ()
    lc = lifecycle(PolicyRegistry([keeps, sooner], current="allclients@1"), store, clock, calls)
    lc.open("r", owner="u-1")
    assert cancel(lc, "r").state is State.RESTORABLE
    assert lc.plan_migration("allclients@1", "allclients@2").refused == {"erase-earlier": 1, "erase-kept": 1}
    report = lc.migrate_accounts(
        "allclients@1", "allclients@2", dry_run=False, allow=["erase-earlier", "erase-kept"]
    )
    assert report.migrated == ("r",)
    calls.clear()
    lc.sweep()  # backups are due at once now (their phase is over); notes wait for the window's end
    assert [(c, p) for _, c, p in calls] == [("backups", "allclients@2")]
    assert lc.get("r").state is State.RESTORABLE
    clock.advance(timedelta(days=93))
    lc.sweep()
    assert lc.get("r").state is State.PURGED
    assert [c.category for c in lc.receipt("r").erased] == ["contacts", "backups", "notes"]


def test_a_hold_the_target_cannot_keep_is_refused_unless_allowed(world: Any) -> None:
    store, clock, _ = world
    holding = attrs.evolve(V1, purge=attrs.evolve(V1.purge, on_hold="wait"))
    without = attrs.evolve(
        holding, version=2, purge=PurgePolicy((PurgeCategory("contacts", "cancel"),), on_hold="wait")
    )
    lc = lifecycle(PolicyRegistry([holding, without], current="allclients@1"), store, clock)
    lc.open("h", owner="u-1")
    lc.place_hold("h", SUPPORT, "backups", "case 42")
    assert lc.plan_migration("allclients@1", "allclients@2").refused == {"drop-hold": 1}
    lc.migrate_accounts("allclients@1", "allclients@2", dry_run=False, allow=["drop-hold"])
    assert dict(lc.get("h").holds) == {}
    assert list(lc.history("h")[-1].details["holds_dropped"]) == ["backups"]


def test_purged_accounts_are_not_migrated(world: Any) -> None:
    store, clock, _ = world
    lc = lifecycle(PolicyRegistry([V1, V2], current="allclients@1"), store, clock)
    lc.open("p", owner="u-1")
    cancel(lc, "p")
    clock.advance(timedelta(days=100))
    lc.sweep()
    plan = lc.plan_migration("allclients@1", "allclients@2")
    assert [(s.state, dict(s.blocked)) for s in plan.states] == [
        (State.PURGED, {"purged accounts keep the version they were purged under": 1})
    ]
    assert lc.migrate_accounts("allclients@1", "allclients@2", dry_run=False).migrated == ()
    assert lc.receipt("p").policy == "allclients@1"


def test_verify_checks_every_version_and_every_allowed_migration() -> None:
    from account_lifecycle import verify_registry

    registry = PolicyRegistry([V1, V2])
    report = verify_registry(registry)  # by default: each version to its later versions
    assert report.ok
    assert list(report.versions) == ["allclients@1", "allclients@2"]
    assert [(m.source, m.target, m.broken) for m in report.migrations] == [
        ("allclients@1", "allclients@2", ())
    ]
    back = verify_registry(registry, [("allclients@2", "allclients@1")])
    assert not back.ok
    assert back.migrations[0].broken == ("shorten-window",)
    assert verify_registry(registry, [("allclients@2", "allclients@1", ["shorten-window"])]).ok
    assert back.to_dict()["migrations"][0]["ok"] is False
    with pytest.raises(UnknownPolicyVersion):
        verify_registry(registry, [("allclients@2", "allclients@3")])


def test_the_pin_round_trips_and_a_malformed_one_is_a_corrupt_record() -> None:
    import json

    from account_lifecycle import RecordCorrupt
    from account_lifecycle.codec import record_from_json, record_to_json

    store, clock = MemoryStore(), ManualClock(T0)
    lc = lifecycle(PolicyRegistry([V1, V2]), store, clock)
    lc.open("x", owner="u-1")
    record = cancel(lc, "x")
    text = record_to_json(record)
    assert record_from_json(text, "x") == record
    data = json.loads(text)
    assert (data["policy_version"], data["pins"]["restorable"]) == (2, "allclients@2")
    for bad in (
        {"policy_version": "2"},
        {"policy_version": -1},
        {"pins": ["x"]},
        {"pins": {"nowhere": "a@1"}},
    ):
        with pytest.raises(RecordCorrupt):
            record_from_json(json.dumps({**data, **bad}), "x")
    legacy = {k: v for k, v in data.items() if k not in ("policy_version", "pins")}
    old = record_from_json(json.dumps(legacy), "x")
    assert (old.policy_version, dict(old.pins), old.policy_label) == (0, {}, "allclients")


def test_a_rollout_naming_an_unknown_version_changes_nothing() -> None:
    store, clock = MemoryStore(), ManualClock(T0)
    broken = PolicyRegistry([V1], rollout=lambda account_id: "allclients@5")
    lc = lifecycle(broken, store, clock)
    with pytest.raises(UnknownPolicyVersion):
        lc.open("x", owner="u-1")
    assert store.account_ids() == ()
    with pytest.raises(UnknownPolicyVersion):
        PolicyRegistry([V1], rollout=Rollout("allclients@5", 0.1))
