"""Fault injection: the store failing at each step, listeners raising, the clock jumping
backwards, purgers timing out. Nothing is half-written and nothing is lost."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from world import OWNER, SUPPORT, World

from account_lifecycle import (
    AccountRecord,
    AuditEvent,
    CorruptRecord,
    InvalidTransition,
    Lease,
    ManualClock,
    MemoryStore,
    PurgeStatus,
    SQLiteStore,
    State,
    StoreError,
    policies,
)
from account_lifecycle.testing.fakes import FakePurger


class FailingStore:
    """Delegates to a real store, raising ``StoreError`` on the calls numbered in ``fail_at``
    (before the call for ``when="before"``, after it succeeded for ``when="after"``, as when the
    commit went through but the answer was lost)."""

    def __init__(self, inner: Any, fail_at: set[int] | None = None, when: str = "before") -> None:
        self.inner = inner
        self.fail_at = fail_at or set()
        self.when = when
        self.calls = 0

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        fail = self.calls in self.fail_at
        if fail and self.when == "before":
            raise StoreError(f"injected failure before {name} (call {self.calls})")
        result = getattr(self.inner, name)(*args, **kwargs)
        if fail:
            raise StoreError(f"injected failure after {name} (call {self.calls})")
        return result

    def create(
        self, record: AccountRecord, events: Sequence[AuditEvent], *, now: datetime | None = None
    ) -> None:
        self._call("create", record, events, now=now)

    def get(self, account_id: str) -> AccountRecord:
        return self._call("get", account_id)  # type: ignore[no-any-return]

    def save(self, record: AccountRecord, *, expected_version: int, events: Sequence[AuditEvent],
             lease: Lease | None = None, release: str | None = None,
             now: datetime | None = None) -> None:  # fmt: skip
        self._call(
            "save",
            record,
            expected_version=expected_version,
            events=events,
            lease=lease,
            release=release,
            now=now,
        )

    def history(self, account_id: str) -> tuple[AuditEvent, ...]:
        return self._call("history", account_id)  # type: ignore[no-any-return]

    def claim_due(self, *, now: datetime, lease: Lease, limit: int) -> list[AccountRecord | CorruptRecord]:
        return self._call("claim_due", now=now, lease=lease, limit=limit)  # type: ignore[no-any-return]

    def release(self, account_id: str, owner: str) -> None:
        self._call("release", account_id, owner)


def consistent(inner: Any, account_id: str) -> AccountRecord:
    """The stored record and its history agree: the chain verifies up to the record's head."""
    from account_lifecycle.audit import verify_chain

    record: AccountRecord = inner.get(account_id)
    verify_chain(account_id, inner.history(account_id), record.chain_head)
    assert record.last_seq == len(inner.history(account_id))
    return record


def _flows(world: World) -> list[tuple[str, Callable[[], object]]]:
    return [
        ("request", lambda: world.lc.request_cancellation("acct-1", OWNER)),
        ("survey", lambda: world.lc.submit_survey("acct-1", OWNER, "cancel")),
        ("confirm", lambda: world.confirm()),
    ]


def _run_flow(
    tmp_path: Any, inner_kind: str, fail_at: set[int], when: str
) -> tuple[Any, FailingStore, World, ManualClock]:
    inner = (
        MemoryStore()
        if inner_kind == "memory"
        else SQLiteStore(tmp_path / f"f{min(fail_at, default=0)}{when}.db")
    )
    store = FailingStore(inner)
    clock = ManualClock(datetime(2026, 11, 30, 12, tzinfo=UTC))
    world = World(policies.SMRTPHONE, store, clock)  # type: ignore[arg-type]
    world.open()
    store.calls, store.fail_at, store.when = 0, fail_at, when
    for _name, step in _flows(world):
        for _attempt in range(2):  # the user retries once after an error page
            try:
                step()
                break
            except StoreError:
                consistent(inner, "acct-1")  # nothing half-written
            except InvalidTransition:
                break  # the first try had gone through after all: the retry is refused cleanly
    return inner, store, world, clock


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("inner_kind", ["memory", "sqlite"])
def test_store_failing_at_every_step_of_a_cancellation(tmp_path: Any, inner_kind: str, when: str) -> None:
    """Fail the n-th store call of the whole flow, for every n: each command either fully
    happened or not at all, and retrying (plus a sweep after the lease) ends PURGED."""
    _, dry, _, _ = _run_flow(tmp_path, inner_kind, set(), when)
    total = dry.calls
    assert total > 10  # open aside, the flow makes more than ten store calls
    for n in range(1, total + 1):
        inner, _store, world, clock = _run_flow(tmp_path, inner_kind, {n}, when)
        clock.advance(timedelta(minutes=6))  # past the confirm's lease, if a purge was cut short
        world.lc.sweep()
        record = consistent(inner, "acct-1")
        assert record.state is State.PURGED, f"call {n} ({when}): ended {record.state}"
        assert all(p.status is PurgeStatus.DONE for p in record.purge.values())
        assert sorted(record.purge) == sorted(c.name for c in policies.SMRTPHONE.purge.categories)
        for name in ("crm_contacts", "crm_logs"):
            assert world.purgers[name].calls == []
        if inner_kind == "sqlite":
            inner.close()


def test_purger_timing_out_is_recorded_and_retried(store, clock: ManualClock) -> None:
    """A purger that times out leaves the account CANCELLED with the error; a later sweep
    finishes it and every attempt is in the audit chain."""
    world = World(policies.ALLCLIENTS, store, clock)

    timeout = TimeoutError("todo service did not answer in 30 s")
    world.lc.purgers["todos"] = FakePurger("todos", items=4, fail_times=1, fail_with=timeout)
    world.open()
    record = world.cancel()
    assert record.state is State.CANCELLED
    assert record.purge["todos"].status is PurgeStatus.FAILED
    assert "TimeoutError: todo service did not answer" in (record.purge["todos"].error or "")
    clock.advance(timedelta(hours=1))
    assert world.lc.sweep().restorable == ("acct-1",)
    actions = [e.action for e in world.lc.history("acct-1")]
    assert actions.count("purge_failed") == 1
    assert world.lc.get("acct-1").purge["todos"].items == 4
    world.lc.verify_history("acct-1")


def test_clock_jumping_backwards(store, clock: ManualClock) -> None:
    """A clock that jumps back does not purge early, does not extend a window already
    decided, and the chain still verifies (order comes from seq, not from timestamps)."""
    world = World(policies.ALLCLIENTS, store, clock)
    world.open()
    record = world.cancel()
    until = record.restorable_until
    assert until is not None
    clock.set(until + timedelta(seconds=1))
    clock.set(until - timedelta(days=100))  # NTP steps back to before the cancellation
    assert world.lc.sweep().purged == ()
    assert world.lc.get("acct-1").state is State.RESTORABLE
    assert world.lc.restore("acct-1", SUPPORT).state is State.ACTIVE
    assert world.lc.get("acct-1").restorable_until is None
    world.lc.verify_history("acct-1")
    times = [e.at for e in world.lc.history("acct-1")]
    assert times[-1] < times[-2]  # the restore is stamped earlier than the cancellation
    assert [e.seq for e in world.lc.history("acct-1")] == list(range(1, len(times) + 1))
