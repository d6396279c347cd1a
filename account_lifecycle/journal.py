"""The one write path: a decision becomes the account's next version.

``Journal.commit`` chains the decision's events onto the account's audit trail (sealing their
personal values: ``sealed``), sets the version and chain head, saves record and events in one
compare-and-set, and then hands the events to the listeners. ``Lifecycle`` (commands) and
``PurgeRunner`` (purge work) both write through it; neither writes to the store any other way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

import attrs

from account_lifecycle import telemetry
from account_lifecycle.audit import GENESIS, AuditEvent, ChainWriter, chain_text
from account_lifecycle.codec import stored_forms
from account_lifecycle.decide import Decision, Event
from account_lifecycle.model import _RECORD_CONVERTERS, AccountRecord, State, evolve_record
from account_lifecycle.ports import AccountStore, Lease, Listener, Write, save_many
from account_lifecycle.sealed import seal

__all__ = ["Commit", "Journal"]

log = logging.getLogger("account_lifecycle")


@attrs.frozen
class Commit:
    """One account's write in a batch (``Journal.commit_many``): *record* changed by
    *decision*, taking or renewing the claim with *lease*, or dropping *release*'s claim.
    *after*, when the caller has it already: ``apply(record, decision)`` (not built again; a
    new record the journal completes in place, see ``Journal.commit_many``)."""

    record: AccountRecord
    decision: Decision
    now: datetime
    lease: Lease | None = None
    release: str | None = None
    after: AccountRecord | None = None


@attrs.define
class Journal:
    """Writes decisions to *store* for the policy labelled *policy* and notifies *listeners*.

    *label_of*, when given, names the policy version in force for an account from its policy
    name and pinned version (as the write leaves them): each event is chained under that label,
    and a write that moves the account to another state pins the state to it
    (``AccountRecord.pins``)."""

    store: AccountStore
    policy: str
    listeners: tuple[Listener, ...] = ()
    label_of: Callable[[str, int], str] | None = None

    def label(self, record: AccountRecord, changes: Mapping[str, object]) -> str:
        """The label in force for *record* once *changes* are applied."""
        if self.label_of is None:
            return self.policy
        name = changes.get("policy", record.policy)
        version = changes.get("policy_version", record.policy_version)
        assert isinstance(name, str)
        assert isinstance(version, int)
        return self.label_of(name, version)

    def _pinned(
        self, record: AccountRecord, changes: Mapping[str, object], label: str
    ) -> Mapping[str, object]:
        """*changes*, with the state they move the account to pinned to *label*."""
        state = changes.get("state")
        if self.label_of is None or not isinstance(state, State) or state is record.state:
            return changes
        if record.pins.get(state) == label:  # pinned so already (a State finds its text key)
            return changes
        return {**changes, "pins": {**record.pins, state.value: label}}

    def create(
        self,
        record: AccountRecord,
        event: Event,
        *,
        now: datetime,
        aliases: Mapping[str, Sequence[str]] | None = None,
    ) -> AccountRecord:
        """Insert *record* (version 1) with its first event; ``AccountExists`` if taken (also
        when another account holds one of the *aliases* of its identity digests)."""
        label = self.label(record, {})
        events = _chained(record.account_id, label, GENESIS, 0, 1, (event,), now)
        pins = {record.state.value: label} if self.label_of is not None else {}
        new = evolve_record(
            record, version=1, chain_head=events[-1].hash, last_seq=1, **({"pins": pins} if pins else {})
        )
        if aliases:
            self.store.create(new, events, now=now, aliases=aliases)
        else:
            self.store.create(new, events, now=now)
        self.notify(events)
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
        renew the claim with *lease*, or drop *release*'s claim; erase the sealed personal
        values of the account's events when the decision says so. Then notify the listeners."""
        changes = decision.changes
        label = self.label(record, changes)
        version = record.version + 1
        events = _chained(
            record.account_id,
            label,
            record.chain_head or GENESIS,
            record.last_seq,
            version,
            decision.events,
            now,
        )
        if events:
            head, seq = events[-1].hash, events[-1].seq
        else:
            head, seq = record.chain_head, record.last_seq
        state = changes.get("state")
        if (
            self.label_of is not None
            and state is not record.state
            and isinstance(state, State)
            and record.pins.get(state) != label
        ):
            changes = self._pinned(record, changes, label)
        new = evolve_record(record, version=version, chain_head=head, last_seq=seq, **changes)
        if decision.erase_sealed:
            self.store.save(
                new,
                expected_version=record.version,
                events=events,
                lease=lease,
                release=release,
                now=now,
                erase_sealed=True,
            )
        else:
            self.store.save(
                new, expected_version=record.version, events=events, lease=lease, release=release, now=now
            )
        self.notify(events)
        return new

    def commit_many(self, commits: Sequence[Commit]) -> list[AccountRecord | Exception]:
        """``commit`` of many accounts in one store transaction (``save_many``, or one ``save``
        each on a store without it), each with its own compare-and-set: returns, in order, the
        new record of each write made and the error of each refused one (``ConcurrentUpdate``,
        ``AccountNotFound``, ``AccountExists``: nothing of it written). Each write's events are
        chained at its own ``now``; the store decides whether another owner's claim is live at
        the latest of them. Listeners hear of the writes made, in order, once committed.

        A commit's ``after`` (``apply(record, decision)``, when it is a new record) is the
        caller's own copy, seen by no one else yet: the write path sets its version, chain head
        and pin in place and returns it as the new record, instead of copying it once more."""
        if not commits:
            return []
        news: list[AccountRecord] = []
        writes: list[Write] = []
        chained: list[list[AuditEvent]] = []
        # each event's stored text, made from the canonical text its hash was computed from
        # (``codec.event_to_json`` reads it while the store writes this batch)
        forms: dict[int, tuple[AuditEvent, str]] = {}
        for c in commits:
            record = c.record
            label = self.label(record, c.decision.changes)
            writer = ChainWriter(
                record.account_id,
                label,
                record.chain_head or GENESIS,
                record.last_seq,
                record.version + 1,
            )
            for event in c.decision.events:
                details, sealed_values = seal(event.details)
                chained_event, stored = writer.append_keeping_text(
                    at=event.at or c.now,
                    actor=event.actor,
                    action=event.action,
                    from_state=event.from_state,
                    to_state=event.to_state,
                    details=details,
                    sealed_values=sealed_values,
                )
                forms[id(chained_event)] = (chained_event, stored)
            if c.after is None:
                new = evolve_record(
                    record,
                    version=record.version + 1,
                    chain_head=writer.head,
                    last_seq=writer.seq,
                    **self._pinned(record, c.decision.changes, label),
                )
            elif c.after is record:  # nothing to apply: only the write path's fields, and the pin
                pinned = self._pinned(record, c.decision.changes, label).get("pins")
                new = evolve_record(
                    record,
                    version=record.version + 1,
                    chain_head=writer.head,
                    last_seq=writer.seq,
                    **({} if pinned is None else {"pins": pinned}),
                )
            else:  # the changes are applied to the caller's own copy: the write path completes it
                pinned = self._pinned(record, c.decision.changes, label).get("pins")
                new = c.after
                _set(new, "version", record.version + 1)
                _set(new, "chain_head", writer.head)
                _set(new, "last_seq", writer.seq)
                if pinned is not None:
                    _set(new, "pins", _convert_pins(pinned))
            events = writer.events
            news.append(new)
            chained.append(events)
            writes.append(
                Write(new, record.version, tuple(events), c.lease, c.release, c.decision.erase_sealed)
            )
        with stored_forms(forms):
            refused = save_many(self.store, writes, now=max(c.now for c in commits))
        out: list[AccountRecord | Exception] = []
        for new, events, error in zip(news, chained, refused, strict=True):
            if error is None:
                self.notify(events)
                out.append(new)
            else:
                out.append(error)
        return out

    def notify(self, events: Iterable[AuditEvent]) -> None:
        """Hand committed *events* to every listener; a listener's failure is logged, never raised."""
        for event in events:
            if event.action == "reminder":
                telemetry.listener(event)  # counts reminders sent; nothing without the otel extra
            for listener in self.listeners:
                try:
                    listener(event)
                except Exception:  # the change is committed; a listener's failure must not undo it
                    log.exception("listener %r failed on event %s #%d", listener, event.account_id, event.seq)


def _chained(
    account_id: str,
    label: str,
    head: str,
    seq: int,
    version: int,
    events: Sequence[Event],
    now: datetime,
) -> tuple[AuditEvent, ...]:
    """*events* chained after *head* (*seq*) under *label*, written with account *version*, each
    at its own moment or *now*, their personal values sealed (``sealed``)."""
    chained = []
    for event in events:
        details, sealed_values = seal(event.details)
        seq += 1
        made, _ = chain_text(
            head,
            seq,
            account_id,
            event.at or now,
            event.actor,
            event.action,
            event.from_state,
            event.to_state,
            label,
            details,
            version,
            sealed_values,
        )
        head = made.hash
        chained.append(made)
    return tuple(chained)


_set = object.__setattr__
#: ``AccountRecord``'s converter of ``pins`` (what ``evolve_record`` would apply).
_convert_pins = _RECORD_CONVERTERS["pins"]
