"""Values exchanged through the ports: claims, what a purger is handed and reports, what a
prerequisite check reports, and what a store hands back for a row it cannot decode."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

import attrs

if TYPE_CHECKING:
    from account_lifecycle.audit import AuditEvent
    from account_lifecycle.model import AccountRecord, State

__all__ = [
    "MAX_ITEMS",
    "AccountQuery",
    "CorruptRecord",
    "DeadLetter",
    "EffectContext",
    "Lease",
    "OutboxCursor",
    "OutboxEntry",
    "PendingItem",
    "PurgeContext",
    "PurgeResult",
    "Write",
    "purge_result_problem",
    "require_now",
]

#: The largest item count a purger may report (what a signed 64-bit column holds).
MAX_ITEMS: Final = 2**63 - 1
_MAX_DETAIL: Final = 1_000


@attrs.frozen
class Lease:
    """A claim on an account: who works on it, and until when the claim holds."""

    owner: str
    until: datetime


@attrs.frozen
class Write:
    """One compare-and-set of a batch (``save_many``): the arguments of one ``save``."""

    record: AccountRecord
    expected_version: int
    events: Sequence[AuditEvent]
    lease: Lease | None = None
    release: str | None = None
    erase_sealed: bool = False  # the write erases the account's sealed values (the purge)


def require_now(now: datetime | None) -> datetime:
    """*now*, which a store needs to tell whether another owner's claim is still live."""
    if now is None:
        raise ValueError("a save that takes a claim (lease=...) needs now=, the lifecycle's clock")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    return now


@attrs.frozen
class CorruptRecord:
    """A due account whose stored record a store could not decode while claiming it. The claim
    is taken like any other (so the row does not block the batch again before the lease lapses);
    the sweep reports it in ``SweepReport.failed`` with *reason* and works on the others."""

    account_id: str
    reason: str


@attrs.frozen
class PurgeResult:
    """What a purger reports: how many items it erased, and anything worth keeping in the audit."""

    items: int = 0
    detail: str = ""

    def __attrs_post_init__(self) -> None:
        problem = purge_result_problem(self.items, self.detail)
        if problem is not None:
            raise (TypeError if "must be a str" in problem else ValueError)(problem)


def purge_result_problem(items: object, detail: object) -> str | None:
    """What is wrong with a purger's report, or None: ``items`` a whole number from 0 to
    ``MAX_ITEMS``, ``detail`` text of at most 1,000 characters."""
    if isinstance(items, bool) or not isinstance(items, int) or not 0 <= items <= MAX_ITEMS:
        shown = repr(items) if isinstance(items, int) and abs(items) < 10**30 else type(items).__name__
        if isinstance(items, int) and not isinstance(items, bool) and abs(items) >= 10**30:
            shown = "a number too large to store"
        return f"PurgeResult.items must be a whole number from 0 to {MAX_ITEMS}, got {shown}"
    if not isinstance(detail, str):
        return f"PurgeResult.detail must be a str, got {type(detail).__name__}"
    if len(detail) > _MAX_DETAIL:
        return f"PurgeResult.detail must be at most {_MAX_DETAIL} characters, got {len(detail)}"
    return None


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


@attrs.frozen
class EffectContext:
    """Handed to an effect hook: which account, which effect, which attempt, and when.

    ``owner`` and ``members`` are the user ids on record when the hook runs (the team
    whose access ``revoke_team_access`` ends)."""

    account_id: str
    effect: str
    policy: str
    attempt: int
    cancelled_at: datetime | None
    now: datetime
    owner: str
    members: frozenset[str]


# -- the outbox (OutboxStore) -------------------------------------------------------------------


@attrs.frozen
class OutboxEntry:
    """One committed audit event as the outbox holds it: *position* is store-wide, assigned in
    the transaction that wrote the event, and increases in commit order (a reader that has seen
    position p will never later see a new entry below p)."""

    position: int
    event: AuditEvent


@attrs.frozen
class OutboxCursor:
    """How far one named listener has been fed: every entry up to *position* was delivered (or
    dead-lettered). *attempts*, *retry_at* and *error* describe the failing delivery of the next
    entry, if any. *owner* and *until* are the relay's claim on this cursor (one relay at a
    time feeds a listener); *version* increases with every write of the cursor."""

    listener: str
    position: int = 0
    attempts: int = 0
    retry_at: datetime | None = None
    error: str | None = None
    owner: str | None = None
    until: datetime | None = None
    version: int = 0


@attrs.frozen
class DeadLetter:
    """An outbox entry a listener gave up on (after its retries, or parked behind an earlier
    dead letter of the same account, so that one account's events never overtake each other).
    *error* is the failure's type and message, never the event's content."""

    listener: str
    position: int
    account_id: str
    seq: int
    error: str
    at: datetime


# -- queries for operators (QueryStore) ----------------------------------------------------------


@attrs.frozen
class AccountQuery:
    """Which accounts to list: every condition given must hold (None: any).

    *states*: the account is in one of them. *due_before*: its next purge work is due strictly
    before this moment. *with_holds*: it has (True) or has no (False) legal hold. *with_failed_steps*:
    a purge step of it has (True) or has not (False) failed."""

    states: frozenset[State] | None = None
    due_before: datetime | None = None
    with_holds: bool | None = None
    with_failed_steps: bool | None = None
