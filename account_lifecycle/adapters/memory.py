"""An in-process store: for tests, demos and the testing toolkit. Thread-safe, not durable."""

from __future__ import annotations

import bisect
import heapq
import itertools
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

import attrs

from account_lifecycle.adapters._outbox import (
    check_advance,
    check_read,
    claimed_cursor,
    may_advance,
    outbox_conflict,
)
from account_lifecycle.audit import AuditEvent
from account_lifecycle.clock import require_aware
from account_lifecycle.errors import AccountExists, AccountNotFound, ConcurrentUpdate
from account_lifecycle.health import StatusRow, StoreStatus, summarize
from account_lifecycle.model import AccountRecord, State
from account_lifecycle.ports import REFUSALS
from account_lifecycle.queries import (
    AccountQuery,
    account_matches,
    check_after,
    check_limit,
    check_query,
    flags_of,
    query_path,
)
from account_lifecycle.schedule import due_at
from account_lifecycle.sealed import SealedValue
from account_lifecycle.values import (
    CorruptRecord,
    DeadLetter,
    Lease,
    OutboxCursor,
    OutboxEntry,
    Write,
    require_now,
)

__all__ = ["MemoryStore"]


class MemoryStore:
    """Keeps records and audit events in dictionaries, guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, AccountRecord] = {}
        self._events: dict[str, list[AuditEvent]] = {}
        self._identities: dict[str, str] = {}  # live identity -> account id
        # (kind, value) -> (account id, free_at): identifiers, held until free_at (None: for good)
        self._identifiers: dict[tuple[str, str], tuple[str, datetime | None]] = {}
        self._identifier_keys: dict[str, set[tuple[str, str]]] = {}  # account id -> its rows' keys
        self._due: dict[str, datetime] = {}
        self._due_order: list[tuple[datetime, str]] = []  # heap of (due, id); may hold stale entries
        self._claims: dict[str, Lease] = {}
        # the side table: account id -> seq -> field -> sealed value (events are kept without)
        self._sealed: dict[str, dict[int, Mapping[str, SealedValue]]] = {}
        # the outbox: (position, event without its sealed values), positions 1, 2, ...
        self._outbox: list[tuple[int, AuditEvent]] = []
        self._cursors: dict[str, OutboxCursor] = {}
        self._dead: dict[tuple[str, int], DeadLetter] = {}
        # operators' queries: every id in order (kept sorted while ids come in order, else
        # sorted again on the next query), and the ids with a legal hold / a failed purge step
        self._ordered: list[str] = []
        self._ordered_stale = False
        self._held: set[str] = set()
        self._failed: set[str] = set()

    def __len__(self) -> int:
        return len(self._records)

    def _check_identity(self, record: AccountRecord, aliases: Mapping[str, Sequence[str]]) -> None:
        identity = record.live_identity
        if identity is None:
            return
        for value in (identity, *aliases.get(identity, ())):
            if self._identities.get(value, record.account_id) != record.account_id:
                raise AccountExists(account_id=record.account_id, identity=identity)

    def _identifier_rows(
        self, record: AccountRecord, now: datetime | None, aliases: Mapping[str, Sequence[str]]
    ) -> tuple[dict[tuple[str, str], tuple[str, datetime | None]], list[tuple[str, str]]]:
        """The identifier rows *record* writes, and those it gives up (its own rows it no longer
        lists, and aliases whose holder freed them); ``AccountExists`` if another account holds
        one. Checked before anything is written, so a refused write changes nothing."""
        rows: dict[tuple[str, str], tuple[str, datetime | None]] = {}
        dropped: list[tuple[str, str]] = []
        for kind, held in record.identifiers.items():
            key = (kind, held.value)
            holder = self._identifiers.get(key)
            if holder is None or holder[0] != record.account_id:
                if _free(held.free_at, now):
                    continue  # given up already: nothing left to hold
                if holder is not None and not _free(holder[1], now):
                    raise AccountExists(account_id=record.account_id, identity=held.value, kind=kind)
                for alias in aliases.get(held.value, ()):
                    other = self._identifiers.get((kind, alias))
                    if other is None or other[0] == record.account_id:
                        continue
                    if not _free(other[1], now):
                        raise AccountExists(account_id=record.account_id, identity=held.value, kind=kind)
                    dropped.append((kind, alias))
            rows[key] = (record.account_id, held.free_at)
        dropped += [key for key in self._identifier_keys.get(record.account_id, ()) if key not in rows]
        return rows, dropped

    def _take_identifiers(
        self, record: AccountRecord, now: datetime | None, aliases: Mapping[str, Sequence[str]]
    ) -> None:
        self._check_identity(record, aliases)
        rows, dropped = self._identifier_rows(record, now, aliases)
        for key in dropped:
            self._forget_identifier(key)
        for key, row in rows.items():
            self._forget_identifier(key)
            self._identifiers[key] = row
            self._identifier_keys.setdefault(row[0], set()).add(key)

    def _forget_identifier(self, key: tuple[str, str]) -> None:
        """Drop the identifier row *key*, from the table and from its holder's keys."""
        row = self._identifiers.pop(key, None)
        if row is not None:
            keys = self._identifier_keys.get(row[0])
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._identifier_keys[row[0]]

    def _append(self, account_id: str, events: Sequence[AuditEvent]) -> None:
        """Keep *events* without their sealed values, which go to the side table, and give each
        its outbox entry (under the lock of the write that appends it)."""
        stored = self._events.setdefault(account_id, [])
        outbox = self._outbox
        for event in events:
            if event.sealed_values:
                self._sealed.setdefault(account_id, {})[event.seq] = dict(event.sealed_values)
                event = attrs.evolve(event, sealed_values={})
            stored.append(event)
            outbox.append((len(outbox) + 1, event))

    def _index(self, record: AccountRecord, previous: AccountRecord | None) -> None:
        if previous is None:
            ordered = self._ordered
            if ordered and record.account_id < ordered[-1]:
                self._ordered_stale = True
            ordered.append(record.account_id)
        if previous is None or record.holds is not previous.holds or record.purge is not previous.purge:
            self._flag(record)
        if (
            previous is None
            or record.identity is not previous.identity
            or record.identity_released_at is not previous.identity_released_at
        ):  # else the live identity is the previous one, indexed already
            if previous is not None and previous.live_identity is not None:
                self._identities.pop(previous.live_identity, None)
            if record.live_identity is not None:
                self._identities[record.live_identity] = record.account_id
        due = due_at(record)
        if due is None:
            self._due.pop(record.account_id, None)
        elif self._due.get(record.account_id) != due:
            self._due[record.account_id] = due
            heapq.heappush(self._due_order, (due, record.account_id))
            if len(self._due_order) > 2 * len(self._due) + 64:  # mostly stale entries: rebuild
                self._due_order = [(d, a) for a, d in self._due.items()]
                heapq.heapify(self._due_order)

    def _flag(self, record: AccountRecord) -> None:
        """Keep *record*'s id in the sets of held and failed accounts as ``flags_of`` says."""
        held, failed = flags_of(record)
        for flagged, ids in ((held, self._held), (failed, self._failed)):
            if flagged:
                ids.add(record.account_id)
            else:
                ids.discard(record.account_id)

    def create(
        self,
        record: AccountRecord,
        events: Sequence[AuditEvent],
        *,
        now: datetime | None = None,
        aliases: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Insert a new account with its first events (``AccountStore.create``)."""
        with self._lock:
            if record.account_id in self._records:
                raise AccountExists(account_id=record.account_id)
            self._take_identifiers(record, now, aliases or {})
            self._records[record.account_id] = record
            self._events[record.account_id] = []
            self._sealed[record.account_id] = {}
            self._append(record.account_id, events)
            self._index(record, None)

    def get(self, account_id: str) -> AccountRecord:
        """The stored record (``AccountStore.get``); ``AccountNotFound``, ``RecordCorrupt``."""
        with self._lock:
            try:
                return self._records[account_id]
            except KeyError:
                raise AccountNotFound(account_id=account_id) from None

    def save(
        self,
        record: AccountRecord,
        *,
        expected_version: int,
        events: Sequence[AuditEvent],
        lease: Lease | None = None,
        release: str | None = None,
        now: datetime | None = None,
        erase_sealed: bool = False,
    ) -> None:
        """Compare-and-set the record with its events; claims as ``AccountStore.save`` says."""
        with self._lock:
            self._save(record, expected_version, events, lease, release, now, erase_sealed)

    def save_many(self, writes: Sequence[Write], *, now: datetime) -> list[Exception | None]:
        """Each write's compare-and-set under one hold of the lock (see ``BatchStore``)."""
        if any(w.lease is not None for w in writes):
            require_now(now)
        results: list[Exception | None] = []
        with self._lock:
            for w in writes:
                try:
                    self._save(
                        w.record, w.expected_version, w.events, w.lease, w.release, now, w.erase_sealed
                    )
                except REFUSALS as exc:  # checked before anything is written: this write only
                    results.append(exc)
                else:
                    results.append(None)
        return results

    def _save(
        self,
        record: AccountRecord,
        expected_version: int,
        events: Sequence[AuditEvent],
        lease: Lease | None,
        release: str | None,
        now: datetime | None,
        erase_sealed: bool = False,
    ) -> None:
        current = self._records.get(record.account_id)
        if current is None:
            raise AccountNotFound(account_id=record.account_id)
        if current.version != expected_version:
            raise ConcurrentUpdate(account_id=record.account_id, expected_version=expected_version)
        if lease is not None:
            moment = require_now(now)  # required with a lease, whether or not a claim exists
            claim = self._claims.get(record.account_id)
            if claim is not None and claim.owner != lease.owner and claim.until > moment:
                raise ConcurrentUpdate(account_id=record.account_id, expected_version=expected_version)
        if record.identifiers or current.identifiers:
            self._take_identifiers(record, now, {})
        elif (
            record.identity is not current.identity
            or record.identity_released_at is not current.identity_released_at
        ) and record.live_identity != current.live_identity:
            # Neither holds identifiers, so the account holds no identifier rows (a save
            # writes only its record's): only the single identity can be taken.
            self._check_identity(record, {})
        self._records[record.account_id] = record
        if erase_sealed:
            self._sealed[record.account_id] = {}
        self._append(record.account_id, events)
        self._index(record, current)
        if lease is not None:
            self._claims[record.account_id] = lease
        elif release is not None:
            claim = self._claims.get(record.account_id)
            if claim is not None and claim.owner == release:
                del self._claims[record.account_id]

    def history(self, account_id: str) -> tuple[AuditEvent, ...]:
        """The account's audit events in order (``AccountStore.history``)."""
        with self._lock:
            try:
                events = self._events[account_id]
            except KeyError:
                raise AccountNotFound(account_id=account_id) from None
            sealed = self._sealed.get(account_id, {})
            return tuple(
                attrs.evolve(e, sealed_values=sealed[e.seq]) if e.seq in sealed else e for e in events
            )

    def claim_due(self, *, now: datetime, lease: Lease, limit: int) -> list[AccountRecord | CorruptRecord]:
        """Claim up to *limit* due accounts for *lease* (``AccountStore.claim_due``)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be a whole number >= 0, got {limit!r}")
        if limit == 0:
            return []
        now = require_aware(now)
        with self._lock:
            # Due accounts come off a heap in (due, id) order, so a claim looks at the accounts
            # it takes and those others hold, never at every due account. An entry is current
            # when the account is still due then (an older due time leaves a stale entry).
            claimed: list[AccountRecord | CorruptRecord] = []
            held: list[tuple[datetime, str]] = []
            taken: set[str] = set()
            order = self._due_order
            while order and len(claimed) < limit and order[0][0] <= now:
                entry = heapq.heappop(order)
                due, account_id = entry
                if self._due.get(account_id) != due or account_id in taken:
                    continue  # stale, or a second entry of one due time
                if not self._claim_free(account_id, now):
                    held.append(entry)  # still due; claimable once that claim ends
                    continue
                taken.add(account_id)
                held.append(entry)  # stays due until a save moves it
                self._claims[account_id] = lease
                claimed.append(self._records[account_id])
            for entry in held:
                heapq.heappush(order, entry)
            return claimed

    def _claim_free(self, account_id: str, now: datetime) -> bool:
        claim = self._claims.get(account_id)
        return claim is None or claim.until <= now

    def release(self, account_id: str, owner: str) -> None:
        """Drop *owner*'s claim on the account, and no other owner's."""
        with self._lock:
            claim = self._claims.get(account_id)
            if claim is not None and claim.owner == owner:
                del self._claims[account_id]

    # -- queries ---------------------------------------------------------------------------

    def list_accounts(
        self, query: AccountQuery, *, after: str | None, limit: int
    ) -> list[AccountRecord | CorruptRecord]:
        """Up to *limit* accounts matching *query* with ids after *after*, in id order
        (``QueryStore.list_accounts``). Reads only. Held or failed accounts are walked from
        their sets (``flags_of``, kept on every write), the others from the ids in order."""
        query = check_query(query)
        after = check_after(after)
        limit = check_limit(limit)
        with self._lock:
            path = query_path(query)
            if path == "holds" or path == "failed":  # the few flagged ids, in order
                ids = sorted(self._held if path == "holds" else self._failed)
            else:
                if self._ordered_stale:
                    self._ordered.sort()
                    self._ordered_stale = False
                ids = self._ordered
            start = 0 if after is None else bisect.bisect_right(ids, after)
            found: list[AccountRecord | CorruptRecord] = []
            for account_id in itertools.islice(ids, start, None):
                if len(found) >= limit:
                    break
                record = self._records[account_id]
                if account_matches(query, record):
                    found.append(record)
            return found

    def account_ids(self) -> tuple[str, ...]:
        """Every stored account id (for tests and tools)."""
        with self._lock:
            return tuple(self._records)

    def account_ids_pinned(self, label: str) -> tuple[str, ...]:
        """The ids of the accounts pinned to *label* (``name@version``, or a bare name for
        records written before versions), in id order."""
        with self._lock:
            return tuple(sorted(i for i, r in self._records.items() if r.policy_label == label))

    # -- read-only views for operators --------------------------------------------------------

    def schema_version(self) -> int:
        """A ``MemoryStore`` has no schema to migrate: always 0, as is its ``status``'s
        ``library_schema_version``."""
        return 0

    def status(self, *, now: datetime) -> StoreStatus:
        """A snapshot of the purge work at *now* (backlog, oldest due, failed steps, live claims);
        reads only. See ``account_lifecycle.health.StoreStatus``."""
        now = require_aware(now)
        with self._lock:
            rows = [
                StatusRow(
                    account_id,
                    self._due.get(account_id),
                    None if (claim := self._claims.get(account_id)) is None else claim.owner,
                    None if claim is None else claim.until,
                    record,
                )
                for account_id, record in self._records.items()
                if account_id in self._due or account_id in self._claims or record.state in _WORKING
            ]
        return summarize(rows, now=now, schema_version=0, library_schema_version=0)

    # -- the outbox --------------------------------------------------------------------------

    def outbox_read(self, *, after: int, limit: int) -> list[OutboxEntry]:
        """Up to *limit* entries after position *after*, in order (``OutboxStore.outbox_read``)."""
        after, limit = check_read(after, limit)
        with self._lock:
            page = self._outbox[after : after + limit]  # position p is at index p - 1
            out = []
            for position, event in page:
                sealed = self._sealed.get(event.account_id, {}).get(event.seq)
                out.append(
                    OutboxEntry(position, attrs.evolve(event, sealed_values=sealed) if sealed else event)
                )
            return out

    def outbox_claim(self, listener: str, *, lease: Lease, now: datetime) -> OutboxCursor | None:
        """Claim *listener*'s cursor for ``lease.owner`` (``OutboxStore.outbox_claim``)."""
        now = require_aware(now)
        with self._lock:
            cursor = self._cursors.get(listener, OutboxCursor(listener))
            claimed = claimed_cursor(cursor, lease, now)
            if claimed is not None:
                self._cursors[listener] = claimed
            return claimed

    def outbox_advance(
        self, cursor: OutboxCursor, *, expected_version: int, dead: Sequence[DeadLetter] = ()
    ) -> None:
        """Compare-and-set *cursor* and add *dead* letters (``OutboxStore.outbox_advance``)."""
        check_advance(cursor, expected_version, dead)
        with self._lock:
            stored = self._cursors.get(cursor.listener)
            if stored is None or not may_advance(stored.version, stored.owner, cursor, expected_version):
                raise outbox_conflict(cursor.listener, expected_version)
            self._cursors[cursor.listener] = cursor
            for letter in dead:
                self._dead[(letter.listener, letter.position)] = letter

    def outbox_cursors(self) -> tuple[OutboxCursor, ...]:
        """Every listener's cursor, by listener name."""
        with self._lock:
            return tuple(self._cursors[name] for name in sorted(self._cursors))

    def outbox_dead_letters(self, listener: str | None = None) -> tuple[DeadLetter, ...]:
        """The dead letters of *listener* (or all), by listener then position."""
        with self._lock:
            return tuple(
                self._dead[key] for key in sorted(self._dead) if listener is None or key[0] == listener
            )

    def outbox_forget_dead(self, listener: str, positions: Sequence[int]) -> int:
        """Remove those dead letters of *listener*; how many were removed."""
        with self._lock:
            return sum(self._dead.pop((listener, p), None) is not None for p in set(positions))

    def outbox_head(self) -> int:
        """The highest position written so far (0 if none)."""
        with self._lock:
            return len(self._outbox)


#: States in which an account may have purge steps (failed ones included) on its ledger.
_WORKING: Final = frozenset({State.CANCELLED, State.RESTORABLE})


def _free(free_at: datetime | None, now: datetime | None) -> bool:
    """Whether an identifier held until *free_at* is free at *now* (never, without a *now*)."""
    return free_at is not None and now is not None and free_at <= now
