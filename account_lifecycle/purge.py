"""Purging: the plan, the progress ledger, resumable execution, sweep reports and receipts.

The ledger lives in ``AccountRecord.purge``: one ``PurgeProgress`` per step of the phase
under way. At cancellation the steps are the host's durable effect hooks (keys
``"effect:<name>"``, only for effects given a hook) and then the cancel-time categories;
once the recovery window has ended they are the expiry categories.

Each step runs outside any store transaction, while the account is claimed; its outcome
(done, or failed with the error and a ``retry_at``) is committed with one audit event
before the next step starts, and each commit renews the claim. A crash therefore loses at
most the step in flight, which a later sweep runs again once the claim has expired:
purgers and effect hooks must be idempotent. A step recorded done is never run again.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

import attrs

from account_lifecycle.audit import ChainWriter, format_time
from account_lifecycle.clock import require_aware
from account_lifecycle.closure import IdentityReuse, reminder_schedule
from account_lifecycle.errors import ConcurrentUpdate, LifecycleError
from account_lifecycle.machine import EXPIRE, SETTLE, Attempt, PolicyMachine
from account_lifecycle.model import AccountRecord, Actor, HeldIdentifier, PurgeProgress, PurgeStatus, State
from account_lifecycle.policy import Policy
from account_lifecycle.ports import AccountStore, Clock, Lease, PurgeContext, Purger, PurgeResult
from account_lifecycle.schedule import (
    EFFECT_EVENTS,
    EFFECT_PREFIX,
    backoff_delay,
    due_at,
    effect_key,
)
from account_lifecycle.schedule import settled as _settled

__all__ = [
    "EFFECT_EVENTS",
    "EFFECT_PREFIX",
    "EffectContext",
    "EffectHook",
    "ErasedCategory",
    "ErasureReceipt",
    "PurgeRunner",
    "RetainedCategory",
    "SweepReport",
    "backoff_delay",
    "due_at",
    "effect_event_details",
    "effect_key",
    "receipt_for",
]

log = logging.getLogger("account_lifecycle.purge")
_MAX_ERROR = 500


def effect_event_details(effect: str, record: AccountRecord) -> dict[str, Any]:
    """What the effect's audit event records about the account (ids only)."""
    if effect == "revoke_team_access":
        return {"members": sorted(record.members)}
    return {}


# -- values handed out ------------------------------------------------------------------------


@attrs.frozen
class EffectContext:
    """Handed to an effect hook: which account, which effect, which attempt, and when.

    ``owner`` and ``members`` are the user ids on record when the hook runs (the team
    whose access ``revoke_team_access`` ends)."""

    account_id: str
    effect: str
    policy: str
    attempt: int
    cancelled_at: datetime | None
    now: datetime
    owner: str
    members: frozenset[str]


class EffectHook(Protocol):
    """Carries out one ``on_cancel`` effect for one account (revoke team access, forfeit
    credit). Must be idempotent: it may run again after a crash. Raise to report a failure;
    the return value is ignored."""

    def __call__(self, account_id: str, context: EffectContext, /) -> object: ...


@attrs.frozen
class SweepReport:
    """What one sweep did: accounts now purged, accounts whose purge failed (retried by a later
    sweep), and accounts that finished their cancel-time purge and are now restorable."""

    purged: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    restorable: tuple[str, ...] = ()


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
class ErasureReceipt:
    """Proof of erasure for a compliance file: what was erased, what was kept (protected), what
    was retained under a legal hold, the chain head."""

    account_id: str
    policy: str
    erased: tuple[ErasedCategory, ...]
    kept: tuple[str, ...]
    chain_head: str
    retained: tuple[RetainedCategory, ...] = ()

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
            # Written only when something was retained: receipts without holds keep their bytes.
            **({"retained": [self._retained(r) for r in self.retained]} if self.retained else {}),
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


def receipt_for(record: AccountRecord, policy: Policy) -> ErasureReceipt:
    """The receipt of a purged *record*: its erased categories in the policy's order."""
    erased = []
    retained = []
    for category in policy.purge.categories:
        progress = record.purge.get(category.name)
        if progress is not None and progress.status is PurgeStatus.DONE and progress.at is not None:
            erased.append(ErasedCategory(category.name, progress.items, progress.at, progress.purger))
        elif (hold := record.holds.get(category.name)) is not None:
            retained.append(RetainedCategory(category.name, hold.reason, hold.at, hold.by))
    return ErasureReceipt(
        account_id=record.account_id,
        policy=policy.label,
        erased=tuple(erased),
        kept=policy.purge.protected,
        chain_head=record.chain_head,
        retained=tuple(retained),
    )


def purger_name(purger: object) -> str:
    """A purger's or hook's ``name`` attribute if it has one, else its qualified name."""
    name = getattr(purger, "name", None)
    if isinstance(name, str) and name:
        return name
    qualname = getattr(purger, "__qualname__", None)
    return qualname if isinstance(qualname, str) else type(purger).__qualname__


def _describe(exc: BaseException) -> str:
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # an exception whose __str__ fails still gets recorded
        text = type(exc).__name__
    return text[:_MAX_ERROR]


# -- the runner -------------------------------------------------------------------------------


class Commit(Protocol):
    def __call__(
        self, record: AccountRecord, writer: ChainWriter, *, lease: Lease | None, **changes: Any
    ) -> AccountRecord: ...


@attrs.frozen
class _Outcome:
    """What one step did: the progress to store and the audit event that says so."""

    progress: PurgeProgress
    action: str
    details: Mapping[str, Any]


@attrs.define
class PurgeRunner:
    """Runs the purge work that is due on one claimed account, committing after each step."""

    policy: Policy
    machine: PolicyMachine
    store: AccountStore
    purgers: Mapping[str, Purger]
    clock: Clock
    commit: Commit
    writer_for: Callable[[AccountRecord], ChainWriter]
    backoff: Callable[[int], timedelta]
    lease_duration: timedelta = timedelta(minutes=5)
    effects: Mapping[str, EffectHook] = attrs.Factory(dict)

    def phase(self, record: AccountRecord, now: datetime) -> str | None:
        if record.state is State.CANCELLED:
            return "cancel"
        if record.state is State.RESTORABLE:
            assert record.restorable_until is not None
            return "expiry" if now >= record.restorable_until else None
        return None

    def steps(self, record: AccountRecord, phase: str) -> tuple[str, ...]:
        """Ledger keys of the phase, in the order they run: effects first (access ends before
        data goes), then the categories in the policy's order."""
        keys: list[str] = []
        if phase == "cancel":
            keys += [effect_key(e) for e in EFFECT_EVENTS if effect_key(e) in record.purge]
        keys += self.policy.purge.at(phase)
        return tuple(keys)

    # -- claiming ----------------------------------------------------------------------------

    def new_lease(self, owner: str) -> Lease:
        return Lease(owner, self._now() + self.lease_duration)

    def claim(self, owner: str, limit: int) -> tuple[list[AccountRecord], Lease]:
        """Claim up to *limit* accounts whose work is due, for *owner*."""
        lease = self.new_lease(owner)
        claimed = self.store.claim_due(now=self._now(), lease=lease, limit=limit)
        return [r for r in claimed if isinstance(r, AccountRecord)], lease

    def run_claimed(self, account_id: str, lease: Lease) -> AccountRecord | None:
        """Run the due work of *account_id* under a claim taken earlier by *lease*'s owner
        (say, by a dispatcher handing accounts to workers). None if the claim has lapsed,
        so someone else may hold it now, or if another worker took the account over."""
        if self._now() >= lease.until:
            log.info("claim of %s by %s lapsed before the work started", account_id, lease.owner)
            return None
        return self.run_quietly(self.store.get(account_id), lease)

    def run_quietly(self, record: AccountRecord, lease: Lease) -> AccountRecord | None:
        """Run purge work, returning None when another worker took the account over."""
        try:
            return self.run(record, lease)
        except ConcurrentUpdate:
            log.info("%s moved on under another worker; leaving it to them", record.account_id)
            return None

    def sweep(self, *, limit: int | None, batch: int) -> SweepReport:
        """Claim due accounts in batches and run their work, until nothing is due or *limit*
        accounts were handled."""
        owner = f"sweep:{uuid.uuid4().hex}"
        purged: list[str] = []
        failed: list[str] = []
        restorable: list[str] = []
        seen: set[str] = set()
        while limit is None or len(seen) < limit:
            size = batch if limit is None else min(batch, limit - len(seen))
            claimed, lease = self.claim(owner, size)
            fresh = []
            for record in claimed:
                if record.account_id in seen:  # handled already, and due again (a zero backoff)
                    self.store.release(record.account_id, owner)
                else:
                    fresh.append(record)
            if not fresh:
                break
            for record in fresh:
                seen.add(record.account_id)
                if self._now() >= lease.until:
                    # The batch outlived its claim: another sweeper may hold this account now.
                    continue
                try:
                    outcome = self.run_quietly(record, lease)
                except LifecycleError as exc:  # the store failed; the claim lapses, a later sweep retries
                    log.warning("sweep of %s failed: %s", record.account_id, exc)
                    failed.append(record.account_id)
                    continue
                if outcome is None:
                    continue
                if outcome.state is State.PURGED:
                    purged.append(outcome.account_id)
                elif any(p.status is PurgeStatus.FAILED for p in outcome.purge.values()):
                    failed.append(outcome.account_id)
                elif outcome.state is State.RESTORABLE and record.state is State.CANCELLED:
                    restorable.append(outcome.account_id)
        return SweepReport(purged=tuple(purged), failed=tuple(failed), restorable=tuple(restorable))

    # -- running -----------------------------------------------------------------------------

    def run(self, record: AccountRecord, lease: Lease) -> AccountRecord:
        """Do what is due; return the latest record. The claim is released when this ends:
        by the commit that purges the account, else by a release of its own."""
        result: AccountRecord | None = None
        try:
            result = self._run(record, lease)
            return result
        finally:
            self.store.release(record.account_id, lease.owner)

    def _run(self, record: AccountRecord, lease: Lease) -> AccountRecord:
        if record.policy and record.policy != self.policy.name:
            # Never run one policy's purgers on another policy's account (a store shared by
            # two policies); the claim is released and the account left to its own lifecycle.
            log.error(
                "%s follows policy %r, not %r: its purge work is left to that policy's lifecycle",
                record.account_id,
                record.policy,
                self.policy.name,
            )
            return record
        if record.state is State.RESTORABLE:
            # Cancel-time categories kept under a "retain" hold that was released since.
            record, _ = self._run_phase(record, lease, "cancel", listed_only=True)
        # A phase that finishes moves the account on; if the next phase is already due (a
        # cancel-time retry that ends after the window did), it runs under the same claim.
        while (phase := self.phase(record, self._now())) is not None:
            record, finished = self._run_phase(record, lease, phase)
            if not finished:
                break
            record = self._move_on(record, phase, lease)
        if record.state is State.RESTORABLE:
            record = self._remind(record, lease)
        return record

    def _remind(self, record: AccountRecord, lease: Lease) -> AccountRecord:
        """Send every reminder whose moment has come, each once: its ``reminder`` event is
        committed with the record that marks it sent, under the claim. A reminder still unsent
        when the window has ended is skipped."""
        now = self._now()
        until = record.restorable_until
        if (
            until is None
            or now >= until
            or not any(r.sent_at is None and r.at <= now for r in record.reminders)
        ):
            return record
        writer = self.writer_for(record)
        reminders = []
        for reminder in record.reminders:
            if reminder.sent_at is None and reminder.at <= now:
                writer.append(
                    at=now,
                    actor=Actor.system(),
                    action="reminder",
                    from_state=record.state,
                    to_state=record.state,
                    details={
                        "before": reminder.before,
                        "restorable_until": until,
                        "scheduled_for": reminder.at,
                    },
                )
                reminder = attrs.evolve(reminder, sent_at=now)
            reminders.append(reminder)
        renewed = Lease(lease.owner, now + self.lease_duration)
        return self.commit(record, writer, lease=renewed, reminders=tuple(reminders))

    def _run_phase(
        self, record: AccountRecord, lease: Lease, phase: str, *, listed_only: bool = False
    ) -> tuple[AccountRecord, bool]:
        """Run each step of *phase* that is due (with *listed_only*, only steps already in the
        ledger); return the record and whether the account may move on: every step of the
        phase, and every step left in the ledger, done or kept under a "retain" hold."""
        now = self._now()
        steps = self.steps(record, phase)
        for key in steps:
            progress = record.purge.get(key, PurgeProgress())
            if progress.status is PurgeStatus.DONE or key in record.holds:
                continue  # a category under a legal hold is never handed to its purger
            if listed_only and key not in record.purge:
                continue
            if progress.retry_at is not None and progress.retry_at > now:
                continue
            if key.startswith(EFFECT_PREFIX):
                outcome = self._run_effect(record, key.removeprefix(EFFECT_PREFIX), progress, now)
            else:
                outcome = self._run_category(record, key, progress, now)
            now = self._now()
            writer = self.writer_for(record)
            writer.append(
                at=now,
                actor=Actor.system(),
                action=outcome.action,
                from_state=record.state,
                to_state=record.state,
                details=outcome.details,
            )
            renewed = Lease(lease.owner, now + self.lease_duration)
            record = self.commit(record, writer, lease=renewed, purge={**record.purge, key: outcome.progress})
        finished = all(_settled(record, k) for k in (*steps, *record.purge))
        return record, finished

    def _failed(self, progress: PurgeProgress, attempt: int, error: str, by: str | None) -> PurgeProgress:
        now = self._now()
        return PurgeProgress(
            status=PurgeStatus.FAILED,
            attempts=attempt,
            items=progress.items,
            error=error,
            at=now,
            retry_at=now + self.backoff(attempt),
            purger=by,
        )

    def _run_category(
        self, record: AccountRecord, category: str, progress: PurgeProgress, now: datetime
    ) -> _Outcome:
        attempt = progress.attempts + 1
        purger = self.purgers[category]
        name = purger_name(purger)
        context = PurgeContext(
            account_id=record.account_id,
            category=category,
            policy=self.policy.label,
            attempt=attempt,
            cancelled_at=record.cancelled_at,
            now=now,
        )
        try:
            result = purger.purge(record.account_id, context)
            if not isinstance(result, PurgeResult):
                raise TypeError(f"purger {name} returned {type(result).__name__}, not a PurgeResult")
        except Exception as exc:  # a host purger may fail in any way; record it, retry later
            error = _describe(exc)
            log.warning("purge of %s/%s failed (attempt %d): %s", record.account_id, category, attempt, error)
            return _Outcome(
                progress=self._failed(progress, attempt, error, name),
                action="purge_failed",
                details={"category": category, "attempt": attempt, "error": error, "purger": name},
            )
        return _Outcome(
            progress=PurgeProgress(
                status=PurgeStatus.DONE, attempts=attempt, items=result.items, at=self._now(), purger=name
            ),
            action="category_purged",
            details={
                "category": category,
                "attempt": attempt,
                "items": result.items,
                "detail": result.detail,
                "purger": name,
            },
        )

    def _run_effect(
        self, record: AccountRecord, effect: str, progress: PurgeProgress, now: datetime
    ) -> _Outcome:
        attempt = progress.attempts + 1
        hook = self.effects.get(effect)
        name = "" if hook is None else purger_name(hook)
        try:
            if hook is None:
                raise LookupError(
                    f"no hook for effect {effect!r} in this process; "
                    f"pass effects={{{effect!r}: hook}} to every Lifecycle that sweeps this store"
                )
            hook(
                record.account_id,
                EffectContext(
                    account_id=record.account_id,
                    effect=effect,
                    policy=self.policy.label,
                    attempt=attempt,
                    cancelled_at=record.cancelled_at,
                    now=now,
                    owner=record.owner,
                    members=record.members,
                ),
            )
        except Exception as exc:  # a host hook may fail in any way; record it, retry later
            error = _describe(exc)
            log.warning("effect %s on %s failed (attempt %d): %s", effect, record.account_id, attempt, error)
            return _Outcome(
                progress=self._failed(progress, attempt, error, name or None),
                action="effect_failed",
                details={"effect": effect, "attempt": attempt, "error": error, "hook": name or None},
            )
        return _Outcome(
            progress=PurgeProgress(status=PurgeStatus.DONE, attempts=attempt, at=self._now(), purger=name),
            action=EFFECT_EVENTS[effect],
            details={
                **effect_event_details(effect, record),
                "effect": effect,
                "attempt": attempt,
                "hook": name,
            },
        )

    def _move_on(self, record: AccountRecord, phase: str, lease: Lease) -> AccountRecord:
        now = self._now()
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
            if record.identifiers:
                changes["identifiers"] = self._quarantine(record, now)
                details["identifiers_free_at"] = {k: i.free_at for k, i in changes["identifiers"].items()}
        else:
            action = "recovery_window_opened"
            details["restorable_until"] = record.restorable_until
            # The expiry categories join the ledger now, so the plan is on record.
            changes["purge"] = {
                **record.purge,
                **{c: PurgeProgress() for c in self.policy.purge.at("expiry") if c not in record.purge},
            }
            if self.policy.recovery.reminders and record.restorable_until is not None:
                changes["reminders"] = reminder_schedule(
                    self.policy.recovery.reminders, record.restorable_until
                )
        retained = sorted(
            k for k in record.purge if k in record.holds and record.purge[k].status is not PurgeStatus.DONE
        )
        if retained:
            details["retained"] = retained
        writer.append(
            at=now,
            actor=system,
            action=action,
            from_state=record.state,
            to_state=dest,
            details=details,
        )
        # The claim is kept (renewed) until ``run`` ends, as the next phase may be due already;
        # a purged account has nothing left to do, so that commit releases it too.
        renewed = None if dest is State.PURGED else Lease(lease.owner, now + self.lease_duration)
        return self.commit(record, writer, lease=renewed, state=dest, **changes)

    def _quarantine(self, record: AccountRecord, purged_at: datetime) -> dict[str, HeldIdentifier]:
        """The account's identifiers with the moment each becomes free, now it is purged."""
        out = {}
        for kind, held in record.identifiers.items():
            rule = self.policy.identity.get(kind, IdentityReuse("after_purge"))
            free_at = held.free_at or rule.free_at(cancelled_at=record.cancelled_at, purged_at=purged_at)
            out[kind] = attrs.evolve(held, free_at=free_at)
        return out

    def _now(self) -> datetime:
        return require_aware(self.clock.now(), "clock.now()")
