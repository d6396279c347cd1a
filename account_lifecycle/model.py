"""The domain values: states, actions, actors and the stored account record."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs

__all__ = [
    "AccountRecord",
    "Action",
    "Actor",
    "Erasure",
    "HeldIdentifier",
    "Hold",
    "PurgeProgress",
    "PurgeStatus",
    "Relation",
    "Reminder",
    "ServiceState",
    "State",
    "SurveyOutcome",
    "evolve_record",
    "validate_id",
]

MAX_ID_LENGTH = 255


class State(enum.StrEnum):
    """Where an account is in its lifecycle; stored as the lower-case value.

    ``ACTIVE``: open and in use. ``SURVEYED``: the owner asked to cancel and is answering the
    exit survey. ``PENDING_CONFIRM``: waiting for the owner's confirmation (token,
    acknowledgements, prerequisites). ``CANCELLED``: confirmed; access has ended and the
    cancel-time purge runs. ``RESTORABLE``: the cancel-time purge is done and the recovery
    window is open until ``restorable_until``. ``PURGED``: everything the policy erases is
    gone; terminal.
    """

    ACTIVE = "active"
    SURVEYED = "surveyed"
    PENDING_CONFIRM = "pending_confirm"
    CANCELLED = "cancelled"
    RESTORABLE = "restorable"
    PURGED = "purged"


class Action(enum.StrEnum):
    """The name of each command, as recorded in audit events and in ``permissions``.

    Users' commands: ``OPEN``, ``REQUEST_CANCELLATION``, ``SUBMIT_SURVEY``, ``SKIP_SURVEY``,
    ``WITHDRAW``, ``CONFIRM``, ``RESTORE``, ``TRANSFER_OWNERSHIP``, ``CANCEL_SERVICE``; support's
    legal holds: ``PLACE_HOLD``, ``RELEASE_HOLD``; team and identity changes: ``ADD_MEMBER``,
    ``REMOVE_MEMBER``, ``CHANGE_IDENTITY``; the system's: ``PURGE``. Effects (a category
    purged, team access revoked) are recorded under their own names, not as actions.
    """

    OPEN = "open"
    REQUEST_CANCELLATION = "request_cancellation"
    SUBMIT_SURVEY = "submit_survey"
    SKIP_SURVEY = "skip_survey"
    WITHDRAW = "withdraw"
    CONFIRM = "confirm"
    RESTORE = "restore"
    TRANSFER_OWNERSHIP = "transfer_ownership"
    CANCEL_SERVICE = "cancel_service"
    PURGE = "purge"
    PLACE_HOLD = "place_hold"
    RELEASE_HOLD = "release_hold"
    ADD_MEMBER = "add_member"
    REMOVE_MEMBER = "remove_member"
    CHANGE_IDENTITY = "change_identity"


class SurveyOutcome(enum.StrEnum):
    """The answer to the exit survey: ``KEEP_ACCOUNT`` and ``BOOK_MEETING`` return the account
    to ``ACTIVE`` (a meeting request is recorded for the host to act on), ``CANCEL`` moves on to
    ``PENDING_CONFIRM``. A policy offers a subset (``survey.outcomes``)."""

    KEEP_ACCOUNT = "keep_account"
    BOOK_MEETING = "book_meeting"
    CANCEL = "cancel"


class Relation(enum.StrEnum):
    """How an actor relates to an account, read from the stored record, never taken from the
    caller: ``OWNER``, ``MEMBER``, ``SUPPORT`` (a support agent) or ``SYSTEM`` (sweeps and
    other automatic steps). A user who is neither owner nor member has no relation and is
    permitted nothing."""

    OWNER = "owner"
    MEMBER = "member"
    SUPPORT = "support"
    SYSTEM = "system"


class ServiceState(enum.StrEnum):
    """The state of one product an account may cancel alone (``cancel_service``): ``ACTIVE``,
    or ``CANCELLED`` while the account itself stays as it was."""

    ACTIVE = "active"
    CANCELLED = "cancelled"


class PurgeStatus(enum.StrEnum):
    """The progress of erasing one data category (``PurgeProgress.status``): ``PENDING`` (not
    yet attempted, or started afresh after a restore), ``DONE`` (erased, with its item count),
    or ``FAILED`` (the last attempt failed; retried by a later sweep at ``retry_at``)."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


def validate_id(value: object, what: str) -> str:
    """Check an identifier handed in by a host: a non-empty, printable string of sane length."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if not value or len(value) > MAX_ID_LENGTH:
        raise ValueError(f"{what} must be 1 to {MAX_ID_LENGTH} characters, got {len(value)}")
    if not value.isprintable() or value != value.strip():
        raise ValueError(f"{what} must be printable with no surrounding whitespace, got {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be valid Unicode text, got {value!r}") from None
    return value


@attrs.frozen
class Actor:
    """Who takes an action. Compared by value; the relation to an account comes from the store."""

    kind: str = attrs.field(validator=attrs.validators.in_(("user", "support", "system")))
    id: str = attrs.field()

    @id.validator
    def _check_id(self, _attribute: attrs.Attribute[str], value: str) -> None:
        if self.kind == "system":
            if value != "system":
                raise ValueError("the system actor's id is always 'system'")
        else:
            validate_id(value, f"{self.kind} id")

    @classmethod
    def user(cls, user_id: str) -> Actor:
        return cls("user", user_id)

    @classmethod
    def support(cls, agent_id: str) -> Actor:
        return cls("support", agent_id)

    @classmethod
    def system(cls) -> Actor:
        return cls("system", "system")

    def __str__(self) -> str:
        return "system" if self.kind == "system" else f"{self.kind}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> Actor:
        """Inverse of ``str(actor)``: ``"user:42"``, ``"support:ann"``, ``"system"``."""
        if text == "system":
            return cls.system()
        kind, sep, ident = text.partition(":")
        if not sep or kind not in ("user", "support"):
            raise ValueError(f"expected 'user:ID', 'support:ID' or 'system', got {text!r}")
        return cls(kind, ident)


@attrs.frozen
class PurgeProgress:
    """Where the erasure of one data category stands, stored with the account."""

    status: PurgeStatus = PurgeStatus.PENDING
    attempts: int = 0
    items: int = 0
    error: str | None = None
    at: datetime | None = None  # when it was erased (DONE) or last failed (FAILED)
    retry_at: datetime | None = None  # earliest next attempt after a failure
    purger: str | None = None  # name of the purger that erased it


@attrs.frozen
class Hold:
    """A legal hold on one data category: the category is not erased while the hold stands.

    ``by`` is the actor who placed it (``str(actor)``, an id such as ``"support:ann"``);
    ``mode`` is what the hold does to the purge, the policy's ``purge.on_hold`` when it was
    placed: ``"wait"`` (the account waits) or ``"retain"`` (the category is kept, the account
    moves on)."""

    at: datetime
    by: str
    reason: str
    mode: str = "wait"


@attrs.frozen
class Reminder:
    """A reminder that the recovery window ends soon: ``before`` the end (``"7 days"``), due
    ``at``, and ``sent_at`` once its audit event was committed (sent exactly once)."""

    before: str
    at: datetime
    sent_at: datetime | None = None


@attrs.frozen
class HeldIdentifier:
    """An identifier (an e-mail address, a phone number, ...) an account holds: no other account
    may open with it until ``free_at`` (None: held until further notice)."""

    value: str
    free_at: datetime | None = None


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class Erasure:
    """Purge steps in flight: a runner (the claim's ``owner``) committed that it starts the
    ``steps`` (ledger keys, in the order they run) of ``phase`` (``"cancel"`` or ``"expiry"``) at
    ``started_at``, and calls their purgers and hooks only after that commit. Until the commit that
    records their outcome clears it, a command that would change what these steps depend on (a
    restore, a hold on one of them) is refused with ``ErasureInProgress``. A runner that died
    leaves it in place: the next runner to claim the account runs the steps again (purgers are
    idempotent) and clears it."""

    owner: str
    phase: str
    steps: tuple[str, ...] = attrs.field(converter=_strings)
    started_at: datetime


_EMPTY_MAPPING: Mapping[str, Any] = MappingProxyType({})
_NO_MEMBERS: frozenset[str] = frozenset()
# Small mappings of plain values (pins, service states) are the same for most accounts: one
# read-only copy of each serves them all (memory per stored account, bench/engine.py). Bounded:
# cleared when full, which only costs later records their own copies.
_SHARED: dict[tuple[tuple[str, Any], ...], Mapping[str, Any]] = {}
_SHARED_LIMIT = 4096
_SHARED_ITEMS = 8


def _frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only copy of *value*: the one empty mapping when it is empty, and one shared copy
    per distinct small mapping of strings or enum members (immutable, so sharing is invisible)."""
    if not value:
        return _EMPTY_MAPPING
    items = tuple(value.items())
    if len(items) > _SHARED_ITEMS or not all(type(v) is str or isinstance(v, enum.Enum) for _, v in items):
        return MappingProxyType(dict(items))
    shared = _SHARED.get(items)
    if shared is None:
        if len(_SHARED) >= _SHARED_LIMIT:
            _SHARED.clear()
        shared = _SHARED[items] = MappingProxyType(dict(items))
    return shared


def _held_identifiers(value: Mapping[str, HeldIdentifier | str]) -> Mapping[str, HeldIdentifier]:
    """Kind -> ``HeldIdentifier``; a plain string value is an identifier held until further notice."""
    if not value:
        return _EMPTY_MAPPING
    return MappingProxyType(
        {
            kind: held if isinstance(held, HeldIdentifier) else HeldIdentifier(held)
            for kind, held in value.items()
        }
    )


def _keys(value: Iterable[Iterable[str]]) -> tuple[tuple[str, ...], ...]:
    """``(key, action, digest)`` entries; ``(key, action)`` from records written before keys were
    bound to their arguments are read as they are."""
    out = []
    for entry in value:
        items = tuple(str(item) for item in entry)
        if len(items) not in (2, 3):
            raise ValueError(f"an idempotency key entry is (key, action[, digest]), got {len(items)} items")
        out.append(items)
    return tuple(out)


def _frozen_members(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        raise TypeError("members must be a collection of user ids, not one string")
    return frozenset(value) or _NO_MEMBERS


@attrs.frozen(unsafe_hash=False)
class AccountRecord:
    """One account as stored. Immutable: every change is a new record with ``version + 1``."""

    account_id: str
    state: State
    owner: str
    members: frozenset[str] = attrs.field(converter=_frozen_members, factory=frozenset)
    identity: str | None = None
    version: int = 1
    cancelled_at: datetime | None = None
    restorable_until: datetime | None = None
    purge: Mapping[str, PurgeProgress] = attrs.field(converter=_frozen_mapping, factory=dict)
    services: Mapping[str, ServiceState] = attrs.field(converter=_frozen_mapping, factory=dict)
    chain_head: str = ""
    last_seq: int = 0  # seq of the latest audit event
    policy: str = ""  # name of the policy the account was opened under ("" for older records)
    cancellation_id: str | None = None  # the open cancellation request a confirm must answer
    recent_keys: tuple[tuple[str, ...], ...] = attrs.field(default=(), converter=_keys)
    # ^ (idempotency key, action, digest of the arguments) of the latest keyed commands, newest
    #   last, bounded; records written before the digest have (key, action) pairs

    def applied(self, key: str) -> str | None:
        """The action an idempotency key was already applied with, if it was."""
        for entry in self.recent_keys:
            if entry[0] == key:
                return entry[1]
        return None

    def key_digest(self, key: str) -> str | None:
        """The digest of the arguments an idempotency key was applied with; None if the key was
        not applied, or was applied before keys were bound to their arguments."""
        for entry in self.recent_keys:
            if entry[0] == key:
                return entry[2] if len(entry) > 2 else None
        return None

    identity_released_at: datetime | None = None  # the identity may open a fresh account since
    holds: Mapping[str, Hold] = attrs.field(converter=_frozen_mapping, factory=dict)
    # ^ legal holds by data category
    reminders: tuple[Reminder, ...] = attrs.field(default=(), converter=tuple)
    # ^ the reminders of the recovery window under way, sent or not
    identifiers: Mapping[str, HeldIdentifier] = attrs.field(converter=_held_identifiers, factory=dict)
    # ^ identifiers by kind ("email", "phone"), kept apart from the single ``identity``
    erasure: Erasure | None = None
    # ^ purge steps started and not yet recorded (the fence commands respect)
    policy_version: int = 0
    # ^ the version of ``policy`` whose rules the account follows now (0: a record written
    #   before versions were recorded; the lifecycle's registry resolves it)
    pins: Mapping[str, str] = attrs.field(converter=_frozen_mapping, factory=dict)
    # ^ state value -> the policy label (``name@version``) in force when the account entered it

    @property
    def policy_label(self) -> str:
        """``name@version`` of the policy version the account is pinned to; the name alone for
        a record written before versions were recorded."""
        return f"{self.policy}@{self.policy_version}" if self.policy_version else self.policy

    @property
    def live_identity(self) -> str | None:
        """The identity this account still holds, which no other account may take."""
        return self.identity if self.identity_released_at is None else None

    def relation_of(self, actor: Actor) -> Relation | None:
        """The actor's relation to this account, read from the record, never from the caller."""
        if actor.kind == "support":
            return Relation.SUPPORT
        if actor.kind == "system":
            return Relation.SYSTEM
        if actor.id == self.owner:
            return Relation.OWNER
        if actor.id in self.members:
            return Relation.MEMBER
        return None


_RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in attrs.fields(AccountRecord))
_RECORD_CONVERTERS: dict[str, Any] = {
    f.name: f.converter for f in attrs.fields(AccountRecord) if f.converter is not None
}
_RECORD_FIELD_SET = frozenset(_RECORD_FIELDS)
_set = object.__setattr__
#: A changer for each tuple of changed fields, in the order they were given. Bounded: cleared
#: when full (which only costs a rebuild); the write paths use a few dozen.
_CHANGERS: dict[tuple[str, ...], Callable[..., AccountRecord]] = {}
_CHANGERS_LIMIT = 512


def _changer(changed: tuple[str, ...]) -> Callable[..., AccountRecord]:
    """A function ``(record, *values)`` that builds a new record slot by slot, one line per
    field (as attrs writes its ``__init__``): each of *changed* from its value through the
    field's converter, every other field the record's own (already converted, immutable).
    Slots are set through their descriptors (half the cost of ``object.__setattr__``); a loop
    over the fields would cost twice as much."""
    scope: dict[str, Any] = {"_new": object.__new__, "AccountRecord": AccountRecord}
    arguments = [f"v{i}" for i in range(len(changed))]
    lines = [f"def change(record, {', '.join(['', *arguments])[2:]}):", "    new = _new(AccountRecord)"]
    given = dict(zip(changed, arguments, strict=True))
    for name in _RECORD_FIELDS:
        scope[f"set_{name}"] = vars(AccountRecord)[name].__set__
        value = given.get(name)
        if value is None:
            value = f"record.{name}"
        elif name in _RECORD_CONVERTERS:
            scope[f"convert_{name}"] = _RECORD_CONVERTERS[name]
            value = f"convert_{name}({value})"
        lines.append(f"    set_{name}(new, {value})")
    lines.append("    return new")
    exec("\n".join(lines), scope)  # noqa: S102 - the text is built above from the field names
    change: Callable[..., AccountRecord] = scope["change"]
    return change


def evolve_record(record: AccountRecord, **changes: Any) -> AccountRecord:
    """``attrs.evolve(record, **changes)``, equal to it, but only the changed fields go through
    their converters: the others are the record's own, already converted (and immutable)."""
    changed = tuple(changes)
    change = _CHANGERS.get(changed)
    if change is None:
        if not _RECORD_FIELD_SET.issuperset(changed):
            unknown = sorted(changes.keys() - _RECORD_FIELD_SET)
            raise TypeError(f"AccountRecord has no field(s) {', '.join(unknown)}")
        if len(_CHANGERS) >= _CHANGERS_LIMIT:
            _CHANGERS.clear()
        change = _CHANGERS[changed] = _changer(changed)
    return change(record, *changes.values())
