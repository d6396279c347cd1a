"""What every shipped store does alike for ``OutboxStore``: checking arguments, and the rules of
claiming and advancing a listener's cursor (each store applies them inside its own transaction).

Claims of cursors: a claim by another owner than the live one's (a new claim, or a lapsed claim
taken over) increases the cursor's version, so a compare-and-set written by the earlier owner
fails on the version alone; renewing one's own claim, or claiming a free cursor, leaves the
version as it is (a new listener's cursor comes back at version 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import attrs

from account_lifecycle.clock import require_aware
from account_lifecycle.model import validate_id
from account_lifecycle.values import DeadLetter, Lease, OutboxCursor

__all__ = ["check_advance", "check_read", "claimed_cursor", "may_advance", "outbox_conflict"]


def check_read(after: int, limit: int) -> tuple[int, int]:
    """*after* and *limit* of ``outbox_read``, whole numbers >= 0 (``ValueError`` otherwise)."""
    for name, value in (("after", after), ("limit", limit)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    return after, limit


def claimed_cursor(cursor: OutboxCursor, lease: Lease, now: datetime) -> OutboxCursor | None:
    """*cursor* claimed by *lease* at *now*, or None if another owner's claim is live."""
    validate_id(cursor.listener, "outbox listener name")
    until = require_aware(lease.until, "lease.until")
    if cursor.owner is not None and cursor.owner != lease.owner:
        if cursor.until is not None and cursor.until > now:
            return None
        return attrs.evolve(cursor, owner=lease.owner, until=until, version=cursor.version + 1)
    return attrs.evolve(cursor, owner=lease.owner, until=until)


def check_advance(cursor: OutboxCursor, expected_version: int, dead: Sequence[DeadLetter]) -> None:
    """``ValueError`` for a cursor write that cannot be right, before anything is written."""
    if cursor.version != expected_version + 1:
        raise ValueError(
            f"the cursor written must have version expected_version + 1 = {expected_version + 1}, "
            f"got {cursor.version}"
        )
    if cursor.position < 0 or cursor.attempts < 0:
        raise ValueError("a cursor's position and attempts are whole numbers >= 0")
    for moment in (cursor.retry_at, cursor.until):
        if moment is not None:
            require_aware(moment, "a cursor's moment")
    for letter in dead:
        if letter.listener != cursor.listener:
            raise ValueError(
                f"a dead letter of listener {letter.listener!r} written with the cursor "
                f"of {cursor.listener!r}"
            )
        require_aware(letter.at, "DeadLetter.at")


def may_advance(
    stored_version: int, stored_owner: str | None, cursor: OutboxCursor, expected_version: int
) -> bool:
    """Whether a stored cursor (its version and owner) takes *cursor*'s write: the version is
    still *expected_version*, and the claim is *cursor*'s owner's (a write dropping the claim,
    ``owner=None``, is checked on the version alone: a takeover increased it)."""
    if stored_version != expected_version:
        return False
    return cursor.owner is None or stored_owner == cursor.owner


def outbox_conflict(listener: str, expected_version: int) -> Exception:
    """The ``ConcurrentUpdate`` of a cursor write that lost its compare-and-set."""
    from account_lifecycle.errors import ConcurrentUpdate

    return ConcurrentUpdate(account_id=f"outbox:{listener}", expected_version=expected_version)
