"""Plain-data encoding of records and events, shared by every persistent store."""

from __future__ import annotations

import contextlib
import enum
import functools
import json
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from datetime import datetime
from typing import Any, TypeVar

import attrs

from account_lifecycle.audit import AuditEvent, format_time
from account_lifecycle.errors import HistoryTampered, RecordCorrupt
from account_lifecycle.model import (
    AccountRecord,
    Erasure,
    HeldIdentifier,
    Hold,
    PurgeProgress,
    PurgeStatus,
    Reminder,
    ServiceState,
    State,
    _frozen_mapping,
    _frozen_members,
    _held_identifiers,
    _keys,
)
from account_lifecycle.sealed import SealedValue

__all__ = [
    "dumps",
    "event_from_json",
    "event_to_json",
    "parse_time",
    "record_from_dict",
    "record_from_json",
    "record_to_dict",
    "record_to_json",
    "sealed_from_row",
    "time_or_none",
    "time_text",
]


# Built once: json.dumps builds a new encoder on every call that passes options.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def dumps(data: Any) -> str:
    """Compact, stable JSON; ASCII escapes so any text (even lone surrogates) round-trips."""
    return _ENCODER.encode(data)


#: ``format_time`` remembered for the moments written lately: a sweep writes the same few
#: (its ``now``, each record's cancellation and window) many times, and formatting one costs
#: more than a record field's whole encoding. Equal moments have the same text, whatever their
#: time zone; a naive one is refused each time (errors are not remembered).
time_text = functools.lru_cache(maxsize=4096)(format_time)


def time_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else time_text(moment)


def parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _progress_to_dict(progress: PurgeProgress) -> dict[str, Any]:
    return {
        "status": progress.status.value,
        "attempts": progress.attempts,
        "items": progress.items,
        "error": progress.error,
        "at": time_or_none(progress.at),
        "retry_at": time_or_none(progress.retry_at),
        "purger": progress.purger,
    }


def _progress_from_dict(data: dict[str, Any]) -> PurgeProgress:
    return PurgeProgress(
        status=_purge_status(data["status"]),
        attempts=data["attempts"],
        items=data["items"],
        error=data["error"],
        at=parse_time(data["at"]),
        retry_at=parse_time(data["retry_at"]),
        purger=data["purger"],
    )


def _closure_to_dict(record: AccountRecord) -> dict[str, Any]:
    """Holds, reminders and identifiers, each written only when there is one: records without
    them keep the exact bytes they had before these fields existed."""
    data: dict[str, Any] = {}
    if record.holds:
        data["holds"] = {
            name: {"at": time_or_none(h.at), "by": h.by, "reason": h.reason, "mode": h.mode}
            for name, h in record.holds.items()
        }
    if record.reminders:
        data["reminders"] = [
            {"before": r.before, "at": time_or_none(r.at), "sent_at": time_or_none(r.sent_at)}
            for r in record.reminders
        ]
    if record.identifiers:
        data["identifiers"] = {
            kind: {"value": i.value, "free_at": time_or_none(i.free_at)}
            for kind, i in record.identifiers.items()
        }
    if record.erasure is not None:
        e = record.erasure
        data["erasure"] = {
            "owner": e.owner,
            "phase": e.phase,
            "steps": list(e.steps),
            "started_at": time_text(e.started_at),
        }
    if record.policy_version:
        data["policy_version"] = record.policy_version
    if record.pins:
        data["pins"] = dict(record.pins)
    return data


def _closure_from_dict(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "holds": {
            name: Hold(at=datetime.fromisoformat(h["at"]), by=h["by"], reason=h["reason"], mode=h["mode"])
            for name, h in data.get("holds", {}).items()
        },
        "reminders": tuple(
            Reminder(r["before"], datetime.fromisoformat(r["at"]), parse_time(r["sent_at"]))
            for r in data.get("reminders", ())
        ),
        "identifiers": {
            kind: HeldIdentifier(i["value"], parse_time(i["free_at"]))
            for kind, i in data.get("identifiers", {}).items()
        },
        "erasure": _erasure_from_dict(data.get("erasure")),
        "policy_version": _version_from(data.get("policy_version", 0)),
        "pins": _pins_from(data.get("pins", {})),
    }


_E = TypeVar("_E", bound=enum.Enum)


def _members(kind: type[_E]) -> Callable[[Any], _E]:
    """``kind(value)`` for decoding: a dictionary look-up for the members' own text, the enum
    itself for anything else (so that it refuses what it refused, with its own error)."""
    table: dict[str, _E] = {member.value: member for member in kind}

    def member(value: Any) -> _E:
        found = table.get(value) if type(value) is str else None
        return kind(value) if found is None else found

    return member


_state = _members(State)
_service_state = _members(ServiceState)
_purge_status = _members(PurgeStatus)


def _version_from(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("policy_version is not a whole number >= 0")
    return value


def _pins_from(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError("pins is not a table of state to policy label")
    return {_state(k).value: v for k, v in value.items()}


def _erasure_from_dict(data: dict[str, Any] | None) -> Erasure | None:
    if data is None:
        return None
    return Erasure(
        owner=data["owner"],
        phase=data["phase"],
        steps=tuple(data["steps"]),
        started_at=datetime.fromisoformat(data["started_at"]),
    )


def record_to_dict(record: AccountRecord) -> dict[str, Any]:
    return {
        "account_id": record.account_id,
        "state": record.state.value,
        "owner": record.owner,
        "members": sorted(record.members),
        "identity": record.identity,
        "version": record.version,
        "cancelled_at": time_or_none(record.cancelled_at),
        "restorable_until": time_or_none(record.restorable_until),
        "purge": {name: _progress_to_dict(p) for name, p in record.purge.items()},
        "services": {name: state.value for name, state in record.services.items()},
        "chain_head": record.chain_head,
        "last_seq": record.last_seq,
        "policy": record.policy,
        "cancellation_id": record.cancellation_id,
        "recent_keys": [list(entry) for entry in record.recent_keys],
        "identity_released_at": time_or_none(record.identity_released_at),
        **_closure_to_dict(record),
    }


def _record_from_dict_general(data: dict[str, Any]) -> AccountRecord:
    """``record_from_dict`` through ``AccountRecord``'s own ``__init__`` (every converter)."""
    return AccountRecord(
        account_id=data["account_id"],
        state=_state(data["state"]),
        owner=data["owner"],
        members=frozenset(data["members"]),
        identity=data["identity"],
        version=data["version"],
        cancelled_at=parse_time(data["cancelled_at"]),
        restorable_until=parse_time(data["restorable_until"]),
        purge={name: _progress_from_dict(p) for name, p in data["purge"].items()},
        services={name: _service_state(s) for name, s in data["services"].items()},
        chain_head=data["chain_head"],
        last_seq=data["last_seq"],
        policy=data.get("policy", ""),
        cancellation_id=data.get("cancellation_id"),
        recent_keys=tuple(tuple(entry) for entry in data.get("recent_keys", ())),
        identity_released_at=parse_time(data["identity_released_at"]),
        **_closure_from_dict(data),
    )


_new = object.__new__
_set = object.__setattr__
#: The fields ``record_from_dict`` sets, in ``AccountRecord``'s order; another set of fields
#: (the model changed) takes the general path.
_DECODED_FIELDS = (
    "account_id",
    "state",
    "owner",
    "members",
    "identity",
    "version",
    "cancelled_at",
    "restorable_until",
    "purge",
    "services",
    "chain_head",
    "last_seq",
    "policy",
    "cancellation_id",
    "recent_keys",
    "identity_released_at",
    "holds",
    "reminders",
    "identifiers",
    "erasure",
    "policy_version",
    "pins",
)
#: A key the record's dictionary does not hold.
_ABSENT: Any = object()
_FAST_DECODE = tuple(f.name for f in attrs.fields(AccountRecord)) == _DECODED_FIELDS


def _services_from(value: Any) -> dict[str, ServiceState]:
    return {name: _service_state(state) for name, state in value.items()}


#: Stored pins and service states decoded lately, by their stored items: records share a few
#: (``model._frozen_mapping`` shares their read-only copies), and checking and converting them
#: costs more than a look-up. Only what decoded without error is kept; bounded, cleared when full.
_DECODED_PINS: dict[tuple[tuple[Any, Any], ...], Mapping[str, Any]] = {}
_DECODED_SERVICES: dict[tuple[tuple[Any, Any], ...], Mapping[str, Any]] = {}
_DECODED_LIMIT = 1024


def _decoded_table(
    known: dict[tuple[tuple[Any, Any], ...], Mapping[str, Any]],
    value: Any,
    decode: Callable[[Any], dict[str, Any]],
) -> Mapping[str, Any]:
    """``_frozen_mapping(decode(value))``, remembered in *known* for a stored table of text: a
    table holding anything else is decoded (and refused) each time."""
    if type(value) is not dict:
        return _frozen_mapping(decode(value))
    items = tuple(value.items())
    for key, item in items:
        if type(key) is not str or type(item) is not str:
            return _frozen_mapping(decode(value))
    found = known.get(items)
    if found is None:
        found = _frozen_mapping(decode(value))
        if len(known) >= _DECODED_LIMIT:
            known.clear()
        known[items] = found
    return found


def record_from_dict(data: dict[str, Any]) -> AccountRecord:
    """The record *data* (``record_to_dict``'s form) holds: what ``AccountRecord(...)`` builds
    from the decoded fields, equal to it, and refused with the same errors in the same order,
    but set slot by slot (as attrs' ``__init__`` does), each field through its converter only
    when the decoded value is not already what the converter makes of it."""
    if not _FAST_DECODE:
        return _record_from_dict_general(data)
    # the fields decoded in the order the general path evaluates them (the first fault wins)
    account_id = data["account_id"]
    state = _state(data["state"])
    owner = data["owner"]
    members = frozenset(data["members"])
    identity = data["identity"]
    version = data["version"]
    cancelled_at = parse_time(data["cancelled_at"])
    restorable_until = parse_time(data["restorable_until"])
    purge = {name: _progress_from_dict(p) for name, p in data["purge"].items()}
    services = _decoded_table(_DECODED_SERVICES, data["services"], _services_from)
    chain_head = data["chain_head"]
    last_seq = data["last_seq"]
    policy = data.get("policy", "")
    cancellation_id = data.get("cancellation_id")
    recent_keys = tuple(tuple(entry) for entry in data.get("recent_keys", ()))
    identity_released_at = parse_time(data["identity_released_at"])
    holds = data.get("holds", _ABSENT)
    reminders = data.get("reminders", _ABSENT)
    identifiers = data.get("identifiers", _ABSENT)
    closure: dict[str, Any] = {
        "holds": {}
        if holds is _ABSENT
        else {
            name: Hold(at=datetime.fromisoformat(h["at"]), by=h["by"], reason=h["reason"], mode=h["mode"])
            for name, h in holds.items()
        },
        "reminders": ()
        if reminders is _ABSENT
        else tuple(
            Reminder(r["before"], datetime.fromisoformat(r["at"]), parse_time(r["sent_at"]))
            for r in reminders
        ),
        "identifiers": {}
        if identifiers is _ABSENT
        else {kind: HeldIdentifier(i["value"], parse_time(i["free_at"])) for kind, i in identifiers.items()},
        "erasure": _erasure_from_dict(data.get("erasure")),
        "policy_version": _version_from(data.get("policy_version", 0)),
        "pins": _decoded_table(_DECODED_PINS, data.get("pins", {}), _pins_from),
    }
    # then each field as attrs' __init__ sets it, converted in the same order
    record: AccountRecord = _new(AccountRecord)
    _set(record, "account_id", account_id)
    _set(record, "state", state)
    _set(record, "owner", owner)
    _set(record, "members", members or _frozen_members(members))
    _set(record, "identity", identity)
    _set(record, "version", version)
    _set(record, "cancelled_at", cancelled_at)
    _set(record, "restorable_until", restorable_until)
    _set(record, "purge", _frozen_mapping(purge))
    _set(record, "services", services)
    _set(record, "chain_head", chain_head)
    _set(record, "last_seq", last_seq)
    _set(record, "policy", policy)
    _set(record, "cancellation_id", cancellation_id)
    _set(record, "recent_keys", _keys(recent_keys) if recent_keys else ())
    _set(record, "identity_released_at", identity_released_at)
    _set(record, "holds", _frozen_mapping(closure["holds"]))
    _set(record, "reminders", closure["reminders"])
    _set(record, "identifiers", _held_identifiers(closure["identifiers"]))
    _set(record, "erasure", closure["erasure"])
    _set(record, "policy_version", closure["policy_version"])
    _set(record, "pins", closure["pins"])
    return record


def _record_to_json_general(record: AccountRecord) -> str:
    """``record_to_json`` through the dictionary and the encoder."""
    return dumps(record_to_dict(record))


_escape = json.encoder.encode_basestring_ascii
_int_text = int.__repr__


def _value(value: Any) -> str:
    """*value* as ``dumps`` encodes it: text, None and whole numbers by hand, anything else
    (booleans, floats, subclasses) by the encoder itself."""
    kind = type(value)
    if kind is str:
        return _escape(value)
    if value is None:
        return "null"
    if kind is int:
        return _int_text(value)
    return _ENCODER.encode(value)


def _time_value(moment: datetime | None) -> str:
    return "null" if moment is None else _escape(time_text(moment))


class _General(Exception):
    """Raised inside ``record_to_json``'s fast path for what only the general path encodes."""


def _table(items: Any) -> str:
    """Pairs of a text key and an encoded value, as ``dumps`` encodes the mapping (keys sorted)."""
    pairs = list(items)
    for key, _ in pairs:
        if type(key) is not str:
            raise _General
    pairs.sort()  # text keys, each once: the values are never compared
    return "{" + ",".join([f"{_escape(key)}:{text}" for key, text in pairs]) + "}"


#: The encoded text of the mappings of plain values records share (pins, service states: one
#: read-only copy serves many records, ``model._frozen_mapping``), by ``id`` of the mapping held
#: with it (so the id stays its own). Bounded: cleared when full.
_SHARED_TEXT: dict[int, tuple[Mapping[str, Any], str]] = {}
_SHARED_TEXT_LIMIT = 1024


def _shared_table(mapping: Mapping[str, Any], plain: Callable[[Any], Any]) -> str:
    """``_table`` of *mapping*'s keys and its values made *plain*, remembered for the mapping."""
    known = _SHARED_TEXT.get(id(mapping))
    if known is not None and known[0] is mapping:
        return known[1]
    text = _table((key, _value(plain(value))) for key, value in mapping.items())
    if len(_SHARED_TEXT) >= _SHARED_TEXT_LIMIT:
        _SHARED_TEXT.clear()
    _SHARED_TEXT[id(mapping)] = (mapping, text)
    return text


def _same(value: Any) -> Any:
    return value


def _enum_value(member: Any) -> Any:
    return member.value


def _optional(name: str, closure: dict[str, Any] | None) -> str:
    """``,"name":value`` for a field of ``_closure_to_dict`` the record writes, else nothing."""
    if closure is None or name not in closure:
        return ""
    return f',"{name}":{dumps(closure[name])}'


#: The record's text: the fields every record has, and the optional ones (``_closure_to_dict``)
#: as ``,"key":value`` or nothing, each where its key sorts.
_RECORD = (
    '{"account_id":%s,"cancellation_id":%s,"cancelled_at":%s,"chain_head":%s%s%s%s'
    ',"identity":%s,"identity_released_at":%s,"last_seq":%s,"members":%s,"owner":%s%s'
    ',"policy":%s%s,"purge":%s,"recent_keys":%s%s,"restorable_until":%s,"services":%s'
    ',"state":%s,"version":%s}'
)
_PROGRESS = '{"at":%s,"attempts":%s,"error":%s,"items":%s,"purger":%s,"retry_at":%s,"status":%s}'


def record_to_json(record: AccountRecord) -> str:
    """``dumps(record_to_dict(record))``, the same text, formatted field by field without
    building the dictionaries (what only the encoder handles goes through it)."""
    try:
        return _record_text(record)
    except _General:
        return _record_to_json_general(record)


def _record_text(record: AccountRecord) -> str:
    # Each value as ``_value`` encodes it; the usual type of each field inline (a call less).
    ledger = record.purge
    for name in ledger:
        if type(name) is not str:
            raise _General
    steps_text = []
    for name in sorted(ledger):
        p = ledger[name]
        at, retry_at, error, purger = p.at, p.retry_at, p.error, p.purger
        attempts, items = p.attempts, p.items
        steps_text.append(
            _escape(name)
            + ":"
            + _PROGRESS
            % (
                "null" if at is None else _escape(time_text(at)),
                _int_text(attempts) if type(attempts) is int else _value(attempts),
                "null" if error is None else _value(error),
                _int_text(items) if type(items) is int else _value(items),
                "null" if purger is None else _value(purger),
                "null" if retry_at is None else _escape(time_text(retry_at)),
                _value(p.status.value),
            )
        )
    purge = "{" + ",".join(steps_text) + "}"
    # holds, reminders and identifiers, rare, through the dictionaries and the encoder
    closure = _closure_to_dict(record) if record.holds or record.reminders or record.identifiers else None
    erasure = record.erasure
    if erasure is None:
        erasure_text = ""
    else:
        steps = ",".join([_value(step) for step in erasure.steps])
        erasure_text = (
            f',"erasure":{{"owner":{_value(erasure.owner)},"phase":{_value(erasure.phase)}'
            f',"started_at":{_escape(time_text(erasure.started_at))},"steps":[{steps}]}}'
        )
    pins = record.pins
    pins_text = ',"pins":' + _shared_table(pins, _same) if pins else ""
    version = record.policy_version
    recent_keys = record.recent_keys
    keys = (
        ",".join(["[" + ",".join([_value(item) for item in entry]) + "]" for entry in recent_keys])
        if recent_keys
        else ""
    )
    members = record.members
    account_id, cancellation_id, chain_head = record.account_id, record.cancellation_id, record.chain_head
    identity, last_seq, owner, policy = record.identity, record.last_seq, record.owner, record.policy
    cancelled_at, released_at = record.cancelled_at, record.identity_released_at
    restorable_until, record_version = record.restorable_until, record.version
    return _RECORD % (
        _escape(account_id) if type(account_id) is str else _value(account_id),
        "null" if cancellation_id is None else _value(cancellation_id),
        "null" if cancelled_at is None else _escape(time_text(cancelled_at)),
        _escape(chain_head) if type(chain_head) is str else _value(chain_head),
        erasure_text,
        _optional("holds", closure),
        _optional("identifiers", closure),
        "null" if identity is None else _value(identity),
        "null" if released_at is None else _escape(time_text(released_at)),
        _int_text(last_seq) if type(last_seq) is int else _value(last_seq),
        "[" + ",".join([_value(member) for member in sorted(members)]) + "]" if members else "[]",
        _escape(owner) if type(owner) is str else _value(owner),
        pins_text,
        _escape(policy) if type(policy) is str else _value(policy),
        ',"policy_version":' + _value(version) if version else "",
        purge,
        f"[{keys}]",
        _optional("reminders", closure),
        "null" if restorable_until is None else _escape(time_text(restorable_until)),
        _shared_table(record.services, _enum_value),
        _value(record.state.value),
        _int_text(record_version) if type(record_version) is int else _value(record_version),
    )


def _what_failed(exc: Exception) -> str:
    """Why decoding failed, without quoting the stored content (it may hold personal data)."""
    if isinstance(exc, KeyError):
        return f"the field {exc.args[0]!r} is missing" if exc.args else "a field is missing"
    if isinstance(exc, json.JSONDecodeError):
        return f"it is not valid JSON ({exc.msg} at character {exc.pos})"
    return f"a field has the wrong type or value ({type(exc).__name__})"


_DECODE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError)


def record_from_json(text: str | bytes, account_id: str) -> AccountRecord:
    """Decode the stored record of *account_id*; ``RecordCorrupt`` if it cannot be decoded or is
    another account's."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("not an object")
        record = record_from_dict(data)
    except RecordCorrupt:
        raise
    except _DECODE_ERRORS as exc:
        raise RecordCorrupt(account_id=account_id, reason=_what_failed(exc)) from None
    except RecursionError:
        raise RecordCorrupt(account_id=account_id, reason="it is nested too deeply") from None
    if record.account_id != account_id:
        raise RecordCorrupt(account_id=account_id, reason="it names another account")
    return record


#: The stored texts of the events being written (``stored_forms``), by ``id`` of the event
#: (each with the event itself, which keeps that id its own while the texts are held).
_FORMS: ContextVar[Mapping[int, tuple[AuditEvent, str]] | None] = ContextVar(
    "account_lifecycle_stored_forms", default=None
)


@contextlib.contextmanager
def stored_forms(forms: Mapping[int, tuple[AuditEvent, str]]) -> Iterator[None]:
    """While this lasts, ``event_to_json`` gives each event of *forms* (``id(event)`` ->
    ``(event, its stored_json())``) the text given, instead of encoding it again: the write
    path made it from the canonical text it hashed. Nothing is kept after it ends."""
    token = _FORMS.set(forms)
    try:
        yield
    finally:
        _FORMS.reset(token)


def event_to_json(event: AuditEvent) -> str:
    """``dumps(event.to_dict())``, built without the dictionaries (``AuditEvent.stored_json``),
    or the text the write path gave for it (``stored_forms``)."""
    forms = _FORMS.get()
    if forms is not None:
        known = forms.get(id(event))
        if known is not None and known[0] is event:
            return known[1]
    return event.stored_json()


def event_from_json(text: str | bytes, account_id: str, position: int) -> AuditEvent:
    """Decode event number *position* (1, 2, ...) of *account_id*'s history;
    ``HistoryTampered`` at that position if it cannot be decoded."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("not an object")
        return AuditEvent.from_dict(data)
    except _DECODE_ERRORS as exc:
        raise HistoryTampered(
            account_id=account_id, seq=position, reason=f"cannot be decoded: {_what_failed(exc)}"
        ) from None
    except RecursionError:
        raise HistoryTampered(
            account_id=account_id, seq=position, reason="cannot be decoded: it is nested too deeply"
        ) from None


def sealed_from_row(account_id: str, seq: int, salt: str, value: str | bytes) -> SealedValue:
    """Decode a sealed value of event *seq* from the side table; ``HistoryTampered`` at that
    event if it cannot be decoded (its content is never quoted)."""
    try:
        if not isinstance(salt, str):
            raise TypeError("salt is not text")
        return SealedValue(salt, json.loads(value))
    except _DECODE_ERRORS as exc:
        raise HistoryTampered(
            account_id=account_id, seq=seq, reason=f"a sealed value cannot be decoded: {_what_failed(exc)}"
        ) from None
    except RecursionError:
        raise HistoryTampered(
            account_id=account_id, seq=seq, reason="a sealed value cannot be decoded: it is nested too deeply"
        ) from None
