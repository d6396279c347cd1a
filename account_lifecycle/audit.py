"""Audit events and their per-account hash chain.

Each event's hash is SHA-256 over the previous event's hash and a canonical JSON
encoding of the event (sorted keys, no spaces, ASCII escapes, UTC timestamps with
microseconds). The record's ``chain_head`` is the last hash, so removing the last
event is detected too.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import attrs

from account_lifecycle.clock import require_aware
from account_lifecycle.errors import HistoryTampered
from account_lifecycle.model import Actor, State
from account_lifecycle.sealed import SealedValue

__all__ = ["GENESIS", "AuditEvent", "ChainWriter", "chain_event", "format_time", "verify_chain"]

GENESIS = "0" * 64
JSONValue = Any
# json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=True), built once:
# json.dumps builds a new encoder on every call that passes options.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def format_time(moment: datetime) -> str:
    """Fixed-width UTC text that sorts like the moments it names."""
    # a datetime already in UTC (what the write path passes) needs no conversion
    utc = moment if type(moment) is datetime and moment.tzinfo is UTC else require_aware(moment)
    year = utc.year
    if year < 1000:  # strftime's text for such years differs by platform: keep it exactly
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # the same text as strftime("%Y-%m-%dT%H:%M:%S.%fZ"), in a quarter of the time: the minute's
    # text (the same for the many moments of a minute) kept, the seconds formatted on to it
    minute = (year, utc.month, utc.day, utc.hour, utc.minute)
    prefix = _MINUTES.get(minute)
    if prefix is None:
        if len(_MINUTES) >= _MINUTES_LIMIT:
            _MINUTES.clear()
        prefix = _MINUTES[minute] = _MINUTE % minute
    return prefix + _SECONDS % (utc.second, utc.microsecond)


_MINUTE = "%04d-%02d-%02dT%02d:%02d:"
_SECONDS = "%02d.%06dZ"
#: The text of recent minutes (bounded: cleared when full, which costs a reformat).
_MINUTES: dict[tuple[int, int, int, int, int], str] = {}
_MINUTES_LIMIT = 1024


def _freeze(value: JSONValue, path: str) -> JSONValue:
    """Deep-copy JSON-like data into immutable containers, refusing anything else."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"audit detail {path} must be a finite number, got {value!r}")
        return value
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"audit detail keys must be strings, got {key!r} at {path}")
            out[key] = _freeze(item, f"{path}.{key}")
        return MappingProxyType(out)
    if isinstance(value, list | tuple | frozenset | set):
        items = sorted(value) if isinstance(value, frozenset | set) else value
        return tuple(_freeze(item, f"{path}[]") for item in items)
    raise TypeError(f"audit detail {path} must be JSON-like, got {type(value).__name__}")


#: Values ``_freeze`` keeps as they are (exact types; subclasses take the general path).
_KEPT = frozenset({str, int, bool, type(None)})


def _plain_item(value: dict[str, JSONValue]) -> bool:
    """Whether the one item of *value* has a text key and a value ``_freeze`` keeps as it is."""
    for key, item in value.items():
        return type(key) is str and type(item) in _KEPT
    return False


def _freeze_details(value: Mapping[str, JSONValue]) -> Mapping[str, JSONValue]:
    if type(value) is dict:
        # The usual details: text keys, plain scalar values. ``_freeze`` would copy them into
        # a read-only mapping as they are; so does this, without a call per value.
        for key, item in value.items():
            if type(key) is not str or type(item) not in _KEPT:
                break
        else:
            return MappingProxyType(dict(value))
    frozen: Mapping[str, JSONValue] = _freeze(value, "details")
    return frozen


_escape = json.encoder.encode_basestring_ascii
_int_text = int.__repr__
_float_text = float.__repr__


def _encode(value: JSONValue) -> str:
    """*value* (frozen audit data) as ``_CANONICAL`` encodes its thawed form: the common
    types by hand, anything else by the encoder itself."""
    kind = type(value)
    if kind is str:
        return _escape(value)
    if kind is int:
        return _int_text(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is MappingProxyType or kind is dict:
        size = len(value)
        if size == 1:  # the usual details: one text key
            for key, item in value.items():
                if type(key) is str:
                    return (
                        "{"
                        + _escape(key)
                        + ":"
                        + (_escape(item) if type(item) is str else _encode(item))
                        + "}"
                    )
        elif not size:
            return "{}"
        for key in value:
            if type(key) is not str:
                break
        else:
            return (
                "{"
                + ",".join(
                    [
                        _escape(key) + ":" + (_escape(item) if type(item) is str else _encode(item))
                        for key, item in sorted(value.items())
                    ]
                )
                + "}"
            )
    elif kind is tuple:
        return "[" + ",".join([_encode(item) for item in value]) + "]"
    elif kind is float and math.isfinite(value):
        return _float_text(value)
    return _CANONICAL.encode(_thaw(value))


def _thaw(value: JSONValue) -> JSONValue:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _frozen_sealed(value: Mapping[str, SealedValue]) -> Mapping[str, SealedValue]:
    return MappingProxyType(dict(value))


#: The JSON text of each state's name, as ``_encode(str(state))`` gives it.
_STATE_TEXT: dict[object, str] = {state: _escape(state.value) for state in State}
#: The canonical payload, its encoded fields formatted in (keys sorted; ``hash`` after from_state).
_PAYLOAD = (
    '{"account_id":%s,"action":%s,"actor":%s,"at":"%s","details":%s,"from_state":%s%s'
    ',"policy":%s,"prev_hash":%s,"seq":%s,"to_state":%s,"version":%s}'
)
#: ``_PAYLOAD`` with an event's action, states and policy in place, by those four: most events
#: of a store share a few dozen. Bounded: cleared when full (which costs only a rebuild).
_TEMPLATES: dict[tuple[str, object, object, object], str] = {}
_TEMPLATE_LIMIT = 4096


def _state_text(state: object) -> str:
    if state is None:
        return "null"
    return _STATE_TEXT[state] if type(state) is State else _encode(str(state))


def _template(action: str, from_state: object, to_state: object, policy: object) -> str:
    """``_PAYLOAD`` with the text of *action*, the states and *policy* in place and ``%s`` left
    for account id, actor, moment, details, hash part, previous hash, seq and version. Kept by
    the four when they are of the types events are built with (text and ``State``)."""
    key = (action, from_state, to_state, policy)
    found = _TEMPLATES.get(key)
    if found is not None:
        return found

    def fixed(text: str) -> str:  # a constant part, its ``%`` kept from the formatting
        return text.replace("%", "%%")

    found = _PAYLOAD % (
        "%s",
        fixed(_escape(action)),
        "%s",
        "%s",
        "%s",
        fixed(_state_text(from_state)),
        "%s",
        fixed(_escape(policy) if type(policy) is str else _encode(policy)),
        "%s",
        "%s",
        fixed(_state_text(to_state)),
        "%s",
    )
    if (
        type(policy) is str and (from_state is None or type(from_state) is State) and type(to_state) is State
    ):  # equal keys of other types (a State and its text) could otherwise share a template
        if len(_TEMPLATES) >= _TEMPLATE_LIMIT:
            _TEMPLATES.clear()
        _TEMPLATES[key] = found
    return found


@attrs.frozen(unsafe_hash=False)
class AuditEvent:
    """One accepted command or one effect, as recorded. Carries ids, never names or e-mails."""

    seq: int
    account_id: str
    at: datetime
    actor: Actor
    action: str
    from_state: State | None
    to_state: State
    policy: str
    details: Mapping[str, JSONValue] = attrs.field(factory=dict, converter=_freeze_details)
    prev_hash: str = GENESIS
    hash: str = ""
    version: int = 0  # the account's version written together with this event
    # Personal values the event sealed (``details["sealed"]`` holds their commitments): kept in
    # the store's side table, not hashed, erased at purge. Empty once erased.
    sealed_values: Mapping[str, SealedValue] = attrs.field(
        factory=dict, converter=_frozen_sealed, repr=False, eq=False
    )

    def payload(self) -> dict[str, JSONValue]:
        """The hashed content: everything but ``hash`` itself, as plain JSON data."""
        return {
            "seq": self.seq,
            "account_id": self.account_id,
            "at": format_time(self.at),
            "actor": str(self.actor),
            "action": str(self.action),
            "from_state": None if self.from_state is None else str(self.from_state),
            "to_state": str(self.to_state),
            "policy": self.policy,
            "details": _thaw(self.details),
            "prev_hash": self.prev_hash,
            "version": self.version,
        }

    def canonical(self) -> str:
        """The hashed text: ``payload()`` as canonical JSON (sorted keys, no spaces, ASCII
        escapes), built field by field, the same text as ``_CANONICAL.encode(self.payload())``."""
        return self._text("")

    def stored_json(self) -> str:
        """``to_dict()`` as canonical JSON, the form stores keep: the hashed text with ``hash``
        in its sorted place, without building the dictionaries."""
        return self._text(',"hash":' + _encode(self.hash))

    def _text(self, hash_part: str) -> str:
        """The canonical text of the payload with *hash_part* where ``"hash"`` sorts (after
        from_state)."""
        return _compose(
            self.action,
            self.from_state,
            self.to_state,
            self.policy,
            self.account_id,
            self.actor,
            self.at,
            _encode(self.details),
            hash_part,
            self.prev_hash,
            self.seq,
            self.version,
        )

    def compute_hash(self) -> str:
        """SHA-256 of the canonical encoding of ``payload()`` (``canonical()``): what ``hash``
        must equal."""
        return hashlib.sha256(self.canonical().encode("ascii")).hexdigest()

    def to_dict(self) -> dict[str, JSONValue]:
        """The event as plain JSON data, ``hash`` included (what stores write)."""
        return {**self.payload(), "hash": self.hash}

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue]) -> AuditEvent:
        return cls(
            seq=data["seq"],
            account_id=data["account_id"],
            at=datetime.fromisoformat(data["at"]),
            actor=Actor.parse(data["actor"]),
            action=data["action"],
            from_state=None if data["from_state"] is None else State(data["from_state"]),
            to_state=State(data["to_state"]),
            policy=data["policy"],
            details=data["details"],
            prev_hash=data["prev_hash"],
            hash=data["hash"],
            version=data["version"],
        )


def chain_event(
    *,
    prev_hash: str,
    seq: int,
    account_id: str,
    at: datetime,
    actor: Actor,
    action: str,
    from_state: State | None,
    to_state: State,
    policy: str,
    details: Mapping[str, JSONValue] | None = None,
    version: int = 0,
    sealed_values: Mapping[str, SealedValue] | None = None,
) -> AuditEvent:
    """Build the next event of a chain, its hash computed: ``AuditEvent(...)`` with these
    fields (the same converters), the hash set before anyone else sees the event."""
    return chain_text(
        prev_hash,
        seq,
        account_id,
        at,
        actor,
        action,
        from_state,
        to_state,
        policy,
        details,
        version,
        sealed_values,
    )[0]


def chain_text(
    prev_hash: str,
    seq: int,
    account_id: str,
    at: datetime,
    actor: Actor,
    action: str,
    from_state: State | None,
    to_state: State,
    policy: str,
    details: Mapping[str, JSONValue] | None,
    version: int,
    sealed_values: Mapping[str, SealedValue] | None,
) -> tuple[AuditEvent, str]:
    """``chain_event``'s event, its fields in that order (no keywords to match: the write path's
    form), and the canonical text its hash was computed from (``canonical()``), for a writer
    that stores the event's text (``stored_text``) without formatting it again."""
    # Built field by field as the attrs ``__init__`` does (no validators, two converters), so
    # that the hash is set once: ``attrs.evolve`` would build and convert the event again. Each
    # field is set through its slot (half the cost of ``object.__setattr__``).
    if type(at) is not datetime or at.tzinfo is not UTC:  # one in UTC is its own astimezone(UTC)
        at = require_aware(at)
    if type(action) is not str:
        action = str(action)
    if not details:
        frozen, details_text = _NO_DETAILS, "{}"
    elif type(details) is dict and len(details) == 1 and _plain_item(details):
        # the usual details, one text key and a plain value: frozen and encoded at once
        ((key, item),) = details.items()
        frozen = MappingProxyType({key: item})
        details_text = (
            "{" + _escape(key) + ":" + (_escape(item) if type(item) is str else _encode(item)) + "}"
        )
    else:
        frozen = _freeze_details(details)
        details_text = _encode(frozen)
    event: AuditEvent = _new(AuditEvent)
    _seq(event, seq)
    _account_id(event, account_id)
    _at(event, at)
    _actor(event, actor)
    _action(event, action)
    _from_state(event, from_state)
    _to_state(event, to_state)
    _policy(event, policy)
    _details(event, frozen)
    _prev_hash(event, prev_hash)
    _version(event, version)
    _sealed_values(event, _frozen_sealed(sealed_values) if sealed_values else _NO_SEALED)
    text = _compose(
        action, from_state, to_state, policy, account_id, actor, at, details_text, "", prev_hash, seq, version
    )
    _hash(event, _sha256(text.encode("ascii")).hexdigest())
    return event, text


#: Where ``"hash"`` goes in an event's stored text: before ``"policy"``, the first top-level key
#: after ``"from_state"``. The fields after it are JSON strings and numbers (``"`` escaped in
#: strings), so the last occurrence of this text is the top-level key, whatever the details hold.
_POLICY_KEY = ',"policy":'


def stored_text(event: AuditEvent, canonical: str) -> str:
    """``event.stored_json()`` made from *canonical*, the canonical text its hash was computed
    from (``chain_text``), by putting ``"hash"`` in its sorted place."""
    if type(event.policy) is not str:  # pragma: no cover - a policy label is text
        return event.stored_json()
    cut = canonical.rindex(_POLICY_KEY)
    return f'{canonical[:cut]},"hash":"{event.hash}"{canonical[cut:]}'


def _compose(
    action: object,
    from_state: object,
    to_state: object,
    policy: object,
    account_id: object,
    actor: object,
    at: datetime,
    details_text: str,
    hash_part: str,
    prev_hash: object,
    seq: object,
    version: object,
) -> str:
    """An event's canonical text from its fields (the details encoded already), *hash_part*
    where ``"hash"`` sorts (after from_state): one formatting of the encoded fields into the
    template of its action, states and policy."""
    if type(action) is not str:
        action = str(action)
    template = _TEMPLATES.get((action, from_state, to_state, policy))
    if template is None:
        template = _template(action, from_state, to_state, policy)
    return template % (
        _escape(account_id) if type(account_id) is str else _encode(account_id),
        _escape(str(actor)),
        format_time(at),
        details_text,
        hash_part,
        _escape(prev_hash) if type(prev_hash) is str else _encode(prev_hash),
        _int_text(seq) if type(seq) is int else _encode(seq),
        _int_text(version) if type(version) is int else _encode(version),
    )


_new = object.__new__
_sha256 = hashlib.sha256
#: The sealed values of an event that sealed none, and the details of one without any
#: (read-only, so one serves every event).
_NO_SEALED: Mapping[str, SealedValue] = MappingProxyType({})
_NO_DETAILS: Mapping[str, JSONValue] = MappingProxyType({})
#: Each field's slot setter (``AuditEvent`` is a frozen slotted class).
_SLOT = {field.name: vars(AuditEvent)[field.name].__set__ for field in attrs.fields(AuditEvent)}
_seq, _account_id, _at, _actor = _SLOT["seq"], _SLOT["account_id"], _SLOT["at"], _SLOT["actor"]
_action, _from_state, _to_state = _SLOT["action"], _SLOT["from_state"], _SLOT["to_state"]
_policy, _details, _prev_hash, _hash = _SLOT["policy"], _SLOT["details"], _SLOT["prev_hash"], _SLOT["hash"]
_version, _sealed_values = _SLOT["version"], _SLOT["sealed_values"]


def verify_chain(account_id: str, events: Sequence[AuditEvent], chain_head: str) -> None:
    """Raise ``HistoryTampered`` at the first event that is edited, missing or out of order."""
    prev = GENESIS
    for position, event in enumerate(events, start=1):
        if event.seq != position:
            raise HistoryTampered(
                account_id=account_id,
                seq=position,
                reason=f"expected seq {position}, found {event.seq}",
            )
        if event.version < 1:
            raise HistoryTampered(account_id=account_id, seq=position, reason="has no account version")
        if event.account_id != account_id:
            raise HistoryTampered(account_id=account_id, seq=position, reason="belongs to another account")
        if event.prev_hash != prev:
            raise HistoryTampered(
                account_id=account_id, seq=position, reason="does not follow the previous event"
            )
        if event.compute_hash() != event.hash:
            raise HistoryTampered(
                account_id=account_id, seq=position, reason="content does not match its hash"
            )
        prev = event.hash
    if prev != chain_head:
        raise HistoryTampered(
            account_id=account_id,
            seq=len(events) + 1,
            reason="the account's chain head does not match its last event (an event was removed)",
        )


@attrs.define
class ChainWriter:
    """Appends events to one account's chain, continuing from its stored head. Every event
    carries ``version``, the account version they are committed with."""

    account_id: str
    policy: str
    head: str
    seq: int
    version: int
    events: list[AuditEvent] = attrs.field(factory=list)

    def append(
        self,
        *,
        at: datetime,
        actor: Actor,
        action: str,
        from_state: State | None,
        to_state: State,
        details: Mapping[str, JSONValue] | None = None,
        sealed_values: Mapping[str, SealedValue] | None = None,
    ) -> AuditEvent:
        return self._next(at, actor, action, from_state, to_state, details, sealed_values)[0]

    def append_keeping_text(
        self,
        *,
        at: datetime,
        actor: Actor,
        action: str,
        from_state: State | None,
        to_state: State,
        details: Mapping[str, JSONValue] | None = None,
        sealed_values: Mapping[str, SealedValue] | None = None,
    ) -> tuple[AuditEvent, str]:
        """``append``, and the event's stored text (``stored_json()``) made from the canonical
        text its hash was computed from, for a store that writes it (``codec.stored_forms``)."""
        event, canonical = self._next(at, actor, action, from_state, to_state, details, sealed_values)
        return event, stored_text(event, canonical)

    def _next(
        self,
        at: datetime,
        actor: Actor,
        action: str,
        from_state: State | None,
        to_state: State,
        details: Mapping[str, JSONValue] | None,
        sealed_values: Mapping[str, SealedValue] | None,
    ) -> tuple[AuditEvent, str]:
        """The next event, chained after the head (``chain_text``), and its canonical text."""
        self.seq += 1
        event, canonical = chain_text(
            self.head,
            self.seq,
            self.account_id,
            at,
            actor,
            action,
            from_state,
            to_state,
            self.policy,
            details,
            self.version,
            sealed_values,
        )
        self.head = event.hash
        self.events.append(event)
        return event, canonical
