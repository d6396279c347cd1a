"""The service: each command loads the record, decides through the policy's machine,
saves the new record with its audit events in one compare-and-set, then runs effects."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs

from account_lifecycle.audit import GENESIS, AuditEvent, ChainWriter, verify_chain
from account_lifecycle.clock import SystemClock, require_aware
from account_lifecycle.duration import Duration
from account_lifecycle.errors import (
    AccountExists,
    ConcurrentUpdate,
    ConfigurationError,
    InvalidTransition,
    LifecycleError,
    PolicyMismatch,
)
from account_lifecycle.machine import Attempt, PolicyMachine
from account_lifecycle.model import (
    AccountRecord,
    Action,
    Actor,
    HeldIdentifier,
    Hold,
    PurgeProgress,
    PurgeStatus,
    ServiceState,
    State,
    SurveyOutcome,
    validate_id,
)
from account_lifecycle.policy import ON_CANCEL_EFFECTS, Policy, phase_bounds
from account_lifecycle.ports import AccountStore, Clock, Lease, Listener, PrerequisiteCheck, Purger
from account_lifecycle.purge import (
    EFFECT_EVENTS,
    EffectHook,
    ErasureReceipt,
    PurgeRunner,
    SweepReport,
    backoff_delay,
    effect_event_details,
    effect_key,
    receipt_for,
)
from account_lifecycle.timeline import Timeline, build_timeline

__all__ = ["Lifecycle"]

log = logging.getLogger("account_lifecycle")

_MAX_ANSWERS = 50
_MAX_ANSWER_LENGTH = 10_000
_USER_ACTIONS = tuple(a for a in Action if a not in (Action.OPEN, Action.PURGE))
_KEPT_KEYS = 32  # idempotency keys remembered per account


def _check_answers(answers: Mapping[str, str] | None) -> dict[str, str]:
    if answers is None:
        return {}
    if not isinstance(answers, Mapping):
        raise TypeError(f"answers must be a mapping of question id to text, got {type(answers).__name__}")
    if len(answers) > _MAX_ANSWERS:
        raise ValueError(f"at most {_MAX_ANSWERS} survey answers, got {len(answers)}")
    out = {}
    for key, value in answers.items():
        validate_id(key, "survey question id")
        if not isinstance(value, str):
            raise TypeError(f"survey answer {key!r} must be text, got {type(value).__name__}")
        if len(value) > _MAX_ANSWER_LENGTH:
            raise ValueError(f"survey answer {key!r} is longer than {_MAX_ANSWER_LENGTH} characters")
        out[key] = value
    return out


@attrs.frozen
class _Plan:
    """What an accepted command writes besides the new state: field changes, the command
    event's details, and its effect events."""

    changes: Mapping[str, Any] = attrs.Factory(dict)
    details: Mapping[str, Any] = attrs.Factory(dict)
    effects: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    event: str | None = None  # the command event's action, when not the command's name


class Lifecycle:
    """Drives accounts of one policy through cancellation, recovery and purge.

    Holds no per-account state: every command reads the stored record and writes a new
    version of it with compare-and-set, so any number of ``Lifecycle`` objects in any
    number of processes may share one store.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        store: AccountStore,
        purgers: Iterable[Purger] = (),
        prerequisites: Mapping[str, PrerequisiteCheck] | None = None,
        clock: Clock | None = None,
        listeners: Iterable[Listener] = (),
        lease: timedelta = timedelta(minutes=5),
        retry_backoff: timedelta = timedelta(minutes=1),
        max_retry_backoff: timedelta = timedelta(hours=6),
        sweep_batch: int = 100,
        effects: Mapping[str, EffectHook] | None = None,
    ) -> None:
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must be a Policy, got {type(policy).__name__}")
        self.policy = policy
        self.store = store
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.listeners = tuple(listeners)
        if not isinstance(lease, timedelta) or lease <= timedelta(0):
            raise ValueError(f"lease must be a positive timedelta, got {lease!r}")
        # a zero backoff is allowed: a failed purge is then retried by the very next sweep
        for name, value in (("retry_backoff", retry_backoff), ("max_retry_backoff", max_retry_backoff)):
            if not isinstance(value, timedelta) or value < timedelta(0):
                raise ValueError(f"{name} must be a timedelta >= 0, got {value!r}")
        if max_retry_backoff < retry_backoff:
            raise ValueError(
                f"max_retry_backoff ({max_retry_backoff}) must not be shorter than "
                f"retry_backoff ({retry_backoff})"
            )
        self.lease = lease
        self.retry_backoff = retry_backoff
        self.max_retry_backoff = max_retry_backoff
        if sweep_batch < 1:
            raise ValueError(f"sweep_batch must be >= 1, got {sweep_batch}")
        self.sweep_batch = sweep_batch
        self.purgers = self._index_purgers(purgers)
        self.effects = self._index_effects(effects or {})
        self.prerequisites = dict(prerequisites or {})
        missing = [name for name in policy.prerequisites if name not in self.prerequisites]
        if missing:
            raise ConfigurationError(
                f"policy {policy.label} needs a check for prerequisite(s) {', '.join(missing)}; "
                "pass prerequisites={name: check}"
            )
        self.machine = PolicyMachine(policy)
        self._runner = PurgeRunner(
            policy=policy,
            machine=self.machine,
            store=store,
            purgers=self.purgers,
            clock=self.clock,
            commit=self._commit,
            writer_for=self._writer,
            backoff=self._backoff,
            lease_duration=lease,
            effects=self.effects,
        )

    def _index_purgers(self, purgers: Iterable[Purger]) -> dict[str, Purger]:
        wanted = {c.name for c in self.policy.purge.categories}
        index: dict[str, Purger] = {}
        for purger in purgers:
            category = purger.category
            if category in self.policy.purge.protected or category not in wanted:
                continue  # never called: protected data is not handed to a purger
            if category in index:
                raise ConfigurationError(f"two purgers registered for category {category!r}")
            index[category] = purger
        missing = sorted(wanted - index.keys())
        if missing:
            raise ConfigurationError(
                f"policy {self.policy.label} erases {', '.join(missing)} but no purger is registered "
                "for it; pass purgers=[...] with one purger per category"
            )
        return index

    @staticmethod
    def _index_effects(effects: Mapping[str, EffectHook]) -> dict[str, EffectHook]:
        """Hooks are optional: an ``on_cancel`` effect without one is only recorded as its audit
        event, for listeners. A hook for an effect this policy does not list is never called."""
        if not isinstance(effects, Mapping):
            raise TypeError(f"effects must be a mapping of effect name to hook, got {type(effects).__name__}")
        index: dict[str, EffectHook] = {}
        for name, hook in effects.items():
            if name not in ON_CANCEL_EFFECTS:
                raise ConfigurationError(
                    f"no on_cancel effect named {name!r}; effect hooks are registered for "
                    f"{', '.join(ON_CANCEL_EFFECTS)}"
                )
            if not callable(hook):
                raise TypeError(f"the hook for effect {name!r} must be callable, got {hook!r}")
            index[name] = hook
        return index

    # -- plumbing --------------------------------------------------------------------------

    def _now(self) -> datetime:
        return require_aware(self.clock.now(), "clock.now()")

    def _backoff(self, attempts: int) -> timedelta:
        return backoff_delay(attempts, self.retry_backoff, self.max_retry_backoff)

    def _writer(self, record: AccountRecord) -> ChainWriter:
        """A chain writer for the next write of *record* (version + 1)."""
        head = record.chain_head or GENESIS
        return ChainWriter(record.account_id, self.policy.label, head, record.last_seq, record.version + 1)

    def _commit(
        self, record: AccountRecord, writer: ChainWriter, *, lease: Lease | None, **changes: Any
    ) -> AccountRecord:
        """Save ``record`` with *changes* and the writer's events as version + 1, then notify."""
        new = attrs.evolve(
            record,
            version=record.version + 1,
            chain_head=writer.head,
            last_seq=writer.seq,
            **changes,
        )
        self.store.save(
            new, expected_version=record.version, events=tuple(writer.events), lease=lease, now=self._now()
        )
        self._notify(writer.events)
        return new

    def _notify(self, events: Iterable[AuditEvent]) -> None:
        for event in events:
            for listener in self.listeners:
                try:
                    listener(event)
                except Exception:  # the change is committed; a listener's failure must not undo it
                    log.exception("listener %r failed on event %s #%d", listener, event.account_id, event.seq)

    def _own(self, record: AccountRecord) -> AccountRecord:
        """*record*, if it follows this lifecycle's policy (records from before the policy was
        stored have none and are taken as they are)."""
        if record.policy and record.policy != self.policy.name:
            raise PolicyMismatch(
                account_id=record.account_id, account_policy=record.policy, lifecycle_policy=self.policy.name
            )
        return record

    def _attempt(self, record: AccountRecord, actor: Actor, now: datetime, **inputs: Any) -> Attempt:
        if not isinstance(actor, Actor):
            raise TypeError(f"actor must be an Actor, got {type(actor).__name__}")
        return Attempt(record=record, actor=actor, relation=record.relation_of(actor), now=now, **inputs)

    def _command(
        self,
        account_id: str,
        actor: Actor,
        action: Action,
        plan: Callable[[AccountRecord, State, datetime], _Plan] | None = None,
        *,
        lease: Lease | None = None,
        idempotency_key: str | None = None,
        **inputs: Any,
    ) -> AccountRecord:
        return self._apply(
            account_id, actor, action, plan, lease=lease, idempotency_key=idempotency_key, **inputs
        )[0]

    def _apply(
        self,
        account_id: str,
        actor: Actor,
        action: Action,
        plan: Callable[[AccountRecord, State, datetime], _Plan] | None = None,
        *,
        lease: Lease | None = None,
        idempotency_key: str | None = None,
        **inputs: Any,
    ) -> tuple[AccountRecord, bool]:
        """Load, decide, and save the new state with its events as one compare-and-set.

        Returns the new record and whether it is a replay: a command carrying an idempotency
        key that was already applied writes nothing and returns the current record."""
        if idempotency_key is not None:
            validate_id(idempotency_key, "idempotency_key")
        record = self._own(self.get(account_id))
        if self._replayed(record, idempotency_key, action):
            return record, True
        now = self._now()
        attempt = self._attempt(record, actor, now, prerequisites=self.prerequisites, **inputs)
        dest = self.machine.decide(action, attempt)
        planned = plan(record, dest, now) if plan is not None else _Plan()
        writer = self._writer(record)
        writer.append(
            at=now,
            actor=actor,
            action=planned.event or action,
            from_state=record.state,
            to_state=dest,
            details=planned.details,
        )
        for name, effect_details in planned.effects:
            writer.append(
                at=now,
                actor=actor,
                action=name,
                from_state=dest,
                to_state=dest,
                details=effect_details,
            )
        changes = dict(planned.changes)
        if idempotency_key is not None:
            changes["recent_keys"] = (*record.recent_keys, (idempotency_key, str(action)))[-_KEPT_KEYS:]
        try:
            return self._commit(record, writer, lease=lease, state=dest, **changes), False
        except ConcurrentUpdate:
            if idempotency_key is not None:  # a retry of the same request may have won the race
                current = self.get(account_id)
                if self._replayed(current, idempotency_key, action):
                    return current, True
            raise

    @staticmethod
    def _replayed(record: AccountRecord, key: str | None, action: Action) -> bool:
        if key is None:
            return False
        applied = record.applied(key)
        if applied is None:
            return False
        if applied != action:
            raise ValueError(
                f"idempotency key {key!r} was already used for {applied} on {record.account_id!r}; "
                f"a {action} needs a key of its own"
            )
        return True

    # -- commands --------------------------------------------------------------------------

    def open(
        self,
        account_id: str,
        *,
        owner: str,
        members: Iterable[str] = (),
        identity: str | None = None,
        idempotency_key: str | None = None,
        identifiers: Mapping[str, str] | None = None,
    ) -> AccountRecord:
        """Create an ``ACTIVE`` account. ``AccountExists`` if the id or the live identity is taken
        (unless it is a retry with the same *idempotency_key*, which returns the account).

        *identifiers* maps kinds the policy's ``[identity]`` table lists to values
        (``{"email": "ann@example.com", "phone": "+15550100"}``); each is held by this account
        until the table's rule frees it, and ``AccountExists`` (``.kind``, ``.identity``) if
        another account still holds one. The store enforces it atomically."""
        validate_id(account_id, "account_id")
        if idempotency_key is not None:
            validate_id(idempotency_key, "idempotency_key")
        validate_id(owner, "owner")
        if isinstance(members, str):
            raise TypeError("members must be a collection of user ids, not one string")
        member_set = frozenset(validate_id(m, "member") for m in members)
        if owner in member_set:
            raise ValueError(f"the owner {owner!r} cannot also be listed as a member")
        if identity is not None:
            validate_id(identity, "identity")
        held = self._check_identifiers(identifiers)
        now = self._now()
        record = AccountRecord(
            account_id=account_id,
            state=State.ACTIVE,
            owner=owner,
            members=member_set,
            identity=identity,
            version=1,
            services=dict.fromkeys(self.policy.services, ServiceState.ACTIVE),
            policy=self.policy.name,
            recent_keys=() if idempotency_key is None else ((idempotency_key, str(Action.OPEN)),),
            identifiers=held,
        )
        writer = ChainWriter(account_id, self.policy.label, GENESIS, 0, 1)
        writer.append(
            at=now,
            actor=Actor.system(),
            action=Action.OPEN,
            from_state=None,
            to_state=State.ACTIVE,
            details={"owner": owner, "members": sorted(member_set)},
        )
        record = attrs.evolve(record, chain_head=writer.head, last_seq=writer.seq)
        try:
            if held:
                self.store.create(record, tuple(writer.events), now=now)
            else:
                self.store.create(record, tuple(writer.events))
        except AccountExists as taken:
            if idempotency_key is not None:
                try:
                    existing = self.store.get(account_id)
                except LifecycleError:
                    raise taken from None
                if self._replayed(existing, idempotency_key, Action.OPEN):
                    return existing
            raise
        self._notify(writer.events)
        return record

    def request_cancellation(
        self, account_id: str, actor: Actor, *, idempotency_key: str | None = None
    ) -> AccountRecord:
        """Start cancelling: to the survey, or straight to confirmation if the policy has none.
        The record's ``cancellation_id`` names this request; pass it to ``confirm``."""

        def plan(record: AccountRecord, dest: State, now: datetime) -> _Plan:
            request = f"cr-{record.version + 1}"
            return _Plan(changes={"cancellation_id": request}, details={"cancellation_id": request})

        return self._command(
            account_id, actor, Action.REQUEST_CANCELLATION, plan, idempotency_key=idempotency_key
        )

    def submit_survey(
        self,
        account_id: str,
        actor: Actor,
        outcome: SurveyOutcome | str,
        answers: Mapping[str, str] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> AccountRecord:
        """Answer the survey. Keeping the account or booking a meeting returns it to ``ACTIVE``
        (a meeting request is recorded for the host); ``CANCEL`` moves on to confirmation."""
        try:
            chosen = SurveyOutcome(outcome)
        except ValueError:
            offered = ", ".join(o.value for o in self.policy.survey.outcomes)
            raise ValueError(f"unknown survey outcome {outcome!r}; expected one of {offered}") from None
        clean = _check_answers(answers)
        effects: tuple[tuple[str, Mapping[str, Any]], ...] = ()
        if chosen is SurveyOutcome.BOOK_MEETING:
            effects = (("meeting_requested", {"requested_by": str(actor)}),)

        def plan(record: AccountRecord, dest: State, now: datetime) -> _Plan:
            changes = {"cancellation_id": None} if dest is State.ACTIVE else {}
            return _Plan(
                changes=changes, details={"outcome": chosen.value, "answers": clean}, effects=effects
            )

        return self._command(
            account_id, actor, Action.SUBMIT_SURVEY, plan, idempotency_key=idempotency_key, outcome=chosen
        )

    def skip_survey(
        self, account_id: str, actor: Actor, *, idempotency_key: str | None = None
    ) -> AccountRecord:
        """Skip an optional survey and go on to confirmation."""
        return self._command(account_id, actor, Action.SKIP_SURVEY, idempotency_key=idempotency_key)

    def withdraw(self, account_id: str, actor: Actor, *, idempotency_key: str | None = None) -> AccountRecord:
        """Change one's mind before confirming: back to ``ACTIVE``. The open cancellation request
        ends with it, so a stale confirm naming it is refused later."""

        def plan(record: AccountRecord, dest: State, now: datetime) -> _Plan:
            return _Plan(
                changes={"cancellation_id": None}, details={"cancellation_id": record.cancellation_id}
            )

        return self._command(account_id, actor, Action.WITHDRAW, plan, idempotency_key=idempotency_key)

    def confirm(
        self,
        account_id: str,
        actor: Actor,
        token: str | None = None,
        acknowledgements: Iterable[str] = (),
        *,
        request_id: str | None = None,
        idempotency_key: str | None = None,
        window: Duration | str | None = None,
        authenticated_at: datetime | None = None,
    ) -> AccountRecord:
        """Confirm the cancellation. Access ends, the cancel-time purge runs inline, and the
        resulting record comes back: ``RESTORABLE`` or ``PURGED``, or ``CANCELLED`` with the
        failure recorded if a purger failed (``sweep`` retries it).

        *request_id* binds the confirm to the request it answers (the ``cancellation_id`` the
        page was rendered with): a confirm for an earlier, withdrawn request raises
        ``StaleConfirmation``. A retry with the same *idempotency_key* writes nothing and
        returns the current record.

        *window* is the owner's pick among ``recovery.choices`` (``"60 days"``; the first when
        left out; any other is a ``ValueError``). *authenticated_at* is when the actor last
        logged in, which a policy with ``confirmation.fresh_login`` checks
        (``ReauthenticationRequired``)."""
        if isinstance(acknowledgements, str):
            raise TypeError("acknowledgements must be a collection of ids, not one string")
        acks = frozenset(acknowledgements)
        for ack in acks:
            if not isinstance(ack, str):
                raise TypeError(f"acknowledgement ids are strings, got {ack!r}")
        chosen = self.policy.recovery.choose(window)
        logged_in = None if authenticated_at is None else require_aware(authenticated_at, "authenticated_at")
        lease = Lease(f"confirm:{uuid.uuid4().hex}", self._now() + self.lease)
        policy = self.policy
        hooks = self.effects

        def plan(record: AccountRecord, dest: State, now: datetime) -> _Plan:
            phases = phase_bounds(policy.recovery_phases(chosen), now)
            ledger = {name: PurgeProgress() for name in policy.purge.at("cancel")}
            effects: list[tuple[str, Mapping[str, Any]]] = []
            for effect in ON_CANCEL_EFFECTS:
                if effect not in policy.on_cancel:
                    continue
                if effect in hooks:  # run durably by the purge runner, like a category
                    ledger[effect_key(effect)] = PurgeProgress()
                else:  # recorded now, for listeners to act on
                    effects.append((EFFECT_EVENTS[effect], effect_event_details(effect, record)))
            changes: dict[str, Any] = {
                "cancelled_at": now,
                "restorable_until": phases[-1][1] if phases else None,
                "purge": ledger,
            }
            if policy.identity_reuse == "after_cancel" and record.identity is not None:
                changes["identity_released_at"] = now
            if record.identifiers:
                changes["identifiers"] = _released_at_cancel(policy, record, now)
            details = {
                "acknowledged": sorted(acks),
                "token_typed": policy.confirmation.token is not None,
                "cancellation_id": record.cancellation_id,
            }
            if policy.recovery.choices:
                details["window"] = str(chosen)
            if policy.confirmation.fresh_login is not None:
                details["authenticated_at"] = logged_in
            return _Plan(changes=changes, details=details, effects=tuple(effects))

        cancelled, replayed = self._apply(
            account_id,
            actor,
            Action.CONFIRM,
            plan,
            lease=lease,
            idempotency_key=idempotency_key,
            token=token,
            acknowledgements=acks,
            request_id=request_id,
            authenticated_at=logged_in,
        )
        if replayed:
            return cancelled
        try:
            done = self._runner.run_quietly(cancelled, lease)
        except LifecycleError as exc:
            # The confirmation is committed; the store failed during the purge. Its progress so
            # far is stored and the claim lapses, so a later sweep finishes the work.
            log.warning("inline purge of %s stopped: %s; a later sweep finishes it", account_id, exc)
            done = None
        return done if done is not None else self.get(account_id)

    def restore(self, account_id: str, actor: Actor, *, idempotency_key: str | None = None) -> AccountRecord:
        """Bring a ``RESTORABLE`` account back to ``ACTIVE`` strictly before ``restorable_until``.
        The host's listener brings the data back from its backups; purge progress starts afresh."""

        def plan(record: AccountRecord, dest: State, now: datetime) -> _Plan:
            return _Plan(
                changes={
                    "cancelled_at": None,
                    "restorable_until": None,
                    "purge": {},
                    "cancellation_id": None,
                    "reminders": (),
                },
                details={"on_behalf_of": record.owner, "restorable_until": record.restorable_until},
            )

        return self._command(account_id, actor, Action.RESTORE, plan, idempotency_key=idempotency_key)

    def transfer_ownership(
        self, account_id: str, actor: Actor, new_owner: str, *, idempotency_key: str | None = None
    ) -> AccountRecord:
        """Hand the account to a member; the old owner stays on as a member."""
        validate_id(new_owner, "new_owner")

        def plan(record: AccountRecord, dest: State, now: datetime) -> _Plan:
            return _Plan(
                changes={
                    "owner": new_owner,
                    "members": (record.members - {new_owner}) | {record.owner},
                },
                details={"from_owner": record.owner, "to_owner": new_owner},
            )

        return self._command(
            account_id,
            actor,
            Action.TRANSFER_OWNERSHIP,
            plan,
            idempotency_key=idempotency_key,
            new_owner=new_owner,
        )

    def cancel_service(
        self, account_id: str, actor: Actor, service: str, *, idempotency_key: str | None = None
    ) -> AccountRecord:
        """Cancel one product of the account; the account itself stays ``ACTIVE``."""

        def plan(record: AccountRecord, dest: State, now: datetime) -> _Plan:
            return _Plan(
                changes={"services": {**record.services, service: ServiceState.CANCELLED}},
                details={"service": service},
            )

        return self._command(
            account_id, actor, Action.CANCEL_SERVICE, plan, idempotency_key=idempotency_key, service=service
        )

    def place_hold(
        self,
        account_id: str,
        actor: Actor,
        category: str,
        reason: str,
        *,
        idempotency_key: str | None = None,
    ) -> AccountRecord:
        """Put *category* of the account under a legal hold: it is not erased while the hold
        stands. With ``[purge] on_hold = "wait"`` the account waits in its state until the hold
        is released; with ``"retain"`` the category is skipped and listed as retained on the
        receipt. Any state but ``PURGED``; who may is ``permissions.place_hold``.

        An unknown or protected category, or a blank *reason*, is a ``ValueError``; a category
        already held or already erased is an ``InvalidTransition``."""
        self._check_category(category)
        text = _check_reason(reason)

        def plan(record: AccountRecord, dest: State, now: datetime) -> _Plan:
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
            mode = self.policy.purge.on_hold or "wait"
            hold = Hold(at=now, by=str(actor), reason=text, mode=mode)
            return _Plan(
                changes={"holds": {**record.holds, category: hold}},
                details={"category": category, "reason": text, "mode": mode},
                event="hold_placed",
            )

        return self._command(account_id, actor, Action.PLACE_HOLD, plan, idempotency_key=idempotency_key)

    def release_hold(
        self, account_id: str, actor: Actor, category: str, *, idempotency_key: str | None = None
    ) -> AccountRecord:
        """Lift the legal hold on *category*. Its erasure is due again: the next sweep resumes
        it by itself (and moves the account on once nothing else holds it back). Any state but
        ``PURGED``; who may is ``permissions.release_hold``. ``InvalidTransition`` if the
        category is not held."""
        self._check_category(category)

        def plan(record: AccountRecord, dest: State, now: datetime) -> _Plan:
            held = record.holds.get(category)
            if held is None:
                raise InvalidTransition(
                    state=record.state, action=Action.RELEASE_HOLD, reason=f"{category!r} is not held"
                )
            changes: dict[str, Any] = {"holds": {k: v for k, v in record.holds.items() if k != category}}
            progress = record.purge.get(category)
            if (
                record.state is State.RESTORABLE
                and category in self.policy.purge.at("cancel")
                and progress is not None
                and progress.status is not PurgeStatus.DONE
                and progress.retry_at is None
            ):
                # Retained at cancel, its phase is over: due at once, not when the window ends.
                changes["purge"] = {**record.purge, category: attrs.evolve(progress, retry_at=now)}
            return _Plan(
                changes=changes, details={"category": category, "held_since": held.at}, event="hold_released"
            )

        return self._command(account_id, actor, Action.RELEASE_HOLD, plan, idempotency_key=idempotency_key)

    def _check_category(self, category: str) -> None:
        if category in self.policy.purge.protected:
            raise ValueError(
                f"{category!r} is protected: it is never erased, so there is nothing for a hold to stop"
            )
        names = [c.name for c in self.policy.purge.categories]
        if category not in names:
            raise ValueError(
                f"unknown category {category!r}; this policy erases {', '.join(names) or 'none'}"
            )

    def _check_identifiers(self, identifiers: Mapping[str, str] | None) -> dict[str, HeldIdentifier]:
        if identifiers is None:
            return {}
        if not isinstance(identifiers, Mapping):
            raise TypeError(
                f"identifiers must be a mapping of kind to value, got {type(identifiers).__name__}"
            )
        kinds = tuple(self.policy.identity)
        held = {}
        for kind, value in identifiers.items():
            if kind not in kinds:
                raise ValueError(
                    f"unknown kind of identifier {kind!r}; the policy's [identity] table lists "
                    f"{', '.join(kinds) or 'none'} (the single identity is open(identity=...))"
                )
            held[kind] = HeldIdentifier(validate_id(value, f"identifier {kind!r}"))
        return held

    def sweep(self, limit: int | None = None) -> SweepReport:
        """Finish unfinished purges and purge every account whose window has ended.

        Each account is claimed before it is worked on, so parallel sweepers never work on
        one account at once. Works in batches until nothing is due or *limit* accounts were
        handled."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a whole number >= 0 or None, got {limit!r}")
        return self._runner.sweep(limit=limit, batch=self.sweep_batch)

    # -- queries ---------------------------------------------------------------------------

    def get(self, account_id: str) -> AccountRecord:
        """The stored record; ``AccountNotFound`` for an unknown id."""
        if not isinstance(account_id, str):
            raise TypeError(f"account_id must be a str, got {type(account_id).__name__}")
        return self.store.get(account_id)

    def preview(
        self, account_id: str, *, at: datetime | None = None, window: Duration | str | None = None
    ) -> Timeline:
        """What will happen to the account, and when: each category erased with its moment,
        what is kept and why, until when it can be restored and by whom in each phase, the
        window choices, and what cancelling does at once. Writes nothing.

        *at* defaults to the lifecycle's clock. Before the account is confirmed the moments
        assume a confirm at *at* (with the *window* the owner would pick, by default the first
        choice); once confirmed they are the account's own."""
        record = self._own(self.get(account_id))
        moment = self._now() if at is None else require_aware(at, "at")
        return build_timeline(self.policy, record, moment, window)

    def allowed_actions(self, account_id: str, actor: Actor) -> frozenset[Action]:
        """What a UI may offer this actor now, from the state, the relation and the permissions
        (and the window). Inputs such as the token are not guessed."""
        record = self._own(self.get(account_id))
        attempt = self._attempt(record, actor, self._now())
        return frozenset(
            a
            for a in _USER_ACTIONS
            if self.machine.possible(a, attempt) and (a is not Action.RELEASE_HOLD or record.holds)
        )

    def history(self, account_id: str) -> tuple[AuditEvent, ...]:
        """The account's audit events, oldest first."""
        return self.store.history(account_id)

    def verify_history(self, account_id: str) -> None:
        """Raise ``HistoryTampered`` if any event was edited, removed or reordered."""
        record = self.get(account_id)
        verify_chain(account_id, self.store.history(account_id), record.chain_head)

    def receipt(self, account_id: str) -> ErasureReceipt:
        """The erasure receipt of a ``PURGED`` account."""
        record = self.get(account_id)
        if record.state is not State.PURGED:
            raise InvalidTransition(
                state=record.state,
                action="receipt",
                reason="a receipt exists only once the account is purged",
            )
        return receipt_for(record, self.policy)


_MAX_REASON = 500


def _check_reason(reason: object) -> str:
    if not isinstance(reason, str):
        raise TypeError(f"reason must be a str, got {type(reason).__name__}")
    if not reason.strip() or len(reason) > _MAX_REASON or not reason.isprintable():
        raise ValueError(
            f"reason must be one line of 1 to {_MAX_REASON} printable characters (a case or "
            f"ticket reference; no personal data: it is audited), got {reason!r}"
        )
    return reason


def _released_at_cancel(policy: Policy, record: AccountRecord, now: datetime) -> dict[str, HeldIdentifier]:
    """The account's identifiers at confirm: those whose rule is ``at_once`` are free from now."""
    out = dict(record.identifiers)
    for kind, held in record.identifiers.items():
        rule = policy.identity.get(kind)
        if rule is not None and rule.when == "at_once":
            out[kind] = attrs.evolve(held, free_at=now)
    return out
