"""Scheduling facts: when an account's purge work is due, which steps a phase has, when a
failed step is tried again. Pure functions of a record (and the policy); the stores import
this module to index the due moment, the decision core and the runner to plan the work.

The ledger lives in ``AccountRecord.purge``: one ``PurgeProgress`` per step of the phase
under way. At cancellation the steps are the host's durable effect hooks (keys
``"effect:<name>"``, only for effects given a hook) and then the cancel-time categories;
once the recovery window has ended they are the expiry categories.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from account_lifecycle.model import AccountRecord, PurgeProgress, PurgeStatus, State

if TYPE_CHECKING:
    from account_lifecycle.policy import Policy

__all__ = [
    "EFFECT_EVENTS",
    "EFFECT_PREFIX",
    "backoff_delay",
    "due_at",
    "effect_key",
    "phase_of",
    "settled",
    "steps_of",
]

#: Ledger keys of durable effects start with this; category names cannot contain ``:``.
EFFECT_PREFIX: Final = "effect:"
#: The audit event that says an ``on_cancel`` effect happened, by effect name, in the order
#: effects run: team access ends first.
EFFECT_EVENTS: Final[Mapping[str, str]] = {
    "revoke_team_access": "team_access_revoked",
    "forfeit_credit": "credit_forfeited",
}


def effect_key(effect: str) -> str:
    """The ledger key of a durable effect: ``"effect:revoke_team_access"``."""
    return f"{EFFECT_PREFIX}{effect}"


def backoff_delay(attempt: int, base: timedelta, cap: timedelta) -> timedelta:
    """The wait after failed attempt number *attempt* (1, 2, ...): ``base * 2**(attempt-1)``,
    never more than *cap*."""
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    delay: timedelta = base * (2 ** min(attempt - 1, 40))
    return min(delay, cap)


def phase_of(record: AccountRecord, now: datetime) -> str | None:
    """The purge phase under way at *now*: ``"cancel"`` while cancelled, ``"expiry"`` once the
    recovery window has ended, else None."""
    if record.state is State.CANCELLED:
        return "cancel"
    if record.state is State.RESTORABLE and record.restorable_until is not None:
        return "expiry" if now >= record.restorable_until else None
    return None


def steps_of(policy: Policy, record: AccountRecord, phase: str) -> tuple[str, ...]:
    """Ledger keys of *phase*, in the order they run: effects first (access ends before data
    goes), then the categories in the policy's order."""
    keys: list[str] = []
    if phase == "cancel":
        keys += [effect_key(e) for e in EFFECT_EVENTS if effect_key(e) in record.purge]
    keys += policy.purge.at(phase)
    return tuple(keys)


def settled(record: AccountRecord, key: str) -> bool:
    """Whether the ledger step *key* lets the account move on: done, or kept under a
    ``"retain"`` hold."""
    if record.purge.get(key, PurgeProgress()).status is PurgeStatus.DONE:
        return True
    hold = record.holds.get(key)
    return hold is not None and hold.mode == "retain"


def due_at(record: AccountRecord) -> datetime | None:
    """When work on *record* is next due, or None. Stores index this value.

    The work is the purge steps of the phase under way and the move on once they are done,
    plus, while the account is restorable, its next unsent reminder. Steps started and not
    recorded (a runner died) are due at once: the claim keeps others away while its lease
    lives. A category under a legal hold is not due; under a ``"wait"`` hold the account does
    not move on either, so an account whose only pending steps wait for holds is not due at all
    until one is released."""
    if record.erasure is not None:
        return record.erasure.started_at
    if record.state is State.CANCELLED:
        assert record.cancelled_at is not None
        return _steps_due(record, record.cancelled_at)
    if record.state is State.RESTORABLE:
        until = record.restorable_until
        assert until is not None
        moments = [r.at for r in record.reminders if r.sent_at is None and r.at < until]
        work = _steps_due(record, until)
        return min(moments if work is None else [*moments, work], default=None)
    return None


def _steps_due(record: AccountRecord, start: datetime) -> datetime | None:
    """When the next step of the ledger is due (a step not failed is due from *start*), or
    *start* when none is left but the move on; None when all that is left waits for holds."""
    moments = []
    waiting = False
    for key, progress in record.purge.items():
        if progress.status is PurgeStatus.DONE:
            continue
        hold = record.holds.get(key)
        if hold is not None:
            waiting = waiting or hold.mode == "wait"
            continue
        moments.append(progress.retry_at or start)
    if moments:
        return min(moments)
    return None if waiting else start
