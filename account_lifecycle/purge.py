"""Purging: the plan, the progress ledger, resumable execution, sweep reports and receipts.

The ledger lives in ``AccountRecord.purge``: one ``PurgeProgress`` per category of the
phase under way (the cancel-time categories from the confirm on, the expiry categories
once the window has ended). Purgers run outside any store transaction; each category's
outcome is committed before the next one starts, so a crash loses at most the category
in flight, which a later sweep runs again (purgers are idempotent).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import attrs

from account_lifecycle.audit import ChainWriter, format_time
from account_lifecycle.clock import require_aware
from account_lifecycle.errors import ConcurrentUpdate
from account_lifecycle.machine import EXPIRE, SETTLE, Attempt, PolicyMachine
from account_lifecycle.model import AccountRecord, Actor, PurgeProgress, PurgeStatus, State
from account_lifecycle.policy import Policy
from account_lifecycle.ports import AccountStore, Clock, Lease, PurgeContext, Purger, PurgeResult

__all__ = [
    "ErasedCategory",
    "ErasureReceipt",
    "PurgeRunner",
    "SweepReport",
    "due_at",
    "receipt_for",
]

log = logging.getLogger("account_lifecycle.purge")
_MAX_ERROR = 500


def due_at(record: AccountRecord) -> datetime | None:
    """When purge work on *record* is next due, or None. Stores index this value."""
    unfinished = [p for p in record.purge.values() if p.status is not PurgeStatus.DONE]
    if record.state is State.CANCELLED:
        assert record.cancelled_at is not None
        moments = [p.retry_at or record.cancelled_at for p in unfinished]
        return min(moments, default=record.cancelled_at)
    if record.state is State.RESTORABLE:
        assert record.restorable_until is not None
        moments = [p.retry_at or record.restorable_until for p in unfinished]
        return min(moments, default=record.restorable_until)
    return None


@attrs.frozen
class SweepReport:
    """What one sweep did: accounts now purged, now restorable, and those whose purge failed."""

    purged: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    restorable: tuple[str, ...] = ()


@attrs.frozen
class ErasedCategory:
    category: str
    items: int
    at: datetime
    purger: str | None = None


@attrs.frozen
class ErasureReceipt:
    """Proof of erasure for a compliance file: what was erased, what was kept, the chain head."""

    account_id: str
    policy: str
    erased: tuple[ErasedCategory, ...]
    kept: tuple[str, ...]
    chain_head: str

    def to_dict(self) -> dict[str, Any]:
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
        }

    def to_json(self) -> str:
        """One JSON object with sorted keys: the same receipt gives the same bytes on every run."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=True)


def receipt_for(record: AccountRecord, policy: Policy) -> ErasureReceipt:
    erased = []
    for category in policy.purge.categories:
        progress = record.purge.get(category.name)
        if progress is not None and progress.status is PurgeStatus.DONE and progress.at is not None:
            erased.append(ErasedCategory(category.name, progress.items, progress.at, progress.purger))
    return ErasureReceipt(
        account_id=record.account_id,
        policy=policy.label,
        erased=tuple(erased),
        kept=policy.purge.protected,
        chain_head=record.chain_head,
    )


def purger_name(purger: Purger) -> str:
    name = getattr(purger, "name", None)
    return name if isinstance(name, str) and name else type(purger).__qualname__


class Commit(Protocol):
    def __call__(
        self, record: AccountRecord, writer: ChainWriter, *, lease: Lease | None, **changes: Any
    ) -> AccountRecord: ...


@attrs.define
class PurgeRunner:
    """Runs the purge work that is due on one claimed account, committing after each category."""

    policy: Policy
    machine: PolicyMachine
    store: AccountStore
    purgers: Mapping[str, Purger]
    clock: Clock
    commit: Commit
    writer_for: Callable[[AccountRecord], ChainWriter]
    backoff: Callable[[int], timedelta]

    def phase(self, record: AccountRecord, now: datetime) -> str | None:
        if record.state is State.CANCELLED:
            return "cancel"
        if record.state is State.RESTORABLE:
            assert record.restorable_until is not None
            return "expiry" if now >= record.restorable_until else None
        return None

    def run(self, record: AccountRecord, lease: Lease) -> AccountRecord:
        """Do what is due; return the latest record. The claim is released when this ends."""
        try:
            return self._run(record, lease)
        finally:
            self.store.release(record.account_id, lease.owner)

    def _run(self, record: AccountRecord, lease: Lease) -> AccountRecord:
        now = self._now()
        phase = self.phase(record, now)
        if phase is None:
            return record
        system = Actor.system()
        for category in self.policy.purge.at(phase):
            progress = record.purge.get(category, PurgeProgress())
            if progress.status is PurgeStatus.DONE:
                continue
            if progress.retry_at is not None and progress.retry_at > now:
                continue
            attempt = progress.attempts + 1
            purger = self.purgers[category]
            context = PurgeContext(
                account_id=record.account_id,
                category=category,
                policy=self.policy.label,
                attempt=attempt,
                cancelled_at=record.cancelled_at,
                now=now,
            )
            writer = self.writer_for(record)
            try:
                result = purger.purge(record.account_id, context)
                if not isinstance(result, PurgeResult):
                    raise TypeError(f"purger returned {type(result).__name__}, not a PurgeResult")
            except Exception as exc:  # a host purger may fail in any way; record it, retry later
                error = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]
                log.warning(
                    "purge of %s/%s failed (attempt %d): %s",
                    record.account_id,
                    category,
                    attempt,
                    error,
                )
                now = self._now()
                progress = PurgeProgress(
                    status=PurgeStatus.FAILED,
                    attempts=attempt,
                    error=error,
                    at=now,
                    retry_at=now + self.backoff(attempt),
                    purger=purger_name(purger),
                )
                writer.append(
                    at=now,
                    actor=system,
                    action="purge_failed",
                    from_state=record.state,
                    to_state=record.state,
                    details={"category": category, "attempt": attempt, "error": error},
                )
            else:
                now = self._now()
                progress = PurgeProgress(
                    status=PurgeStatus.DONE,
                    attempts=attempt,
                    items=result.items,
                    at=now,
                    purger=purger_name(purger),
                )
                writer.append(
                    at=now,
                    actor=system,
                    action="category_purged",
                    from_state=record.state,
                    to_state=record.state,
                    details={
                        "category": category,
                        "attempt": attempt,
                        "items": result.items,
                        "detail": result.detail,
                        "purger": purger_name(purger),
                    },
                )
            record = self.commit(record, writer, lease=lease, purge={**record.purge, category: progress})
        if any(
            record.purge.get(c, PurgeProgress()).status is not PurgeStatus.DONE
            for c in self.policy.purge.at(phase)
        ):
            return record
        return self._move_on(record, phase, self._now())

    def _move_on(self, record: AccountRecord, phase: str, now: datetime) -> AccountRecord:
        trigger = SETTLE if phase == "cancel" else EXPIRE
        system = Actor.system()
        dest = self.machine.decide(trigger, Attempt(record=record, actor=system, relation=None, now=now))
        writer = self.writer_for(record)
        changes: dict[str, Any] = {}
        details: dict[str, Any] = {}
        if dest is State.PURGED:
            action = "purge"
            if (
                record.identity is not None
                and record.identity_released_at is None
                and (self.policy.identity_reuse in ("after_purge", "after_cancel"))
            ):
                changes["identity_released_at"] = now
                details["identity_released"] = True
        else:
            action = "recovery_window_opened"
            details["restorable_until"] = record.restorable_until
            # The expiry categories join the ledger now, so the plan is on record.
        if dest is State.RESTORABLE:
            changes["purge"] = {
                **record.purge,
                **{c: PurgeProgress() for c in self.policy.purge.at("expiry") if c not in record.purge},
            }
        writer.append(
            at=now,
            actor=system,
            action=action,
            from_state=record.state,
            to_state=dest,
            details=details,
        )
        return self.commit(record, writer, lease=None, state=dest, **changes)

    def _now(self) -> datetime:
        return require_aware(self.clock.now(), "clock.now()")


def run_quietly(runner: PurgeRunner, record: AccountRecord, lease: Lease) -> AccountRecord | None:
    """Run purge work, returning None when another worker took the account over."""
    try:
        return runner.run(record, lease)
    except ConcurrentUpdate:
        return None


def sweep_outcome(record: AccountRecord | None, report: dict[str, list[str]], account_id: str) -> None:
    if record is None:
        return
    if record.state is State.PURGED:
        report["purged"].append(account_id)
    elif any(p.status is PurgeStatus.FAILED for p in record.purge.values()):
        report["failed"].append(account_id)
    elif record.state is State.RESTORABLE:
        report["restorable"].append(account_id)


def as_report(report: Mapping[str, Sequence[str]]) -> SweepReport:
    return SweepReport(
        purged=tuple(report["purged"]),
        failed=tuple(report["failed"]),
        restorable=tuple(report["restorable"]),
    )
