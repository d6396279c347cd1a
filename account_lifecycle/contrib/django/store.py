"""``DjangoStore``: the library's store on the Django ORM, inside the caller's transaction.

Every method is one ``transaction.atomic(using=...)`` block: on its own a transaction, inside
the host's ``atomic()`` a savepoint, so a host's own writes and the lifecycle's commit (record,
audit events, outbox entries) are committed together or not at all. A refused write (a stale
version, a taken identity) rolls back its savepoint only and raises the library's typed error;
every database error leaves as ``StoreError``, quoting no stored value.

Compare-and-set is an ``UPDATE ... WHERE version = expected``: zero rows means another writer
won. Claims take due rows with ``select_for_update(skip_locked=True)`` where the database has
it (PostgreSQL); on SQLite, which has no row locks, a claim first takes the database's write
lock (a write statement) and then reads and claims the rows: writers are serialized, so two
claimers never get the same account. Configure SQLite with ``"transaction_mode": "IMMEDIATE"``
so every transaction takes that lock when it starts (the system check warns otherwise).

Outbox positions increase in commit order: on PostgreSQL the numbering takes a
transaction-scoped advisory lock first (held to commit), on SQLite writers are serialized.
"""

from __future__ import annotations

import hashlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final

import attrs
from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.models import Case, F, Max, Q, Value, When

from account_lifecycle.adapters._outbox import check_advance, check_read, claimed_cursor, outbox_conflict
from account_lifecycle.audit import AuditEvent
from account_lifecycle.clock import require_aware
from account_lifecycle.codec import (
    dumps,
    event_from_json,
    event_to_json,
    record_from_json,
    record_to_json,
    sealed_from_row,
)
from account_lifecycle.contrib.django.models import (
    AccountRow,
    DeadLetterRow,
    EventRow,
    IdentifierRow,
    OutboxCursorRow,
    OutboxEntryRow,
    SealedValueRow,
)
from account_lifecycle.errors import (
    AccountExists,
    AccountNotFound,
    ConcurrentUpdate,
    ConfigurationError,
    LifecycleError,
    RecordCorrupt,
    StoreError,
)
from account_lifecycle.health import StatusRow, StoreStatus, summarize
from account_lifecycle.model import AccountRecord, State
from account_lifecycle.ports import REFUSALS, save_each
from account_lifecycle.queries import flags_of, merge_pages, query_path
from account_lifecycle.schedule import due_at
from account_lifecycle.sealed import SealedValue
from account_lifecycle.values import (
    AccountQuery,
    CorruptRecord,
    DeadLetter,
    Lease,
    OutboxCursor,
    OutboxEntry,
    Write,
    require_now,
)

__all__ = ["DjangoStore"]

#: The advisory lock the outbox numbering takes on PostgreSQL (one per database).
_OUTBOX_LOCK: Final = int.from_bytes(
    hashlib.sha256(b"account_lifecycle.outbox").digest()[:8], "big", signed=True
)
#: The app label of the library's models and migrations.
_APP: Final = "account_lifecycle"
#: SQLSTATEs of a transaction PostgreSQL rolled back to keep writers apart: retry, never an error.
_CONFLICT_STATES: Final = frozenset({"40001", "40P01"})


class _Conflict(LifecycleError):
    """A deadlock or serialization failure inside a batch: the batch is saved one by one."""


class DjangoStore:
    """Accounts, audit events and the outbox in the Django database *using* (an alias of
    ``DATABASES``), through the ORM, inside the caller's ``transaction.atomic()``.

    The tables are the app's models (``account_lifecycle.contrib.django``, in
    ``INSTALLED_APPS``), created by ``manage.py migrate``. The store holds no connection of its
    own: Django's per-thread connections serve every call."""

    def __init__(self, using: str = "default") -> None:
        if using not in connections.settings:
            raise ConfigurationError(f"DjangoStore: DATABASES has no alias {using!r}")
        self.using = using

    def __repr__(self) -> str:
        return f"DjangoStore(using={self.using!r})"

    # -- transactions and errors -------------------------------------------------------------

    @property
    def _vendor(self) -> str:
        return str(connections[self.using].vendor)

    @contextmanager
    def _atomic(self, what: str) -> Iterator[None]:
        """One atomic block (a savepoint inside the caller's); a database error leaves it as
        ``StoreError`` naming what failed, with none of the stored values."""
        try:
            with transaction.atomic(using=self.using):
                yield
        except DatabaseError as exc:
            if _sqlstate(exc) in _CONFLICT_STATES:
                raise _Conflict() from None
            raise StoreError(f"{what} failed in Django database {self.using!r}: {_described(exc)}") from None

    def _rows(self, model: Any) -> Any:
        return model.objects.using(self.using)

    def _take_write_lock(self) -> None:
        """On SQLite, take the database's write lock now (a write statement that changes
        nothing), so that the reads that follow are serialized with every other writer."""
        if self._vendor == "sqlite":
            with connections[self.using].cursor() as cursor:
                cursor.execute(f"UPDATE {OutboxCursorRow._meta.db_table} SET version = version WHERE 0 = 1")  # noqa: S608

    # -- the host's transaction (ports.HostCommitStore) -----------------------------------------

    def in_host_transaction(self) -> bool:
        """Whether a write made now is committed only when the host commits: inside a
        ``transaction.atomic()`` block on this alias (``ATOMIC_REQUESTS`` too), or with
        autocommit off (``set_autocommit(False)``, or ``"AUTOCOMMIT": False`` in ``DATABASES``).
        Reads the connection's state only: no query, no connection opened."""
        conn = connections[self.using]
        if conn.in_atomic_block:
            return True
        if conn.connection is None:  # not connected yet: it will connect as the settings say
            return conn.settings_dict.get("AUTOCOMMIT", True) is False
        return not conn.autocommit

    def on_commit(self, callback: Callable[[], object]) -> bool:
        """Call *callback* once the host's transaction on this alias commits
        (``transaction.on_commit``, robust: an exception it raises is logged, never raised from
        the host's commit), at once outside any transaction; never after a rollback. False, and
        nothing registered, under manual transaction management (autocommit off and no
        ``atomic()`` block), where Django cannot tell when the host commits."""
        conn = connections[self.using]
        if not conn.in_atomic_block and self.in_host_transaction():
            return False
        transaction.on_commit(callback, using=self.using, robust=True)
        return True

    # -- columns -----------------------------------------------------------------------------

    @staticmethod
    def _columns(record: AccountRecord) -> dict[str, Any]:
        held, failed = flags_of(record)
        return {
            "version": record.version,
            "state": record.state.value,
            "live_identity": record.live_identity,
            "due_at": due_at(record),
            "has_holds": held,
            "has_failed_steps": failed,
            "policy": record.policy,
            "body": record_to_json(record),
        }

    def _append(self, events: Sequence[AuditEvent]) -> None:
        """Insert *events*, their sealed values and their outbox entries (numbered last)."""
        if not events:
            return
        self._rows(EventRow).bulk_create(
            [
                EventRow(
                    account_id=e.account_id,
                    seq=e.seq,
                    at=require_aware(e.at),
                    action=str(e.action),
                    body=event_to_json(e),
                )
                for e in events
            ]
        )
        sealed = [
            SealedValueRow(
                account_id=e.account_id, seq=e.seq, field=name, salt=held.salt, value=dumps(held.value)
            )
            for e in events
            for name, held in e.sealed_values.items()
        ]
        if sealed:
            self._rows(SealedValueRow).bulk_create(sealed)
        if self._vendor == "postgresql":
            with connections[self.using].cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_OUTBOX_LOCK])
        head = self._rows(OutboxEntryRow).aggregate(head=Max("position"))["head"] or 0
        self._rows(OutboxEntryRow).bulk_create(
            [
                OutboxEntryRow(position=head + n, account_id=e.account_id, seq=e.seq)
                for n, e in enumerate(events, 1)
            ]
        )

    def _exists(self, account_id: str) -> bool:
        return bool(self._rows(AccountRow).filter(account_id=account_id).exists())

    # -- identities and identifiers ------------------------------------------------------------

    def _check_aliases(
        self, record: AccountRecord, aliases: Mapping[str, Sequence[str]], now: datetime | None
    ) -> None:
        """``AccountExists`` if another account holds an alias of the record's identity or of one
        of its identifiers; an alias whose holder freed it is given up."""
        identity = record.live_identity
        names = [] if identity is None else [identity, *aliases.get(identity, ())]
        if self._vendor == "postgresql":
            for kind, held in record.identifiers.items():
                names += [f"{kind}:{v}" for v in (held.value, *aliases.get(held.value, ()))]
            with connections[self.using].cursor() as cursor:
                for name in sorted(set(names)):
                    cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [name])
        others = self._rows(AccountRow).exclude(account_id=record.account_id)
        for alias in () if identity is None else aliases.get(identity, ()):
            if others.filter(live_identity=alias).exists():
                raise AccountExists(account_id=record.account_id, identity=identity)
        for kind, held in record.identifiers.items():
            for alias in aliases.get(held.value, ()):
                held_by_other = list(
                    self._rows(IdentifierRow)
                    .filter(kind=kind, value=alias)
                    .exclude(account_id=record.account_id)
                    .values_list("free_at", flat=True)
                )
                if not held_by_other:
                    continue
                row = held_by_other[0]
                if row is None or now is None or row > require_aware(now):
                    raise AccountExists(account_id=record.account_id, identity=held.value, kind=kind)
                self._rows(IdentifierRow).filter(kind=kind, value=alias).delete()

    def _write_identifiers(self, record: AccountRecord, now: datetime | None) -> None:
        """Update the release moment of the identifiers the account holds, take the others (an
        expired holder's row is deleted first), give up those it no longer lists;
        ``AccountExists`` if one is held by another account."""
        rows = self._rows(IdentifierRow)
        listed = {(kind, held.value) for kind, held in record.identifiers.items()}
        for kind, value in rows.filter(account_id=record.account_id).values_list("kind", "value"):
            if (kind, value) not in listed:
                rows.filter(kind=kind, value=value).delete()
        for kind, held in record.identifiers.items():
            free_at = None if held.free_at is None else require_aware(held.free_at)
            if rows.filter(kind=kind, value=held.value, account_id=record.account_id).update(free_at=free_at):
                continue
            if held.free_at is not None and (now is None or held.free_at <= now):
                continue  # given up already: nothing left to hold
            if now is not None:
                rows.filter(kind=kind, value=held.value, free_at__lte=require_aware(now)).delete()
            try:
                with transaction.atomic(using=self.using):
                    rows.create(kind=kind, value=held.value, account_id=record.account_id, free_at=free_at)
            except IntegrityError:
                raise AccountExists(account_id=record.account_id, identity=held.value, kind=kind) from None

    # -- the store port ------------------------------------------------------------------------

    def create(
        self,
        record: AccountRecord,
        events: Sequence[AuditEvent],
        *,
        now: datetime | None = None,
        aliases: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Insert a new account with its first events (``AccountStore.create``)."""
        columns = self._columns(record)
        with self._atomic(f"creating account {record.account_id!r}"):
            self._take_write_lock()
            if self._exists(record.account_id):
                raise AccountExists(account_id=record.account_id)
            if aliases:
                self._check_aliases(record, aliases, now)
            try:
                with transaction.atomic(using=self.using):
                    self._rows(AccountRow).create(account_id=record.account_id, **columns)
            except IntegrityError:
                if self._exists(record.account_id):
                    raise AccountExists(account_id=record.account_id) from None
                raise AccountExists(account_id=record.account_id, identity=record.live_identity) from None
            if record.identifiers:
                self._write_identifiers(record, now)
            self._append(events)

    def get(self, account_id: str) -> AccountRecord:
        """The stored record (``AccountStore.get``); ``AccountNotFound``, ``RecordCorrupt``."""
        with self._atomic(f"reading account {account_id!r}"):
            body = self._rows(AccountRow).filter(account_id=account_id).values_list("body", flat=True).first()
        if body is None:
            raise AccountNotFound(account_id=account_id)
        return record_from_json(body, account_id)

    def _save_in(
        self,
        record: AccountRecord,
        expected_version: int,
        lease: Lease | None,
        release: str | None,
        now: datetime | None,
        erase_sealed: bool,
    ) -> None:
        """One compare-and-set, without its events, in the open atomic block."""
        rows = self._rows(AccountRow).filter(account_id=record.account_id, version=expected_version)
        changes = self._columns(record)
        if lease is not None:
            moment = require_now(now)
            rows = rows.filter(
                Q(claim_owner__isnull=True) | Q(claim_owner=lease.owner) | Q(claim_until__lte=moment)
            )
            changes.update(claim_owner=lease.owner, claim_until=require_aware(lease.until))
        elif release is not None:
            changes.update(
                claim_owner=Case(When(claim_owner=release, then=Value(None)), default=F("claim_owner")),
                claim_until=Case(When(claim_owner=release, then=Value(None)), default=F("claim_until")),
            )
        try:
            with transaction.atomic(using=self.using):
                updated = rows.update(**changes)
        except IntegrityError:
            raise AccountExists(account_id=record.account_id, identity=record.live_identity) from None
        if updated != 1:
            if not self._exists(record.account_id):
                raise AccountNotFound(account_id=record.account_id)
            raise ConcurrentUpdate(account_id=record.account_id, expected_version=expected_version)
        self._write_identifiers(record, now)  # also gives up the rows it no longer lists
        if erase_sealed:
            self._rows(SealedValueRow).filter(account_id=record.account_id).delete()

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
        if lease is not None:
            require_now(now)
        try:
            with self._atomic(f"saving account {record.account_id!r}"):
                self._save_in(record, expected_version, lease, release, now, erase_sealed)
                self._append(events)
        except _Conflict:
            raise ConcurrentUpdate(account_id=record.account_id, expected_version=expected_version) from None

    def save_many(self, writes: Sequence[Write], *, now: datetime) -> list[Exception | None]:
        """Every write's compare-and-set in one atomic block (see ``BatchStore``), each in a
        savepoint of its own so that a refused write leaves the others; the events of the writes
        made are appended after them. A deadlock between batches saves this one write by write."""
        if any(w.lease is not None for w in writes):
            now = require_now(now)
        results: list[Exception | None] = []
        try:
            with self._atomic(f"saving {len(writes)} accounts"):
                made: list[AuditEvent] = []
                for w in writes:
                    try:
                        with transaction.atomic(using=self.using):
                            self._save_in(
                                w.record, w.expected_version, w.lease, w.release, now, w.erase_sealed
                            )
                    except REFUSALS as exc:
                        results.append(exc)
                        continue
                    results.append(None)
                    made.extend(w.events)
                self._append(made)
        except _Conflict:
            return save_each(self, writes, now=now)
        return results

    def history(self, account_id: str) -> tuple[AuditEvent, ...]:
        """The account's audit events in order (``AccountStore.history``)."""
        with self._atomic(f"reading the history of {account_id!r}"):
            bodies = list(
                self._rows(EventRow)
                .filter(account_id=account_id)
                .order_by("seq")
                .values_list("body", flat=True)
            )
            if not bodies and not self._exists(account_id):
                raise AccountNotFound(account_id=account_id)
            sealed = list(
                self._rows(SealedValueRow)
                .filter(account_id=account_id)
                .values_list("account_id", "seq", "field", "salt", "value")
            )
        events = tuple(event_from_json(body, account_id, i) for i, body in enumerate(bodies, 1))
        return _with_sealed(events, sealed)

    def claim_due(self, *, now: datetime, lease: Lease, limit: int) -> list[AccountRecord | CorruptRecord]:
        """Claim up to *limit* due accounts for *lease* (``AccountStore.claim_due``): rows locked
        with ``SKIP LOCKED`` on PostgreSQL, under SQLite's write lock there."""
        now = require_aware(now)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be a whole number >= 0, got {limit!r}")
        if limit == 0:
            return []
        with self._atomic("claiming accounts due for purge"):
            self._take_write_lock()
            due = (
                self._rows(AccountRow)
                .filter(due_at__lte=now)
                .filter(Q(claim_until__isnull=True) | Q(claim_until__lte=now))
            )
            if connections[self.using].features.has_select_for_update_skip_locked:
                due = due.select_for_update(skip_locked=True)
            rows = list(due.order_by("due_at", "account_id").values_list("account_id", "body")[:limit])
            if rows:
                self._rows(AccountRow).filter(account_id__in=[r[0] for r in rows]).update(
                    claim_owner=lease.owner, claim_until=require_aware(lease.until)
                )
        return [_decode_claimed(account_id, body) for account_id, body in rows]

    def release(self, account_id: str, owner: str) -> None:
        """Drop *owner*'s claim on the account, and no other owner's."""
        with self._atomic(f"releasing the claim on {account_id!r}"):
            self._rows(AccountRow).filter(account_id=account_id, claim_owner=owner).update(
                claim_owner=None, claim_until=None
            )

    def account_ids(self) -> tuple[str, ...]:
        """Every stored account id, in order."""
        with self._atomic("listing accounts"):
            return tuple(self._rows(AccountRow).order_by("account_id").values_list("account_id", flat=True))

    # -- queries (QueryStore) ------------------------------------------------------------------

    def list_accounts(
        self, query: AccountQuery, *, after: str | None, limit: int
    ) -> list[AccountRecord | CorruptRecord]:
        """Up to *limit* accounts matching *query* with ids after *after*, in id order
        (``QueryStore.list_accounts``), read in one atomic block; never writes.

        Every condition is a column test (``state``, ``due_at``, ``has_holds``,
        ``has_failed_steps``), in id order on an index that serves it (``query_path``: the
        partial index of held or failed accounts, ``(state, account_id)`` once per state, or the
        primary key). A row that cannot be decoded is returned as a ``CorruptRecord`` when its
        columns match."""
        if not isinstance(query, AccountQuery):
            raise TypeError(f"query must be an AccountQuery, got {type(query).__name__}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be a whole number >= 0, got {limit!r}")
        if after is not None and not isinstance(after, str):
            raise TypeError(f"after must be an account id or None, got {type(after).__name__}")
        if limit == 0 or query.states == frozenset():
            return []
        rows = self._rows(AccountRow).all()
        if query.due_before is not None:
            rows = rows.filter(due_at__lt=require_aware(query.due_before))
        if query.with_holds is not None:
            rows = rows.filter(has_holds=query.with_holds)
        if query.with_failed_steps is not None:
            rows = rows.filter(has_failed_steps=query.with_failed_steps)
        if after is not None:
            rows = rows.filter(account_id__gt=after)

        def page(chosen: Any) -> list[tuple[str, str]]:
            return list(chosen.order_by("account_id").values_list("account_id", "body")[:limit])

        with self._atomic("listing accounts"):
            if query.states is None:
                found = page(rows)
            else:
                states = sorted(str(s) for s in query.states)
                if query_path(query) == "states":  # the state index, once per state
                    found = merge_pages((page(rows.filter(state=state)) for state in states), limit, _first)
                else:
                    found = page(rows.filter(state__in=states))
        return [_decode_claimed(account_id, body) for account_id, body in found]

    # -- health (health.StatusSource) ----------------------------------------------------------

    def schema_versions(self) -> tuple[int, int]:
        """The app's latest migration applied to this database (0: none, the tables are not
        there) and the latest this library ships: ``manage.py migrate`` brings the first up."""
        from django.db.migrations.recorder import MigrationRecorder

        from account_lifecycle.contrib.django import migrations

        with self._atomic("reading the applied migrations"):
            applied = MigrationRecorder(connections[self.using]).applied_migrations()
        shipped = (m.name for m in pkgutil.iter_modules(migrations.__path__))
        return _latest(name for app, name in applied if app == _APP), _latest(shipped)

    def status(self, *, now: datetime) -> StoreStatus:
        """A snapshot of the purge work at *now* (backlog, oldest due, failed steps, live claims,
        started erasures, undecodable rows), read in one atomic block that writes nothing. The
        schema versions are the app's migrations: the latest applied and the latest shipped
        (``schema_outdated``: run ``manage.py migrate``). See ``account_lifecycle.health``."""
        now = require_aware(now)
        applied, shipped = self.schema_versions()
        rows: list[tuple[str, datetime | None, str | None, datetime | None, str]] = []
        if applied:
            with self._atomic("reading the status"):
                rows = list(
                    self._rows(AccountRow)
                    .filter(
                        Q(due_at__isnull=False)
                        | Q(claim_owner__isnull=False)
                        | Q(state__in=[State.CANCELLED.value, State.RESTORABLE.value])
                    )
                    .order_by("account_id")
                    .values_list("account_id", "due_at", "claim_owner", "claim_until", "body")
                )
        return summarize(
            (
                StatusRow(a, due, owner, until, _decode_claimed(a, body))
                for a, due, owner, until, body in rows
            ),
            now=now,
            schema_version=applied,
            library_schema_version=shipped,
        )

    # -- the outbox (OutboxStore) --------------------------------------------------------------

    def outbox_read(self, *, after: int, limit: int) -> list[OutboxEntry]:
        """Up to *limit* entries after position *after*, in order, each with its event as
        ``history`` returns it (``OutboxStore.outbox_read``)."""
        after, limit = check_read(after, limit)
        if limit == 0:
            return []
        with self._atomic("reading the outbox"):
            entries = list(
                self._rows(OutboxEntryRow)
                .filter(position__gt=after)
                .order_by("position")
                .values_list("position", "account_id", "seq")[:limit]
            )
            wanted = Q()
            for _, account_id, seq in entries:
                wanted |= Q(account_id=account_id, seq=seq)
            bodies: dict[tuple[str, int], str] = {}
            sealed: list[tuple[str, int, str, str, str]] = []
            if entries:
                bodies = {
                    (a, s): b
                    for a, s, b in self._rows(EventRow)
                    .filter(wanted)
                    .values_list("account_id", "seq", "body")
                }
                sealed = list(
                    self._rows(SealedValueRow)
                    .filter(wanted)
                    .values_list("account_id", "seq", "field", "salt", "value")
                )
        events = [event_from_json(bodies[(a, s)], a, s) for _, a, s in entries]
        with_sealed = _with_sealed(tuple(events), sealed)
        return [
            OutboxEntry(position, event) for (position, _, _), event in zip(entries, with_sealed, strict=True)
        ]

    @staticmethod
    def _cursor(row: Any) -> OutboxCursor:
        return OutboxCursor(
            listener=row.listener,
            position=row.position,
            attempts=row.attempts,
            retry_at=row.retry_at,
            error=row.error,
            owner=row.owner,
            until=row.until,
            version=row.version,
        )

    def outbox_claim(self, listener: str, *, lease: Lease, now: datetime) -> OutboxCursor | None:
        """Claim *listener*'s cursor for ``lease.owner`` (created at position 0, version 0 for a
        new listener); None while another owner's claim is live at *now*."""
        now = require_aware(now)
        with self._atomic(f"claiming the outbox cursor of {listener!r}"):
            self._take_write_lock()
            cursors = self._rows(OutboxCursorRow)
            row = cursors.select_for_update().filter(listener=listener).first()
            if row is None:
                try:
                    with transaction.atomic(using=self.using):
                        row = cursors.create(listener=listener)
                except IntegrityError:  # another relay created it meanwhile
                    row = cursors.select_for_update().get(listener=listener)
            claimed = claimed_cursor(self._cursor(row), lease, now)
            if claimed is None:
                return None
            cursors.filter(listener=listener).update(
                owner=claimed.owner, until=claimed.until, version=claimed.version
            )
            return claimed

    def outbox_advance(
        self, cursor: OutboxCursor, *, expected_version: int, dead: Sequence[DeadLetter] = ()
    ) -> None:
        """Write *cursor* and add the *dead* letters in one atomic block if the stored cursor is
        still at *expected_version* and owned by ``cursor.owner``; else ``ConcurrentUpdate``."""
        check_advance(cursor, expected_version, dead)
        with self._atomic(f"advancing the outbox cursor of {cursor.listener!r}"):
            rows = self._rows(OutboxCursorRow).filter(listener=cursor.listener, version=expected_version)
            if cursor.owner is not None:
                rows = rows.filter(owner=cursor.owner)
            updated = rows.update(
                position=cursor.position,
                attempts=cursor.attempts,
                retry_at=None if cursor.retry_at is None else require_aware(cursor.retry_at),
                error=cursor.error,
                owner=cursor.owner,
                until=None if cursor.until is None else require_aware(cursor.until),
                version=cursor.version,
            )
            if updated != 1:
                raise outbox_conflict(cursor.listener, expected_version)
            if dead:
                self._rows(DeadLetterRow).bulk_create(
                    [
                        DeadLetterRow(
                            listener=d.listener,
                            position=d.position,
                            account_id=d.account_id,
                            seq=d.seq,
                            error=d.error,
                            at=require_aware(d.at),
                        )
                        for d in dead
                    ]
                )

    def outbox_cursors(self) -> tuple[OutboxCursor, ...]:
        """Every listener's cursor, by listener name."""
        with self._atomic("reading the outbox cursors"):
            return tuple(self._cursor(row) for row in self._rows(OutboxCursorRow).order_by("listener"))

    def outbox_dead_letters(self, listener: str | None = None) -> tuple[DeadLetter, ...]:
        """The dead letters of *listener* (or of every listener), by listener then position."""
        rows = self._rows(DeadLetterRow).all()
        if listener is not None:
            rows = rows.filter(listener=listener)
        with self._atomic("reading the dead letters"):
            return tuple(
                DeadLetter(r.listener, r.position, r.account_id, r.seq, r.error, r.at)
                for r in rows.order_by("listener", "position")
            )

    def outbox_forget_dead(self, listener: str, positions: Sequence[int]) -> int:
        """Remove those dead letters of *listener*; how many were removed."""
        with self._atomic(f"removing dead letters of {listener!r}"):
            deleted, _ = (
                self._rows(DeadLetterRow).filter(listener=listener, position__in=list(positions)).delete()
            )
        return int(deleted)

    def outbox_head(self) -> int:
        """The highest outbox position written so far (0 if none)."""
        with self._atomic("reading the outbox head"):
            head = self._rows(OutboxEntryRow).aggregate(head=Max("position"))["head"]
        return int(head or 0)


def _latest(names: Iterable[str]) -> int:
    """The highest number of the migrations named ``NNNN_...`` (0 when none)."""
    return max((int(name[:4]) for name in names if name[:4].isdigit()), default=0)


def _sqlstate(exc: BaseException) -> str | None:
    cause = exc.__cause__
    state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    return state if isinstance(state, str) else None


def _described(exc: BaseException) -> str:
    """What failed, for a message: the driver's primary message only (PostgreSQL's DETAIL quotes
    the values of a row; sqlite3 may quote stored text after `` with text ``)."""
    cause = exc.__cause__
    diag = getattr(cause, "diag", None)
    primary = getattr(diag, "message_primary", None)
    text = (
        primary
        if isinstance(primary, str) and primary
        else (str(exc).splitlines() or [type(exc).__name__])[0]
    )
    return text.split(" with text ", 1)[0]


def _with_sealed(
    events: tuple[AuditEvent, ...], rows: Sequence[tuple[str, int, str, str, str]]
) -> tuple[AuditEvent, ...]:
    """*events* with the sealed values of their side rows ``(account_id, seq, field, salt, value)``."""
    if not rows:
        return events
    found: dict[tuple[str, int], dict[str, SealedValue]] = {}
    for account_id, seq, name, salt, value in rows:
        found.setdefault((account_id, seq), {})[name] = sealed_from_row(account_id, seq, salt, value)
    return tuple(
        attrs.evolve(e, sealed_values=found[(e.account_id, e.seq)]) if (e.account_id, e.seq) in found else e
        for e in events
    )


def _first(row: tuple[str, str]) -> str:
    return row[0]


def _decode_claimed(account_id: str, body: str) -> AccountRecord | CorruptRecord:
    try:
        return record_from_json(body, account_id)
    except RecordCorrupt as exc:
        return CorruptRecord(account_id, exc.reason)
