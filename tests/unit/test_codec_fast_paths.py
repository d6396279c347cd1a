"""The codec's fast paths give what the plain code gave: the remembered time text is
``format_time``'s for any moment in any time zone, and decoding a record's states through a
look-up table accepts and refuses exactly what the enums accept and refuse, with the same
``RecordCorrupt`` reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from account_lifecycle.audit import format_time
from account_lifecycle.codec import record_from_json, record_to_dict, record_to_json, time_or_none, time_text
from account_lifecycle.errors import RecordCorrupt
from account_lifecycle.model import AccountRecord, PurgeProgress, PurgeStatus, ServiceState, State

ZONES = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11))])


@settings(max_examples=300, deadline=None)
@given(moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=ZONES))
def test_time_text_is_format_time_for_any_moment(moment: datetime) -> None:
    assert time_text(moment) == format_time(moment)
    assert time_text(moment) == format_time(moment)  # the second time from the cache
    assert time_or_none(moment) == format_time(moment)


def test_time_text_refuses_a_naive_moment_every_time() -> None:
    naive = datetime(2026, 3, 1, 9, 0)
    for _ in range(2):
        with pytest.raises(ValueError, match="timezone-aware"):
            time_text(naive)


def _record() -> AccountRecord:
    return AccountRecord(
        account_id="acct-1",
        state=State.RESTORABLE,
        owner="u-1",
        purge={"files": PurgeProgress(status=PurgeStatus.DONE), "mail": PurgeProgress()},
        services={"billing": ServiceState.CANCELLED, "messages": ServiceState.ACTIVE},
        pins={"active": "p@1", "restorable": "p@2"},
        policy="p",
        policy_version=2,
    )


def test_a_record_round_trips() -> None:
    record = _record()
    assert record_from_json(record_to_json(record), "acct-1") == record


def _reason(data: dict[str, Any]) -> str:
    with pytest.raises(RecordCorrupt) as caught:
        record_from_json(json.dumps(data), "acct-1")
    return caught.value.reason


#: Values a stored state, service state, purge status or pinned state might be, good and bad.
VALUES = st.one_of(
    st.sampled_from(
        [s.value for s in State] + [s.value for s in ServiceState] + [s.value for s in PurgeStatus]
    ),
    st.text(max_size=12),
    st.none(),
    st.integers(),
    st.lists(st.integers(), max_size=2),
    st.booleans(),
)


def _enum_outcome(kind: type, value: object) -> object:
    """What the enum itself makes of *value*: its member, or the type of its error."""
    try:
        return kind(value)
    except Exception as exc:
        return type(exc)


@settings(max_examples=300, deadline=None)
@given(value=VALUES, where=st.sampled_from(["state", "service", "status", "pin"]))
def test_decoding_states_accepts_and_refuses_as_the_enums_do(value: object, where: str) -> None:
    data = record_to_dict(_record())
    kind: type = {"state": State, "service": ServiceState, "status": PurgeStatus, "pin": State}[where]
    if not isinstance(value, str) and where == "pin":
        value = json.dumps(value)  # object keys are text in JSON
    if where == "state":
        data["state"] = value
    elif where == "service":
        data["services"]["billing"] = value
    elif where == "status":
        data["purge"]["files"]["status"] = value
    else:
        data["pins"] = {value: "p@1"}
    expected = _enum_outcome(kind, value)
    if isinstance(expected, type):
        reason = _reason(data)
        assert reason == f"a field has the wrong type or value ({expected.__name__})"
        return
    record = record_from_json(json.dumps(data), "acct-1")
    if where == "state":
        assert record.state is expected
    elif where == "service":
        assert record.services["billing"] is expected
    elif where == "status":
        assert record.purge["files"].status is expected
    else:
        assert dict(record.pins) == {value: "p@1"}
