"""The one write path: a decision becomes the account's next version.

``Journal.commit`` chains the decision's events onto the account's audit trail, sets the
version and chain head, saves record and events in one compare-and-set, and then hands the
events to the listeners. ``Lifecycle`` (commands) and ``PurgeRunner`` (purge work) both write
through it; neither writes to the store any other way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

import attrs

from account_lifecycle import telemetry
from account_lifecycle.audit import GENESIS, AuditEvent, ChainWriter
from account_lifecycle.decide import Decision, Event
from account_lifecycle.model import AccountRecord
from account_lifecycle.ports import AccountStore, Lease, Listener

__all__ = ["Journal"]

log = logging.getLogger("account_lifecycle")


@attrs.define
class Journal:
    """Writes decisions to *store* for the policy labelled *policy* and notifies *listeners*."""

    store: AccountStore
    policy: str
    listeners: tuple[Listener, ...] = ()

    def create(self, record: AccountRecord, event: Event, *, now: datetime) -> AccountRecord:
        """Insert *record* (version 1) with its first event; ``AccountExists`` if taken."""
        writer = ChainWriter(record.account_id, self.policy, GENESIS, 0, 1)
        self._append(writer, (event,), now)
        new = attrs.evolve(record, version=1, chain_head=writer.head, last_seq=writer.seq)
        self.store.create(new, tuple(writer.events), now=now)
        self.notify(writer.events)
        return new

    def commit(
        self,
        record: AccountRecord,
        decision: Decision,
        *,
        now: datetime,
        lease: Lease | None = None,
        release: str | None = None,
    ) -> AccountRecord:
        """Save *record* changed by *decision* as version + 1 with the decision's events, if the
        stored version is still *record*'s (else ``ConcurrentUpdate``, nothing written); take or
        renew the claim with *lease*, or drop *release*'s claim. Then notify the listeners."""
        writer = ChainWriter(
            record.account_id, self.policy, record.chain_head or GENESIS, record.last_seq, record.version + 1
        )
        self._append(writer, decision.events, now)
        new = attrs.evolve(
            record,
            version=record.version + 1,
            chain_head=writer.head,
            last_seq=writer.seq,
            **decision.changes,
        )
        self.store.save(
            new,
            expected_version=record.version,
            events=tuple(writer.events),
            lease=lease,
            release=release,
            now=now,
        )
        self.notify(writer.events)
        return new

    @staticmethod
    def _append(writer: ChainWriter, events: Sequence[Event], now: datetime) -> None:
        for event in events:
            writer.append(
                at=event.at or now,
                actor=event.actor,
                action=event.action,
                from_state=event.from_state,
                to_state=event.to_state,
                details=event.details,
            )

    def notify(self, events: Iterable[AuditEvent]) -> None:
        """Hand committed *events* to every listener; a listener's failure is logged, never raised."""
        for event in events:
            telemetry.listener(event)  # counts reminders sent; nothing without the otel extra
            for listener in self.listeners:
                try:
                    listener(event)
                except Exception:  # the change is committed; a listener's failure must not undo it
                    log.exception("listener %r failed on event %s #%d", listener, event.account_id, event.seq)
