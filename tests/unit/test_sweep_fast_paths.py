"""The sweep's write path makes the same bytes the general path makes.

* ``journal.chain_keeping_text`` chains the event ``ChainWriter.append`` chains (same fields,
  same hash, same chain head) and gives its stored text, made from the hashed canonical text,
  equal to ``AuditEvent.stored_json()`` and to the encoder's ``to_dict()`` bytes, whatever the
  details hold (keys named like the event's own fields included).
* ``codec.event_to_json`` gives the text handed to it only for that very event, and only while
  ``stored_forms`` lasts.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from account_lifecycle.audit import GENESIS, ChainWriter
from account_lifecycle.codec import event_to_json, stored_forms
from account_lifecycle.journal import chain_keeping_text
from account_lifecycle.model import Actor, State
from account_lifecycle.sealed import SealedValue

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)

#: Keys that are the event's own field names, and text that looks like its encoding.
KEYS = st.sampled_from(["policy", "hash", "from_state", "seq", "details", ',"policy":', '"']) | st.text(
    max_size=8
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | st.sampled_from([',"policy":"x"', '","policy":"', "\\", "\u00e9\u2603\ud800"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)
STATES = st.sampled_from(list(State))
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))])


@settings(max_examples=400, deadline=None)
@given(
    details=st.dictionaries(KEYS, VALUES, max_size=5),
    policy=st.sampled_from(["p", "allclients@3", 'odd",policy:"@1', ""]),
    account_id=st.sampled_from(["acct-1", 'a"b', "\u00e9"]),
    head=st.sampled_from([GENESIS, "ab" * 32]),
    seq=st.integers(0, 10**6),
    version=st.integers(1, 10**6),
    at=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=ZONES),
    actor=st.sampled_from([Actor.system(), Actor.user("u-1"), Actor.support("s-1")]),
    action=st.sampled_from(["purge", "category_purged", "erasure_started"]),
    from_state=st.none() | STATES,
    to_state=STATES,
    sealed=st.booleans(),
)
def test_chain_keeping_text_chains_the_same_event_and_gives_its_stored_bytes(
    details: dict[str, Any],
    policy: str,
    account_id: str,
    head: str,
    seq: int,
    version: int,
    at: datetime,
    actor: Actor,
    action: str,
    from_state: State | None,
    to_state: State,
    sealed: bool,
) -> None:
    fields: dict[str, Any] = {
        "at": at,
        "actor": actor,
        "action": action,
        "from_state": from_state,
        "to_state": to_state,
        "details": details,
        "sealed_values": {"email": SealedValue("ab" * 32, "ann@example.com")} if sealed else None,
    }
    general = ChainWriter(account_id, policy, head, seq, version)
    fast = ChainWriter(account_id, policy, head, seq, version)

    expected = general.append(**fields)
    event, stored = chain_keeping_text(fast, **fields)

    assert event == expected
    assert event.hash == expected.hash == expected.compute_hash()
    assert event.sealed_values == expected.sealed_values
    assert (fast.head, fast.seq, fast.events) == (general.head, general.seq, general.events)
    assert fast.events[-1] is event
    assert stored == expected.stored_json() == _ENCODER.encode(expected.to_dict())


def _event(account_id: str = "acct-1") -> Any:
    writer = ChainWriter(account_id, "p@1", GENESIS, 0, 1)
    return writer.append(
        at=datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
        actor=Actor.system(),
        action="purge",
        from_state=State.RESTORABLE,
        to_state=State.PURGED,
        details={"identity_released": True},
    )


def test_event_to_json_takes_the_given_text_only_for_that_event_and_only_meanwhile() -> None:
    event, twin = _event(), _event()
    assert event == twin
    assert event is not twin
    with stored_forms({id(event): (event, "given")}):
        assert event_to_json(event) == "given"
        assert event_to_json(twin) == twin.stored_json()  # equal, but not the event given
    assert event_to_json(event) == event.stored_json()  # after: encoded again
    with stored_forms({id(twin): (event, "not twin's")}):  # an id whose event is another
        assert event_to_json(twin) == twin.stored_json()
