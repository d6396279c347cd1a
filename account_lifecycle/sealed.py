"""Personal data in the audit trail, held outside the hashed body so it can be erased.

A decision marks a detail as personal by wrapping it in ``Personal`` (survey answers, a hold's
free-text reason). The write path (``journal``) then *seals* it: the event's hashed
``details["sealed"][field]`` is a commitment ``SHA-256(salt NUL field NUL canonical JSON of the
value)`` with a fresh random 32-byte salt, and the salt and the value travel beside the event
(``AuditEvent.sealed_values``) into the store's side table. The commitment tells nothing about
the value (the salt is random) yet binds it: a value altered in the side table no longer
matches (``check_sealed``). Purging erases the side rows; the chain, which hashed only the
commitments, still verifies.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs

from account_lifecycle.errors import HistoryTampered

if TYPE_CHECKING:
    from account_lifecycle.audit import AuditEvent

__all__ = ["SEALED", "Personal", "SealedValue", "check_sealed", "commitment", "seal", "sealed_fields"]

#: The details key under which an event lists its commitments (field -> hex).
SEALED: Final = "sealed"
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@attrs.frozen
class Personal:
    """A detail value that is personal data: sealed by the write path, erased at purge."""

    value: Any = attrs.field(repr=False)


@attrs.frozen
class SealedValue:
    """A sealed detail's ``value`` and the ``salt`` (hex) of its commitment, as the side store
    keeps them; never part of the hashed event, never shown in ``repr``."""

    salt: str = attrs.field(repr=False)
    value: Any = attrs.field(repr=False)


def commitment(field: str, salt: str, value: Any) -> str:
    """The hex commitment to *value* of *field* under *salt*."""
    data = f"{salt}\x00{field}\x00{_CANONICAL.encode(value)}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def seal(details: Mapping[str, Any]) -> tuple[Mapping[str, Any], dict[str, SealedValue]]:
    """*details* with every ``Personal`` value replaced by its commitment (under ``"sealed"``),
    and the sealed values by field. Details without one come back as they are (the same
    mapping: the event that records them freezes a copy)."""
    for value in details.values():
        if isinstance(value, Personal):
            break
    else:
        return details, {}
    plain: dict[str, Any] = {}
    values: dict[str, SealedValue] = {}
    for field, value in details.items():
        if isinstance(value, Personal):
            values[field] = SealedValue(secrets.token_hex(32), _plain_json(value.value))
        else:
            plain[field] = value
    if values:
        if SEALED in plain:
            raise ValueError(f"the details key {SEALED!r} is reserved for commitments")
        plain[SEALED] = {f: commitment(f, v.salt, v.value) for f, v in values.items()}
    return plain, values


def _plain_json(value: Any) -> Any:
    """*value* as plain JSON data (mappings to dicts, sequences to lists), as it reads back."""
    return json.loads(_CANONICAL.encode(value))


def sealed_fields(event: AuditEvent) -> tuple[str, ...]:
    """The fields *event* sealed (whether their values are still held or were erased)."""
    sealed = event.details.get(SEALED)
    return tuple(sorted(sealed)) if isinstance(sealed, Mapping) else ()


def check_sealed(account_id: str, events: Sequence[AuditEvent], *, erased_allowed: bool) -> None:
    """``HistoryTampered`` at the first event whose held value does not match its commitment,
    that holds a value it never sealed, or, unless *erased_allowed* (the account is purged),
    whose sealed value is missing."""
    for event in events:
        sealed = event.details.get(SEALED)
        commitments: Mapping[str, Any] = sealed if isinstance(sealed, Mapping) else {}
        for field, held in event.sealed_values.items():
            expected = commitments.get(field)
            if expected is None:
                raise HistoryTampered(
                    account_id=account_id, seq=event.seq, reason=f"holds a {field} value it never sealed"
                )
            if commitment(field, held.salt, held.value) != expected:
                raise HistoryTampered(
                    account_id=account_id,
                    seq=event.seq,
                    reason=f"its {field} value does not match its commitment",
                )
        if not erased_allowed:
            missing = sorted(set(commitments) - set(event.sealed_values))
            if missing:
                raise HistoryTampered(
                    account_id=account_id,
                    seq=event.seq,
                    reason=f"its sealed {', '.join(missing)} is missing though the account is not purged",
                )
