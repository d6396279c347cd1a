"""Legal holds, reminders before the window ends, identity quarantine: the rules behind them.

Pure functions and values, shared by the policy (validation), the service and the purge
runner. Nothing here reads a clock or touches a store.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final

import attrs

from account_lifecycle.duration import Duration
from account_lifecycle.model import Reminder

__all__ = [
    "DEFAULT_IDENTITY_KIND",
    "HOLD_MODES",
    "IdentityReuse",
    "before",
    "longest",
    "reminder_schedule",
    "shortest",
]

#: What a legal hold does to the purge of its category (``[purge] on_hold``).
HOLD_MODES: Final = ("wait", "retain")
#: The kind of the single ``identity=`` argument of ``open``, ruled by ``identity_reuse``.
DEFAULT_IDENTITY_KIND: Final = "identity"
_AFTER = re.compile(r"after (?P<delay>.+)", re.ASCII)
_RULES: Final = ("never", "at_once", "after_purge")
# Every day of one leap-year cycle: the shortest and longest span of a calendar duration
# (months clamp to the month's end) is found among these starts.
_CYCLE: Final = tuple(datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=n) for n in range(1461))


@attrs.frozen
class IdentityReuse:
    """When an identifier of one kind (``email``, ``phone``, ...) may open another account.

    ``when`` is ``"never"``, ``"at_once"`` (from the cancellation on), ``"after_purge"``, or
    ``"after"`` with a ``delay`` counted from the purge (``"after 30 days"``)."""

    when: str
    delay: Duration | None = None

    @classmethod
    def parse(cls, text: str) -> IdentityReuse:
        """``"never"``, ``"at_once"``, ``"after_purge"`` or ``"after <duration>"``; else ``ValueError``."""
        if not isinstance(text, str):
            raise TypeError(f"expected a string like 'after_purge', got {type(text).__name__}")
        if text in _RULES:
            return cls(text)
        match = _AFTER.fullmatch(text)
        if match is not None:
            try:
                return cls("after", Duration.parse(match["delay"]))
            except ValueError:
                pass
        raise ValueError(
            "expected 'never', 'at_once', 'after_purge' or 'after <duration>' like 'after 30 days', "
            f"got {text!r}"
        )

    def __str__(self) -> str:
        return self.when if self.delay is None else f"after {self.delay}"

    def free_at(self, *, cancelled_at: datetime | None, purged_at: datetime | None) -> datetime | None:
        """When the identifier becomes free, knowing when the account was cancelled and purged
        (each None while it has not happened); None while it stays held."""
        if self.when == "at_once":
            return cancelled_at
        if self.when == "never" or purged_at is None:
            return None
        if self.when == "after_purge" or self.delay is None:
            return purged_at
        return self.delay.add_to(purged_at)


def before(duration: Duration, moment: datetime) -> datetime:
    """The moment *duration* before *moment*: months are calendar months, the day clamped to
    the end of the shorter month (31 March - 1 month is the last day of February)."""
    if duration.unit in ("months", "years"):
        months = duration.amount * (12 if duration.unit == "years" else 1)
        year, index = divmod(moment.year * 12 + moment.month - 1 - months, 12)
        day = min(moment.day, calendar.monthrange(year, index + 1)[1])
        return moment.replace(year=year, month=index + 1, day=day)
    return moment - (duration.add_to(moment) - moment)


@lru_cache(maxsize=1024)
def _span(duration: Duration) -> tuple[timedelta, timedelta]:
    spans = [duration.add_to(start) - start for start in _CYCLE]
    return min(spans), max(spans)


def longest(duration: Duration) -> timedelta:
    """The longest *duration* can be, whatever it starts from (a month is at most 31 days)."""
    return _span(duration)[1]


def shortest(end: Callable[[datetime], datetime]) -> timedelta:
    """The shortest time from a start to ``end(start)``, over every start of a leap-year cycle
    (a one-month window is at least 28 days)."""
    return min(end(start) - start for start in _CYCLE)


def reminder_schedule(reminders: Iterable[Duration], restorable_until: datetime) -> tuple[Reminder, ...]:
    """The reminders of a window ending at *restorable_until*, soonest first, none sent yet."""
    planned = [Reminder(str(d), before(d, restorable_until)) for d in reminders]
    return tuple(sorted(planned, key=lambda r: (r.at, r.before)))
