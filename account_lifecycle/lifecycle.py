"""The service: each command loads the record, decides through the policy's machine,
saves the new record with its audit events in one compare-and-set, then runs effects."""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

import attrs

from account_lifecycle import telemetry
from account_lifecycle.audit import AuditEvent, verify_chain
from account_lifecycle.clock import SystemClock, require_aware
from account_lifecycle.decide import (
    Command,
    Decision,
    Event,
    NeedsPrerequisites,
    Rules,
    apply,
    decide_command,
    decide_express,
    decide_open,
    fenced,
    permitted_replay,
    replayed_open,
    start_work,
)
from account_lifecycle.duration import Duration
from account_lifecycle.errors import (
    AccountExists,
    ConcurrentUpdate,
    ConfigurationError,
    InvalidTransition,
    LifecycleError,
    MigrationRefused,
    PolicyMismatch,
)
from account_lifecycle.identity import canonical_identifier, canonical_text, checked_identity
from account_lifecycle.identity_keys import IDENTITY_KIND, IdentityKeys
from account_lifecycle.journal import Commit, Journal
from account_lifecycle.machine import Attempt, PolicyMachine
from account_lifecycle.model import (
    AccountRecord,
    Action,
    Actor,
    HeldIdentifier,
    State,
    SurveyOutcome,
    validate_id,
)
from account_lifecycle.outbox import (
    OUTBOX_METHODS,
    OutboxStatus,
    RedeliveryReport,
    Relay,
    RelayReport,
    check_listeners,
    outbox_store,
)
from account_lifecycle.policy import ON_CANCEL_EFFECTS, Policy
from account_lifecycle.ports import (
    AccountStore,
    Clock,
    EffectHook,
    Lease,
    Listener,
    PrerequisiteCheck,
    Purger,
    in_host_transaction,
    on_host_commit,
)
from account_lifecycle.purge import Claim, PurgeRunner, SweepReport
from account_lifecycle.queries import DEFAULT_PAGE, AccountPage, account_page, query_of
from account_lifecycle.registry import PolicyRegistry
from account_lifecycle.sealed import check_sealed, sealed_fields
from account_lifecycle.values import AccountQuery

if TYPE_CHECKING:  # imported by the methods that need them: a command does not
    from account_lifecycle.migration import AccountMove, MigrationPlan, MigrationReport, MigrationRule
    from account_lifecycle.receipts import ErasureReceipt
    from account_lifecycle.timeline import Timeline

__all__ = ["Lifecycle", "RekeyReport"]

log = logging.getLogger("account_lifecycle")

_MAX_ANSWERS = 50
_MAX_ANSWER_LENGTH = 10_000
_USER_ACTIONS = tuple(a for a in Action if a not in (Action.OPEN, Action.PURGE))


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
class RekeyReport:
    """What ``Lifecycle.rekey_identities`` did: the accounts whose digests it re-keyed, and
    those it could not (a record that cannot be read, a digest made with unknown keys),
    each with the reason."""

    rekeyed: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()


class Lifecycle:
    """Drives accounts of one policy through cancellation, recovery and purge.

    Holds no per-account state: every command reads the stored record and writes a new
    version of it with compare-and-set, so any number of ``Lifecycle`` objects in any
    number of processes may share one store.

    *policy* is one ``Policy``, or a ``PolicyRegistry`` of several versions (of one or more
    policy names): each account follows the version it is pinned to (``docs/policy-versions.md``),
    and ``policy`` is the registry's current version. The purgers, checks and hooks given must
    cover every version.
    """

    def __init__(
        self,
        policy: Policy | PolicyRegistry,
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
        sweep_concurrency: int = 1,
        identity_keys: IdentityKeys | None = None,
        outbox_listeners: Mapping[str, Listener] | None = None,
        outbox_max_attempts: int = 8,
        outbox_advance_every: int = 1,
    ) -> None:
        if not isinstance(policy, Policy | PolicyRegistry):
            raise TypeError(f"policy must be a Policy or a PolicyRegistry, got {type(policy).__name__}")
        self.registry = PolicyRegistry.of(policy)
        policy = self.registry.current
        if identity_keys is not None and not isinstance(identity_keys, IdentityKeys):
            raise TypeError(f"identity_keys must be IdentityKeys, got {type(identity_keys).__name__}")
        for version in self.registry.policies:
            if identity_keys is None and version.identity:
                raise ConfigurationError(
                    f"policy {version.label} holds identifiers ({', '.join(version.identity)}), "
                    "which are stored as keyed digests only: "
                    "pass identity_keys=IdentityKeys(IdentityKey(id, secret))"
                )
        self.identity_keys = identity_keys
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
        if (
            isinstance(sweep_concurrency, bool)
            or not isinstance(sweep_concurrency, int)
            or sweep_concurrency < 1
        ):
            raise ValueError(f"sweep_concurrency must be a whole number >= 1, got {sweep_concurrency!r}")
        self.purgers = self._index_purgers(purgers)
        self.effects = self._index_effects(effects or {})
        self.prerequisites = dict(prerequisites or {})
        for version in self.registry.policies:
            missing = [name for name in version.prerequisites if name not in self.prerequisites]
            if missing:
                raise ConfigurationError(
                    f"policy {version.label} needs a check for prerequisite(s) {', '.join(missing)}; "
                    "pass prerequisites={name: check}"
                )
        #: The decision rules of each version, built once, by label.
        self.versions: dict[str, Rules] = {
            version.label: Rules(
                policy=version,
                machine=PolicyMachine(version),
                hooked_effects=frozenset(self.effects),
                retry_backoff=retry_backoff,
                max_retry_backoff=max_retry_backoff,
            )
            for version in self.registry.policies
        }
        self.rules = self.versions[policy.label]
        self.machine = self.rules.machine
        #: label_of's answers, by (policy name, pinned version): the registry does not change
        self._labels: dict[tuple[str, int], str] = {}
        self.journal = Journal(store, policy.label, self.listeners, label_of=self._label_of)
        self._relay = self._outbox_relay(outbox_listeners, outbox_max_attempts, outbox_advance_every)
        #: True on a lifecycle made by ``using``: its writes are not committed until the host
        #: commits, so ``confirm`` defers its purge (no purger erases for an uncommitted confirm).
        self._in_host_transaction = False
        self.runner = PurgeRunner(
            rules=self.rules,
            store=store,
            journal=self.journal,
            purgers=self.purgers,
            clock=self.clock,
            lease_duration=lease,
            effects=self.effects,
            concurrency=sweep_concurrency,
            rules_for=self._runner_rules,
        )

    def _outbox_relay(
        self, listeners: Mapping[str, Listener] | None, max_attempts: int, advance_every: int
    ) -> Relay | None:
        """The relay of the durable listeners, on a store that keeps an outbox (None on one that
        keeps none; ``ConfigurationError`` if such a store is given outbox listeners)."""
        named = check_listeners(listeners)
        if outbox_store(self.store) is None:
            if named:
                missing = [m for m in OUTBOX_METHODS if not callable(getattr(self.store, m, None))]
                raise ConfigurationError(
                    f"outbox listeners need a store that keeps an outbox; {type(self.store).__name__} "
                    f"has no {', '.join(missing)} (ports.OutboxStore)"
                )
            return None
        return Relay(
            self.store,  # type: ignore[arg-type]  # checked by outbox_store
            named,
            clock=self.clock,
            lease=self.lease,
            backoff=self.retry_backoff,
            max_backoff=self.max_retry_backoff,
            max_attempts=max_attempts,
            advance_every=advance_every,
        )

    def _index_purgers(self, purgers: Iterable[Purger]) -> dict[str, Purger]:
        # every category some version erases (a version's protected ones are not in its list)
        wanted = {c.name for version in self.registry.policies for c in version.purge.categories}
        index: dict[str, Purger] = {}
        for purger in purgers:
            category = purger.category
            if category not in wanted:
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

    def using(self, store: AccountStore, *, listeners: Iterable[Listener] = ()) -> Lifecycle:
        """This lifecycle (policy, purgers, checks, effects, clock, keys, timings) on *store*: most
        often a view writing inside the host's transaction, ``lc.using(store.bound(session))``,
        so that a command commits or rolls back with the host's own writes. Cheap: nothing is
        rebuilt but what writes to the store.

        In-process *listeners* are not carried over (none unless given): they are called as soon
        as the store has written, which on a bound store is before the host commits, so they
        could report events the host then rolls back. Nor is the outbox relay: read through the
        host's transaction it would see entries not committed yet; ``relay()`` of this lifecycle
        delivers nothing, and the relay keeps running on the lifecycle of the store's own
        transactions, where outbox listeners see committed events only.

        ``confirm`` on it defers the cancel-time purge (as ``confirm(defer=True)``) unless told
        ``defer=False``: a purger must not erase for a confirmation the host may still roll
        back. The sweep (or the Celery tasks) erases once the host has committed; on a store
        that can run work on the host's commit (``ports.HostCommitStore``: ``DjangoStore``) the
        confirm's steps run right after it."""
        listening = tuple(listeners)
        other = copy.copy(self)
        other.store = store
        other.listeners = listening
        other.journal = attrs.evolve(self.journal, store=store, listeners=listening)
        other.runner = attrs.evolve(self.runner, store=store, journal=other.journal)
        other._relay = None
        other._in_host_transaction = True
        return other

    # -- plumbing --------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self.clock.now()
        if type(now) is datetime and now.tzinfo is UTC:  # its own astimezone(UTC)
            return now
        return require_aware(now, "clock.now()")

    def _own(self, record: AccountRecord) -> AccountRecord:
        """*record*, if it follows a policy of this lifecycle's registry (records from before
        the policy was stored have none and are taken as they are); else ``PolicyMismatch``."""
        self.registry.resolve(record)
        return record

    def _label_of(self, name: str, version: int) -> str:
        """The label in force for an account of policy *name* pinned to *version* (the journal
        chains its events under it)."""
        key = (name, version)
        label = self._labels.get(key)
        if label is not None:
            return label
        try:
            label = self.registry.resolve_pin(name, version).label
        except PolicyMismatch:
            return f"{name}@{version}" if version else name
        self._labels[key] = label
        return label

    def _rules_of(self, record: AccountRecord) -> Rules:
        """The decision rules of the version *record* follows now: an ``ACTIVE`` account follows
        the version it would start a cancellation under (the registry's current one for it, or
        its roll-out's pick), any other the version it is pinned to. ``PolicyMismatch`` for an
        account of a policy this lifecycle does not hold."""
        registry = self.registry
        only = registry.only
        if only is not None and (record.policy == only.name or not record.policy):
            # a registry of one version and no roll-out: the answer of both branches below
            return self.rules
        if record.state is State.ACTIVE and self.registry.knows(record.policy):
            return self.versions[self.registry.current_for(record.account_id).label]
        return self.versions[self.registry.resolve(record).label]

    def _runner_rules(self, record: AccountRecord) -> Rules | None:
        """The rules of the version *record* is pinned to, or None for a policy this lifecycle
        does not hold (the runner leaves such an account alone)."""
        only = self.registry.only
        if only is not None and (record.policy == only.name or not record.policy):
            return self.rules  # a registry of one version: what resolving the pin answers
        try:
            return self.versions[self.registry.resolve(record).label]
        except PolicyMismatch:
            return None

    def _decide(self, rules: Rules, record: AccountRecord, command: Command, now: datetime) -> Decision:
        """The decision core's answer; the prerequisite checks (host code) run only when the
        decision reaches their guard."""
        try:
            decision = decide_command(rules, record, command, now)
        except NeedsPrerequisites:
            pending = {
                name: self.prerequisites[name](record.account_id) for name in rules.policy.prerequisites
            }
            decision = decide_command(rules, record, command, now, pending)
        policy = rules.policy
        if (record.policy, record.policy_version) != (policy.name, policy.version):
            # an active account moves to the version it cancels under (or its only version)
            repin = {"policy": policy.name, "policy_version": policy.version}
            decision = attrs.evolve(decision, changes={**decision.changes, **repin})
        return decision

    @telemetry.traced_command  # OpenTelemetry (extra otel): a span and a count per command
    def _apply(
        self, account_id: str, command: Command, *, lease: Lease | None = None
    ) -> tuple[AccountRecord, bool]:
        """Load, decide, and commit the decision as one compare-and-set. With *lease* (confirm),
        the purge steps that are due at once start in the same write, under that claim.

        Returns the new record and whether it is a replay: a command carrying an idempotency
        key that was already applied writes nothing and returns the current record (to an
        actor permitted that command now; ``NotPermitted`` to anyone else)."""
        if not isinstance(command.actor, Actor):
            raise TypeError(f"actor must be an Actor, got {type(command.actor).__name__}")
        if command.idempotency_key is not None:
            validate_id(command.idempotency_key, "idempotency_key")
        record = self.get(account_id)
        rules = self._rules_of(record)
        if permitted_replay(rules, record, command):
            return record, True
        now = self._now()
        decision = self._decide(rules, record, command, now)
        if lease is not None:
            started = start_work(rules, _applied(record, decision), now, lease.owner)
            if started is not None and started.work is not None:
                # the confirm event says the steps start: the write needs no event of its own
                decision = decision.then(record, attrs.evolve(started, events=()))
        try:
            return self.journal.commit(record, decision, now=now, lease=lease), False
        except ConcurrentUpdate:
            if command.idempotency_key is not None:  # a retry of the same request may have won the race
                current = self.get(account_id)
                if permitted_replay(self._rules_of(current), current, command):
                    return current, True
            raise

    # -- commands --------------------------------------------------------------------------

    @telemetry.traced_open  # OpenTelemetry (extra otel): a span and a count for open
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
        if identity is not None:  # compared and stored in its canonical form (identity.py)
            identity = checked_identity(canonical_text(identity), "identity")
        rules = self.versions[self.registry.current_for(account_id).label]
        held = self._check_identifiers(rules.policy, identifiers)
        keys = self.identity_keys
        aliases: dict[str, tuple[str, ...]] = {}
        if identity is not None or held:
            if keys is None:
                raise ConfigurationError(
                    "an identity is stored as a keyed digest only, and this Lifecycle has no key: "
                    "pass identity_keys=IdentityKeys(IdentityKey(id, secret))"
                )
            if identity is not None:
                digest = keys.digest(IDENTITY_KIND, identity)
                aliases[digest] = keys.aliases(IDENTITY_KIND, identity)
                identity = digest
            for kind, plain in list(held.items()):
                digest = keys.digest(kind, plain.value)
                aliases[digest] = keys.aliases(kind, plain.value)
                held[kind] = HeldIdentifier(digest)
        record, event = decide_open(
            rules,
            account_id=account_id,
            owner=owner,
            members=member_set,
            identity=identity,
            identifiers=held,
            idempotency_key=idempotency_key,
        )
        try:
            return self.journal.create(
                record, event, now=self._now(), aliases={k: v for k, v in aliases.items() if v}
            )
        except AccountExists as taken:
            if idempotency_key is not None:
                try:
                    existing = self.store.get(account_id)
                except LifecycleError:
                    raise taken from None
                if replayed_open(existing, record, idempotency_key):  # same key, same arguments
                    return existing
            raise

    def _command(self, account_id: str, command: Command) -> AccountRecord:
        return self._apply(account_id, command)[0]

    def _express(self, account_id: str, action: Action, actor: Actor) -> AccountRecord | None:
        """A command that carries only its actor, decided by ``decide_express`` (a lookup where
        the machine's guards are permission checks alone) and written by the one write path;
        None when it needs the general path (``_apply``: refusals, idempotency keys, fences,
        other versions, spans to record), which then decides it from the start."""
        if type(actor) is not Actor or type(account_id) is not str or telemetry.recording():
            return None
        record = self.store.get(account_id)
        rules = self._rules_of(record)
        policy = rules.policy
        if record.policy_version != policy.version or record.policy != policy.name:
            return None  # ``_decide`` moves it to the version it cancels under
        decision = decide_express(rules, record, action, actor)
        if decision is None:
            return None
        return self.journal.commit(record, decision, now=self._now())

    def request_cancellation(
        self, account_id: str, actor: Actor, *, idempotency_key: str | None = None
    ) -> AccountRecord:
        """Start cancelling: to the survey, or straight to confirmation if the policy has none.
        The record's ``cancellation_id`` names this request; pass it to ``confirm``."""
        if idempotency_key is None:
            done = self._express(account_id, Action.REQUEST_CANCELLATION, actor)
            if done is not None:
                return done
        return self._command(
            account_id, Command(Action.REQUEST_CANCELLATION, actor, idempotency_key=idempotency_key)
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
        command = Command(
            Action.SUBMIT_SURVEY,
            actor,
            outcome=chosen,
            answers=_check_answers(answers),
            idempotency_key=idempotency_key,
        )
        return self._command(account_id, command)

    def skip_survey(
        self, account_id: str, actor: Actor, *, idempotency_key: str | None = None
    ) -> AccountRecord:
        """Skip an optional survey and go on to confirmation."""
        if idempotency_key is None:
            done = self._express(account_id, Action.SKIP_SURVEY, actor)
            if done is not None:
                return done
        return self._command(account_id, Command(Action.SKIP_SURVEY, actor, idempotency_key=idempotency_key))

    def withdraw(self, account_id: str, actor: Actor, *, idempotency_key: str | None = None) -> AccountRecord:
        """Change one's mind before confirming: back to ``ACTIVE``. The open cancellation request
        ends with it, so a stale confirm naming it is refused later."""
        if idempotency_key is None:
            done = self._express(account_id, Action.WITHDRAW, actor)
            if done is not None:
                return done
        return self._command(account_id, Command(Action.WITHDRAW, actor, idempotency_key=idempotency_key))

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
        defer: bool | None = None,
    ) -> AccountRecord:
        """Confirm the cancellation. Access ends, the cancel-time purge runs inline, and the
        resulting record comes back: ``RESTORABLE`` or ``PURGED``, or ``CANCELLED`` with the
        failure recorded if a purger failed (``sweep`` retries it).

        The confirmation and the start of its purge steps are one write, which also claims the
        account until the inline purge ends; the steps' outcomes are a second write.

        *defer* (None: the policy's ``[purge] cancel_work``, or True inside the host's own
        transaction: on a lifecycle ``using`` it, or on a store whose ``in_host_transaction()``
        says so, ``ports.HostTransactionStore``) True makes the confirmation the one
        write: it returns the ``CANCELLED`` record with its cancel-time steps due now, calls no
        purger and takes no claim; ``sweep`` (or the Celery tasks) erase them, under their claim.
        Deferred for the host's transaction on a store that can run work after the host commits
        (``DjangoStore``: ``transaction.on_commit``), the steps run then, at once, under a claim
        of their own; a rollback drops the confirmation and calls nothing.

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
        if defer is not None and not isinstance(defer, bool):
            raise TypeError(f"defer must be True, False or None, got {defer!r}")
        policy = self._rules_of(self.get(account_id)).policy  # the version the account follows
        command = Command(
            Action.CONFIRM,
            actor,
            token=token,
            acknowledgements=acks,
            request_id=request_id,
            authenticated_at=None
            if authenticated_at is None
            else require_aware(authenticated_at, "authenticated_at"),
            window=policy.recovery.choose(window),
            idempotency_key=idempotency_key,
        )
        hosted = False  # deferred only because the host has not committed yet
        if defer is None:  # in the host's transaction: no purger before the host commits
            inline = policy.purge.cancel_work != "deferred"
            hosted = inline and (self._in_host_transaction or in_host_transaction(self.store))
            defer = hosted or not inline
        if defer:  # one commit: the steps are due now, for the sweep to claim and run
            cancelled, replayed = self._apply(account_id, command)
            if hosted and not replayed:  # erased once durable, if the store can tell when
                on_host_commit(self.store, partial(self._erase_when_committed, account_id))
            return cancelled
        lease = Lease(f"confirm:{uuid.uuid4().hex}", self._now() + self.lease)
        cancelled, replayed = self._apply(account_id, command, lease=lease)
        if replayed:
            return cancelled
        try:
            done = self.runner.run(cancelled, lease)
        except LifecycleError as exc:
            # The confirmation is committed; the store failed during the purge. Its progress so
            # far is stored and the claim lapses, so a later sweep finishes the work.
            log.warning("inline purge of %s stopped: %s; a later sweep finishes it", account_id, exc)
            done = None
        return done if done is not None else self.get(account_id)

    def _erase_when_committed(self, account_id: str) -> None:
        """The cancel-time work of a confirmation the host has just committed, run at once
        through the fenced runner under a claim of its own (its first write takes the claim
        with a compare-and-set; a sweeper holding the account keeps it). What this leaves, the
        sweep finishes."""
        lease = self.runner.new_lease(f"confirm:{uuid.uuid4().hex}")
        try:
            self.runner.run(self.store.get(account_id), lease)
        except LifecycleError as exc:
            log.warning("purge of %s after the host committed stopped: %s", account_id, exc)

    def restore(self, account_id: str, actor: Actor, *, idempotency_key: str | None = None) -> AccountRecord:
        """Bring a ``RESTORABLE`` account back to ``ACTIVE`` strictly before ``restorable_until``.
        The host's listener brings the data back from its backups; purge progress starts afresh.

        ``ErasureInProgress`` (retryable) while a purge step of the account runs, and
        ``InvalidTransition`` once the erasure at the window's end has begun."""
        return self._command(account_id, Command(Action.RESTORE, actor, idempotency_key=idempotency_key))

    def transfer_ownership(
        self, account_id: str, actor: Actor, new_owner: str, *, idempotency_key: str | None = None
    ) -> AccountRecord:
        """Hand the account to a member; the old owner stays on as a member."""
        validate_id(new_owner, "new_owner")
        command = Command(
            Action.TRANSFER_OWNERSHIP, actor, new_owner=new_owner, idempotency_key=idempotency_key
        )
        return self._command(account_id, command)

    def cancel_service(
        self, account_id: str, actor: Actor, service: str, *, idempotency_key: str | None = None
    ) -> AccountRecord:
        """Cancel one product of the account; the account itself stays ``ACTIVE``."""
        command = Command(Action.CANCEL_SERVICE, actor, service=service, idempotency_key=idempotency_key)
        return self._command(account_id, command)

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
        already held or already erased is an ``InvalidTransition``; a category whose purger is
        running now is ``ErasureInProgress`` (retryable)."""
        self._check_category(account_id, category)
        command = Command(
            Action.PLACE_HOLD,
            actor,
            category=category,
            reason=_check_reason(reason),
            idempotency_key=idempotency_key,
        )
        return self._command(account_id, command)

    def release_hold(
        self, account_id: str, actor: Actor, category: str, *, idempotency_key: str | None = None
    ) -> AccountRecord:
        """Lift the legal hold on *category*. Its erasure is due again: the next sweep resumes
        it by itself (and moves the account on once nothing else holds it back). Any state but
        ``PURGED``; who may is ``permissions.release_hold``. ``InvalidTransition`` if the
        category is not held."""
        self._check_category(account_id, category)
        command = Command(Action.RELEASE_HOLD, actor, category=category, idempotency_key=idempotency_key)
        return self._command(account_id, command)

    def add_member(
        self, account_id: str, actor: Actor, user_id: str, *, idempotency_key: str | None = None
    ) -> AccountRecord:
        """Add *user_id* to the account's team (``ACTIVE``, ``SURVEYED`` or ``PENDING_CONFIRM``;
        who may is ``permissions.add_member``). The owner or a member already is a
        ``ValueError``. Audited as ``add_member`` with the user's id."""
        validate_id(user_id, "user_id")
        command = Command(Action.ADD_MEMBER, actor, member=user_id, idempotency_key=idempotency_key)
        return self._command(account_id, command)

    def remove_member(
        self, account_id: str, actor: Actor, user_id: str, *, idempotency_key: str | None = None
    ) -> AccountRecord:
        """Remove *user_id* from the account's team: from this write on it has no relation to the
        account and is permitted nothing (relations are read from the stored record). Same states
        as ``add_member``; who may is ``permissions.remove_member``. The owner (transfer ownership
        first) or a user who is not a member is a ``ValueError``."""
        validate_id(user_id, "user_id")
        command = Command(Action.REMOVE_MEMBER, actor, member=user_id, idempotency_key=idempotency_key)
        return self._command(account_id, command)

    def change_identity(
        self,
        account_id: str,
        actor: Actor,
        identity: str | None = None,
        *,
        identifiers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> AccountRecord:
        """Change the account's identity and/or some of its *identifiers* (kinds the policy's
        ``[identity]`` table lists; the others are kept), before the account is cancelled; who
        may is ``permissions.change_identity``.

        Each value is canonicalised and stored as a keyed digest exactly as ``open`` does; the
        audit event names what changed, never a value. ``AccountExists`` (nothing written) if
        another account holds the new identity or identifier, or holds it in quarantine; the
        values the account gives up are free at once. Neither given, or the values it already
        holds, is a ``ValueError``."""
        if identity is None and not identifiers:
            raise ValueError("change_identity needs a new identity or identifiers; neither was given")
        if identity is not None:
            identity = checked_identity(canonical_text(identity), "identity")
        held = self._check_identifiers(self._rules_of(self.get(account_id)).policy, identifiers)
        keys = self.identity_keys
        if keys is None:
            raise ConfigurationError(
                "an identity is stored as a keyed digest only, and this Lifecycle has no key: "
                "pass identity_keys=IdentityKeys(IdentityKey(id, secret))"
            )
        digested = {kind: HeldIdentifier(keys.digest(kind, plain.value)) for kind, plain in held.items()}
        command = Command(
            Action.CHANGE_IDENTITY,
            actor,
            identity=None if identity is None else keys.digest(IDENTITY_KIND, identity),
            identifiers=digested,
            idempotency_key=idempotency_key,
        )
        return self._command(account_id, command)

    def _check_category(self, account_id: str, category: str) -> None:
        policy = self._rules_of(self.get(account_id)).policy
        if category in policy.purge.protected:
            raise ValueError(
                f"{category!r} is protected: it is never erased, so there is nothing for a hold to stop"
            )
        names = [c.name for c in policy.purge.categories]
        if category not in names:
            raise ValueError(
                f"unknown category {category!r}; this policy erases {', '.join(names) or 'none'}"
            )

    def _check_identifiers(
        self, policy: Policy, identifiers: Mapping[str, str] | None
    ) -> dict[str, HeldIdentifier]:
        if identifiers is None:
            return {}
        if not isinstance(identifiers, Mapping):
            raise TypeError(
                f"identifiers must be a mapping of kind to value, got {type(identifiers).__name__}"
            )
        kinds = tuple(policy.identity)
        held = {}
        for kind, value in identifiers.items():
            if kind not in kinds:
                raise ValueError(
                    f"unknown kind of identifier {kind!r}; the policy's [identity] table lists "
                    f"{', '.join(kinds) or 'none'} (the single identity is open(identity=...))"
                )
            if not isinstance(value, str):
                raise TypeError(f"identifier {kind!r} must be a str, got {type(value).__name__}")
            try:  # compared and stored in its kind's canonical form (identity.py)
                value = canonical_identifier(kind, value, email_local_part=policy.email_local_part)
            except ValueError as exc:
                raise ValueError(f"identifier {kind!r}: {exc}") from None
            held[kind] = HeldIdentifier(checked_identity(value, f"identifier {kind!r}"))
        return held

    def sweep(self, limit: int | None = None) -> SweepReport:
        """Finish unfinished purges and purge every account whose window has ended.

        Each account is claimed before it is worked on, so parallel sweepers never work on
        one account at once. Works in batches until nothing is due or *limit* accounts were
        handled. Then relays the outbox to the durable listeners, if any (``relayed``)."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a whole number >= 0 or None, got {limit!r}")
        report = self.runner.sweep(limit=limit, batch=self.sweep_batch)
        if self._relay is not None and self._relay.listeners:
            report = attrs.evolve(report, relayed=self.relay().total)
        return report

    # -- the outbox (durable listeners) -----------------------------------------------------

    def relay(self, limit: int | None = None) -> RelayReport:
        """Feed the durable listeners (``outbox_listeners``) from the store's outbox, each in
        position order, up to *limit* entries each (see ``account_lifecycle.outbox``). A
        lifecycle without outbox listeners delivers nothing."""
        if self._relay is None:
            return RelayReport()
        return self._relay.relay(limit)

    def outbox_status(self) -> OutboxStatus:
        """Each durable listener's position, lag behind the head, failing delivery and dead
        letters; ``ConfigurationError`` on a store that keeps no outbox."""
        return self._outbox().status()

    def redeliver(self, listener: str, positions: Iterable[int]) -> RedeliveryReport:
        """Deliver those dead letters of *listener* again, in position order, removing each one
        delivered (``Relay.redeliver``)."""
        return self._outbox().redeliver(listener, positions)

    def dismiss(self, listener: str, positions: Iterable[int]) -> int:
        """Remove those dead letters of *listener* without delivering them; how many."""
        return self._outbox().dismiss(listener, positions)

    def _outbox(self) -> Relay:
        if self._relay is None:
            raise ConfigurationError(f"{type(self.store).__name__} keeps no outbox (ports.OutboxStore)")
        return self._relay

    def claim_due(self, limit: int | None = None, *, owner: str | None = None) -> Claim:
        """Claim up to *limit* (default ``sweep_batch``) accounts whose purge work is due, for
        *owner* (default a fresh ``"claim:<uuid>"``), to hand to workers that call
        ``run_claimed`` with the claim's lease. Nobody else works on them until the lease ends."""
        size = self.sweep_batch if limit is None else limit
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"limit must be a whole number >= 0 or None, got {limit!r}")
        return self.runner.claim(owner or f"claim:{uuid.uuid4().hex}", size)

    def run_claimed(self, account_id: str, lease: Lease) -> AccountRecord | None:
        """Run the due purge work of *account_id* under a claim taken with ``claim_due``; None
        if the claim lapsed or another worker took the account over."""
        return self.runner.run_claimed(account_id, lease)

    # -- queries ---------------------------------------------------------------------------

    def get(self, account_id: str) -> AccountRecord:
        """The stored record; ``AccountNotFound`` for an unknown id."""
        if not isinstance(account_id, str):
            raise TypeError(f"account_id must be a str, got {type(account_id).__name__}")
        return self.store.get(account_id)

    def accounts(
        self,
        query: AccountQuery | None = None,
        *,
        states: Iterable[State | str] | None = None,
        due_before: datetime | None = None,
        with_holds: bool | None = None,
        with_failed_steps: bool | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> AccountPage:
        """A page of the accounts matching *query* (or the same conditions as keywords; neither:
        every account), in ``account_id`` order, at most *limit* (1 to 1000) long; pass its
        ``next_cursor`` as *cursor* for the next page (None: no more match). Reads only.

        For a support screen: ``lc.accounts(states={"cancelled"}, with_failed_steps=True)``. A
        record that cannot be decoded comes back as a ``CorruptRecord`` in its place. A cursor
        that is garbled, edited or was made for other conditions is a ``ValueError`` saying so; a
        naive *due_before* is a ``ValueError``; ``ConfigurationError`` if the store has no
        ``list_accounts`` (``account_lifecycle.ports.QueryStore``)."""
        keywords = (states, due_before, with_holds, with_failed_steps)
        if query is not None and any(value is not None for value in keywords):
            raise TypeError("give either a query or its conditions as keywords, not both")
        if query is None:
            query = query_of(
                states=states,
                due_before=due_before,
                with_holds=with_holds,
                with_failed_steps=with_failed_steps,
            )
        return account_page(self.store, query, cursor=cursor, limit=limit)

    def preview(
        self, account_id: str, *, at: datetime | None = None, window: Duration | str | None = None
    ) -> Timeline:
        """What will happen to the account, and when: each category erased with its moment,
        what is kept and why, until when it can be restored and by whom in each phase, the
        window choices, and what cancelling does at once. Writes nothing.

        *at* defaults to the lifecycle's clock. Before the account is confirmed the moments
        assume a confirm at *at* (with the *window* the owner would pick, by default the first
        choice); once confirmed they are the account's own."""
        from account_lifecycle.timeline import build_timeline

        record = self.get(account_id)
        moment = self._now() if at is None else require_aware(at, "at")
        return build_timeline(self._rules_of(record).policy, record, moment, window)

    def allowed_actions(self, account_id: str, actor: Actor) -> frozenset[Action]:
        """What a UI may offer this actor now, from the state, the relation and the permissions
        (and the window). Inputs such as the token are not guessed."""
        if not isinstance(actor, Actor):
            raise TypeError(f"actor must be an Actor, got {type(actor).__name__}")
        record = self.get(account_id)
        rules = self._rules_of(record)
        attempt = Attempt(record=record, actor=actor, relation=record.relation_of(actor), now=self._now())
        return frozenset(
            a
            for a in _USER_ACTIONS
            if rules.machine.possible(a, attempt)
            and (a is not Action.RELEASE_HOLD or record.holds)
            and (a is not Action.REMOVE_MEMBER or record.members)
            and not fenced(rules.policy, record, Command(a, actor))
        )

    def history(self, account_id: str) -> tuple[AuditEvent, ...]:
        """The account's audit events, oldest first."""
        return self.store.history(account_id)

    def verify_history(self, account_id: str) -> None:
        """Raise ``HistoryTampered`` if any event was edited, removed or reordered, if a sealed
        value does not match its commitment, or if one is missing before the account is purged
        (purging erases them; the commitments stay in the chain)."""
        record = self.get(account_id)
        events = self.store.history(account_id)
        verify_chain(account_id, events, record.chain_head)
        check_sealed(account_id, events, erased_allowed=record.state is State.PURGED)

    def receipt(self, account_id: str) -> ErasureReceipt:
        """The erasure receipt of a ``PURGED`` account, listing the personal values of its audit
        trail that were redacted (erased, their commitments kept)."""
        from account_lifecycle.receipts import RedactedValue, receipt_for

        record = self.get(account_id)
        if record.state is not State.PURGED:
            raise InvalidTransition(
                state=record.state,
                action="receipt",
                reason="a receipt exists only once the account is purged",
            )
        redacted = tuple(
            RedactedValue(event.seq, event.action, field)
            for event in self.store.history(account_id)
            for field in sealed_fields(event)
            if field not in event.sealed_values
        )
        return receipt_for(record, self.registry.resolve(record), redacted=redacted)

    def holds_identity(self, account_id: str, identity: str) -> bool:
        """Whether the account was opened with *identity* and still keeps its digest (the
        store keeps no identity in plain text, so this is how a host checks one). *identity* is
        compared in its canonical form, as ``open`` stores it."""
        identity = checked_identity(canonical_text(identity), "identity")
        record = self.get(account_id)
        if record.identity is None or self.identity_keys is None:
            return False
        keys = self.identity_keys
        return record.identity in (
            keys.digest(IDENTITY_KIND, identity),
            *keys.aliases(IDENTITY_KIND, identity),
        )

    def rekey_identities(self) -> RekeyReport:
        """Re-key every stored identity and identifier digest to the current key chain (after a
        key was added to ``identity_keys``): one audited write per account that needs it
        (``identities_rekeyed``), none for the others; the plain values are not needed.
        Safe to run again, and beside other commands (a command racing it on one account may
        get ``ConcurrentUpdate``; this method retries). Walks every account of the store."""
        keys = self.identity_keys
        if keys is None:
            raise ConfigurationError("rekey_identities needs identity_keys")
        rekeyed: list[str] = []
        failed: list[tuple[str, str]] = []
        for account_id in self.store.account_ids():
            try:
                if self._rekey(account_id, keys):
                    rekeyed.append(account_id)
            except (LifecycleError, ValueError) as exc:
                failed.append((account_id, str(exc)))
        return RekeyReport(tuple(rekeyed), tuple(failed))

    def _rekey(self, account_id: str, keys: IdentityKeys) -> bool:
        for _ in range(10):
            record = self._own(self.get(account_id))
            changes: dict[str, object] = {}
            if record.identity is not None and (new := keys.rekeyed(record.identity)) is not None:
                changes["identity"] = new
            identifiers = dict(record.identifiers)
            for kind, held in record.identifiers.items():
                if (new := keys.rekeyed(held.value)) is not None:
                    identifiers[kind] = attrs.evolve(held, value=new)
            if identifiers != dict(record.identifiers):
                changes["identifiers"] = identifiers
            if not changes:
                return False
            event = Event("identities_rekeyed", record.state, record.state, {"keys": keys.label})
            try:
                self.journal.commit(record, Decision(changes, (event,)), now=self._now())
            except ConcurrentUpdate:
                continue  # a command won the race: read it again
            return True
        raise ConcurrentUpdate(account_id=account_id, expected_version=record.version)

    # -- policy versions ---------------------------------------------------------------------

    def _pinned_ids(self, source: Policy) -> tuple[str, ...]:
        """The ids of the accounts pinned to *source*, in order: from the store's index of pinned
        labels when it has one (``account_ids_pinned``), else by reading every record."""
        select = getattr(self.store, "account_ids_pinned", None)
        versions = self.registry.versions_of(source.name)
        if select is None or len(versions) == 1:  # a lone version also takes unknown versions
            return tuple(i for i in self.store.account_ids() if self._follows(i, source))
        ids = set(select(source.label))
        if versions[0] == source:
            ids.update(select(source.name))  # records from before versions follow the oldest
        return tuple(sorted(ids))

    def _follows(self, account_id: str, source: Policy) -> bool:
        try:
            return self.registry.pinned_to(source, self.get(account_id))
        except LifecycleError:
            return False

    def _moves(self, source: Policy, target: Policy) -> list[AccountMove]:
        from account_lifecycle.migration import plan_account

        now = self._now()
        moves = []
        for account_id in self._pinned_ids(source):
            try:
                record = self.get(account_id)
            except LifecycleError:
                continue
            if self.registry.pinned_to(source, record):
                moves.append(plan_account(record, source, target, now))
        return moves

    def plan_migration(
        self, source: str, target: str, *, allow: Iterable[str | MigrationRule] = ()
    ) -> MigrationPlan:
        """What ``migrate_accounts`` would do to the accounts pinned to version *source*
        (``"allclients@1"``) to move them to *target*: per state, how many accounts, what
        changes for them in the words of the semantic diff, and which promises it would break
        (``MigrationPlan.refused``: those not in *allow*). Writes nothing. ``UnknownPolicyVersion``
        for a label the registry does not hold; ``ValueError`` for an unknown rule."""
        from account_lifecycle.migration import MigrationPlan, check_rules

        allowed = check_rules(allow)
        a, b = self.registry.get(source), self.registry.get(target)
        return MigrationPlan.of(a, b, self._moves(a, b), allowed)

    def migrate_accounts(
        self,
        source: str,
        target: str,
        *,
        allow: Iterable[str | MigrationRule] = (),
        dry_run: bool = True,
        batch: int = 100,
    ) -> MigrationReport:
        """Move the accounts pinned to version *source* to version *target*, after its plan
        (``plan_migration``). With *dry_run* (the default) only the plan is made.

        Refused as a whole (``MigrationRefused``, nothing written) while the plan breaks a rule
        not in *allow*. Each account is one audited write (``policy_migrated``, naming both
        versions) with compare-and-set, *batch* accounts per store transaction, fenced like any
        other command: an account whose purge steps are in flight, or that a command or sweep
        changed meanwhile (twice), is left ``busy`` for the next run. Resumable: an account
        moved is no longer pinned to *source*, so running it again moves the rest."""
        from account_lifecycle.migration import MigrationReport, plan_account

        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a whole number >= 1, got {batch!r}")
        plan = self.plan_migration(source, target, allow=allow)
        if dry_run:
            return MigrationReport(plan, dry_run=True)
        if plan.refused:
            raise MigrationRefused(source=plan.source, target=plan.target, rules=plan.refused)
        a, b = self.registry.get(source), self.registry.get(target)
        ids = self._pinned_ids(a)
        migrated: list[str] = []
        busy: list[str] = []
        refused: dict[str, tuple[str, ...]] = {}
        failed: dict[str, str] = {}
        for start in range(0, len(ids), batch):
            pending = list(ids[start : start + batch])
            for _ in range(2):  # a write that lost a race is decided again once
                commits: list[Commit] = []
                now = self._now()
                for account_id in pending:
                    try:
                        record = self.get(account_id)
                    except LifecycleError as exc:
                        failed[account_id] = str(exc)
                        continue
                    if not self.registry.pinned_to(a, record):
                        continue  # moved already (a run before this one), or purged since
                    move = plan_account(record, a, b, now)
                    if move.busy:
                        busy.append(account_id)
                    elif move.blocked is not None or move.decision is None:
                        continue
                    elif not_allowed := [r.value for r in move.broken if r not in plan.allowed]:
                        refused[account_id] = tuple(not_allowed)
                    else:
                        commits.append(Commit(record, move.decision, now))
                written = self.journal.commit_many(commits)
                pending = []
                for commit, result in zip(commits, written, strict=True):
                    account_id = commit.record.account_id
                    if isinstance(result, ConcurrentUpdate):
                        pending.append(account_id)
                    elif isinstance(result, Exception):
                        failed[account_id] = str(result)
                    else:
                        migrated.append(account_id)
                if not pending:
                    break
            busy.extend(pending)
        return MigrationReport(
            plan,
            dry_run=False,
            migrated=tuple(migrated),
            busy=tuple(dict.fromkeys(busy)),
            refused=refused,
            failed=failed,
        )


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


def _applied(record: AccountRecord, decision: Decision) -> AccountRecord:
    return apply(record, decision)
