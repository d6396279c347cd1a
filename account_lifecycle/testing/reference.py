"""A reference model of the lifecycle, written independently of the engine.

It is deliberately plain: a table of which action moves which state where, and the guard
order of the contract. ``LifecycleStateMachine`` compares the real service with it after
every step, so a bug in the machine, the guards or a store shows up as a disagreement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

import attrs

from account_lifecycle.duration import Duration
from account_lifecycle.errors import (
    AccountExists,
    ErasureInProgress,
    InvalidTransition,
    MissingAcknowledgements,
    NotPermitted,
    PrerequisitesPending,
    ReauthenticationRequired,
    RecoveryWindowExpired,
    WrongConfirmationToken,
)
from account_lifecycle.model import Action, Relation, ServiceState, State, SurveyOutcome
from account_lifecycle.policy import Policy

__all__ = [
    "SKEW",
    "Outcome",
    "RefAccount",
    "RefStep",
    "expected_outcome",
    "fixed_length",
    "identity_held",
    "open_outcome",
    "phase_ends",
    "render_token",
    "run_purge",
    "sweep_due",
    "window_end",
]

#: How far in the future a login may lie and still count (the contract's one minute).
SKEW = timedelta(minutes=1)
_PLACEHOLDER = "{account_id}"

#: What the reference expects: the next state, or the type of error.
Outcome = State | type[Exception]


@attrs.define
class RefStep:
    """One purge step in the reference's own ledger: erased, or when it last failed (its retry
    is due from then: the machine's lifecycles have no backoff)."""

    expiry: bool = False
    done: bool = False
    failed_at: datetime | None = None
    attempted: bool = False


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
    #: the steps of the cancellation under way (cancel-time, then expiry categories)
    ledger: dict[str, RefStep] = attrs.Factory(dict)
    holds: dict[str, str] = attrs.Factory(dict)  # category -> mode
    #: each recovery phase's end and the relations that may restore in it
    phases: tuple[tuple[datetime, frozenset[Relation]], ...] = ()
    reminders: dict[str, tuple[datetime, bool]] = attrs.Factory(dict)  # before -> (at, sent)
    identifiers: dict[str, str] = attrs.Factory(dict)  # kind -> value
    free_at: dict[str, datetime | None] = attrs.Factory(dict)  # kind -> when it is free
    in_flight: tuple[str, ...] = ()  # steps started and not recorded (a crashed runner's)
    lease_until: datetime | None = None  # when the crashed runner's claim lapses
    in_flight_since: datetime | None = None

    @property
    def expiry_begun(self) -> bool:
        """Whether the erasure at the window's end was attempted: no restore from then on."""
        return any(step.attempted for step in self.ledger.values() if step.expiry)

    def holds_identifier(self, kind: str, value: str, now: datetime) -> bool:
        if self.identifiers.get(kind) != value:
            return False
        free = self.free_at.get(kind)
        return free is None or free > now

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
    if window.unit in ("minutes", "hours", "days", "weeks"):
        return start + fixed_length(window)
    months = window.amount * (12 if window.unit == "years" else 1)
    first = date(start.year, start.month, 1)
    for _ in range(months):
        first = (first + timedelta(days=31)).replace(day=1)
    last_day = ((first + timedelta(days=31)).replace(day=1) - timedelta(days=1)).day
    return start.replace(year=first.year, month=first.month, day=min(start.day, last_day))


def phase_ends(
    policy: Policy, start: datetime, window: Duration | None
) -> tuple[tuple[datetime, frozenset[Relation]], ...]:
    """Each recovery phase's end (each phase starting where the previous one ended, months
    clamped at every step) and who may restore in it; a plain window or a chosen one is one
    phase of ``permissions.restore``."""
    restore = policy.permissions.get(Action.RESTORE, frozenset())
    if policy.recovery.phases:
        lengths = [(p.length, frozenset(p.restore)) for p in policy.recovery.phases]
    elif policy.recovery.choices:
        lengths = [(window or policy.recovery.choices[0], restore)]
    elif policy.recovery.window is not None:
        lengths = [(policy.recovery.window, restore)]
    else:
        return ()
    ends = []
    for length, relations in lengths:
        start = window_end(length, start)
        ends.append((start, relations))
    return tuple(ends)


def fixed_length(duration: Duration) -> timedelta:
    """A duration in minutes, hours, days or weeks as a length of time."""
    per = {"minutes": timedelta(minutes=1), "hours": timedelta(hours=1), "days": timedelta(days=1)}
    per["weeks"] = timedelta(days=7)
    if duration.unit not in per:
        raise ValueError(f"{duration} is not a fixed length of time")
    return per[duration.unit] * duration.amount


def render_token(template: str | None, account_id: str) -> str | None:
    """The text to type for *account_id*: ``{account_id}`` replaced by the id."""
    return None if template is None else template.replace(_PLACEHOLDER, account_id)


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
    if action in (Action.ADD_MEMBER, Action.REMOVE_MEMBER, Action.CHANGE_IDENTITY):
        return state in (State.ACTIVE, State.SURVEYED, State.PENDING_CONFIRM)  # until cancelled
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
    account_id: str = "",
    authenticated_at: datetime | None = None,
    window: Duration | None = None,
    category: str | None = None,
    member: str | None = None,
) -> Outcome:
    """The state a command leads to before any purge runs, or the error it must raise."""
    if action is Action.CONFIRM and window is not None and window not in policy.recovery.choices:
        return ValueError  # an unoffered window, or one for a policy without choices
    if action in (Action.PLACE_HOLD, Action.RELEASE_HOLD) and category not in policy.purge.at(
        "cancel"
    ) + policy.purge.at("expiry"):
        return ValueError  # unknown or protected
    if relation is None:  # a stranger is told nothing about the account, not even its state
        return NotPermitted
    if account.in_flight and (
        action is Action.RESTORE or (action is Action.PLACE_HOLD and category in account.in_flight)
    ):
        return ErasureInProgress
    if action is Action.RESTORE and account.expiry_begun:
        return InvalidTransition
    if action in (Action.PLACE_HOLD, Action.RELEASE_HOLD):
        if policy.purge.on_hold is None or account.state is State.PURGED:
            return InvalidTransition
        if relation is None or relation not in policy.permissions.get(action, frozenset()):
            return NotPermitted
        assert category is not None
        if action is Action.RELEASE_HOLD:
            return account.state if category in account.holds else InvalidTransition
        step = account.ledger.get(category)
        if category in account.holds or (step is not None and step.done):
            return InvalidTransition
        return account.state
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
        fresh = policy.confirmation.fresh_login
        if fresh is not None and (
            authenticated_at is None
            or authenticated_at > now + SKEW
            or now - authenticated_at > fixed_length(fresh)
        ):
            return ReauthenticationRequired
        expected_token = render_token(policy.confirmation.token, account_id)
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
        current = next((relations for end, relations in account.phases if now < end), None)
        if current is not None and relation not in current:
            return NotPermitted  # not in this phase of the window
        return State.ACTIVE
    if action is Action.TRANSFER_OWNERSHIP:
        return State.ACTIVE if new_owner in account.members else ValueError
    if action is Action.CANCEL_SERVICE:
        if service not in policy.services:
            return ValueError
        if account.services.get(service) is ServiceState.CANCELLED:
            return InvalidTransition
        return State.ACTIVE
    if action is Action.ADD_MEMBER:
        return ValueError if member == account.owner or member in account.members else account.state
    if action is Action.REMOVE_MEMBER:
        return ValueError if member == account.owner or member not in account.members else account.state
    raise AssertionError(f"no reference rule for {action}")  # pragma: no cover


def open_outcome(
    policy: Policy,
    accounts: dict[str, RefAccount],
    account_id: str,
    identity: str | None,
    identifiers: dict[str, str] | None = None,
    now: datetime | None = None,
) -> Outcome:
    """``AccountExists`` if the id is taken, or the identity or one of the *identifiers* is
    held by another account (not yet free at *now*)."""
    if account_id in accounts:
        return AccountExists
    for kind, value in (identifiers or {}).items():
        assert now is not None
        if any(a.holds_identifier(kind, value, now) for a in accounts.values()):
            return AccountExists
    if identity is not None and any(
        a.identity == identity and identity_held(policy, a.state) for a in accounts.values()
    ):
        return AccountExists
    return State.ACTIVE


# -- the purge, as the reference sees it ---------------------------------------------------------

#: A start of purge steps: its phase and the categories it starts, in order.
Start = tuple[str, tuple[str, ...]]


def _phase(account: RefAccount, now: datetime) -> str | None:
    if account.state is State.CANCELLED:
        return "cancel"
    if account.state is State.RESTORABLE and account.restorable_until is not None:
        return "expiry" if now >= account.restorable_until else None
    return None


def _due_now(
    policy: Policy, account: RefAccount, now: datetime, tried: set[str]
) -> tuple[str | None, list[str]]:
    """The phase under way and the steps that may start at *now*: not erased, not held, not
    failed later than now, not tried in this run. While restorable, cancel-time steps still in
    the ledger (retained under a hold since released) come first."""
    phase = _phase(account, now)
    keys: list[str] = []
    if account.state is State.RESTORABLE:
        keys += [c for c in policy.purge.at("cancel") if c in account.ledger]
    if phase is not None:
        keys += [c for c in policy.purge.at(phase) if c not in keys]
    due = []
    for key in keys:
        step = account.ledger.setdefault(key, RefStep(expiry=phase == "expiry"))
        if step.done or key in account.holds or key in tried:
            continue
        if step.failed_at is not None and step.failed_at > now:
            continue
        due.append(key)
    if phase is None and due:
        phase = "cancel"
    return phase, due


def _settled(account: RefAccount, key: str) -> bool:
    step = account.ledger.get(key)
    return (step is not None and step.done) or account.holds.get(key) == "retain"


def _move_on(policy: Policy, account: RefAccount, now: datetime) -> bool:
    """Move a settled account on (to RESTORABLE or PURGED); False if it waits."""
    phase = _phase(account, now)
    if phase is None:
        return False
    keys = [*policy.purge.at(phase), *account.ledger]
    if not all(_settled(account, k) for k in keys):
        return False
    if account.state is State.CANCELLED and policy.recovery.has_window:
        account.state = State.RESTORABLE
        for name in policy.purge.at("expiry"):
            account.ledger.setdefault(name, RefStep(expiry=True))
        assert account.restorable_until is not None
        account.reminders = {
            str(d): (account.restorable_until - fixed_length(d), False) for d in policy.recovery.reminders
        }
        return True
    account.state = State.PURGED
    for kind in account.identifiers:
        rule = policy.identity.get(kind)
        when = "after_purge" if rule is None else rule.when
        if when == "never":
            account.free_at[kind] = None
        elif when == "after" and rule is not None and rule.delay is not None:
            account.free_at[kind] = window_end(rule.delay, now)
        elif when != "at_once":
            account.free_at[kind] = now
    return True


def run_purge(
    policy: Policy, account: RefAccount, now: datetime, fails: Callable[[str], bool]
) -> list[Start]:
    """One runner's work on *account* at *now*: start the due steps (a failing one when
    ``fails(category)``), move on once settled, again while more is due, then send the
    reminders whose moment has come. Returns the starts, in order."""
    starts: list[Start] = []
    tried: set[str] = set()
    if account.in_flight:  # a crashed runner's steps run again first
        resumed = "expiry" if any(account.ledger[k].expiry for k in account.in_flight) else "cancel"
        _, due = _due_now(policy, account, now, tried)
        steps = (*account.in_flight, *(k for k in due if k not in account.in_flight))
        account.in_flight = ()
        account.lease_until = account.in_flight_since = None
        starts.append((resumed, steps))
        _attempt(account, steps, now, fails, tried)
    while True:
        phase, due = _due_now(policy, account, now, tried)
        if due:
            assert phase is not None
            starts.append((phase, tuple(due)))
            _attempt(account, due, now, fails, tried)
        elif not _move_on(policy, account, now):
            break
    until = account.restorable_until
    if account.state is State.RESTORABLE and until is not None and now < until:
        for before, (at, sent) in account.reminders.items():
            if not sent and at <= now:
                account.reminders[before] = (at, True)
    return starts


def _attempt(
    account: RefAccount, steps: Sequence[str], now: datetime, fails: Callable[[str], bool], tried: set[str]
) -> None:
    for key in steps:
        step = account.ledger[key]
        step.attempted = True
        tried.add(key)
        if fails(key):
            step.failed_at = now
        else:
            step.done, step.failed_at = True, None


def sweep_due(account: RefAccount, now: datetime) -> bool:
    """Whether a sweep at *now* claims *account*: a step of its ledger is due (not erased, not
    held, its retry come), or it may move on (nothing left but ``"wait"`` holds keeps it), or a
    reminder is due; a crashed runner's steps once its claim has lapsed."""
    if account.in_flight:
        assert account.lease_until is not None and account.in_flight_since is not None
        return account.in_flight_since <= now and account.lease_until <= now
    if account.state is State.CANCELLED:
        assert account.cancelled_at is not None
        start = account.cancelled_at
    elif account.state is State.RESTORABLE:
        assert account.restorable_until is not None
        start = account.restorable_until
        if any(not sent and at <= now and at < start for at, sent in account.reminders.values()):
            return True
    else:
        return False
    moments = []
    waiting = False
    for key, step in account.ledger.items():
        if step.done:
            continue
        mode = account.holds.get(key)
        if mode is not None:
            waiting = waiting or mode == "wait"
            continue
        moments.append(step.failed_at or start)
    if moments:
        return min(moments) <= now
    return not waiting and start <= now
