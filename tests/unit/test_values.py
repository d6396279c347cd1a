"""Small values: durations, actors, records."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from account_lifecycle import AccountRecord, Actor, Duration, State


@pytest.mark.parametrize(
    ("text", "amount", "unit"),
    [("90 days", 90, "days"), ("1 day", 1, "days"), ("3 months", 3, "months"), ("1 month", 1, "months"),
     ("2 weeks", 2, "weeks"), ("1 year", 1, "years")],
)  # fmt: skip
def test_duration_parse(text: str, amount: int, unit: str) -> None:
    """Durations read '<n> <unit>' with singular or plural units, and print back the same."""
    duration = Duration.parse(text)
    assert (duration.amount, duration.unit) == (amount, unit)
    assert str(duration) == text


BAD_DURATIONS = ["-3", "3", "0 days", "3 Months", " 3 months", "3  months", "3 fortnights", "", "1e3 days",
                 "\u0663 months", "200 years"]  # fmt: skip


@pytest.mark.parametrize("bad", BAD_DURATIONS)
def test_duration_rejects(bad: str) -> None:
    """Anything but a positive amount and a known unit is a ValueError naming the text."""
    with pytest.raises(ValueError, match="duration"):
        Duration.parse(bad)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
       st.integers(1, 24))  # fmt: skip
def test_months_land_in_the_right_month_clamped(start: datetime, months: int) -> None:
    """Adding n calendar months moves the month by n and keeps the day, clamped to month end."""
    end = Duration(months, "months").add_to(start)
    assert (end.year * 12 + end.month) - (start.year * 12 + start.month) == months
    assert end.day == min(start.day, calendar.monthrange(end.year, end.month)[1])
    assert end.time() == start.time()
    assert end > start


def test_actor_parse_round_trip() -> None:
    """Actors print as user:ID, support:ID or system, and parse back equal."""
    for actor in (Actor.user("u-1"), Actor.support("desk"), Actor.system()):
        assert Actor.parse(str(actor)) == actor
    with pytest.raises(ValueError):
        Actor.parse("admin:root")
    with pytest.raises(ValueError):
        Actor.user("")


def test_record_relation_is_read_from_the_record() -> None:
    """A user's relation depends only on the stored owner and members."""
    record = AccountRecord(account_id="a", state=State.ACTIVE, owner="o", members=["m"])
    assert [str(record.relation_of(a)) for a in (Actor.user("o"), Actor.user("m"), Actor.support("s"))] == [
        "owner", "member", "support",
    ]  # fmt: skip
    assert record.relation_of(Actor.user("x")) is None


def test_record_mappings_are_read_only() -> None:
    """A stored record cannot be changed in place."""
    record = AccountRecord(account_id="a", state=State.ACTIVE, owner="o", services={"messages": "active"})
    with pytest.raises(TypeError):
        record.services["messages"] = "cancelled"  # type: ignore[index]
