"""The hash chain: one event per command and effect, and any edit, removal or reordering detected."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import attrs
import pytest
from world import OWNER, World

from account_lifecycle import HistoryTampered, ManualClock, SQLiteStore, State, policies
from account_lifecycle.audit import GENESIS, verify_chain


@pytest.fixture
def world(tmp_path: Path, clock: ManualClock) -> World:
    w = World(policies.SMRTPHONE, SQLiteStore(tmp_path / "a.db"), clock)
    w.open()
    w.cancel()
    return w


def _rows(path: Path) -> list[tuple[int, dict]]:
    with sqlite3.connect(path) as conn:
        return [
            (seq, json.loads(body)) for seq, body in conn.execute("SELECT seq, body FROM events ORDER BY seq")
        ]


def _write(path: Path, seq: int, body: dict) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE events SET body = ? WHERE seq = ?", (json.dumps(body), seq))


def test_one_event_per_command_and_effect(world: World) -> None:
    """The smrtPhone cancel writes each command, each effect and each purged category once."""
    actions = [e.action for e in world.lc.history("acct-1")]
    assert actions == [
        "open", "request_cancellation", "submit_survey", "confirm", "team_access_revoked",
        "credit_forfeited", "category_purged", "category_purged", "category_purged",
        "category_purged", "category_purged", "purge",
    ]  # fmt: skip
    events = world.lc.history("acct-1")
    assert [e.seq for e in events] == list(range(1, 13))
    assert events[0].prev_hash == GENESIS
    assert all(e.policy == "smrtphone@1" for e in events)
    assert world.lc.get("acct-1").chain_head == events[-1].hash


def test_chain_verifies(world: World) -> None:
    """An untouched history verifies."""
    world.lc.verify_history("acct-1")


def test_edited_event_is_detected(world: World) -> None:
    """Changing any field of a stored event breaks the chain at that event."""
    path = Path(world.store.path)
    seq, body = _rows(path)[3]
    body["details"]["acknowledged"] = []
    _write(path, seq, body)
    with pytest.raises(HistoryTampered) as caught:
        world.lc.verify_history("acct-1")
    assert caught.value.seq == 4


def test_edited_event_with_recomputed_hash_is_detected(world: World) -> None:
    """Re-hashing an edited event still breaks the link to the next event."""
    events = list(world.lc.history("acct-1"))
    forged = attrs.evolve(events[2], actor=OWNER, details={"outcome": "keep_account", "answers": {}})
    events[2] = attrs.evolve(forged, hash=forged.compute_hash())
    with pytest.raises(HistoryTampered) as caught:
        verify_chain("acct-1", events, world.lc.get("acct-1").chain_head)
    assert caught.value.seq == 4


def test_removed_event_is_detected(world: World) -> None:
    """Removing an event in the middle breaks the sequence."""
    path = Path(world.store.path)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM events WHERE seq = 5")
    with pytest.raises(HistoryTampered) as caught:
        world.lc.verify_history("acct-1")
    assert caught.value.seq == 5


def test_removed_last_event_is_detected(world: World) -> None:
    """Removing the newest event is caught by the record's chain head."""
    path = Path(world.store.path)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM events WHERE seq = 12")
    with pytest.raises(HistoryTampered, match="chain head") as caught:
        world.lc.verify_history("acct-1")
    assert caught.value.seq == 12


def test_reordered_events_are_detected(world: World) -> None:
    """Swapping two events breaks the chain at the first of them."""
    events = list(world.lc.history("acct-1"))
    events[6], events[7] = events[7], events[6]
    with pytest.raises(HistoryTampered) as caught:
        verify_chain("acct-1", events, world.lc.get("acct-1").chain_head)
    assert caught.value.seq == 7


def test_event_from_another_account_is_detected(world: World) -> None:
    """An event copied from another account's chain does not verify."""
    world.lc.open("acct-2", owner="owner")
    events = list(world.lc.history("acct-1"))
    events[0] = world.lc.history("acct-2")[0]
    with pytest.raises(HistoryTampered):
        verify_chain("acct-1", events, world.lc.get("acct-1").chain_head)


def test_events_round_trip_through_json(world: World) -> None:
    """Stored events come back equal, with aware UTC timestamps and their states."""
    events = world.lc.history("acct-1")
    assert events[-1].to_state is State.PURGED
    assert all(e.at.tzinfo is not None for e in events)
    assert all(e.compute_hash() == e.hash for e in events)


def test_details_are_immutable(world: World) -> None:
    """Audit details handed to listeners cannot be changed by them."""
    event = world.lc.history("acct-1")[3]
    with pytest.raises(TypeError):
        event.details["acknowledged"] = ()  # type: ignore[index]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.action = "x"  # type: ignore[misc]
