"""The ports a host application implements or chooses an adapter for.

Values handed to the host (``PurgeContext``, ``AuditEvent``, records) are frozen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

from account_lifecycle.audit import AuditEvent
from account_lifecycle.model import AccountRecord

__all__ = [
    "AccountStore",
    "Clock",
    "Lease",
    "Listener",
    "PendingItem",
    "PrerequisiteCheck",
    "PurgeContext",
    "PurgeResult",
    "Purger",
]


@attrs.frozen
class Lease:
    """A claim on an account: who works on it, and until when the claim holds."""

    owner: str
    until: datetime


@attrs.frozen
class PurgeResult:
    """What a purger reports: how many items it erased, and anything worth keeping in the audit."""

    items: int = 0
    detail: str = ""

    def __attrs_post_init__(self) -> None:
        if isinstance(self.items, bool) or not isinstance(self.items, int) or self.items < 0:
            raise ValueError(f"PurgeResult.items must be a whole number >= 0, got {self.items!r}")
        if not isinstance(self.detail, str):
            raise TypeError(f"PurgeResult.detail must be a str, got {type(self.detail).__name__}")


@attrs.frozen
class PendingItem:
    """One thing a prerequisite check still waits for: *what* (shown as today's plain string),
    *why* it blocks the cancellation, and how to *fix* it. A check may return these or plain
    strings; ``PrerequisitesPending.items`` holds them, the message shows why and fix."""

    what: str
    why: str = ""
    fix: str = ""


@attrs.frozen
class PurgeContext:
    """Handed to a purger: which account, which category, which attempt, and when."""

    account_id: str
    category: str
    policy: str
    attempt: int
    cancelled_at: datetime | None
    now: datetime


@runtime_checkable
class Purger(Protocol):
    """Erases one data category of one account. Must be idempotent: it may run again after a crash."""

    @property
    def category(self) -> str: ...

    def purge(self, account_id: str, context: PurgeContext) -> PurgeResult: ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current moment, timezone-aware."""
        ...


#: ``(account_id) -> what is still pending``, as strings or ``PendingItem``s; an empty
#: sequence means the prerequisite is met.
PrerequisiteCheck = Callable[[str], Sequence[str | PendingItem]]
#: Receives each committed audit event (notifications, revoking team access, ...).
Listener = Callable[[AuditEvent], None]


class AccountStore(Protocol):
    """Where accounts and their audit events live.

    Every write is one atomic step: the record is saved only if the stored version is
    still ``expected_version``, together with its audit events, or nothing is written.
    """

    def create(
        self, record: AccountRecord, events: Sequence[AuditEvent], *, now: datetime | None = None
    ) -> None:
        """Insert a new account; ``AccountExists`` if the id or its live identity is taken, or
        one of its ``identifiers`` is held by another account (``.identity`` names the value).
        An identifier whose holder's ``free_at`` is at or before *now* (the lifecycle's clock)
        is given up to the new account in the same transaction; without *now*, none is."""
        ...

    def get(self, account_id: str) -> AccountRecord:
        """The stored record; ``AccountNotFound`` if there is none."""
        ...

    def save(
        self,
        record: AccountRecord,
        *,
        expected_version: int,
        events: Sequence[AuditEvent],
        lease: Lease | None = None,
        now: datetime | None = None,
    ) -> None:
        """Compare-and-set: write *record* and append *events* if the stored version is
        *expected_version*, else raise ``ConcurrentUpdate`` and write nothing. The account's
        claim becomes *lease* (``None`` releases it). ``AccountExists`` if the record takes
        a live identity another account holds, or an identifier another account holds (one
        whose ``free_at`` is at or before *now* is given up, as in ``create``). The
        ``free_at`` of each identifier the account holds is written with the record."""
        ...

    def history(self, account_id: str) -> tuple[AuditEvent, ...]:
        """The account's audit events in order; ``AccountNotFound`` for an unknown id."""
        ...

    def claim_due(self, *, now: datetime, lease: Lease, limit: int) -> list[AccountRecord]:
        """Atomically claim up to *limit* accounts whose purge work is due at *now* and that
        nobody holds a live claim on; return them. Parallel callers never get the same one."""
        ...

    def release(self, account_id: str, owner: str) -> None:
        """Drop *owner*'s claim on the account, if it still holds it."""
        ...
