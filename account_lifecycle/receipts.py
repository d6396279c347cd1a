"""Erasure receipts: proof, for a compliance file, of what was erased from a purged account,
what was kept (protected) and what was retained under a legal hold."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from account_lifecycle.audit import format_time
from account_lifecycle.model import AccountRecord, PurgeStatus
from account_lifecycle.policy import Policy
from account_lifecycle.schedule import EFFECT_PREFIX

__all__ = ["ErasedCategory", "ErasureReceipt", "RedactedValue", "RetainedCategory", "receipt_for"]


@attrs.frozen
class ErasedCategory:
    """One erased category in a receipt: how many items, when, and by which purger."""

    category: str
    items: int
    at: datetime
    purger: str | None = None


@attrs.frozen
class RetainedCategory:
    """A category a receipt lists as retained under a legal hold: not erased, and why."""

    category: str
    reason: str
    since: datetime
    by: str


@attrs.frozen
class RedactedValue:
    """A personal value of the audit trail that was erased at purge: the ``field`` (``"answers"``,
    ``"reason"``) of event ``seq`` (its ``action``). The event keeps its commitment, so the
    chain still verifies."""

    seq: int
    action: str
    field: str


def _plain(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


@attrs.frozen
class ErasureReceipt:
    """Proof of erasure for a compliance file: what was erased, what was kept (protected), what
    was retained under a legal hold, the chain head."""

    account_id: str
    policy: str
    erased: tuple[ErasedCategory, ...]
    kept: tuple[str, ...]
    chain_head: str
    retained: tuple[RetainedCategory, ...] = ()
    redacted: tuple[RedactedValue, ...] = ()
    #: The policy version in force when the account entered each state (``state -> label``);
    #: ``policy`` is the version it was purged under.
    versions: Mapping[str, str] = attrs.field(factory=dict, converter=_plain)

    def to_dict(self) -> dict[str, Any]:
        """The receipt as plain JSON data (``to_json`` writes it)."""
        return {
            "account_id": self.account_id,
            "policy": self.policy,
            "erased": [
                {
                    "category": e.category,
                    "items": e.items,
                    "at": format_time(e.at),
                    "purger": e.purger,
                }
                for e in self.erased
            ],
            "kept": list(self.kept),
            "chain_head": self.chain_head,
            # Written only when something was retained: receipts without holds keep their bytes.
            **({"retained": [self._retained(r) for r in self.retained]} if self.retained else {}),
            # Likewise only when personal values of the audit trail were erased.
            **(
                {"redacted": [{"seq": r.seq, "action": r.action, "field": r.field} for r in self.redacted]}
                if self.redacted
                else {}
            ),
            # Likewise only when a state was entered under another version than the receipt's.
            **(
                {"versions": dict(self.versions)}
                if any(label != self.policy for label in self.versions.values())
                else {}
            ),
        }

    @staticmethod
    def _retained(retained: RetainedCategory) -> dict[str, Any]:
        return {
            "category": retained.category,
            "reason": retained.reason,
            "since": format_time(retained.since),
            "by": retained.by,
        }

    def to_json(self) -> str:
        """One JSON object with sorted keys: the same history gives the same bytes on every run."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=True)


def receipt_for(
    record: AccountRecord, policy: Policy, *, redacted: tuple[RedactedValue, ...] = ()
) -> ErasureReceipt:
    """The receipt of a purged *record* under *policy*, the version it was purged under: its
    erased categories in the policy's order, the *redacted* values of its audit trail, and the
    version in force when it entered each state."""
    erased = []
    retained = []
    names = [c.name for c in policy.purge.categories]
    # then any category erased under an earlier version the account was migrated from
    names += [k for k in record.purge if k not in names and not k.startswith(EFFECT_PREFIX)]
    for name in names:
        progress = record.purge.get(name)
        if progress is not None and progress.status is PurgeStatus.DONE and progress.at is not None:
            erased.append(ErasedCategory(name, progress.items, progress.at, progress.purger))
        elif (hold := record.holds.get(name)) is not None:
            retained.append(RetainedCategory(name, hold.reason, hold.at, hold.by))
    return ErasureReceipt(
        account_id=record.account_id,
        policy=policy.label,
        erased=tuple(erased),
        kept=policy.purge.protected,
        chain_head=record.chain_head,
        retained=tuple(retained),
        redacted=redacted,
        versions=record.pins,
    )
