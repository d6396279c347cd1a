"""Migrations beside sweeps and purgers, with the interleaving built inside a store wrapper or
a purger (no sleeps, no threads): the fence and compare-and-set decide, and a migration that
stops half-way resumes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from versions_fixtures import V1, V2, lifecycle

from account_lifecycle import (
    Actor,
    ManualClock,
    MemoryStore,
    PolicyRegistry,
    PurgeResult,
    State,
    StoreError,
)
from account_lifecycle.values import Write

OWNER = Actor.user("u-1")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Interleaved:
    """A store that runs *before* once, just before the first batch of writes that takes a
    claim (a sweep starting purge steps), or fails the *fail_on*-th batch of writes."""

    def __init__(self, inner: MemoryStore) -> None:
        self.inner = inner
        self.before: Callable[[], None] | None = None
        self.fail_on: int | None = None
        self.batches = 0

    def save_many(self, writes: Sequence[Write], *, now: datetime) -> list[Exception | None]:
        self.batches += 1
        if self.fail_on == self.batches:
            raise StoreError("the store went away (test)")
        if self.before is not None and any(w.lease is not None for w in writes):
            run, self.before = self.before, None
            run()
        return self.inner.save_many(writes, now=now)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def cancel(lc: Any, account_id: str) -> Any:
    lc.request_cancellation(account_id, OWNER)
    lc.skip_survey(account_id, OWNER)
    return lc.confirm(account_id, OWNER)


def test_a_migration_committed_under_a_sweep_makes_it_follow_the_new_version() -> None:
    """The sweep claimed an account whose 3 months ended; the migration to the phased window
    (which ends later) commits first: the sweep's start loses its compare-and-set, reads the
    account again, and under the version it is pinned to now nothing is due: nothing erased."""
    store = Interleaved(MemoryStore())
    clock = ManualClock(T0)
    calls: list[tuple[str, str, str]] = []
    lc = lifecycle(PolicyRegistry([V1, V2], current="allclients@1"), store, clock, calls)
    lc.open("a", owner="u-1")
    cancel(lc, "a")
    clock.advance(timedelta(days=95))  # past 1 April (v1's end), before 30 April (v2's)
    calls.clear()
    reports = []
    store.before = lambda: reports.append(lc.migrate_accounts("allclients@1", "allclients@2", dry_run=False))
    report = lc.sweep()
    assert [r.migrated for r in reports] == [("a",)]
    assert report.purged == ()
    assert calls == []  # backups were not handed to a purger
    record = lc.get("a")
    assert (record.state, record.policy_label) == (State.RESTORABLE, "allclients@2")
    assert record.restorable_until == datetime(2026, 4, 30, tzinfo=UTC)
    clock.advance(timedelta(days=30))
    lc.sweep()
    assert [(c, p) for _, c, p in calls] == [("backups", "allclients@2")]
    lc.verify_history("a")


def test_a_migration_meeting_an_erasure_in_flight_leaves_the_account_for_the_next_run() -> None:
    store = MemoryStore()
    clock = ManualClock(T0)
    reports: list[Any] = []
    lc: Any = None

    class MigratingPurger:
        category = "contacts"

        def purge(self, account_id: str, context: Any) -> PurgeResult:
            if not reports:  # while this step is in flight
                reports.append(lc.migrate_accounts("allclients@1", "allclients@2", dry_run=False))
            return PurgeResult(items=1)

    calls: list[tuple[str, str, str]] = []
    base = lifecycle(PolicyRegistry([V1, V2], current="allclients@1"), store, clock, calls)
    purgers = [p for p in base.purgers.values() if p.category != "contacts"] + [MigratingPurger()]
    from account_lifecycle import Lifecycle

    lc = Lifecycle(base.registry, store=store, clock=clock, purgers=purgers)
    lc.open("a", owner="u-1")
    assert cancel(lc, "a").state is State.RESTORABLE
    assert reports[0].busy == ("a",)
    assert reports[0].migrated == ()
    assert lc.get("a").policy_label == "allclients@1"
    again = lc.migrate_accounts("allclients@1", "allclients@2", dry_run=False)
    assert again.migrated == ("a",)
    assert lc.get("a").restorable_until == datetime(2026, 4, 30, tzinfo=UTC)


def test_a_migration_stopped_half_way_resumes() -> None:
    store = Interleaved(MemoryStore())
    clock = ManualClock(T0)
    lc = lifecycle(PolicyRegistry([V1, V2], current="allclients@1"), store, clock)
    for n in range(3):
        lc.open(f"a{n}", owner="u-1")
        cancel(lc, f"a{n}")
    store.batches = 0
    store.fail_on = 2  # the second batch of one account fails
    try:
        lc.migrate_accounts("allclients@1", "allclients@2", dry_run=False, batch=1)
    except StoreError:
        pass
    else:
        raise AssertionError("the store failure was swallowed")
    assert [lc.get(f"a{n}").policy_label for n in range(3)] == [
        "allclients@2",
        "allclients@1",
        "allclients@1",
    ]
    store.fail_on = None
    report = lc.migrate_accounts("allclients@1", "allclients@2", dry_run=False, batch=1)
    assert report.migrated == ("a1", "a2")
    for n in range(3):
        assert [e.action for e in lc.history(f"a{n}")].count("policy_migrated") == 1
