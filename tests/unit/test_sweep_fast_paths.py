"""The sweep's write path makes the same bytes the general path makes.

* ``ChainWriter.append_keeping_text`` chains the event ``ChainWriter.append`` chains (same fields,
  same hash, same chain head) and gives its stored text, made from the hashed canonical text,
  equal to ``AuditEvent.stored_json()`` and to the encoder's ``to_dict()`` bytes, whatever the
  details hold (keys named like the event's own fields included).
* ``codec.event_to_json`` gives the text handed to it only for that very event, and only while
  ``stored_forms`` lasts.
* ``codec.record_from_dict`` (slot by slot) decodes what ``AccountRecord(...)`` with every
  converter decodes, the same types, and refuses a spoilt stored form with the same error.
* ``codec.record_to_json`` (field by field) gives ``dumps(record_to_dict(record))``'s bytes for
  any record, odd values included, and fails where that fails.
* ``Journal.commit_many`` completing the caller's applied copy (``Commit.after``) in place
  writes and returns what building the new record from the decision writes and returns.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from account_lifecycle.adapters.memory import MemoryStore
from account_lifecycle.audit import GENESIS, ChainWriter
from account_lifecycle.codec import (
    _record_from_dict_general,
    _record_to_json_general,
    _what_failed,
    event_to_json,
    record_from_dict,
    record_to_dict,
    record_to_json,
    stored_forms,
)
from account_lifecycle.decide import Decision, Event, apply
from account_lifecycle.journal import Commit, Journal
from account_lifecycle.model import (
    AccountRecord,
    Actor,
    Erasure,
    HeldIdentifier,
    Hold,
    PurgeProgress,
    PurgeStatus,
    Reminder,
    ServiceState,
    State,
)
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
def test_append_keeping_text_chains_the_same_event_and_gives_its_stored_bytes(
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
    event, stored = fast.append_keeping_text(**fields)

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


# -- decoding a stored record: slot by slot, equal to AccountRecord(...) ------------------------

_T = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
_RECORD_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "state": STATES,
    "members": st.sampled_from([(), ["m-1", "m-2"]]),
    "identity": st.none() | st.just("ann@example.com"),
    "version": st.integers(1, 10**6),
    "cancelled_at": st.none() | st.just(_T),
    "restorable_until": st.none() | st.just(_T + timedelta(days=30)),
    "purge": st.sampled_from(
        [
            {},
            {"files": PurgeProgress()},
            {"mail": PurgeProgress(status=PurgeStatus.FAILED, attempts=2, error="x", retry_at=_T)},
        ]
    ),
    "services": st.sampled_from([{}, {"billing": ServiceState.CANCELLED, "mail": ServiceState.ACTIVE}]),
    "chain_head": st.sampled_from(["", "ab" * 32]),
    "last_seq": st.integers(0, 100),
    "policy": st.sampled_from(["", "allclients"]),
    "cancellation_id": st.none() | st.just("c-1"),
    "recent_keys": st.sampled_from([(), [("k", "confirm")], (("k1", "withdraw", "d"), ("k2", "restore"))]),
    "identity_released_at": st.none() | st.just(_T),
    "holds": st.sampled_from([{}, {"backups": Hold(reason="case 1", by="support:a", at=_T)}]),
    "reminders": st.sampled_from([(), [Reminder("7 days", _T, _T)]]),
    "identifiers": st.sampled_from(
        [{}, {"email": "ann@example.com"}, {"phone": HeldIdentifier("+1555", _T)}]
    ),
    "erasure": st.none() | st.just(Erasure(owner="s", phase="cancel", steps=["files"], started_at=_T)),
    "policy_version": st.integers(0, 3),
    "pins": st.sampled_from(
        [{}, {"active": "p@1", "restorable": "p@2"}, {"active": "p@2", "restorable": "p@2"}]
    ),
    "services_again": st.sampled_from([{}, {"billing": ServiceState.ACTIVE, "mail": ServiceState.ACTIVE}]),
}
#: What a stored field might hold instead: good, bad, or missing (``_MISSING``).
_MISSING = object()
_STORED_VALUES = st.one_of(
    st.just(_MISSING),
    st.none(),
    st.integers(-1, 3),
    st.booleans(),
    st.text(max_size=4),
    st.sampled_from(
        ["restorable", "active", "done", "2026-03-01T09:00:00.000000Z", {}, [], [[]], [["k", "a"]]]
    ),
    st.dictionaries(
        st.sampled_from(["files", "active", "owner"]), st.none() | st.text(max_size=3), max_size=2
    ),
)


def _decoded(decode: Any, data: dict[str, Any]) -> Any:
    """The record *decode* makes of *data*, or what it raised (type and the reason reported)."""
    try:
        return decode(json.loads(json.dumps(data)))
    except Exception as exc:
        return type(exc), _what_failed(exc)


@settings(max_examples=400, deadline=None)
@given(
    data=st.data(),
    names=st.sets(st.sampled_from(sorted(_RECORD_FIELDS))),
    spoilt=st.dictionaries(
        st.sampled_from([*_RECORD_FIELDS, "account_id", "owner"]).filter(lambda k: k != "services_again"),
        _STORED_VALUES,
        max_size=2,
    ),
)
def test_record_from_dict_is_the_general_decoding(
    data: st.DataObject, names: set[str], spoilt: dict[str, Any]
) -> None:
    fields = {name: data.draw(_RECORD_FIELDS[name], label=name) for name in sorted(names)}
    if "services_again" in fields:  # the same service names in other states
        fields["services"] = fields.pop("services_again")
    record = AccountRecord(account_id="acct-1", owner="u-1", **{"state": State.RESTORABLE, **fields})
    stored = record_to_dict(record)

    fast = _decoded(record_from_dict, stored)
    assert fast == record
    for field in attrs.fields(AccountRecord):
        assert type(getattr(fast, field.name)) is type(getattr(record, field.name)), field.name

    for key, value in spoilt.items():  # and a stored form spoilt: the same record or the same error
        if value is _MISSING:
            stored.pop(key, None)
        else:
            stored[key] = value
    expected = _decoded(_record_from_dict_general, stored)
    got = _decoded(record_from_dict, stored)
    assert got == expected
    if isinstance(expected, AccountRecord):
        for field in attrs.fields(AccountRecord):
            assert type(getattr(got, field.name)) is type(getattr(expected, field.name)), field.name


# -- commit_many completes the caller's applied copy in place: the same record as building it --

_DECISIONS: dict[str, Any] = {
    "start": lambda now: Decision(
        {"erasure": Erasure(owner="s", phase="expiry", steps=("files",), started_at=now)},
        (Event("erasure_started", State.RESTORABLE, State.RESTORABLE, {"phase": "expiry"}),),
    ),
    "move": lambda now: Decision(
        {"state": State.PURGED, "identity_released_at": now, "purge": {"files": PurgeProgress()}},
        (Event("purge", State.RESTORABLE, State.PURGED, {"identity_released": True}),),
        erase_sealed=True,
    ),
    "nothing": lambda now: Decision({}, (Event("reminder_sent", State.RESTORABLE, State.RESTORABLE),)),
}


@settings(max_examples=60, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(sorted(_DECISIONS)), min_size=1, max_size=4),
    labelled=st.booleans(),
)
def test_commit_many_completing_the_applied_copy_writes_what_building_it_writes(
    kinds: list[str], labelled: bool
) -> None:
    now = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    label_of = (lambda name, version: f"{name}@{version}") if labelled else None
    stores = (MemoryStore(), MemoryStore())
    journals = [Journal(store, "p", label_of=label_of) for store in stores]
    records = []
    for i, _ in enumerate(kinds):
        record = AccountRecord(
            account_id=f"acct-{i}",
            state=State.RESTORABLE,
            owner="u-1",
            cancelled_at=now - timedelta(days=100),
            restorable_until=now - timedelta(days=10),
            policy="p",
            policy_version=1 if labelled else 0,
            pins={"restorable": "p@1"} if labelled else {},
        )
        opened = Event("open", None, State.RESTORABLE)
        created = [journal.create(record, opened, now=now) for journal in journals]
        assert created[0] == created[1]
        records.append(created[0])
    decisions = [_DECISIONS[kind](now) for kind in kinds]
    copies = [attrs.evolve(r) for r in records]

    built = journals[0].commit_many([Commit(r, d, now) for r, d in zip(records, decisions, strict=True)])
    completed = journals[1].commit_many(
        [Commit(r, d, now, after=apply(r, d)) for r, d in zip(records, decisions, strict=True)]
    )

    assert completed == built
    for fast, slow in zip(completed, built, strict=True):
        assert isinstance(fast, AccountRecord)
        for field in attrs.fields(AccountRecord):
            assert type(getattr(fast, field.name)) is type(getattr(slow, field.name)), field.name
    assert records == copies  # the records written from are untouched
    for record in records:
        assert stores[0].get(record.account_id) == stores[1].get(record.account_id)
        assert [e.stored_json() for e in stores[0].history(record.account_id)] == [
            e.stored_json() for e in stores[1].history(record.account_id)
        ]


# -- encoding a record: field by field, the encoder's bytes -----------------------------------

TEXT = st.text(max_size=6) | st.sampled_from(['"', "\\", "\u00e9", "\ud800", "\x00", "a\nb", "</script>"])
#: What a field might hold: its usual values, and other JSON values (the record checks no types).
ODD = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT
MOMENTS = st.none() | st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=ZONES
)
PROGRESS = st.builds(
    PurgeProgress,
    status=st.sampled_from(list(PurgeStatus)),
    attempts=st.integers(0, 5) | ODD,
    items=st.integers(0, 2**63 - 1) | ODD,
    error=st.none() | TEXT,
    at=MOMENTS,
    retry_at=MOMENTS,
    purger=st.none() | TEXT,
)
_ENCODED_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "state": STATES,
    "owner": TEXT,
    "members": st.frozensets(TEXT, max_size=3),
    "identity": st.none() | TEXT,
    "version": st.integers(1, 10**6) | ODD,
    "cancelled_at": MOMENTS,
    "restorable_until": MOMENTS,
    "purge": st.dictionaries(TEXT, PROGRESS, max_size=3)
    | st.dictionaries(st.integers(0, 3), PROGRESS, min_size=1, max_size=2),
    "services": st.dictionaries(TEXT, st.sampled_from(list(ServiceState)), max_size=3),
    "chain_head": st.sampled_from(["", "ab" * 32]) | ODD,
    "last_seq": st.integers(0, 100) | ODD,
    "policy": TEXT,
    "cancellation_id": st.none() | TEXT,
    "recent_keys": st.lists(st.tuples(TEXT, TEXT) | st.tuples(TEXT, TEXT, TEXT), max_size=3),
    "identity_released_at": MOMENTS,
    "holds": st.dictionaries(
        TEXT, st.builds(Hold, reason=TEXT, by=TEXT, at=MOMENTS.filter(bool)), max_size=2
    ),
    "reminders": st.lists(st.builds(Reminder, TEXT, MOMENTS.filter(bool), MOMENTS), max_size=2),
    "identifiers": st.dictionaries(TEXT, st.builds(HeldIdentifier, TEXT, MOMENTS), max_size=2),
    "erasure": st.none()
    | st.builds(
        Erasure,
        owner=TEXT,
        phase=TEXT,
        steps=st.lists(TEXT, max_size=3).map(tuple),
        started_at=MOMENTS.filter(bool),
    ),
    "policy_version": st.integers(0, 3) | ODD,
    "pins": st.dictionaries(TEXT, TEXT, max_size=6) | st.dictionaries(TEXT, ODD, max_size=2),
}


def _encoded(encode: Any, record: AccountRecord) -> Any:
    try:
        return encode(record)
    except Exception as exc:
        return type(exc)


@settings(max_examples=500, deadline=None)
@given(data=st.data(), names=st.sets(st.sampled_from(sorted(_ENCODED_FIELDS))))
def test_record_to_json_gives_the_encoders_bytes(data: st.DataObject, names: set[str]) -> None:
    fields = {name: data.draw(_ENCODED_FIELDS[name], label=name) for name in sorted(names)}
    record = AccountRecord(**{"account_id": "acct-1", "state": State.RESTORABLE, "owner": "u-1", **fields})

    fast = _encoded(record_to_json, record)
    assert fast == _encoded(_record_to_json_general, record)
    assert fast == _encoded(lambda r: _ENCODER.encode(record_to_dict(r)), record)
    if isinstance(fast, str):
        assert record_to_json(record) == fast  # again, the shared mappings' text remembered
