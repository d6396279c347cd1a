"""Clocks. The core never reads the wall clock itself; it asks the lifecycle's clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

__all__ = ["ManualClock", "SystemClock", "require_aware"]


def require_aware(value: datetime, what: str = "datetime") -> datetime:
    """Return *value* in UTC, refusing naive datetimes (they have no meaning across hosts)."""
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(
            f"{what} must be timezone-aware, got naive {value.isoformat()}; "
            "use datetime(..., tzinfo=UTC) or datetime.now(UTC)"
        )
    return value.astimezone(UTC)


class SystemClock:
    """The host's real clock, in UTC."""

    def now(self) -> datetime:
        """The current moment in UTC."""
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that only moves when told to, for tests and demos. Thread-safe."""

    def __init__(self, start: datetime) -> None:
        self._now = require_aware(start, "ManualClock start")
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The moment the clock was set to."""
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by *delta* (never back)."""
        if not isinstance(delta, timedelta):
            raise TypeError(f"advance() takes a timedelta, got {type(delta).__name__}")
        with self._lock:
            self._now = self._now + delta
            return self._now

    def set(self, value: datetime) -> datetime:
        """Set the clock to *moment* (timezone-aware; it may go back)."""
        aware = require_aware(value, "ManualClock.set")
        with self._lock:
            self._now = aware
            return aware

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"
