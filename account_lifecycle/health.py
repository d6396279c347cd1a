"""What an operator asks a store every morning: is the backlog growing, is anything stuck, did
anything fail? ``StoreStatus`` is the answer, read without writing anything.

The stores gather the rows (``MemoryStore.status``, ``SQLiteStore.status``,
``PostgresStore.status``: read-only, never migrating); ``summarize`` turns them into a
``StoreStatus``. Nothing personal is kept: account ids, category names, claim owners and counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

import attrs

from account_lifecycle.audit import format_time
from account_lifecycle.clock import require_aware
from account_lifecycle.model import AccountRecord, PurgeStatus
from account_lifecycle.values import CorruptRecord

__all__ = ["StatusRow", "StatusSource", "StoreStatus", "summarize"]


def _plain(value: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(value.items()))


@attrs.frozen
class StatusRow:
    """One account as a store's status query sees it: when its work is due (None: nothing due),
    who holds a claim on it and until when, and its record (or ``CorruptRecord`` when the stored
    record cannot be decoded)."""

    account_id: str
    due_at: datetime | None
    claim_owner: str | None
    claim_until: datetime | None
    record: AccountRecord | CorruptRecord


@attrs.frozen
class StoreStatus:
    """A read-only snapshot of a store's purge work at ``at``.

    - ``schema_version``: the version recorded in the store; ``library_schema_version`` the one
      this library writes (an older store needs ``account-lifecycle migrate``).
    - ``due``: the backlog, accounts whose work is due at ``at``; ``oldest_due`` the earliest due
      moment among them (None when nothing is due).
    - ``erasures``: accounts with purge steps started and not yet recorded; ``oldest_erasure``
      when the oldest of them started (a runner that died leaves one until the next sweep).
    - ``failed``: purge steps whose last attempt failed, by ledger key (category or
      ``effect:<name>``).
    - ``claims``: live claims at ``at``, by owner.
    - ``corrupt``: ids of accounts whose stored record cannot be decoded (``RecordCorrupt``).
    """

    at: datetime
    schema_version: int
    library_schema_version: int
    due: int = 0
    oldest_due: datetime | None = None
    erasures: int = 0
    oldest_erasure: datetime | None = None
    failed: Mapping[str, int] = attrs.field(factory=dict, converter=_plain)
    claims: Mapping[str, int] = attrs.field(factory=dict, converter=_plain)
    corrupt: tuple[str, ...] = ()

    @property
    def schema_outdated(self) -> bool:
        """Whether the store's schema is older than this library's (``migrate`` brings it up)."""
        return self.schema_version < self.library_schema_version

    @property
    def oldest_due_age(self) -> timedelta | None:
        """How long the oldest due work has waited at ``at`` (None when nothing is due)."""
        return None if self.oldest_due is None else max(self.at - self.oldest_due, timedelta(0))

    def stuck(self, threshold: timedelta) -> tuple[str, ...]:
        """Why the store needs an operator, one reason a line: due work or a started erasure
        older than *threshold*, undecodable records, or an outdated schema. Empty when healthy."""
        reasons = []
        if self.schema_outdated:
            reasons.append(
                f"schema version {self.schema_version} is older than the library's "
                f"{self.library_schema_version}: run account-lifecycle migrate"
            )
        age = self.oldest_due_age
        if age is not None and age > threshold:
            reasons.append(
                f"{self.due} account(s) due, the oldest waiting {_span(age)} (> {_span(threshold)})"
            )
        if self.oldest_erasure is not None and self.at - self.oldest_erasure > threshold:
            reasons.append(f"an erasure started at {format_time(self.oldest_erasure)} is not finished")
        if self.corrupt:
            reasons.append(
                f"{len(self.corrupt)} stored record(s) cannot be decoded: {', '.join(self.corrupt)}"
            )
        return tuple(reasons)

    def to_dict(self) -> dict[str, Any]:
        """The snapshot as JSON-ready values (times in ISO 8601 UTC, ages in seconds)."""
        age = self.oldest_due_age
        return {
            "at": format_time(self.at),
            "schema_version": self.schema_version,
            "library_schema_version": self.library_schema_version,
            "schema_outdated": self.schema_outdated,
            "due": self.due,
            "oldest_due": None if self.oldest_due is None else format_time(self.oldest_due),
            "oldest_due_age_seconds": None if age is None else age.total_seconds(),
            "erasures": self.erasures,
            "oldest_erasure": None if self.oldest_erasure is None else format_time(self.oldest_erasure),
            "failed": dict(self.failed),
            "claims": dict(self.claims),
            "corrupt": list(self.corrupt),
        }


class StatusSource(Protocol):
    """A store that can answer ``status`` (the three stores of this library do)."""

    def status(self, *, now: datetime) -> StoreStatus:
        """A read-only snapshot of the store's purge work at *now*."""
        ...


def summarize(
    rows: Iterable[StatusRow], *, now: datetime, schema_version: int, library_schema_version: int
) -> StoreStatus:
    """The ``StoreStatus`` at *now* of the accounts in *rows* (those with work, a claim, or in a
    state that may have some: the stores pass cancelled and restorable accounts and any row
    with a due moment or a claim)."""
    now = require_aware(now)
    due, erasures = 0, 0
    oldest_due: datetime | None = None
    oldest_erasure: datetime | None = None
    failed: Counter[str] = Counter()
    claims: Counter[str] = Counter()
    corrupt: list[str] = []
    for row in rows:
        if row.due_at is not None and row.due_at <= now:
            due += 1
            oldest_due = row.due_at if oldest_due is None else min(oldest_due, row.due_at)
        if row.claim_owner is not None and row.claim_until is not None and row.claim_until > now:
            claims[row.claim_owner] += 1
        if isinstance(row.record, CorruptRecord):
            corrupt.append(row.account_id)
            continue
        erasure = row.record.erasure
        if erasure is not None:
            erasures += 1
            started = erasure.started_at
            oldest_erasure = started if oldest_erasure is None else min(oldest_erasure, started)
        for key, progress in row.record.purge.items():
            if progress.status is PurgeStatus.FAILED:
                failed[key] += 1
    return StoreStatus(
        at=now,
        schema_version=schema_version,
        library_schema_version=library_schema_version,
        due=due,
        oldest_due=oldest_due,
        erasures=erasures,
        oldest_erasure=oldest_erasure,
        failed=failed,
        claims=claims,
        corrupt=tuple(sorted(corrupt)),
    )


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 86_400:
        return f"{seconds // 86_400}d{seconds % 86_400 // 3600}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
