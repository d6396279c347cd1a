"""A sweep through the fast write paths stores what the general paths store, byte for byte.

Two copies of one SQLite database (accounts cancelled, some with a legal hold, some whose
purger fails the first time) are swept through the cancel-time purge, a retry, and the expiry
purge: one copy by the library as it is, the other with the general paths put back (records
encoded through ``record_to_dict`` and the encoder and decoded through ``AccountRecord(...)``,
each event's stored text formatted again by ``stored_json``, the runner's applied copy built
again by the journal). Every row of every table is then the same in both.
"""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from account_lifecycle import (
    Actor,
    Duration,
    Lifecycle,
    ManualClock,
    Policy,
    PurgeCategory,
    PurgePolicy,
    RecoveryPolicy,
    SQLiteStore,
    SurveyPolicy,
    codec,
    purge,
)
from account_lifecycle.adapters import sqlite as sqlite_adapter
from account_lifecycle.journal import Commit
from account_lifecycle.testing.fakes import fake_identity_keys, fake_purgers

POLICY = Policy(
    name="fastpaths",
    version=1,
    survey=SurveyPolicy(mode="off"),
    recovery=RecoveryPolicy(window=Duration(1, "months")),
    identity={"phone": "after 3 days"},
    purge=PurgePolicy(
        categories=(
            PurgeCategory("files"),
            PurgeCategory("backups", "expiry"),
            PurgeCategory("archive", "expiry"),
        ),
        on_hold="retain",
        cancel_work="deferred",  # the cancel-time purge by the sweep too, not at confirm
    ),
)
CANCELLED_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SUPPORT = Actor.support("agent-1")
TABLES = ("accounts", "events", "outbox", "sealed_values", "identities")


def _lifecycle(path: Path, at: datetime) -> Lifecycle:
    purgers = fake_purgers(POLICY, items=3, detail="done")
    purgers["backups"].fail_when = lambda account_id, context: (
        account_id.endswith("7") and context.attempt == 1
    )
    return Lifecycle(
        POLICY,
        store=SQLiteStore(path),
        purgers=list(purgers.values()),
        clock=ManualClock(at),
        identity_keys=fake_identity_keys(),
    )


def _populate(path: Path) -> None:
    lc = _lifecycle(path, CANCELLED_AT)
    for i in range(24):
        account_id = f"acct-{i:02d}"
        owner = Actor.user(f"owner-{i}")
        lc.open(
            account_id,
            owner=owner.id,
            members=[f"member-{i}"] if i % 3 == 0 else (),
            identity=f"{account_id}@example.com",
            identifiers={"phone": f"+1555000{i:02d}"} if i % 4 == 0 else None,
        )
        if i % 5 == 0:
            lc.place_hold(account_id, SUPPORT, "archive", "case 12")
        lc.request_cancellation(account_id, owner)
        lc.confirm(account_id, owner)
    lc.store.close()  # type: ignore[attr-defined]


def _general_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """The paths the fast ones replaced, put back."""
    monkeypatch.setattr(sqlite_adapter, "record_to_json", codec._record_to_json_general)
    monkeypatch.setattr(sqlite_adapter, "event_to_json", lambda event: event.stored_json())
    monkeypatch.setattr(codec, "record_from_dict", codec._record_from_dict_general)

    def commit(*args: Any, after: Any = None, **kwargs: Any) -> Commit:
        return Commit(*args, **kwargs)  # without the applied copy: the journal builds the record

    monkeypatch.setattr(purge, "Commit", commit)


def _sweep(path: Path) -> list[tuple[str, int]]:
    counts = []
    for at in (
        CANCELLED_AT + timedelta(minutes=5),  # the cancel-time purge
        CANCELLED_AT + timedelta(days=1),  # its retries
        CANCELLED_AT + timedelta(days=40),  # the expiry purge
        CANCELLED_AT + timedelta(days=41),  # its retries
    ):
        lc = _lifecycle(path, at)
        report = lc.sweep()
        counts.append((at.isoformat(), len(report.purged) + len(report.restorable) + len(report.failed)))
        lc.store.close()  # type: ignore[attr-defined]
    return counts


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall() for table in TABLES}
    finally:
        conn.close()


def test_a_sweep_through_the_fast_paths_stores_the_general_paths_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source.db"
    _populate(source)
    fast, general = tmp_path / "fast.db", tmp_path / "general.db"
    shutil.copyfile(source, fast)
    shutil.copyfile(source, general)

    fast_counts = _sweep(fast)
    with monkeypatch.context() as patched:
        _general_paths(patched)
        general_counts = _sweep(general)

    assert fast_counts == general_counts
    assert any(count for _, count in fast_counts)
    fast_rows, general_rows = _rows(fast), _rows(general)
    assert fast_rows["events"], "the sweeps wrote events"
    states = {row[0]: row for row in fast_rows["accounts"]}
    assert len(states) == 24
    for table in TABLES:
        assert fast_rows[table] == general_rows[table], table
