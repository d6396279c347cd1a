"""The hand-built canonical encoding of audit events gives the very bytes of the encoder it
replaced (``json`` with sorted keys, no spaces, ASCII escapes, over ``payload()``), so every
event hash, old or new, is unchanged; and the stored form is ``dumps(to_dict())``."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from account_lifecycle.audit import _CANONICAL, AuditEvent, _encode, _thaw, chain_event
from account_lifecycle.codec import dumps, event_to_json
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
    evolve_record,
)

#: Any text, lone surrogates and control characters included.
TEXT = st.text(st.characters(exclude_categories=()), max_size=12)
MOMENTS = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
) | st.datetimes(timezones=st.sampled_from([timezone(timedelta(hours=5, minutes=30)), UTC]))
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
    | MOMENTS
)
DETAILS = st.dictionaries(
    TEXT,
    st.recursive(
        SCALARS,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.tuples(inner, inner)
            | st.frozensets(st.integers(), max_size=3)  # sorted when frozen
            | st.frozensets(TEXT, max_size=3)
            | st.dictionaries(TEXT, inner, max_size=4)
        ),
        max_leaves=12,
    ),
    max_size=6,
)
ACTORS = st.sampled_from([Actor.system(), Actor.user("u-1"), Actor.support("agent-7"), Actor.user("ünï")])
STATES = st.sampled_from(list(State))


def _old_canonical(event: AuditEvent) -> str:
    return _CANONICAL.encode(event.payload())


@settings(max_examples=250, deadline=None)
@given(
    seq=st.integers(min_value=1, max_value=2**63),
    account_id=TEXT,
    at=MOMENTS,
    actor=ACTORS,
    action=TEXT,
    from_state=st.none() | STATES,
    to_state=STATES,
    policy=TEXT,
    details=DETAILS,
    prev_hash=st.sampled_from(["0" * 64, "ab" * 32]) | TEXT,
    version=st.integers(min_value=0, max_value=2**63),
)
def test_the_canonical_text_and_the_stored_form_are_the_encoders_bytes(**fields: Any) -> None:
    prev_hash = fields.pop("prev_hash")
    event = chain_event(prev_hash=prev_hash, **fields)

    assert event.canonical() == _old_canonical(event)
    assert event.hash == hashlib.sha256(_old_canonical(event).encode("ascii")).hexdigest()
    assert event.stored_json() == dumps(event.to_dict())
    assert event_to_json(event) == dumps(event.to_dict())


THAWED = st.recursive(
    SCALARS.filter(lambda v: not isinstance(v, datetime))
    | st.floats()  # NaN and infinities: the encoder's own text
    | st.sampled_from([State.ACTIVE, 7 == 7]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner)
        | st.dictionaries(TEXT | st.integers(), inner, max_size=3)
    ),  # non-text keys: the encoder decides
    max_leaves=10,
)


@settings(max_examples=250, deadline=None)
@given(value=THAWED)
def test_encode_matches_the_encoder_on_any_value_or_fails_alike(value: object) -> None:
    """Beyond what events hold: whatever ``_encode`` gets, it gives the encoder's text for the
    thawed value, or raises the encoder's error."""
    try:
        expected: object = _CANONICAL.encode(_thaw(value))
    except Exception as exc:
        expected = type(exc)
    try:
        got: object = _encode(value)
    except Exception as exc:
        got = type(exc)
    assert got == expected


# -- evolve_record: equal to attrs.evolve, converting only the changed fields -------------------

_T = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
_CHANGES: dict[str, st.SearchStrategy[Any]] = {
    "state": STATES,
    "owner": st.sampled_from(["u-1", "u-2"]),
    "members": st.sampled_from([(), ["m-1", "m-2"], frozenset({"m-3"}), {"m-4"}]),
    "identity": st.none() | st.just("ann@example.com"),
    "version": st.integers(1, 10**6),
    "cancelled_at": st.none() | st.just(_T),
    "restorable_until": st.none() | st.just(_T + timedelta(days=30)),
    "purge": st.sampled_from(
        [{}, {"files": PurgeProgress()}, MappingProxyType({"mail": PurgeProgress(attempts=2)})]
    ),
    "services": st.sampled_from([{}, {"billing": ServiceState.CANCELLED}]),
    "chain_head": st.sampled_from(["", "ab" * 32]),
    "last_seq": st.integers(0, 100),
    "policy": st.sampled_from(["", "allclients"]),
    "cancellation_id": st.none() | st.just("c-1"),
    "recent_keys": st.sampled_from([(), [("k", "confirm")], (("k1", "withdraw"), ("k2", "restore"))]),
    "identity_released_at": st.none() | st.just(_T),
    "holds": st.sampled_from([{}, {"backups": Hold(reason="case 1", by="support:a", at=_T)}]),
    "reminders": st.sampled_from([(), [Reminder("7 days", _T)]]),
    "identifiers": st.sampled_from(
        [{}, {"email": "ann@example.com"}, {"phone": HeldIdentifier("+1555", _T)}]
    ),
    "erasure": st.none() | st.just(Erasure(owner="s", phase="cancel", steps=["files"], started_at=_T)),
}


@settings(max_examples=300, deadline=None)
@given(data=st.data(), names=st.sets(st.sampled_from(sorted(_CHANGES))))
def test_evolve_record_equals_attrs_evolve(data: st.DataObject, names: set[str]) -> None:
    record = AccountRecord(
        account_id="acct-1",
        state=State.RESTORABLE,
        owner="u-1",
        members={"m-1"},
        purge={"files": PurgeProgress(status=PurgeStatus.DONE)},
        holds={"mail": Hold(reason="r", by="support:b", at=_T)},
        identifiers={"email": "a@example.com"},
        recent_keys=[("k0", "confirm")],
    )
    changes = {name: data.draw(_CHANGES[name], label=name) for name in sorted(names)}

    fast = evolve_record(record, **changes)
    slow = attrs.evolve(record, **changes)

    assert fast == slow
    for field in attrs.fields(AccountRecord):
        assert type(getattr(fast, field.name)) is type(getattr(slow, field.name)), field.name


def test_evolve_record_refuses_an_unknown_field_like_attrs() -> None:
    record = AccountRecord(account_id="acct-1", state=State.ACTIVE, owner="u-1")
    with pytest.raises(TypeError, match="nickname"):
        evolve_record(record, nickname="x")
