"""The decision core: every change of an account, from a user command or from the purge
runner, is one pure function ``(rules, record, input, now) -> Decision``.

A ``Decision`` says which fields of the record change, which audit events say so, and which
purge steps start (``work``) once it is committed. Nothing here reads a clock, calls a host
callable or touches a store: ``Lifecycle`` and ``PurgeRunner`` gather the inputs (the time,
a purger's result, a prerequisite check's answer), call down into this module, and hand the
decision to the one write path (``journal.Journal``).

The fence lives here too: a command that would change what a step in flight depends on (a
restore, a hold on a category being erased) is refused with ``ErasureInProgress``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import attrs

from account_lifecycle.closure import IdentityReuse, reminder_schedule
from account_lifecycle.compiled import DecisionTable
from account_lifecycle.duration import Duration
from account_lifecycle.errors import (
    ErasureInProgress,
    IdempotencyKeyReused,
    InvalidTransition,
    LifecycleError,
    NotPermitted,
)
from account_lifecycle.machine import EXPIRE, SETTLE, Attempt, NeedsPrerequisites, PolicyMachine
from account_lifecycle.model import (
    AccountRecord,
    Action,
    Actor,
    Erasure,
    HeldIdentifier,
    Hold,
    PurgeProgress,
    PurgeStatus,
    ServiceState,
    State,
    SurveyOutcome,
    evolve_record,
)
from account_lifecycle.policy import ON_CANCEL_EFFECTS, Policy, phase_bounds
from account_lifecycle.schedule import (
    EFFECT_EVENTS,
    EFFECT_PREFIX,
    backoff_delay,
    effect_key,
    phase_of,
    settled,
    steps_of,
)
from account_lifecycle.sealed import Personal
from account_lifecycle.values import PendingItem

__all__ = [
    "KEPT_KEYS",
    "Command",
    "Decision",
    "Event",
    "NeedsPrerequisites",
    "Rules",
    "StepOutcome",
    "apply",
    "command_digest",
    "decide_command",
    "decide_express",
    "decide_open",
    "fenced",
    "finish_work",
    "open_digest",
    "permitted_replay",
    "remind",
    "replayed_open",
    "start_work",
]

#: Idempotency keys remembered per account (the newest).
KEPT_KEYS: Final = 32
_SYSTEM = Actor.system()


@attrs.frozen
class Rules:
    """What a decision needs besides the record: the policy, its machine, which ``on_cancel``
    effects the host runs durably through a hook, and the retry backoff of failed steps."""

    policy: Policy
    machine: PolicyMachine
    hooked_effects: frozenset[str] = frozenset()
    retry_backoff: timedelta = timedelta(minutes=1)
    max_retry_backoff: timedelta = timedelta(hours=6)
    #: The machine's decisions compiled once (``compiled.DecisionTable``): the command path
    #: decides through it; ``verify``, diagrams and ``allowed_actions`` read the machine.
    table: DecisionTable = attrs.field(
        default=attrs.Factory(lambda self: DecisionTable(self.machine), takes_self=True),
        eq=False,
        repr=False,
    )


@attrs.frozen
class Event:
    """An audit event to be chained by the write path (``at`` defaults to the commit's now)."""

    action: str
    from_state: State | None
    to_state: State
    details: Mapping[str, Any] = attrs.Factory(dict)
    actor: Actor = _SYSTEM
    at: datetime | None = None


def _event(
    action: str, from_state: State | None, to_state: State, details: Mapping[str, Any], actor: Actor
) -> Event:
    """``Event(action, from_state, to_state, details, actor)``, its slots set directly (cheaper
    than the frozen ``__init__``'s ``object.__setattr__``; ``Event`` has no converters or
    validators). ``tests/unit/test_express.py`` compares the two."""
    event: Event = _new(Event)
    _event_action(event, action)
    _event_from(event, from_state)
    _event_to(event, to_state)
    _event_details(event, details)
    _event_actor(event, actor)
    _event_at(event, None)
    return event


_new = object.__new__
_event_action, _event_from, _event_to, _event_details, _event_actor, _event_at = (
    vars(Event)[name].__set__ for name in ("action", "from_state", "to_state", "details", "actor", "at")
)


@attrs.frozen
class Decision:
    """What one accepted change writes: the record's new field values, the events that say
    so, and the purge steps that start once it is committed (also in ``changes["erasure"]``).
    ``erase_sealed``: the write erases every personal value the account's events sealed (the
    move to ``PURGED``)."""

    changes: Mapping[str, Any] = attrs.Factory(dict)
    events: tuple[Event, ...] = ()
    work: Erasure | None = None
    erase_sealed: bool = False

    def then(self, record: AccountRecord, nxt: Decision) -> Decision:
        """This decision followed by *nxt* (decided on ``apply(record, self)``), as one write."""
        return Decision(
            {**self.changes, **nxt.changes},
            (*self.events, *nxt.events),
            nxt.work or self.work,
            self.erase_sealed or nxt.erase_sealed,
        )


_decision_changes, _decision_events, _decision_work, _decision_erase = (
    vars(Decision)[name].__set__ for name in ("changes", "events", "work", "erase_sealed")
)


def apply(record: AccountRecord, decision: Decision) -> AccountRecord:
    """The record as *decision* leaves it (version and chain head are the write path's)."""
    return evolve_record(record, **decision.changes) if decision.changes else record


@attrs.frozen
class Command:
    """One user command and its inputs, as checked by ``Lifecycle`` (types, lengths)."""

    action: Action
    actor: Actor
    token: str | None = None
    acknowledgements: frozenset[str] = frozenset()
    outcome: SurveyOutcome | None = None
    answers: Mapping[str, str] = attrs.Factory(dict)
    service: str | None = None
    new_owner: str | None = None
    request_id: str | None = None
    authenticated_at: datetime | None = None
    window: Duration | None = None
    member: str | None = None
    #: ``change_identity``: the new identity and identifiers, as keyed digests (never plain)
    identity: str | None = None
    identifiers: Mapping[str, HeldIdentifier] = attrs.Factory(dict)
    category: str | None = None
    reason: str | None = None
    idempotency_key: str | None = None


@attrs.frozen
class StepOutcome:
    """What running one step did, as the runner saw it: done (``items``, ``detail``) or failed
    (``error``), by which purger or hook (``by``), finished ``at``."""

    key: str
    attempt: int
    at: datetime
    by: str | None
    error: str | None = None
    items: int = 0
    detail: str = ""


# -- idempotency keys: bound to their command and its arguments ------------------------------

#: Prefix of the argument digests kept with idempotency keys (the scheme's version).
DIGEST_SCHEME: Final = "v1:"


def _digest(data: Mapping[str, Any]) -> str:
    """A short, stable digest of *data* (canonical JSON, SHA-256 cut to 128 bits): it tells a
    retry from another request, and keeps no argument readable in the record."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return DIGEST_SCHEME + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def command_digest(command: Command) -> str:
    """The digest of everything a command says, its actor included, but not its key: the same
    key with another actor or other arguments is another request."""
    authenticated = command.authenticated_at
    # Keys added with later commands are present only when set: earlier digests stay valid.
    later: dict[str, Any] = {}
    if command.member is not None:
        later["member"] = command.member
    if command.identity is not None:
        later["identity"] = command.identity
    if command.identifiers:
        later["identifiers"] = {kind: held.value for kind, held in command.identifiers.items()}
    return _digest(
        {
            **later,
            "action": str(command.action),
            "actor": str(command.actor),
            "token": command.token,
            "acknowledgements": sorted(command.acknowledgements),
            "outcome": None if command.outcome is None else str(command.outcome),
            "answers": dict(command.answers),
            "service": command.service,
            "new_owner": command.new_owner,
            "request_id": command.request_id,
            "authenticated_at": None if authenticated is None else authenticated.isoformat(),
            "window": None if command.window is None else str(command.window),
            "category": command.category,
            "reason": command.reason,
        }
    )


def open_digest(
    *, owner: str, members: frozenset[str], identity: str | None, identifiers: Mapping[str, HeldIdentifier]
) -> str:
    """The digest of an ``open``'s arguments (identities in their canonical form)."""
    return _digest(
        {
            "action": str(Action.OPEN),
            "owner": owner,
            "members": sorted(members),
            "identity": identity,
            "identifiers": {kind: held.value for kind, held in identifiers.items()},
        }
    )


def replayed_open(existing: AccountRecord, fresh: AccountRecord, key: str) -> bool:
    """Whether opening *fresh* with *key* repeats the ``open`` that created *existing*: True for
    a retry with the same arguments, False when *key* did not open *existing*.
    ``IdempotencyKeyReused`` when it did, with other arguments."""
    if existing.applied(key) != Action.OPEN:
        return False
    stored = existing.key_digest(key)
    if stored is not None and stored != fresh.key_digest(key):
        raise IdempotencyKeyReused(
            account_id=existing.account_id, key=key, action=Action.OPEN, applied="open"
        )
    return True


# -- opening ----------------------------------------------------------------------------------


def decide_open(
    rules: Rules,
    *,
    account_id: str,
    owner: str,
    members: frozenset[str],
    identity: str | None,
    identifiers: Mapping[str, HeldIdentifier],
    idempotency_key: str | None,
) -> tuple[AccountRecord, Event]:
    """The new ``ACTIVE`` record (version 1, before its chain) and its ``open`` event."""
    digest = open_digest(owner=owner, members=members, identity=identity, identifiers=identifiers)
    record = AccountRecord(
        account_id=account_id,
        state=State.ACTIVE,
        owner=owner,
        members=members,
        identity=identity,
        version=0,
        services=dict.fromkeys(rules.policy.services, ServiceState.ACTIVE),
        policy=rules.policy.name,
        policy_version=rules.policy.version,
        recent_keys=() if idempotency_key is None else ((idempotency_key, str(Action.OPEN), digest),),
        identifiers=identifiers,
    )
    event = Event(Action.OPEN, None, State.ACTIVE, {"owner": owner, "members": sorted(members)})
    return record, event


# -- user commands ----------------------------------------------------------------------------


def permitted_replay(rules: Rules, record: AccountRecord, command: Command) -> bool:
    """Whether *command* repeats a keyed command already applied to *record*: the same action,
    actor and arguments (the digest kept with the key). Its actor must be permitted that command
    on this account now, which is checked first: anyone else gets ``NotPermitted``, exactly as
    without the key, so a replay tells a stranger nothing (not even that the key was used).
    ``IdempotencyKeyReused`` if the key was used for another action, by another actor or with
    other arguments. A key kept without a digest (a record written before keys were bound to
    their arguments) is bound to its action only."""
    key = command.idempotency_key
    if key is None:
        return False
    applied = record.applied(key)
    if applied is None:
        return False
    relation = record.relation_of(command.actor)
    if not rules.policy.may(command.action, relation):
        raise NotPermitted(actor=command.actor, action=command.action, relation=relation)
    stored = record.key_digest(key)
    if applied != command.action or (stored is not None and stored != command_digest(command)):
        raise IdempotencyKeyReused(
            account_id=record.account_id, key=key, action=command.action, applied=applied
        )
    return True


def decide_command(
    rules: Rules,
    record: AccountRecord,
    command: Command,
    now: datetime,
    pending: Mapping[str, Sequence[str | PendingItem]] | None = None,
) -> Decision:
    """Decide *command* on *record* at *now*: the typed error of the first guard that refuses,
    or what it writes. *pending* is what each prerequisite check reported; when the machine
    needs it and it was not given, ``NeedsPrerequisites`` asks the caller for it."""
    relation = record.relation_of(command.actor)
    if relation is None:  # a stranger: told nothing about the account (state, erasure, keys)
        raise NotPermitted(actor=command.actor, action=command.action, relation=None)
    if record.erasure is not None or command.action is Action.RESTORE:  # else nothing is fenced
        refusal = fenced(rules.policy, record, command)
        if refusal is not None:
            raise refusal
    attempt = Attempt(
        record=record,
        actor=command.actor,
        relation=relation,
        now=now,
        token=command.token,
        acknowledgements=command.acknowledgements,
        outcome=command.outcome,
        service=command.service,
        new_owner=command.new_owner,
        member=command.member,
        request_id=command.request_id,
        authenticated_at=command.authenticated_at,
        pending=pending,
    )
    dest = rules.table.decide(command.action, attempt)
    changes, details, effects, name = _PLANS[command.action](rules, record, command, dest, now)
    events = [Event(name or command.action, record.state, dest, details, command.actor)]
    events += [Event(effect, dest, dest, effect_details, command.actor) for effect, effect_details in effects]
    changes = {"state": dest, **changes}
    if command.idempotency_key is not None:
        entry = (command.idempotency_key, str(command.action), command_digest(command))
        kept = (*record.recent_keys, entry)
        changes["recent_keys"] = kept[-KEPT_KEYS:]
    return Decision(changes, tuple(events))


def fenced(policy: Policy, record: AccountRecord, command: Command) -> LifecycleError | None:
    """The refusal of a command that would change what erasure in flight depends on (a restore;
    a hold on a category being erased, or on any when none is named), or undo what an erasure of
    the expiry phase has begun; None when the fence lets it through."""
    erasure = record.erasure
    if erasure is not None and (
        command.action is Action.RESTORE
        or (command.action is Action.PLACE_HOLD and command.category in (None, *erasure.steps))
    ):
        return ErasureInProgress(
            account_id=record.account_id, action=command.action, steps=erasure.steps, since=erasure.started_at
        )
    if command.action is Action.RESTORE:
        begun = [
            name
            for name in policy.purge.at("expiry")
            if (p := record.purge.get(name)) is not None and (p.attempts > 0 or p.status is PurgeStatus.DONE)
        ]
        if begun:
            return InvalidTransition(
                state=record.state,
                action=Action.RESTORE,
                reason=f"the erasure at the window's end has begun ({', '.join(begun)})",
            )
    return None


_Plan = tuple[Mapping[str, Any], Mapping[str, Any], Sequence[tuple[str, Mapping[str, Any]]], str | None]


def _no_plan(rules: Rules, record: AccountRecord, command: Command, dest: State, now: datetime) -> _Plan:
    return {}, {}, (), None


def _plan_request(rules: Rules, record: AccountRecord, command: Command, dest: State, now: datetime) -> _Plan:
    changes, details = _request_writes(record)
    return changes, details, (), None


def _request_writes(record: AccountRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    request = f"cr-{record.version + 1}"
    return {"cancellation_id": request}, {"cancellation_id": request}


def _withdraw_writes(record: AccountRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"cancellation_id": None}, {"cancellation_id": record.cancellation_id}


def _skip_writes(record: AccountRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    return {}, {}


def _plan_survey(rules: Rules, record: AccountRecord, command: Command, dest: State, now: datetime) -> _Plan:
    assert command.outcome is not None
    effects: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    if command.outcome is SurveyOutcome.BOOK_MEETING:
        effects = (("meeting_requested", {"requested_by": str(command.actor)}),)
    changes = {"cancellation_id": None} if dest is State.ACTIVE else {}
    # Free text the owner typed: sealed outside the hashed event, erased at purge.
    answers: Personal | dict[str, str] = Personal(dict(command.answers)) if command.answers else {}
    return changes, {"outcome": command.outcome.value, "answers": answers}, effects, None


def _plan_withdraw(
    rules: Rules, record: AccountRecord, command: Command, dest: State, now: datetime
) -> _Plan:
    changes, details = _withdraw_writes(record)
    return changes, details, (), None


def _plan_confirm(rules: Rules, record: AccountRecord, command: Command, dest: State, now: datetime) -> _Plan:
    policy = rules.policy
    phases = phase_bounds(policy.recovery_phases(command.window), now)
    ledger = {name: PurgeProgress() for name in policy.purge.at("cancel")}
    effects: list[tuple[str, Mapping[str, Any]]] = []
    for effect in ON_CANCEL_EFFECTS:
        if effect not in policy.on_cancel:
            continue
        if effect in rules.hooked_effects:  # run durably by the purge runner, like a category
            ledger[effect_key(effect)] = PurgeProgress()
        else:  # recorded now, for listeners to act on
            effects.append((EFFECT_EVENTS[effect], _effect_details(effect, record)))
    changes: dict[str, Any] = {
        "cancelled_at": now,
        "restorable_until": phases[-1][1] if phases else None,
        "purge": ledger,
    }
    if policy.identity_reuse == "after_cancel" and record.identity is not None:
        changes["identity_released_at"] = now
    if record.identifiers:
        changes["identifiers"] = _released_at_cancel(policy, record, now)
    details: dict[str, Any] = {
        "acknowledged": sorted(command.acknowledgements),
        "token_typed": policy.confirmation.token is not None,
        "cancellation_id": record.cancellation_id,
    }
    if policy.recovery.choices:
        details["window"] = str(command.window)
    if policy.confirmation.fresh_login is not None:
        details["authenticated_at"] = command.authenticated_at
    return changes, details, tuple(effects), None


def _plan_restore(rules: Rules, record: AccountRecord, command: Command, dest: State, now: datetime) -> _Plan:
    changes: dict[str, Any] = {
        "cancelled_at": None,
        "restorable_until": None,
        "purge": {},
        "cancellation_id": None,
        "reminders": (),
    }
    return changes, {"on_behalf_of": record.owner, "restorable_until": record.restorable_until}, (), None


def _plan_transfer(
    rules: Rules, record: AccountRecord, command: Command, dest: State, now: datetime
) -> _Plan:
    new_owner = command.new_owner
    assert new_owner is not None
    changes = {"owner": new_owner, "members": (record.members - {new_owner}) | {record.owner}}
    return changes, {"from_owner": record.owner, "to_owner": new_owner}, (), None


def _plan_cancel_service(
    rules: Rules, record: AccountRecord, command: Command, dest: State, now: datetime
) -> _Plan:
    service = command.service
    assert service is not None
    return {"services": {**record.services, service: ServiceState.CANCELLED}}, {"service": service}, (), None


def _plan_place_hold(
    rules: Rules, record: AccountRecord, command: Command, dest: State, now: datetime
) -> _Plan:
    category = command.category
    assert category is not None
    assert command.reason is not None
    held = record.holds.get(category)
    if held is not None:
        raise InvalidTransition(
            state=record.state,
            action=Action.PLACE_HOLD,
            reason=f"{category!r} is already held since {held.at.isoformat()} by {held.by}",
        )
    progress = record.purge.get(category)
    if progress is not None and progress.status is PurgeStatus.DONE:
        raise InvalidTransition(
            state=record.state,
            action=Action.PLACE_HOLD,
            reason=f"{category!r} was erased already; there is nothing left to hold",
        )
    mode = rules.policy.purge.on_hold or "wait"
    hold = Hold(at=now, by=str(command.actor), reason=command.reason, mode=mode)
    # Free text: sealed in the event and erased from it at purge (the record keeps the reason
    # only while the hold stands: a retained category's receipt shows why it was kept).
    details = {"category": category, "reason": Personal(command.reason), "mode": mode}
    return {"holds": {**record.holds, category: hold}}, details, (), "hold_placed"


def _plan_release_hold(
    rules: Rules, record: AccountRecord, command: Command, dest: State, now: datetime
) -> _Plan:
    category = command.category
    assert category is not None
    held = record.holds.get(category)
    if held is None:
        raise InvalidTransition(
            state=record.state, action=Action.RELEASE_HOLD, reason=f"{category!r} is not held"
        )
    changes: dict[str, Any] = {"holds": {k: v for k, v in record.holds.items() if k != category}}
    progress = record.purge.get(category)
    if (
        record.state is State.RESTORABLE
        and category in rules.policy.purge.at("cancel")
        and progress is not None
        and progress.status is not PurgeStatus.DONE
        and progress.retry_at is None
    ):
        # Retained at cancel, its phase is over: due at once, not when the window ends.
        changes["purge"] = {**record.purge, category: attrs.evolve(progress, retry_at=now)}
    return changes, {"category": category, "held_since": held.at}, (), "hold_released"


def _plan_add_member(
    rules: Rules, record: AccountRecord, command: Command, dest: State, now: datetime
) -> _Plan:
    member = command.member
    assert member is not None
    return {"members": record.members | {member}}, {"member": member}, (), None


def _plan_remove_member(
    rules: Rules, record: AccountRecord, command: Command, dest: State, now: datetime
) -> _Plan:
    member = command.member
    assert member is not None
    return {"members": record.members - {member}}, {"member": member}, (), None


def _plan_change_identity(
    rules: Rules, record: AccountRecord, command: Command, dest: State, now: datetime
) -> _Plan:
    """The new identity and identifiers (keyed digests); the event names what changed, never a
    value. The store's compare-and-set refuses one another account holds (``AccountExists``)."""
    changes: dict[str, Any] = {}
    details: dict[str, Any] = {}
    if command.identity is not None and command.identity != record.identity:
        changes["identity"] = command.identity
        details["identity"] = "changed"
    changed = sorted(
        kind
        for kind, held in command.identifiers.items()
        if (old := record.identifiers.get(kind)) is None or old.value != held.value
    )
    if changed:
        changes["identifiers"] = {
            **record.identifiers,
            **{kind: HeldIdentifier(command.identifiers[kind].value) for kind in changed},
        }
        details["identifiers"] = changed
    if not changes:
        raise ValueError(f"account {record.account_id!r} already holds this identity: nothing changes")
    return changes, details, (), None


_PLANS: Final = {
    Action.REQUEST_CANCELLATION: _plan_request,
    Action.SUBMIT_SURVEY: _plan_survey,
    Action.SKIP_SURVEY: _no_plan,  # _skip_writes
    Action.WITHDRAW: _plan_withdraw,
    Action.CONFIRM: _plan_confirm,
    Action.RESTORE: _plan_restore,
    Action.TRANSFER_OWNERSHIP: _plan_transfer,
    Action.CANCEL_SERVICE: _plan_cancel_service,
    Action.PLACE_HOLD: _plan_place_hold,
    Action.RELEASE_HOLD: _plan_release_hold,
    Action.ADD_MEMBER: _plan_add_member,
    Action.REMOVE_MEMBER: _plan_remove_member,
    Action.CHANGE_IDENTITY: _plan_change_identity,
}


#: The commands that carry nothing but their actor (and an optional idempotency key), and what
#: each writes (its plan, which reads only the record): ``decide_express`` decides them.
_EXPRESS: Final = {
    Action.REQUEST_CANCELLATION: _request_writes,
    Action.WITHDRAW: _withdraw_writes,
    Action.SKIP_SURVEY: _skip_writes,
}


def decide_express(rules: Rules, record: AccountRecord, action: Action, actor: Actor) -> Decision | None:
    """``decide_command(rules, record, Command(action, actor), now)`` where it is a lookup: an
    action of ``_EXPRESS`` from a state the machine leaves by one transition guarded by
    permission checks alone (``DecisionTable.permitted``), the actor's relation let through, no
    erasure in flight (``decide_command``'s gate of the fence). The same ``Decision``
    (``tests/unit/test_express.py``); None for anything else, which the caller decides through
    ``decide_command`` (refusals included). Its plans read no clock, so there is no *now*."""
    entry = rules.table.permitted.get((action, record.state))
    if entry is None or record.erasure is not None:
        return None
    relations, dest = entry
    if record.relation_of(actor) not in relations:
        return None
    changes, details = _EXPRESS[action](record)
    changes = {"state": dest, **changes}
    decision: Decision = _new(Decision)  # ``Decision(changes, events)``, its slots set directly
    _decision_changes(decision, changes)
    _decision_events(decision, (_event(action, record.state, dest, details, actor),))
    _decision_work(decision, None)
    _decision_erase(decision, False)
    return decision


def _effect_details(effect: str, record: AccountRecord) -> dict[str, Any]:
    """What the effect's audit event records about the account (ids only)."""
    if effect == "revoke_team_access":
        return {"members": sorted(record.members)}
    return {}


def _released_at_cancel(policy: Policy, record: AccountRecord, now: datetime) -> dict[str, HeldIdentifier]:
    """The account's identifiers at confirm: those whose rule is ``at_once`` are free from now."""
    out = dict(record.identifiers)
    for kind, held in record.identifiers.items():
        rule = policy.identity.get(kind)
        if rule is not None and rule.when == "at_once":
            out[kind] = attrs.evolve(held, free_at=now)
    return out


# -- the purge runner's decisions -------------------------------------------------------------


def _due_steps(rules: Rules, record: AccountRecord, now: datetime) -> tuple[str | None, tuple[str, ...]]:
    """The phase under way and its steps that may start now, in order: not done, not held, not
    waiting for a retry. While the account is restorable, cancel-time steps still in the ledger
    (kept under a ``"retain"`` hold since released) come first."""
    phase = phase_of(record, now)
    keys: list[str] = []
    if record.state is State.RESTORABLE:
        keys += [k for k in steps_of(rules.policy, record, "cancel") if k in record.purge]
    if phase is not None:
        keys += [k for k in steps_of(rules.policy, record, phase) if k not in keys]
    due = []
    for key in keys:
        progress = record.purge.get(key, PurgeProgress())
        if progress.status is PurgeStatus.DONE or key in record.holds:
            continue  # a category under a legal hold is never handed to its purger
        if progress.retry_at is not None and progress.retry_at > now:
            continue
        due.append(key)
    if phase is None and due:
        phase = "cancel"
    return phase, tuple(due)


def start_work(
    rules: Rules, record: AccountRecord, now: datetime, owner: str, tried: frozenset[str] = frozenset()
) -> Decision | None:
    """What the runner (claim owner *owner*) does next on *record* at *now*: start the steps
    that are due (the decision's ``work``), or move the account on when its phase is settled,
    or None when nothing is due. Steps a runner that died had started are started again; steps
    this runner *tried* already in this run wait for the next run."""
    if record.erasure is not None and record.erasure.owner == owner:
        return Decision(work=record.erasure)  # started by this owner in the commit it holds
    phase, due = _due_steps(rules, record, now)
    due = tuple(k for k in due if k not in tried)
    if record.erasure is not None:  # left by a runner whose claim lapsed: run its steps again
        previous = record.erasure
        due = (*previous.steps, *(k for k in due if k not in previous.steps))
        phase = previous.phase
    if due:
        assert phase is not None
        erasure = Erasure(owner=owner, phase=phase, steps=due, started_at=now)
        details: dict[str, Any] = {"phase": phase, "steps": list(due)}
        if record.erasure is not None:
            details["resumed"] = True  # a runner died with these steps started: they run again
        started = Event("erasure_started", record.state, record.state, details)
        return Decision({"erasure": erasure}, (started,), erasure)
    return _move_on_if_settled(rules, record, now)


def finish_work(
    rules: Rules, record: AccountRecord, outcomes: Sequence[StepOutcome], now: datetime, owner: str
) -> Decision:
    """Record what steps of *owner*'s erasure did (each step's event and progress); the steps
    left stay started. Once none is left the erasure is cleared and the account moves on if its
    phase is settled. ``InvalidTransition`` if *record* carries no erasure of *owner* (another
    runner took it over)."""
    erasure = record.erasure
    if erasure is None or erasure.owner != owner:
        raise InvalidTransition(
            state=record.state, action="purge", reason=f"the erasure under way is not {owner}'s any more"
        )
    ledger = dict(record.purge)
    events = []
    for outcome in outcomes:
        if outcome.key not in erasure.steps:
            raise ValueError(f"step {outcome.key!r} was not started by {owner}")
        progress, event = _recorded(rules, record, ledger.get(outcome.key, PurgeProgress()), outcome)
        ledger[outcome.key] = progress
        events.append(event)
    done = {o.key for o in outcomes}
    left = tuple(k for k in erasure.steps if k not in done)
    recorded = Decision(
        {"purge": ledger, "erasure": attrs.evolve(erasure, steps=left) if left else None}, tuple(events)
    )
    if left:
        return recorded
    after = apply(record, recorded)
    nxt = _move_on_if_settled(rules, after, now)
    return recorded if nxt is None else recorded.then(after, nxt)


def _recorded(
    rules: Rules, record: AccountRecord, progress: PurgeProgress, outcome: StepOutcome
) -> tuple[PurgeProgress, Event]:
    state = record.state
    effect = outcome.key.removeprefix(EFFECT_PREFIX) if outcome.key.startswith(EFFECT_PREFIX) else None
    if outcome.error is not None:
        retry_at = outcome.at + backoff_delay(outcome.attempt, rules.retry_backoff, rules.max_retry_backoff)
        failed = PurgeProgress(
            status=PurgeStatus.FAILED,
            attempts=outcome.attempt,
            items=progress.items,
            error=outcome.error,
            at=outcome.at,
            retry_at=retry_at,
            purger=outcome.by,
        )
        if effect is not None:
            details = {
                "effect": effect,
                "attempt": outcome.attempt,
                "error": outcome.error,
                "hook": outcome.by,
            }
            return failed, Event("effect_failed", state, state, details, at=outcome.at)
        details = {
            "category": outcome.key,
            "attempt": outcome.attempt,
            "error": outcome.error,
            "purger": outcome.by,
        }
        return failed, Event("purge_failed", state, state, details, at=outcome.at)
    done = PurgeProgress(
        status=PurgeStatus.DONE,
        attempts=outcome.attempt,
        items=outcome.items,
        at=outcome.at,
        purger=outcome.by,
    )
    if effect is not None:
        details = {
            **_effect_details(effect, record),
            "effect": effect,
            "attempt": outcome.attempt,
            "hook": outcome.by,
        }
        return done, Event(EFFECT_EVENTS[effect], state, state, details, at=outcome.at)
    details = {
        "category": outcome.key,
        "attempt": outcome.attempt,
        "items": outcome.items,
        "detail": outcome.detail,
        "purger": outcome.by,
    }
    return done, Event("category_purged", state, state, details, at=outcome.at)


def _move_on_if_settled(rules: Rules, record: AccountRecord, now: datetime) -> Decision | None:
    """The move on (``CANCELLED -> RESTORABLE | PURGED``, ``RESTORABLE -> PURGED``) once every
    step of the phase under way, and every step left in the ledger, is settled; else None."""
    if record.erasure is not None:
        return None
    phase = phase_of(record, now)
    if phase is None:
        return None
    keys = (*steps_of(rules.policy, record, phase), *record.purge)
    if not all(settled(record, k) for k in keys):
        return None
    trigger = SETTLE if phase == "cancel" else EXPIRE
    dest = rules.table.decide(trigger, Attempt(record=record, actor=_SYSTEM, relation=None, now=now))
    changes: dict[str, Any] = {"state": dest}
    details: dict[str, Any] = {}
    policy = rules.policy
    erase = False
    if dest is State.PURGED:
        action = "purge"
        erase = True  # the personal values the events sealed go with the purge
        # ... and so do the (unkeyed) digests of them kept with idempotency keys
        kept_keys = tuple(e[:2] if e[1] in _SEALING_ACTIONS else e for e in record.recent_keys)
        if kept_keys != record.recent_keys:
            changes["recent_keys"] = kept_keys
        if (
            record.identity is not None
            and record.identity_released_at is None
            and policy.identity_reuse in ("after_purge", "after_cancel")
        ):
            changes["identity_released_at"] = now
            details["identity_released"] = True
        if record.identity is not None and (
            record.identity_released_at is not None or "identity_released_at" in changes
        ):
            changes["identity"] = None  # released: nothing needs its digest any more
        if record.identifiers:
            quarantined = _quarantine(policy, record, now)
            details["identifiers_free_at"] = {k: i.free_at for k, i in quarantined.items()}
            # an identifier free from now on needs no digest either; the others are held
            # (as digests) until their quarantine ends
            changes["identifiers"] = {
                k: i for k, i in quarantined.items() if i.free_at is None or i.free_at > now
            }
    else:
        action = "recovery_window_opened"
        details["restorable_until"] = record.restorable_until
        # The expiry categories join the ledger now, so the plan is on record.
        changes["purge"] = {
            **record.purge,
            **{c: PurgeProgress() for c in policy.purge.at("expiry") if c not in record.purge},
        }
        if policy.recovery.reminders and record.restorable_until is not None:
            changes["reminders"] = reminder_schedule(policy.recovery.reminders, record.restorable_until)
    retained = sorted(
        k for k in record.purge if k in record.holds and record.purge[k].status is not PurgeStatus.DONE
    )
    if retained:
        details["retained"] = retained
    return Decision(changes, (Event(action, record.state, dest, details),), erase_sealed=erase)


#: Commands whose arguments include free text the audit trail seals (answers, a hold's reason).
_SEALING_ACTIONS: Final = frozenset({str(Action.SUBMIT_SURVEY), str(Action.PLACE_HOLD)})


def _quarantine(policy: Policy, record: AccountRecord, purged_at: datetime) -> dict[str, HeldIdentifier]:
    """The account's identifiers with the moment each becomes free, now it is purged."""
    out = {}
    for kind, held in record.identifiers.items():
        rule = policy.identity.get(kind, IdentityReuse("after_purge"))
        free_at = held.free_at or rule.free_at(cancelled_at=record.cancelled_at, purged_at=purged_at)
        out[kind] = attrs.evolve(held, free_at=free_at)
    return out


def remind(record: AccountRecord, now: datetime) -> Decision | None:
    """Every reminder whose moment has come, each once: its ``reminder`` event with the record
    that marks it sent. A reminder still unsent when the window has ended is skipped."""
    until = record.restorable_until
    if (
        record.state is not State.RESTORABLE
        or until is None
        or now >= until
        or not any(r.sent_at is None and r.at <= now for r in record.reminders)
    ):
        return None
    events = []
    reminders = []
    for reminder in record.reminders:
        if reminder.sent_at is None and reminder.at <= now:
            details = {"before": reminder.before, "restorable_until": until, "scheduled_for": reminder.at}
            events.append(Event("reminder", record.state, record.state, details))
            reminder = attrs.evolve(reminder, sent_at=now)
        reminders.append(reminder)
    return Decision({"reminders": tuple(reminders)}, tuple(events))
