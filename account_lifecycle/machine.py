"""The state machine, built once per policy with ``transitions``.

This is the only module that imports ``transitions``. The machine holds no models:
each decision fires an event on a throw-away cursor carrying the stored state, so a
long-running host keeps no per-account objects. Guards are the machine's conditions;
a guard that refuses records a typed error on the attempt, which ``decide`` raises.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import attrs
from transitions import Machine, MachineError
from transitions import State as _TransitionsState

from account_lifecycle.errors import (
    InvalidTransition,
    MissingAcknowledgements,
    NotPermitted,
    PrerequisitesPending,
    ReauthenticationRequired,
    RecoveryWindowExpired,
    StaleConfirmation,
    WrongConfirmationToken,
)
from account_lifecycle.model import (
    AccountRecord,
    Action,
    Actor,
    Relation,
    ServiceState,
    State,
    SurveyOutcome,
)
from account_lifecycle.policy import ACCOUNT_ID_PLACEHOLDER, Policy, RecoveryPhase, phase_bounds
from account_lifecycle.values import PendingItem

__all__ = ["CLOCK_SKEW", "EXPIRE", "SETTLE", "Attempt", "Guard", "NeedsPrerequisites", "PolicyMachine"]

#: Internal events that move an account on by itself once purge work is done.
SETTLE: Final = "settle"  # CANCELLED -> RESTORABLE or PURGED
EXPIRE: Final = "expire"  # RESTORABLE -> PURGED
_RETURNS: Final = (SurveyOutcome.KEEP_ACCOUNT, SurveyOutcome.BOOK_MEETING)
#: How far in the future a login time may lie and still count: the host's clock and the
#: lifecycle's may disagree by this much.
CLOCK_SKEW: Final = timedelta(minutes=1)


@attrs.define(slots=True)
class Attempt:
    """One command being decided: its inputs, and the first refusal a guard recorded."""

    record: AccountRecord
    actor: Actor
    relation: Relation | None
    now: datetime
    token: str | None = None
    acknowledgements: frozenset[str] = frozenset()
    outcome: SurveyOutcome | None = None
    service: str | None = None
    new_owner: str | None = None
    member: str | None = None  # the user added or removed
    request_id: str | None = None
    authenticated_at: datetime | None = None  # when the actor last logged in, as the host says
    prerequisites: Mapping[str, Callable[[str], Sequence[str | PendingItem]]] = attrs.field(factory=dict)
    pending: Mapping[str, object] | None = None  # what each check reported, gathered beforehand
    refusal: Exception | None = None
    state: str = ""  # the cursor ``transitions`` reads and writes


@attrs.frozen
class Guard:
    """A named condition. ``check`` returns the error that refuses the attempt, or None.

    ``needs_input`` guards look at what the actor typed or at host checks; ``allowed_actions``
    leaves them out (a UI cannot know the token before it is typed).
    """

    name: str
    check: Callable[[Attempt], Exception | None]
    needs_input: bool = False
    #: Set on a permission guard: the relations it lets through (``check`` refuses every other
    #: and reads nothing else). ``express.ExpressTable`` compiles rows of such guards.
    relations: frozenset[Relation] | None = None

    def __call__(self, event: Any) -> bool:
        attempt: Attempt = event.kwargs["attempt"]
        refusal = self.check(attempt)
        if refusal is None:
            return True
        if attempt.refusal is None:
            attempt.refusal = refusal
        return False


def _permitted(policy: Policy, action: Action) -> Guard:
    def check(attempt: Attempt) -> Exception | None:
        if policy.may(action, attempt.relation):
            return None
        return NotPermitted(actor=attempt.actor, action=action, relation=attempt.relation)

    return Guard(f"may_{action.value}", check, relations=policy.permissions.get(action, frozenset()))


def _route(name: str, predicate: Callable[[Attempt], bool]) -> Guard:
    """A guard that only chooses between transitions and refuses nothing itself."""

    def check(attempt: Attempt) -> Exception | None:
        return None if predicate(attempt) else _NOT_THIS_WAY

    return Guard(name, check, needs_input=True)


_NOT_THIS_WAY = LookupError("routing guard declined")


def _outcome_offered(policy: Policy) -> Guard:
    def check(attempt: Attempt) -> Exception | None:
        if attempt.outcome in policy.survey.outcomes:
            return None
        offered = ", ".join(o.value for o in policy.survey.outcomes)
        shown = attempt.outcome.value if attempt.outcome is not None else None
        return ValueError(f"survey outcome {shown!r} is not offered; expected one of {offered}")

    return Guard("outcome_offered", check, needs_input=True)


def _token_matches(template: str) -> Guard:
    """The typed token equals the policy's, with ``{account_id}`` rendered for the account;
    compared in constant time, byte for byte."""
    per_account = ACCOUNT_ID_PLACEHOLDER in template
    template_bytes = template.encode("utf-8")

    def check(attempt: Attempt) -> Exception | None:
        expected = (
            template.replace(ACCOUNT_ID_PLACEHOLDER, attempt.record.account_id) if per_account else template
        )
        expected_bytes = expected.encode("utf-8") if per_account else template_bytes
        given = attempt.token
        if isinstance(given, str):
            given_bytes = given.encode("utf-8", "surrogatepass")
            if hmac.compare_digest(given_bytes, expected_bytes):
                return None
        return WrongConfirmationToken(expected=expected, given=given)

    return Guard("token_matches", check, needs_input=True)


def _answers_open_request(attempt: Attempt) -> Exception | None:
    """A confirm that names the request it answers must name the open one."""
    given = attempt.request_id
    current = attempt.record.cancellation_id
    if given is None or given == current:
        return None
    return StaleConfirmation(state=attempt.record.state, given=given, current=current)


def _fresh_login(max_age: timedelta) -> Guard:
    """Step-up: the actor logged in at most *max_age* ago by the lifecycle's clock (a login up to
    ``CLOCK_SKEW`` in the future counts as now)."""

    def check(attempt: Attempt) -> Exception | None:
        at, now = attempt.authenticated_at, attempt.now
        if at is not None and at > now + CLOCK_SKEW:
            reason = (
                f"the login time {_moment(at)} lies in the future (it is now {_moment(now)}, "
                f"and clocks may differ by at most {int(CLOCK_SKEW.total_seconds())} seconds)"
            )
            return ReauthenticationRequired(authenticated_at=at, max_age=max_age, now=now, reason=reason)
        if at is None or now - at > max_age:
            return ReauthenticationRequired(authenticated_at=at, max_age=max_age, now=now)
        return None

    return Guard("fresh_login", check, needs_input=True)


def _moment(moment: datetime | None) -> str:
    return (
        "-" if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def _acknowledged(policy: Policy) -> Guard:
    required = tuple(a.id for a in policy.confirmation.acknowledgements)

    def check(attempt: Attempt) -> Exception | None:
        unknown = sorted(attempt.acknowledgements.difference(required))
        if unknown:
            return ValueError(
                f"unknown acknowledgement id(s) {', '.join(map(repr, unknown))}; "
                f"this policy asks for {', '.join(required) or 'none'}"
            )
        missing = tuple(a for a in required if a not in attempt.acknowledgements)
        return MissingAcknowledgements(missing=missing) if missing else None

    return Guard("acknowledged", check, needs_input=True)


class NeedsPrerequisites(Exception):
    """Raised by a decision that reached the prerequisite guard without the checks' answers:
    the caller runs the checks (host code, I/O) and decides again with ``pending``."""


def _prerequisites_clear(policy: Policy) -> Guard:
    def check(attempt: Attempt) -> Exception | None:
        pending: dict[str, tuple[str | PendingItem, ...]] = {}
        for name in policy.prerequisites:
            if attempt.pending is not None:
                items = attempt.pending[name]
            elif name in attempt.prerequisites:
                items = attempt.prerequisites[name](attempt.record.account_id)
            else:
                raise NeedsPrerequisites(name)
            if isinstance(items, str | bytes) or not isinstance(items, Iterable):
                return TypeError(
                    f"prerequisite check {name!r} must return a sequence of strings, got {items!r}"
                )
            checked: list[str | PendingItem] = []
            for item in items:
                if isinstance(item, PendingItem):
                    problem = _bad_pending_item(name, item)
                    if problem is not None:
                        return problem
                    checked.append(item)
                else:
                    checked.append(str(item))
            if checked:
                pending[name] = tuple(checked)
        return PrerequisitesPending(pending=pending) if pending else None

    return Guard("prerequisites_clear", check, needs_input=True)


def _bad_pending_item(check: str, item: PendingItem) -> TypeError | None:
    for field in ("what", "why", "fix"):
        value = getattr(item, field)
        if not isinstance(value, str):
            return TypeError(
                f"prerequisite check {check!r} returned a PendingItem whose {field} is "
                f"{type(value).__name__} {value!r}; expected a string"
            )
    return None


def _within_window(attempt: Attempt) -> Exception | None:
    until = attempt.record.restorable_until
    if until is not None and attempt.now < until:
        return None
    return RecoveryWindowExpired(
        account_id=attempt.record.account_id, restorable_until=until, now=attempt.now
    )


def _phase_allows(phases: tuple[RecoveryPhase, ...]) -> Guard:
    """The actor's relation may restore in the phase of the recovery window the clock is in.
    Past the last phase ``within_window`` refuses; this guard lets that through."""

    def check(attempt: Attempt) -> Exception | None:
        cancelled_at = attempt.record.cancelled_at
        if cancelled_at is None:
            return None
        bounds = phase_bounds(phases, cancelled_at)
        current = next((i for i, (_, end) in enumerate(bounds) if attempt.now < end), None)
        if current is None or attempt.relation in phases[current].restore:
            return None
        reason = _phase_refusal(phases, bounds, current, attempt.relation)
        return NotPermitted(
            actor=attempt.actor, action=Action.RESTORE, relation=attempt.relation, reason=reason
        )

    return Guard("phase_allows", check)


def _relations(relations: Iterable[Relation]) -> str:
    names = [r.value for r in relations]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _phase_refusal(
    phases: tuple[RecoveryPhase, ...],
    bounds: tuple[tuple[datetime, datetime], ...],
    current: int,
    relation: Relation | None,
) -> str:
    start, end = bounds[current]
    text = (
        f"recovery phase {current + 1} of {len(phases)} runs from {_moment(start)} until {_moment(end)}, "
        f"and only {_relations(phases[current].restore)} may restore in it"
    )
    earlier = [i for i in range(current) if relation in phases[i].restore]
    later = [i for i in range(current + 1, len(phases)) if relation in phases[i].restore]
    if earlier:
        last = earlier[-1]
        text += f"; {relation} could restore in phase {last + 1}, which ended at {_moment(bounds[last][1])}"
    if later:
        first = later[0]
        again = " again" if earlier else ""
        text += (
            f"; {relation} may restore{again} from phase {first + 1}, "
            f"which starts at {_moment(bounds[first][0])}"
        )
    return text


def _service_active(policy: Policy) -> Guard:
    def check(attempt: Attempt) -> Exception | None:
        service = attempt.service
        if service not in policy.services:
            offered = ", ".join(policy.services) or "none"
            return ValueError(f"unknown service {service!r}; this policy has {offered}")
        if attempt.record.services.get(service) is ServiceState.CANCELLED:
            return InvalidTransition(
                state=attempt.record.state,
                action=Action.CANCEL_SERVICE,
                reason=f"service {service!r} is already cancelled",
            )
        return None

    return Guard("service_active", check, needs_input=True)


def _new_owner_is_member(attempt: Attempt) -> Exception | None:
    if attempt.new_owner in attempt.record.members:
        return None
    return ValueError(
        f"the new owner {attempt.new_owner!r} must already be a member of {attempt.record.account_id!r}"
    )


def _may_join(attempt: Attempt) -> Exception | None:
    """The user added is neither the owner nor already a member."""
    user, record = attempt.member, attempt.record
    if user == record.owner:
        return ValueError(f"{user!r} is the owner of {record.account_id!r}, not a member to add")
    if user in record.members:
        return ValueError(f"{user!r} is already a member of {record.account_id!r}")
    return None


def _may_leave(attempt: Attempt) -> Exception | None:
    """The user removed is a member; the owner cannot be removed (transfer ownership first)."""
    user, record = attempt.member, attempt.record
    if user == record.owner:
        return ValueError(
            f"{user!r} is the owner of {record.account_id!r} and cannot be removed; "
            "transfer ownership to a member first"
        )
    if user not in record.members:
        return ValueError(f"{user!r} is not a member of {record.account_id!r}")
    return None


def _reached(transitions: Sequence[Mapping[str, Any]]) -> list[State]:
    """The states the transitions (as given to ``Machine``) reach from ``ACTIVE``, in order."""
    seen = {State.ACTIVE}
    frontier = [State.ACTIVE]
    while frontier:
        state = frontier.pop()
        for t in transitions:
            dest = State(t["dest"]) if t["dest"] is not None else state
            if state.value in t["source"] and dest not in seen:
                seen.add(dest)
                frontier.append(dest)
    return [s for s in State if s in seen]


class _QuietState(_TransitionsState):
    """A state of the policy's machine. ``transitions`` logs an INFO line each time a state is
    entered or left, into whatever log the host configured; the library's states have no enter
    or exit callbacks, so these run the (empty) callbacks and log nothing."""

    def enter(self, event_data: Any) -> None:
        event_data.machine.callbacks(self.on_enter, event_data)

    def exit(self, event_data: Any) -> None:
        event_data.machine.callbacks(self.on_exit, event_data)


class _QuietMachine(Machine):
    """``Machine`` with quiet states (see ``_QuietState``); nothing else differs."""

    state_cls = _QuietState


class PolicyMachine:
    """The machine of one policy: states, transitions and guards, and decisions over them."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        survey_mode = policy.survey.mode
        has_window = policy.recovery.has_window
        may = {
            action: _permitted(policy, action)
            for action in Action
            if action not in (Action.OPEN, Action.PURGE)
        }
        transitions: list[dict[str, Any]] = []

        def add(trigger: str, source: State | list[State], dest: State | None, *guards: Guard) -> None:
            sources = source if isinstance(source, list) else [source]
            transitions.append(
                {
                    "trigger": str(trigger),
                    "source": [s.value for s in sources],
                    "dest": None if dest is None else dest.value,
                    "conditions": list(guards),
                }
            )

        first = State.PENDING_CONFIRM if survey_mode == "off" else State.SURVEYED
        add(Action.REQUEST_CANCELLATION, State.ACTIVE, first, may[Action.REQUEST_CANCELLATION])
        if survey_mode != "off":
            offered = _outcome_offered(policy)
            add(
                Action.SUBMIT_SURVEY,
                State.SURVEYED,
                State.ACTIVE,
                may[Action.SUBMIT_SURVEY],
                offered,
                _route("outcome_keeps_account", lambda a: a.outcome in _RETURNS),
            )
            add(
                Action.SUBMIT_SURVEY,
                State.SURVEYED,
                State.PENDING_CONFIRM,
                may[Action.SUBMIT_SURVEY],
                offered,
                _route("outcome_cancels", lambda a: a.outcome is SurveyOutcome.CANCEL),
            )
        if survey_mode == "optional":
            add(Action.SKIP_SURVEY, State.SURVEYED, State.PENDING_CONFIRM, may[Action.SKIP_SURVEY])
        withdraw_from = (
            [State.PENDING_CONFIRM] if survey_mode == "off" else [State.SURVEYED, State.PENDING_CONFIRM]
        )
        add(Action.WITHDRAW, withdraw_from, State.ACTIVE, may[Action.WITHDRAW])
        confirm_guards = [may[Action.CONFIRM]]
        fresh_login = policy.confirmation.fresh_login
        if fresh_login is not None and fresh_login.fixed is not None:
            confirm_guards.append(_fresh_login(fresh_login.fixed))
        confirm_guards.append(Guard("answers_open_request", _answers_open_request, needs_input=True))
        if policy.confirmation.token is not None:
            confirm_guards.append(_token_matches(policy.confirmation.token))
        confirm_guards.append(_acknowledged(policy))
        if policy.prerequisites:
            confirm_guards.append(_prerequisites_clear(policy))
        add(Action.CONFIRM, State.PENDING_CONFIRM, State.CANCELLED, *confirm_guards)
        add(SETTLE, State.CANCELLED, State.RESTORABLE if has_window else State.PURGED)
        if has_window:
            restore_guards = [may[Action.RESTORE], Guard("within_window", _within_window)]
            if policy.recovery.phases:
                restore_guards.append(_phase_allows(policy.recovery.phases))
            add(Action.RESTORE, State.RESTORABLE, State.ACTIVE, *restore_guards)
            add(EXPIRE, State.RESTORABLE, State.PURGED)
        add(
            Action.TRANSFER_OWNERSHIP,
            State.ACTIVE,
            None,
            may[Action.TRANSFER_OWNERSHIP],
            Guard("new_owner_is_member", _new_owner_is_member, needs_input=True),
        )
        if policy.services:
            add(
                Action.CANCEL_SERVICE,
                State.ACTIVE,
                None,
                may[Action.CANCEL_SERVICE],
                _service_active(policy),
            )
        # The team and the identity change until the account is cancelled (access has ended
        # then: a restorable account comes back with the team it had).
        before_cancel = (State.ACTIVE, State.SURVEYED, State.PENDING_CONFIRM)
        live: list[State] = [s for s in _reached(transitions) if s in before_cancel]
        add(
            Action.ADD_MEMBER,
            live,
            None,
            may[Action.ADD_MEMBER],
            Guard("may_join", _may_join, needs_input=True),
        )
        add(
            Action.REMOVE_MEMBER,
            live,
            None,
            may[Action.REMOVE_MEMBER],
            Guard("may_leave", _may_leave, needs_input=True),
        )
        add(Action.CHANGE_IDENTITY, live, None, may[Action.CHANGE_IDENTITY])
        if policy.purge.on_hold is not None:
            # Legal holds change no state; they can be placed and released until the purge.
            unpurged: list[State] = [s for s in _reached(transitions) if s is not State.PURGED]
            add(Action.PLACE_HOLD, unpurged, None, may[Action.PLACE_HOLD])
            add(Action.RELEASE_HOLD, unpurged, None, may[Action.RELEASE_HOLD])

        self.machine = _QuietMachine(
            model=None,
            states=[s.value for s in State],
            transitions=transitions,
            initial=State.ACTIVE.value,
            auto_transitions=False,
            send_event=True,
            name=f"{policy.label}: ",
        )
        self.states = tuple(State(name) for name in self.machine.states)
        self.reachable_states = self._reachable()

    def _reachable(self) -> frozenset[State]:
        seen = {State.ACTIVE}
        frontier = [State.ACTIVE]
        while frontier:
            state = frontier.pop()
            for transition in self.machine.get_transitions(source=state.value):
                dest = State(transition.dest or transition.source)
                if dest not in seen:
                    seen.add(dest)
                    frontier.append(dest)
        return frozenset(seen)

    def events(self) -> tuple[str, ...]:
        return tuple(self.machine.events)

    def decide(self, trigger: str, attempt: Attempt) -> State:
        """Fire *trigger* on the attempt's state and return the new state, or raise the
        typed error of the first guard that refused."""
        attempt.state = attempt.record.state.value
        event = self.machine.events.get(str(trigger))
        if event is None:
            raise InvalidTransition(
                state=attempt.record.state,
                action=trigger,
                reason=f"policy {self.policy.label} has no such step",
            )
        try:
            accepted = event.trigger(attempt, attempt=attempt)
        except MachineError:
            raise InvalidTransition(state=attempt.record.state, action=trigger) from None
        if accepted:
            return State(attempt.state)
        refusal = attempt.refusal
        if refusal is None or refusal is _NOT_THIS_WAY:
            raise InvalidTransition(state=attempt.record.state, action=trigger)
        raise refusal

    def possible(self, trigger: str, attempt: Attempt) -> bool:
        """Whether *trigger* may fire from the attempt's state, evaluating only the guards
        that need no input (permission, window). Fires nothing."""
        for transition in self.machine.get_transitions(str(trigger), source=attempt.record.state.value):
            guards = [c.func for c in transition.conditions]
            if all(g.needs_input or g.check(attempt) is None for g in guards if isinstance(g, Guard)):
                return True
        return False

    def guards_of(self, trigger: str, source: State) -> list[list[Guard]]:
        """The guards of each transition of *trigger* from *source*, in the order they are tried."""
        return [
            [c.func for c in t.conditions if isinstance(c.func, Guard)]
            for t in self.machine.get_transitions(str(trigger), source=source.value)
        ]

    def transitions(self) -> list[tuple[str, State, State, tuple[str, ...]]]:
        """Every transition as ``(trigger, source, dest, guard names)``, for diagrams and proofs."""
        out = []
        for t in self.machine.get_transitions():
            guards = tuple(c.func.name for c in t.conditions if isinstance(c.func, Guard))
            out.append((self._trigger_of(t), State(t.source), State(t.dest or t.source), guards))
        return out

    def _trigger_of(self, transition: Any) -> str:
        for name, event in self.machine.events.items():
            if any(transition in ts for ts in event.transitions.values()):
                return str(name)
        raise LookupError(transition)  # pragma: no cover - every transition belongs to an event
