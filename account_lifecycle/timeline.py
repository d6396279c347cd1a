"""The timeline of an account, told before anything happens: what is erased when, what is
kept and why, until when it can be restored and by whom, and what cancelling does at once.

``Lifecycle.preview`` builds one from the stored record and the policy; nothing is written.
For an account not confirmed yet the moments assume a confirm at the preview's moment
(``hypothetical``), so a confirm page can say "if you confirm now, ..."; once confirmed they
are the account's own.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Final

import attrs

from account_lifecycle.audit import format_time
from account_lifecycle.duration import Duration
from account_lifecycle.model import AccountRecord, PurgeStatus, Relation, State
from account_lifecycle.policy import Policy, phase_bounds

__all__ = ["KeptCategory", "ScheduledErasure", "Timeline", "TimelinePhase", "build_timeline"]

_CONFIRMED: Final = (State.CANCELLED, State.RESTORABLE, State.PURGED)


@attrs.frozen
class ScheduledErasure:
    """A category the policy erases: at ``"cancel"`` (as the cancellation is confirmed) or at
    ``"expiry"`` (when the recovery window ends), at the moment ``at``. ``done`` once erased;
    ``at`` is then when it was. ``waits_for_hold`` while a legal hold under ``on_hold = "wait"``
    stands on the category: it is not erased, and the account does not move on, before the
    hold is released (``at`` is then the earliest moment)."""

    category: str
    moment: str
    at: datetime
    done: bool = False
    waits_for_hold: bool = False

    def to_dict(self) -> dict[str, Any]:
        """As plain JSON data (times as UTC text)."""
        return {
            "category": self.category,
            "moment": self.moment,
            "at": format_time(self.at),
            "done": self.done,
            "waits_for_hold": self.waits_for_hold,
        }


@attrs.frozen
class KeptCategory:
    """A category that is not erased, and why: ``"protected"`` (never handed to a purger), or
    ``"legal hold"`` (held under ``on_hold = "retain"``: kept while the hold stands, and for
    good if it still stands when the account is purged; the receipt lists it as retained)."""

    category: str
    reason: str = "protected"

    def to_dict(self) -> dict[str, Any]:
        """As plain JSON data (times as UTC text)."""
        return {"category": self.category, "reason": self.reason}


@attrs.frozen
class TimelinePhase:
    """One phase of the recovery window: from ``starts`` until ``ends`` (exclusive), the
    relations in ``restore`` may restore. A window without phases is one phase."""

    number: int
    starts: datetime
    ends: datetime
    restore: tuple[Relation, ...]

    def to_dict(self) -> dict[str, Any]:
        """As plain JSON data (times as UTC text)."""
        return {
            "number": self.number,
            "starts": format_time(self.starts),
            "ends": format_time(self.ends),
            "restore": [r.value for r in self.restore],
        }


@attrs.frozen
class Timeline:
    """What will happen to an account, and when (see ``Lifecycle.preview``).

    ``restorable_until`` is the end of the last phase: a restore is accepted strictly before
    it. ``window`` is the length chosen at confirm (or, before it, the one the moments assume:
    the one asked for, else the first of ``window_choices``); None for no window or for phases.
    """

    account_id: str
    policy: str
    state: State
    at: datetime
    hypothetical: bool
    cancelled_at: datetime | None
    restorable_until: datetime | None
    window: Duration | None
    window_choices: tuple[Duration, ...]
    phases: tuple[TimelinePhase, ...]
    current_phase: int | None
    erasures: tuple[ScheduledErasure, ...]
    kept: tuple[KeptCategory, ...]
    on_cancel: tuple[str, ...]
    token: str | None
    fresh_login: Duration | None

    def erased_at(self, moment: str) -> tuple[ScheduledErasure, ...]:
        """The erasures at ``"cancel"`` or at ``"expiry"``."""
        return tuple(e for e in self.erasures if e.moment == moment)

    def to_dict(self) -> dict[str, Any]:
        """As plain JSON data (times as UTC text)."""

        def when(moment: datetime | None) -> str | None:
            return None if moment is None else format_time(moment)

        return {
            "account_id": self.account_id,
            "policy": self.policy,
            "state": self.state.value,
            "at": format_time(self.at),
            "hypothetical": self.hypothetical,
            "cancelled_at": when(self.cancelled_at),
            "restorable_until": when(self.restorable_until),
            "window": None if self.window is None else str(self.window),
            "window_choices": [str(c) for c in self.window_choices],
            "phases": [p.to_dict() for p in self.phases],
            "current_phase": self.current_phase,
            "erasures": [e.to_dict() for e in self.erasures],
            "kept": [k.to_dict() for k in self.kept],
            "on_cancel": list(self.on_cancel),
            "token": self.token,
            "fresh_login": None if self.fresh_login is None else str(self.fresh_login),
        }

    def to_json(self) -> str:
        """One JSON object with sorted keys: the same account and moment give the same bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=True)


def _chosen(policy: Policy, record: AccountRecord) -> Duration | None:
    """The choice a confirmed account's window was made of, read back from its dates."""
    if record.cancelled_at is None or record.restorable_until is None:
        return None
    for choice in policy.recovery.choices:
        if choice.add_to(record.cancelled_at) == record.restorable_until:
            return choice
    return None


def _erased(record: AccountRecord, category: str, confirmed: bool) -> bool:
    progress = record.purge.get(category) if confirmed else None
    return progress is not None and progress.status is PurgeStatus.DONE


def build_timeline(
    policy: Policy, record: AccountRecord, at: datetime, window: Duration | str | None = None
) -> Timeline:
    """The timeline of *record* under *policy* as of *at* (aware, UTC). *window* picks one of
    the policy's choices for an account not confirmed yet (``ValueError`` otherwise)."""
    confirmed = record.state in _CONFIRMED and record.cancelled_at is not None
    cancelled_at = record.cancelled_at if confirmed and record.cancelled_at is not None else at
    if confirmed:
        if window is not None:
            raise ValueError(
                f"account {record.account_id!r} is already cancelled; its window was chosen at confirm"
            )
        chosen = _chosen(policy, record)
    else:
        chosen = policy.recovery.choose(window)
    recovery_phases = policy.recovery_phases(chosen)
    bounds = phase_bounds(recovery_phases, cancelled_at)
    phases = tuple(
        TimelinePhase(number, start, end, phase.restore)
        for number, ((start, end), phase) in enumerate(zip(bounds, recovery_phases, strict=True), start=1)
    )
    last_end = bounds[-1][1] if bounds else None
    until = record.restorable_until if confirmed else last_end
    current = None
    if confirmed and record.state is State.RESTORABLE:
        current = next((p.number for p in phases if p.starts <= at < p.ends), None)
    erasures = []
    retained = []
    # Under "wait", a held cancel-time category keeps the account from moving on: the erasures
    # at the window's end wait with it.
    waiting = {
        c.name
        for c in policy.purge.categories
        if (hold := record.holds.get(c.name)) is not None
        and hold.mode == "wait"
        and not _erased(record, c.name, confirmed)
    }
    blocks_expiry = any(c.at == "cancel" and c.name in waiting for c in policy.purge.categories)
    for category in policy.purge.categories:
        moment = cancelled_at if category.at == "cancel" else until
        progress = record.purge.get(category.name) if confirmed else None
        done = progress is not None and progress.status is PurgeStatus.DONE
        if done and progress is not None and progress.at is not None:
            moment = progress.at
        assert moment is not None  # an expiry category implies a window (the policy says so)
        hold = None if done else record.holds.get(category.name)
        if hold is not None and hold.mode == "retain":
            retained.append(KeptCategory(category.name, "legal hold"))
            continue
        waits = not done and (category.name in waiting or (category.at == "expiry" and blocks_expiry))
        erasures.append(ScheduledErasure(category.name, category.at, moment, done, waits))
    return Timeline(
        account_id=record.account_id,
        policy=policy.label,
        state=record.state,
        at=at,
        hypothetical=not confirmed,
        cancelled_at=cancelled_at,
        restorable_until=until,
        window=chosen if chosen is not None else policy.recovery.window,
        window_choices=policy.recovery.choices,
        phases=phases,
        current_phase=current,
        erasures=tuple(erasures),
        kept=(*(KeptCategory(name) for name in policy.purge.protected), *retained),
        on_cancel=policy.on_cancel,
        token=policy.confirmation.token_for(record.account_id),
        fresh_login=policy.confirmation.fresh_login,
    )
