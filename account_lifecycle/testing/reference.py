"""A reference model of the lifecycle, written independently of the engine.

It is deliberately plain: a table of which action moves which state where, and the guard
order of the contract. ``LifecycleStateMachine`` compares the real service with it after
every step, so a bug in the machine, the guards or a store shows up as a disagreement.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import attrs

from account_lifecycle.duration import Duration
from account_lifecycle.errors import (
    AccountExists,
    InvalidTransition,
    MissingAcknowledgements,
    NotPermitted,
    PrerequisitesPending,
    RecoveryWindowExpired,
    WrongConfirmationToken,
)
from account_lifecycle.model import Action, Relation, ServiceState, State, SurveyOutcome
from account_lifecycle.policy import Policy

__all__ = ["Outcome", "RefAccount", "expected_outcome", "identity_held", "open_outcome", "window_end"]

#: What the reference expects: the next state, or the type of error.
Outcome = State | type[Exception]


@attrs.define
class RefAccount:
    """What the reference model knows of one account."""

    state: State
    owner: str
    members: set[str]
    identity: str | None
    services: dict[str, ServiceState]
    restorable_until: datetime | None = None
    cancelled_at: datetime | None = None
    purged: set[str] = attrs.Factory(set)  # categories erased since the last confirm
    failed_at: dict[str, datetime] = attrs.Factory(dict)  # category -> its last failed attempt
    broken: dict[str, int] = attrs.Factory(dict)  # category -> failures still to come
    pending_prerequisites: tuple[str, ...] = ()

    def relation(self, user: str) -> Relation | None:
        if user == self.owner:
            return Relation.OWNER
        return Relation.MEMBER if user in self.members else None


def window_end(window: Duration, start: datetime) -> datetime:
    """When a window of *window* opened at *start* ends, computed apart from ``Duration``.

    Days and weeks are exact lengths of time. Months and years are calendar months: the same
    day of the month that many months on, or the last day of that month when it is shorter
    (30 November + 3 months is 28 or 29 February). Counted here by walking to the first day
    of the target month and back one day from the first of the month after it.
    """
    if window.unit == "days":
        return start + timedelta(days=window.amount)
    if window.unit == "weeks":
        return start + timedelta(days=7 * window.amount)
    months = window.amount * (12 if window.unit == "years" else 1)
    first = date(start.year, start.month, 1)
    for _ in range(months):
        first = (first + timedelta(days=31)).replace(day=1)
    last_day = ((first + timedelta(days=31)).replace(day=1) - timedelta(days=1)).day
    return start.replace(year=first.year, month=first.month, day=min(start.day, last_day))


def identity_held(policy: Policy, state: State) -> bool:
    """Whether an account in *state* still holds its identity under *policy*."""
    if policy.identity_reuse == "never":
        return True
    if policy.identity_reuse == "after_cancel":
        return state in (State.ACTIVE, State.SURVEYED, State.PENDING_CONFIRM)
    return state is not State.PURGED


def _source_ok(policy: Policy, state: State, action: Action) -> bool:
    mode = policy.survey.mode
    if action is Action.REQUEST_CANCELLATION or action is Action.TRANSFER_OWNERSHIP:
        return state is State.ACTIVE
    if action is Action.CANCEL_SERVICE:
        return state is State.ACTIVE and bool(policy.services)
    if action is Action.SUBMIT_SURVEY:
        return state is State.SURVEYED
    if action is Action.SKIP_SURVEY:
        return state is State.SURVEYED and mode == "optional"
    if action is Action.WITHDRAW:
        return state in (State.SURVEYED, State.PENDING_CONFIRM)
    if action is Action.CONFIRM:
        return state is State.PENDING_CONFIRM
    if action is Action.RESTORE:
        return state is State.RESTORABLE
    return False


def expected_outcome(
    policy: Policy,
    account: RefAccount,
    action: Action,
    relation: Relation | None,
    *,
    now: datetime,
    outcome: SurveyOutcome | None = None,
    token: str | None = None,
    acknowledgements: frozenset[str] = frozenset(),
    new_owner: str | None = None,
    service: str | None = None,
) -> Outcome:
    """The state a command leads to before any purge runs, or the error it must raise."""
    if relation is None:  # a stranger is told nothing about the account, not even its state
        return NotPermitted
    if not _source_ok(policy, account.state, action):
        return InvalidTransition
    if relation is None or relation not in policy.permissions.get(action, frozenset()):
        return NotPermitted
    if action is Action.REQUEST_CANCELLATION:
        return State.PENDING_CONFIRM if policy.survey.mode == "off" else State.SURVEYED
    if action is Action.SUBMIT_SURVEY:
        if outcome not in policy.survey.outcomes:
            return ValueError
        return State.PENDING_CONFIRM if outcome is SurveyOutcome.CANCEL else State.ACTIVE
    if action in (Action.SKIP_SURVEY,):
        return State.PENDING_CONFIRM
    if action is Action.WITHDRAW:
        return State.ACTIVE
    if action is Action.CONFIRM:
        expected_token = policy.confirmation.token
        if expected_token is not None and token != expected_token:
            return WrongConfirmationToken
        required = {a.id for a in policy.confirmation.acknowledgements}
        if not acknowledgements <= required:
            return ValueError
        if not required <= acknowledgements:
            return MissingAcknowledgements
        if account.pending_prerequisites and policy.prerequisites:
            return PrerequisitesPending
        return State.CANCELLED
    if action is Action.RESTORE:
        if account.restorable_until is None or now >= account.restorable_until:
            return RecoveryWindowExpired
        return State.ACTIVE
    if action is Action.TRANSFER_OWNERSHIP:
        return State.ACTIVE if new_owner in account.members else ValueError
    if action is Action.CANCEL_SERVICE:
        if service not in policy.services:
            return ValueError
        if account.services.get(service) is ServiceState.CANCELLED:
            return InvalidTransition
        return State.ACTIVE
    raise AssertionError(f"no reference rule for {action}")  # pragma: no cover


def open_outcome(
    policy: Policy, accounts: dict[str, RefAccount], account_id: str, identity: str | None
) -> Outcome:
    """``AccountExists`` if the id is taken or the identity is held by another account."""
    if account_id in accounts:
        return AccountExists
    if identity is not None and any(
        a.identity == identity and identity_held(policy, a.state) for a in accounts.values()
    ):
        return AccountExists
    return State.ACTIVE
