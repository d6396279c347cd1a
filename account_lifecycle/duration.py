"""Calendar-aware durations: recovery windows (``"90 days"``, ``"3 months"``) and the age of
a fresh login (``"15 minutes"``, ``"2 hours"``)."""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Final

import attrs

__all__ = ["FIXED", "Duration"]

_UNITS = {
    "minute": "minutes",
    "hour": "hours",
    "day": "days",
    "week": "weeks",
    "month": "months",
    "year": "years",
}
#: Units of a fixed length; months and years are calendar units.
FIXED: Final[Mapping[str, timedelta]] = {
    "minutes": timedelta(minutes=1),
    "hours": timedelta(hours=1),
    "days": timedelta(days=1),
    "weeks": timedelta(weeks=1),
}
_APPROX_DAYS = {"minutes": 1 / 1440, "hours": 1 / 24, "days": 1, "weeks": 7, "months": 31, "years": 366}
_MAX_DAYS = 36_600
_PATTERN = re.compile(
    r"(?P<n>[1-9][0-9]{0,4}) (?P<unit>minutes?|hours?|days?|weeks?|months?|years?)", re.ASCII
)


@attrs.frozen
class Duration:
    """A positive length of time counted in calendar units.

    Months and years are calendar months: 30 November + 3 months is the last day of
    February (the day is clamped to the end of the shorter month), never 2 March. Minutes,
    hours, days and weeks are fixed lengths (``fixed``).
    """

    amount: int
    unit: str = attrs.field(validator=attrs.validators.in_(tuple(_UNITS.values())))

    def __attrs_post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount < 1:
            raise ValueError(f"a duration needs a positive whole amount, got {self.amount!r}")
        if self.amount * _APPROX_DAYS[self.unit] > _MAX_DAYS:
            raise ValueError(f"a duration may be at most 100 years, got '{self}'")

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse ``"<n> minutes|hours|days|weeks|months|years"`` (singular allowed); raise
        ``ValueError``."""
        if not isinstance(text, str):
            raise TypeError(f"expected a duration string, got {type(text).__name__}")
        match = _PATTERN.fullmatch(text)
        if match is None:
            raise ValueError(f"expected a duration like '90 days' or '3 months', got {text!r}")
        unit = match["unit"].rstrip("s")
        return cls(int(match["n"]), _UNITS[unit])

    def add_to(self, start: datetime) -> datetime:
        """The moment this duration after *start*, months clamped to the month's end."""
        fixed = self.fixed
        if fixed is not None:
            return start + fixed
        months = self.amount * (12 if self.unit == "years" else 1)
        month_index = start.month - 1 + months
        year = start.year + month_index // 12
        month = month_index % 12 + 1
        day = min(start.day, calendar.monthrange(year, month)[1])
        return start.replace(year=year, month=month, day=day)

    @property
    def fixed(self) -> timedelta | None:
        """The length as a ``timedelta`` for minutes, hours, days and weeks; None for calendar
        months and years, whose length depends on where they start."""
        unit = FIXED.get(self.unit)
        return None if unit is None else unit * self.amount

    @property
    def approx_days(self) -> float:
        """A generous estimate of the length in days (a month counts 31, a year 366), for bounds."""
        return self.amount * _APPROX_DAYS[self.unit]

    def __str__(self) -> str:
        unit = self.unit if self.amount != 1 else self.unit[:-1]
        return f"{self.amount} {unit}"
