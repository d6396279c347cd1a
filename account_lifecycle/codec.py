"""Plain-data encoding of records and events, shared by every persistent store."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from account_lifecycle.audit import AuditEvent, format_time
from account_lifecycle.model import (
    AccountRecord,
    HeldIdentifier,
    Hold,
    PurgeProgress,
    PurgeStatus,
    Reminder,
    ServiceState,
    State,
)

__all__ = [
    "dumps",
    "event_from_json",
    "event_to_json",
    "parse_time",
    "record_from_dict",
    "record_from_json",
    "record_to_dict",
    "record_to_json",
    "time_or_none",
]


# Built once: json.dumps builds a new encoder on every call that passes options.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def dumps(data: Any) -> str:
    """Compact, stable JSON; ASCII escapes so any text (even lone surrogates) round-trips."""
    return _ENCODER.encode(data)


def time_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


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
        status=PurgeStatus(data["status"]),
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
    }


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
        "recent_keys": [list(pair) for pair in record.recent_keys],
        "identity_released_at": time_or_none(record.identity_released_at),
        **_closure_to_dict(record),
    }


def record_from_dict(data: dict[str, Any]) -> AccountRecord:
    return AccountRecord(
        account_id=data["account_id"],
        state=State(data["state"]),
        owner=data["owner"],
        members=frozenset(data["members"]),
        identity=data["identity"],
        version=data["version"],
        cancelled_at=parse_time(data["cancelled_at"]),
        restorable_until=parse_time(data["restorable_until"]),
        purge={name: _progress_from_dict(p) for name, p in data["purge"].items()},
        services={name: ServiceState(s) for name, s in data["services"].items()},
        chain_head=data["chain_head"],
        last_seq=data["last_seq"],
        policy=data.get("policy", ""),
        cancellation_id=data.get("cancellation_id"),
        recent_keys=tuple((key, action) for key, action in data.get("recent_keys", ())),
        identity_released_at=parse_time(data["identity_released_at"]),
        **_closure_from_dict(data),
    )


def record_to_json(record: AccountRecord) -> str:
    return dumps(record_to_dict(record))


def record_from_json(text: str) -> AccountRecord:
    return record_from_dict(json.loads(text))


def event_to_json(event: AuditEvent) -> str:
    return dumps(event.to_dict())


def event_from_json(text: str) -> AuditEvent:
    return AuditEvent.from_dict(json.loads(text))
