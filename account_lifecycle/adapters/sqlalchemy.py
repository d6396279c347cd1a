"""The SQLAlchemy store (extra ``sqlalchemy``): the library's tables in the host's own database,
written with SQLAlchemy Core, inside the host's own transactions when it asks.

- ``metadata`` (or ``build_metadata(schema)``) declares the tables, every name prefixed
  ``account_lifecycle_``, so a host includes them in its Alembic autogenerate; ``migrate()``
  creates them for a host without Alembic.
- ``SQLAlchemyStore(engine)``: every method one short transaction of its own. On SQLite a write
  starts with ``BEGIN IMMEDIATE`` (writers are serialized from their first statement); on
  PostgreSQL ``claim_due`` takes rows with ``FOR UPDATE SKIP LOCKED`` and outbox positions are
  numbered under a transaction advisory lock, so numbering order is commit order.
- ``store.bound(connection_or_session)``: the same store writing through the host's
  ``Connection`` or ``Session``, in the host's transaction, never committing it: each write runs
  under a SAVEPOINT, so a refused command leaves the host's transaction usable, and the host's
  commit or rollback decides for both. ``Lifecycle.using(bound)`` runs commands on it.
- ``AsyncSQLAlchemyStore(async_engine)``: the same logic through ``AsyncConnection.run_sync``,
  with ``bound(async_connection_or_session)``.

No SQLAlchemy or driver error leaves the store: a storage failure is a ``StoreError`` whose
message names the database without its password and quotes no stored value or parameter.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import attrs
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    case,
    cast,
    delete,
    false,
    func,
    insert,
    inspect,
    not_,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateSchema
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import LargeBinary

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
from account_lifecycle.errors import (
    AccountExists,
    AccountNotFound,
    ConcurrentUpdate,
    LifecycleError,
    RecordCorrupt,
    StoreError,
)
from account_lifecycle.health import StatusRow, StoreStatus, summarize
from account_lifecycle.model import AccountRecord, State, validate_id
from account_lifecycle.ports import REFUSALS
from account_lifecycle.queries import (
    UNREADABLE_FLAGS,
    check_after,
    check_limit,
    check_query,
    flags_of,
    merge_pages,
    query_path,
)
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

__all__ = [
    "OUTBOX_LOCK",
    "PREFIX",
    "SCHEMA_VERSION",
    "AsyncSQLAlchemyStore",
    "SQLAlchemyStore",
    "build_metadata",
    "metadata",
]

T = TypeVar("T")

#: Every table name starts with it, so the tables sit among a host's own without clashes.
PREFIX: Final = "account_lifecycle_"
#: The version of the tables below; ``migrate()`` records it in ``account_lifecycle_meta``.
#: 2: accounts.has_holds and has_failed_steps (``queries.flags_of``), indexed for operators'
#: queries (partial indexes on account_id, and (state, account_id)).
SCHEMA_VERSION: Final = 2
#: The name whose ``hashtextextended(name || ':' || outbox table, 0)`` is the PostgreSQL
#: transaction advisory lock taken just before outbox positions are numbered.
OUTBOX_LOCK: Final = "account_lifecycle.outbox"

_TIME = DateTime(timezone=True)


@functools.cache
def build_metadata(schema: str | None = None) -> MetaData:
    """The library's tables on a ``MetaData`` of their own, in *schema* (None: the connection's
    default schema). The same object for the same *schema*: pass it to Alembic's
    ``target_metadata`` (beside the host's own) and to ``SQLAlchemyStore(..., schema=)``."""
    if schema is not None and (not isinstance(schema, str) or not schema or len(schema) > 63):
        raise ValueError(f"schema must be a name of 1 to 63 characters or None, got {schema!r}")
    md = MetaData(schema=schema)
    accounts = Table(
        f"{PREFIX}accounts",
        md,
        Column("account_id", Text, primary_key=True),
        Column("version", BigInteger, nullable=False),
        Column("state", Text, nullable=False),
        Column("live_identity", Text),
        Column("due_at", _TIME),
        Column("claim_owner", Text),
        Column("claim_until", _TIME),
        Column("body", Text, nullable=False),
        Column("has_holds", Boolean, nullable=False, server_default=false()),
        Column("has_failed_steps", Boolean, nullable=False, server_default=false()),
        UniqueConstraint("live_identity", name=f"{PREFIX}accounts_live_identity_key"),
        Index(f"{PREFIX}accounts_due", "due_at", "account_id"),
        Index(f"{PREFIX}accounts_state", "state", "account_id"),
    )
    # Partial indexes of the rare accounts operators look for, in id order. The predicates are
    # text, as SQLAlchemy renders a boolean column test on each dialect (SQLite only uses an
    # index whose WHERE is a term of the query's), and so that Alembic renders them.
    for flag, name in (("has_holds", "held"), ("has_failed_steps", "failed")):
        Index(
            f"{PREFIX}accounts_{name}",
            accounts.c.account_id,
            sqlite_where=text(f"{flag} = 1"),
            postgresql_where=text(flag),
        )
    accounts_key = f"{schema}.{PREFIX}accounts.account_id" if schema else f"{PREFIX}accounts.account_id"
    Table(
        f"{PREFIX}events",
        md,
        Column("account_id", Text, ForeignKey(accounts_key), nullable=False),
        Column("seq", BigInteger, nullable=False),
        Column("body", Text, nullable=False),
        PrimaryKeyConstraint("account_id", "seq"),
    )
    Table(
        f"{PREFIX}identifiers",
        md,
        Column("kind", Text, nullable=False),
        Column("value", Text, nullable=False),
        Column("account_id", Text, ForeignKey(accounts_key), nullable=False, index=True),
        Column("free_at", _TIME),
        PrimaryKeyConstraint("kind", "value"),
    )
    Table(
        f"{PREFIX}sealed_values",
        md,
        Column("account_id", Text, nullable=False),
        Column("seq", BigInteger, nullable=False),
        Column("field", Text, nullable=False),
        Column("salt", Text, nullable=False),
        Column("value", Text, nullable=False),
        PrimaryKeyConstraint("account_id", "seq", "field"),
    )
    Table(
        f"{PREFIX}outbox",
        md,
        # INTEGER on SQLite: the rowid, never reused (AUTOINCREMENT)
        Column(
            "position", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        Column("account_id", Text, nullable=False),
        Column("seq", BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    Table(
        f"{PREFIX}outbox_cursors",
        md,
        Column("listener", Text, primary_key=True),
        Column("position", BigInteger, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("retry_at", _TIME),
        Column("error", Text),
        Column("owner", Text),
        Column("until", _TIME),
        Column("version", BigInteger, nullable=False),
    )
    Table(
        f"{PREFIX}dead_letters",
        md,
        Column("listener", Text, nullable=False),
        Column("position", BigInteger, nullable=False),
        Column("account_id", Text, nullable=False),
        Column("seq", BigInteger, nullable=False),
        Column("error", Text, nullable=False),
        Column("at", _TIME, nullable=False),
        PrimaryKeyConstraint("listener", "position"),
    )
    Table(
        f"{PREFIX}meta",
        md,
        Column("key", Text, primary_key=True),
        Column("value", Text, nullable=False),
    )
    return md


#: The library's tables in the connection's default schema (``build_metadata(None)``).
metadata: Final = build_metadata(None)


def _utc(moment: datetime | None) -> datetime | None:
    """*moment* in UTC, as bound: SQLite stores the wall time without its offset."""
    return None if moment is None else require_aware(moment).astimezone(UTC)


def _aware(moment: datetime | None) -> datetime | None:
    """A moment as read: SQLite gives it back naive (it was written in UTC)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit must be a whole number >= 0, got {limit!r}")
    return limit


def _first(row: tuple[str, str | bytes]) -> str:
    return row[0]


def _decode_claimed(account_id: str, body: str | bytes) -> AccountRecord | CorruptRecord:
    try:
        return record_from_json(body, account_id)
    except RecordCorrupt as exc:
        return CorruptRecord(account_id, exc.reason)


def _constraint_text(exc: sa_exc.IntegrityError) -> str:
    """The name (psycopg) or message (sqlite3) of the constraint an insert or update broke."""
    diag = getattr(exc.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    return name if isinstance(name, str) else str(exc.orig).split(" with text ", 1)[0]


class _Logic:
    """Every statement of the store, on a ``Connection`` whose transaction is open: the logic
    the sync and async stores, standalone or bound to a host's transaction, all share."""

    def __init__(self, schema: str | None) -> None:
        self.metadata = build_metadata(schema)
        tables = self.metadata.tables
        key = f"{schema}." if schema else ""
        self.accounts = tables[f"{key}{PREFIX}accounts"]
        self.events = tables[f"{key}{PREFIX}events"]
        self.identifiers = tables[f"{key}{PREFIX}identifiers"]
        self.sealed = tables[f"{key}{PREFIX}sealed_values"]
        self.outbox = tables[f"{key}{PREFIX}outbox"]
        self.cursors = tables[f"{key}{PREFIX}outbox_cursors"]
        self.dead = tables[f"{key}{PREFIX}dead_letters"]
        self.meta = tables[f"{key}{PREFIX}meta"]
        self.outbox_lock = f"{OUTBOX_LOCK}:{key}{PREFIX}outbox"

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _pg(conn: Connection) -> bool:
        return conn.dialect.name == "postgresql"

    def _body(self, conn: Connection, column: Any) -> ColumnElement[Any]:
        """A stored text column as read: bytes on SQLite, where text that is not UTF-8 would
        otherwise fail in the driver (quoting it) instead of decoding as one corrupt row."""
        if conn.dialect.name == "sqlite":
            return cast(column, LargeBinary)
        return column  # type: ignore[no-any-return]

    @staticmethod
    def columns(record: AccountRecord) -> dict[str, Any]:
        held, failed = flags_of(record)
        return {
            "version": record.version,
            "state": record.state.value,
            "live_identity": record.live_identity,
            "due_at": _utc(due_at(record)),
            "body": record_to_json(record),
            "has_holds": held,
            "has_failed_steps": failed,
        }

    def _exists(self, conn: Connection, account_id: str) -> bool:
        a = self.accounts
        return conn.execute(select(a.c.account_id).where(a.c.account_id == account_id)).first() is not None

    def _lock(self, conn: Connection, name: str) -> None:
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(name, 0))))

    # -- writes ----------------------------------------------------------------------------

    def append(self, conn: Connection, events: Sequence[AuditEvent]) -> None:
        """Insert *events*, their sealed values and their outbox entries (numbered in commit
        order: on PostgreSQL under the outbox advisory lock, held until the commit)."""
        if not events:
            return
        conn.execute(
            insert(self.events),
            [{"account_id": e.account_id, "seq": e.seq, "body": event_to_json(e)} for e in events],
        )
        sealed = [
            {"account_id": e.account_id, "seq": e.seq, "field": f, "salt": v.salt, "value": dumps(v.value)}
            for e in events
            for f, v in e.sealed_values.items()
        ]
        if sealed:
            conn.execute(insert(self.sealed), sealed)
        if self._pg(conn):
            self._lock(conn, self.outbox_lock)
        for e in events:  # one by one: positions follow the events' order
            conn.execute(insert(self.outbox).values(account_id=e.account_id, seq=e.seq))

    def check_aliases(
        self,
        conn: Connection,
        record: AccountRecord,
        aliases: Mapping[str, Sequence[str]],
        now: datetime | None,
    ) -> None:
        """``AccountExists`` if another account holds an alias of the record's identity or of one
        of its identifiers; an alias whose holder freed it is given up. On PostgreSQL every value
        and alias is locked first (transaction advisory locks, sorted), as ``PostgresStore``
        does; SQLite's write lock orders writers already."""
        identity = record.live_identity
        if self._pg(conn):
            values = () if identity is None else (identity, *aliases.get(identity, ()))
            names = {f"identity:{v}" for v in values}
            for kind, held in record.identifiers.items():
                names |= {f"{kind}:{v}" for v in (held.value, *aliases.get(held.value, ()))}
            for name in sorted(names):
                self._lock(conn, name)
        a, i = self.accounts, self.identifiers
        for alias in () if identity is None else aliases.get(identity, ()):
            held_by = select(a.c.account_id).where(
                a.c.live_identity == alias, a.c.account_id != record.account_id
            )
            if conn.execute(held_by).first() is not None:
                raise AccountExists(account_id=record.account_id, identity=identity)
        for kind, held in record.identifiers.items():
            for alias in aliases.get(held.value, ()):
                row = conn.execute(
                    select(i.c.free_at).where(
                        i.c.kind == kind, i.c.value == alias, i.c.account_id != record.account_id
                    )
                ).first()
                if row is None:
                    continue
                free_at = _aware(row[0])
                if free_at is None or now is None or free_at > now:
                    raise AccountExists(account_id=record.account_id, identity=held.value, kind=kind)
                conn.execute(delete(i).where(i.c.kind == kind, i.c.value == alias))

    def write_identifiers(self, conn: Connection, record: AccountRecord, now: datetime | None) -> None:
        """Update the release moment of the identifiers the account holds, take the others (an
        expired holder's row deleted first), give up those it no longer lists; ``AccountExists``
        if another account holds one (the primary key says so)."""
        i = self.identifiers
        listed = {(kind, held.value) for kind, held in record.identifiers.items()}
        for kind, value in conn.execute(
            select(i.c.kind, i.c.value).where(i.c.account_id == record.account_id)
        ).all():
            if (kind, value) not in listed:
                conn.execute(delete(i).where(i.c.kind == kind, i.c.value == value))
        for kind, held in record.identifiers.items():
            free_at = _utc(held.free_at)
            result = conn.execute(
                update(i)
                .where(i.c.kind == kind, i.c.value == held.value, i.c.account_id == record.account_id)
                .values(free_at=free_at)
            )
            if result.rowcount == 1:
                continue
            if held.free_at is not None and (now is None or held.free_at <= now):
                continue  # given up already: nothing left to hold
            if now is not None:
                conn.execute(
                    delete(i).where(i.c.kind == kind, i.c.value == held.value, i.c.free_at <= _utc(now))
                )
            try:  # refused: the caller's transaction or savepoint is rolled back
                conn.execute(
                    insert(i).values(
                        kind=kind, value=held.value, account_id=record.account_id, free_at=free_at
                    )
                )
            except sa_exc.IntegrityError:
                raise AccountExists(account_id=record.account_id, identity=held.value, kind=kind) from None

    def create(
        self,
        conn: Connection,
        record: AccountRecord,
        events: Sequence[AuditEvent],
        now: datetime | None,
        aliases: Mapping[str, Sequence[str]] | None,
    ) -> None:
        if aliases:
            self.check_aliases(conn, record, aliases, now)
        try:
            conn.execute(insert(self.accounts).values(account_id=record.account_id, **self.columns(record)))
        except sa_exc.IntegrityError as exc:
            if "live_identity" in _constraint_text(exc):
                raise AccountExists(account_id=record.account_id, identity=record.live_identity) from None
            raise AccountExists(account_id=record.account_id) from None
        if record.identifiers:
            self.write_identifiers(conn, record, now)
        self.append(conn, events)

    def update_statement(
        self,
        record: AccountRecord,
        expected_version: int,
        lease: Lease | None,
        release: str | None,
        now: datetime | None,
    ) -> Any:
        """The compare-and-set of one save (leaving, taking or dropping the claim); built before
        any transaction, so that a bad argument raises having written nothing."""
        a = self.accounts
        values: dict[str, Any] = self.columns(record)
        where: list[ColumnElement[bool]] = [
            a.c.account_id == record.account_id,
            a.c.version == expected_version,
        ]
        if lease is not None:
            moment = _utc(require_now(now))
            values.update(claim_owner=lease.owner, claim_until=_utc(lease.until))
            where.append(
                or_(a.c.claim_owner.is_(None), a.c.claim_owner == lease.owner, a.c.claim_until <= moment)
            )
        elif release is not None:
            values.update(
                claim_owner=case((a.c.claim_owner == release, null()), else_=a.c.claim_owner),
                claim_until=case((a.c.claim_owner == release, null()), else_=a.c.claim_until),
            )
        return update(a).where(*where).values(**values)

    def save(
        self,
        conn: Connection,
        record: AccountRecord,
        expected_version: int,
        statement: Any,
        now: datetime | None,
        erase_sealed: bool,
    ) -> None:
        """One compare-and-set inside the open transaction, without its events."""
        try:
            result = conn.execute(statement)
        except sa_exc.IntegrityError:
            raise AccountExists(account_id=record.account_id, identity=record.live_identity) from None
        if result.rowcount != 1:
            if not self._exists(conn, record.account_id):
                raise AccountNotFound(account_id=record.account_id)
            raise ConcurrentUpdate(account_id=record.account_id, expected_version=expected_version)
        self.write_identifiers(conn, record, now)
        if erase_sealed:
            conn.execute(delete(self.sealed).where(self.sealed.c.account_id == record.account_id))

    def save_many(
        self, conn: Connection, writes: Sequence[Write], statements: Sequence[Any], now: datetime
    ) -> list[Exception | None]:
        results: list[Exception | None] = []
        made: list[AuditEvent] = []
        for w, statement in zip(writes, statements, strict=True):
            # Only a write the database may refuse (a unique identity or identifier) needs a
            # SAVEPOINT: on PostgreSQL the failed statement aborts the transaction otherwise. A
            # stale or unknown write is refused by its UPDATE matching no row: nothing written.
            risky = w.record.live_identity is not None or bool(w.record.identifiers)
            try:
                if risky:
                    with conn.begin_nested():
                        self.save(conn, w.record, w.expected_version, statement, now, w.erase_sealed)
                else:
                    self.save(conn, w.record, w.expected_version, statement, now, w.erase_sealed)
            except REFUSALS as exc:
                results.append(exc)
                continue
            results.append(None)
            made.extend(w.events)
        self.append(conn, made)
        return results

    def claim_due(self, conn: Connection, now: datetime, lease: Lease, limit: int) -> list[Any]:
        a = self.accounts
        moment = _utc(now)
        due = (
            select(a.c.account_id, self._body(conn, a.c.body))
            .where(
                a.c.due_at.is_not(None),
                a.c.due_at <= moment,
                or_(a.c.claim_until.is_(None), a.c.claim_until <= moment),
            )
            .order_by(a.c.due_at, a.c.account_id)
            .limit(limit)
        )
        if self._pg(conn):  # rows another claimer is taking are skipped, not waited for
            due = due.with_for_update(skip_locked=True)
        rows = conn.execute(due).all()
        if rows:
            conn.execute(
                update(a)
                .where(a.c.account_id.in_([row[0] for row in rows]))
                .values(claim_owner=lease.owner, claim_until=_utc(lease.until))
            )
        return [_decode_claimed(row[0], row[1]) for row in rows]

    def release(self, conn: Connection, account_id: str, owner: str) -> None:
        a = self.accounts
        conn.execute(
            update(a)
            .where(a.c.account_id == account_id, a.c.claim_owner == owner)
            .values(claim_owner=None, claim_until=None)
        )

    # -- reads -----------------------------------------------------------------------------

    def get(self, conn: Connection, account_id: str) -> AccountRecord:
        a = self.accounts
        row = conn.execute(select(self._body(conn, a.c.body)).where(a.c.account_id == account_id)).first()
        if row is None:
            raise AccountNotFound(account_id=account_id)
        return record_from_json(row[0], account_id)

    def _sealed_of(
        self, conn: Connection, keys: set[tuple[str, int]]
    ) -> dict[tuple[str, int], dict[str, SealedValue]]:
        s = self.sealed
        found: dict[tuple[str, int], dict[str, SealedValue]] = {}
        if not keys:
            return found
        accounts = sorted({account_id for account_id, _ in keys})
        rows = conn.execute(
            select(s.c.account_id, s.c.seq, s.c.field, s.c.salt, self._body(conn, s.c.value)).where(
                s.c.account_id.in_(accounts)
            )
        ).all()
        for account_id, seq, field, salt, value in rows:
            if (account_id, seq) in keys:
                found.setdefault((account_id, seq), {})[field] = sealed_from_row(account_id, seq, salt, value)
        return found

    def history(self, conn: Connection, account_id: str) -> tuple[AuditEvent, ...]:
        e = self.events
        rows = conn.execute(
            select(self._body(conn, e.c.body)).where(e.c.account_id == account_id).order_by(e.c.seq)
        ).all()
        if not rows and not self._exists(conn, account_id):
            raise AccountNotFound(account_id=account_id)
        events = tuple(event_from_json(row[0], account_id, n) for n, row in enumerate(rows, 1))
        sealed = self._sealed_of(conn, {(account_id, event.seq) for event in events})
        return tuple(
            attrs.evolve(event, sealed_values=sealed[(account_id, event.seq)])
            if (account_id, event.seq) in sealed
            else event
            for event in events
        )

    def account_ids(self, conn: Connection) -> tuple[str, ...]:
        a = self.accounts
        return tuple(row[0] for row in conn.execute(select(a.c.account_id).order_by(a.c.account_id)).all())

    def list_accounts(
        self, conn: Connection, query: AccountQuery, after: str | None, limit: int
    ) -> list[AccountRecord | CorruptRecord]:
        """Every condition a column test (state, due time, ``has_holds``, ``has_failed_steps``),
        by ``account_id`` pages on an index that serves it (``query_path``: the partial index of
        held or failed accounts, ``(state, account_id)`` once per state, or the primary key). A
        row that cannot be decoded comes back when its columns match."""
        a = self.accounts
        where: list[ColumnElement[bool]] = []
        if query.due_before is not None:
            where.append(and_(a.c.due_at.is_not(None), a.c.due_at < _utc(query.due_before)))
        if query.with_holds is not None:
            where.append(a.c.has_holds if query.with_holds else not_(a.c.has_holds))
        if query.with_failed_steps is not None:
            where.append(a.c.has_failed_steps if query.with_failed_steps else not_(a.c.has_failed_steps))
        if after is not None:
            where.append(a.c.account_id > after)

        def page(*also: ColumnElement[bool]) -> list[tuple[str, str | bytes]]:
            statement = select(a.c.account_id, self._body(conn, a.c.body)).where(*also, *where)
            return [(r[0], r[1]) for r in conn.execute(statement.order_by(a.c.account_id).limit(limit)).all()]

        if query.states is None:
            rows = page()
        else:
            states = sorted(State(s).value for s in query.states)
            if query_path(query) == "states":  # the state index, once per state
                rows = merge_pages((page(a.c.state == state) for state in states), limit, _first)
            else:
                rows = page(a.c.state.in_(states))
        return [_decode_claimed(account_id, body) for account_id, body in rows]

    # -- the outbox ------------------------------------------------------------------------

    def outbox_read(self, conn: Connection, after: int, limit: int) -> list[OutboxEntry]:
        o, e = self.outbox, self.events
        rows = conn.execute(
            select(o.c.position, o.c.account_id, o.c.seq, self._body(conn, e.c.body))
            .join(e, and_(e.c.account_id == o.c.account_id, e.c.seq == o.c.seq))
            .where(o.c.position > after)
            .order_by(o.c.position)
            .limit(limit)
        ).all()
        events = [(row[0], event_from_json(row[3], row[1], row[2])) for row in rows]
        sealed = self._sealed_of(conn, {(ev.account_id, ev.seq) for _, ev in events})
        return [
            OutboxEntry(
                position,
                attrs.evolve(ev, sealed_values=sealed[(ev.account_id, ev.seq)])
                if (ev.account_id, ev.seq) in sealed
                else ev,
            )
            for position, ev in events
        ]

    def _cursor(self, row: Any) -> OutboxCursor:
        return OutboxCursor(
            listener=row.listener,
            position=row.position,
            attempts=row.attempts,
            retry_at=_aware(row.retry_at),
            error=row.error,
            owner=row.owner,
            until=_aware(row.until),
            version=row.version,
        )

    def outbox_claim(
        self, conn: Connection, listener: str, lease: Lease, now: datetime
    ) -> OutboxCursor | None:
        c = self.cursors
        query = select(c).where(c.c.listener == listener)
        if self._pg(conn):
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(insert(c).values(listener=listener, position=0, attempts=0, version=0))
            except sa_exc.IntegrityError:  # another relay created it meanwhile
                pass
            row = conn.execute(query).first()
            if row is None:  # pragma: no cover - the row was just inserted
                raise StoreError(f"the outbox cursor of {listener!r} vanished while it was claimed")
        claimed = claimed_cursor(self._cursor(row), lease, now)
        if claimed is None:
            return None
        result = conn.execute(
            update(c)
            .where(c.c.listener == listener, c.c.version == row.version)
            .values(owner=claimed.owner, until=_utc(claimed.until), version=claimed.version)
        )
        if result.rowcount != 1:
            return None
        return claimed

    def outbox_advance(
        self, conn: Connection, cursor: OutboxCursor, expected_version: int, dead: Sequence[DeadLetter]
    ) -> None:
        c = self.cursors
        where: list[ColumnElement[bool]] = [c.c.listener == cursor.listener, c.c.version == expected_version]
        if cursor.owner is not None:
            where.append(c.c.owner == cursor.owner)
        result = conn.execute(
            update(c)
            .where(*where)
            .values(
                position=cursor.position,
                attempts=cursor.attempts,
                retry_at=_utc(cursor.retry_at),
                error=cursor.error,
                owner=cursor.owner,
                until=_utc(cursor.until),
                version=cursor.version,
            )
        )
        if result.rowcount != 1:
            raise outbox_conflict(cursor.listener, expected_version)
        if dead:  # a letter written again (after a takeover) replaces the earlier one
            d = self.dead
            conn.execute(
                delete(d).where(d.c.listener == cursor.listener, d.c.position.in_([x.position for x in dead]))
            )
            conn.execute(
                insert(self.dead),
                [
                    {
                        "listener": d.listener,
                        "position": d.position,
                        "account_id": d.account_id,
                        "seq": d.seq,
                        "error": d.error,
                        "at": _utc(d.at),
                    }
                    for d in dead
                ],
            )

    def outbox_cursors(self, conn: Connection) -> tuple[OutboxCursor, ...]:
        c = self.cursors
        return tuple(self._cursor(row) for row in conn.execute(select(c).order_by(c.c.listener)).all())

    def outbox_dead_letters(self, conn: Connection, listener: str | None) -> tuple[DeadLetter, ...]:
        d = self.dead
        query = select(d).order_by(d.c.listener, d.c.position)
        if listener is not None:
            query = query.where(d.c.listener == listener)
        return tuple(
            DeadLetter(
                listener=row.listener,
                position=row.position,
                account_id=row.account_id,
                seq=row.seq,
                error=row.error,
                at=_aware(row.at) or datetime.min.replace(tzinfo=UTC),
            )
            for row in conn.execute(query).all()
        )

    def outbox_forget_dead(self, conn: Connection, listener: str, positions: Sequence[int]) -> int:
        d = self.dead
        if not positions:
            return 0
        result = conn.execute(delete(d).where(d.c.listener == listener, d.c.position.in_(list(positions))))
        return int(result.rowcount)

    def outbox_head(self, conn: Connection) -> int:
        o = self.outbox
        value = conn.execute(select(func.coalesce(func.max(o.c.position), 0))).scalar_one()
        return int(value)

    # -- schema ----------------------------------------------------------------------------

    def migrate(self, conn: Connection) -> tuple[int, ...]:
        schema = self.metadata.schema
        if self._pg(conn):
            self._lock(conn, f"account_lifecycle.migrate:{schema or ''}:{PREFIX}")
            if schema is not None:
                conn.execute(CreateSchema(schema, if_not_exists=True))
        self.metadata.create_all(conn, checkfirst=True)
        m = self.meta
        row = conn.execute(select(m.c.value).where(m.c.key == "schema_version")).first()
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"the account_lifecycle tables have schema version {row[0]}, newer than this "
                f"library's {SCHEMA_VERSION}; upgrade account_lifecycle"
            )
        added = self._add_flags(conn)
        if row is None:
            if added:  # tables an earlier release made (by Alembic), without a version row
                self._fill_flags(conn)
            conn.execute(insert(m).values(key="schema_version", value=str(SCHEMA_VERSION)))
            return (SCHEMA_VERSION,)
        if int(row[0]) < SCHEMA_VERSION:
            self._fill_flags(conn)
            conn.execute(update(m).where(m.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))
            return tuple(range(int(row[0]) + 1, SCHEMA_VERSION + 1))
        return ()

    def _add_flags(self, conn: Connection) -> bool:
        """Version 2's columns and indexes on accounts tables made before it (``create_all``
        adds no column to a table that exists); whether the columns were missing."""
        a = self.accounts
        found = {c["name"] for c in inspect(conn).get_columns(a.name, schema=a.schema)}
        missing = [a.c[name] for name in ("has_holds", "has_failed_steps") if name not in found]
        preparer = conn.dialect.identifier_preparer
        for column in missing:
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(
                f"ALTER TABLE {preparer.format_table(a)} ADD COLUMN {preparer.format_column(column)} {kind}"
                " NOT NULL DEFAULT " + ("false" if self._pg(conn) else "0")
            )
        for index in a.indexes:
            index.create(conn, checkfirst=True)
        return bool(missing)

    def _fill_flags(self, conn: Connection) -> None:
        """Version 2's data step: each row's ``has_holds`` and ``has_failed_steps`` from its
        body (a body that cannot be decoded gets both: it is listed where operators look for
        trouble)."""
        a = self.accounts
        flags = []
        for account_id, body in conn.execute(select(a.c.account_id, self._body(conn, a.c.body))).all():
            try:
                held, failed = flags_of(record_from_json(body, account_id))
            except LifecycleError:
                held, failed = UNREADABLE_FLAGS
            if held or failed:
                flags.append({"key": account_id, "held": held, "failed": failed})
        if flags:
            conn.execute(
                update(a)
                .where(a.c.account_id == bindparam("key"))
                .values(has_holds=bindparam("held"), has_failed_steps=bindparam("failed")),
                flags,
            )

    def schema_version(self, conn: Connection) -> int:
        m = self.meta
        if not conn.dialect.has_table(conn, m.name, schema=m.schema):
            return 0
        row = conn.execute(select(m.c.value).where(m.c.key == "schema_version")).first()
        return 0 if row is None else int(row[0])

    def status_rows(self, conn: Connection) -> list[StatusRow]:
        a = self.accounts
        if not conn.dialect.has_table(conn, a.name, schema=a.schema):
            return []
        rows = conn.execute(
            select(
                a.c.account_id, a.c.due_at, a.c.claim_owner, a.c.claim_until, self._body(conn, a.c.body)
            ).where(
                or_(
                    a.c.due_at.is_not(None),
                    a.c.claim_owner.is_not(None),
                    a.c.state.in_([State.CANCELLED.value, State.RESTORABLE.value]),
                )
            )
        ).all()
        return [StatusRow(r[0], _aware(r[1]), r[2], _aware(r[3]), _decode_claimed(r[0], r[4])) for r in rows]


# -- transactions ----------------------------------------------------------------------------


def _standalone(conn: Connection, op: Callable[[Connection], T], write: bool) -> T:
    """*op* in a transaction of its own on *conn*, committed if it returns. On SQLite the
    transaction is begun explicitly (``BEGIN IMMEDIATE`` for a write: writers are serialized
    from their first statement, not from their first write as the driver would do)."""
    if conn.dialect.name == "sqlite":
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            result = op(conn)
        except BaseException:
            with suppress(sa_exc.SQLAlchemyError):
                conn.exec_driver_sql("ROLLBACK")
            raise
        conn.exec_driver_sql("COMMIT")
        return result
    with conn.begin():
        return op(conn)


def _nested(conn: Connection, op: Callable[[Connection], T], write: bool) -> T:
    """*op* inside the host's transaction on *conn*, never committing it: a write runs under a
    SAVEPOINT, rolled back alone when it fails (the host's transaction stays usable). On SQLite
    a host connection whose driver has not begun a transaction yet (it begins one only before
    its first write) gets ``BEGIN IMMEDIATE``, so the savepoint's release cannot commit."""
    if not write:
        return op(conn)
    if conn.dialect.name == "sqlite" and not getattr(
        conn.connection.driver_connection, "in_transaction", True
    ):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    with conn.begin_nested():
        return op(conn)


_CONFLICTS: Final = frozenset({"40001", "40P01"})  # serialization failure, deadlock


class _Base:
    """What the sync and async stores share: the logic and how errors are told."""

    def __init__(self, schema: str | None, target: str) -> None:
        self._logic = _Logic(schema)
        self.metadata = self._logic.metadata
        self._target = target

    def _translate(self, exc: sa_exc.SQLAlchemyError, what: str) -> StoreError:
        """A storage failure as ``StoreError``: the driver's primary message only (SQLAlchemy's
        text quotes the statement's parameters, which hold stored values)."""
        orig = getattr(exc, "orig", None)
        diag = getattr(orig, "diag", None)
        primary = getattr(diag, "message_primary", None)
        if isinstance(primary, str) and primary:
            reason = primary
        elif orig is not None:
            reason = (str(orig).splitlines() or [type(orig).__name__])[0].split(" with text ", 1)[0]
        else:
            reason = type(exc).__name__
        if "does not exist" in reason or "no such table" in reason:
            reason += "; create the tables with store.migrate() or your Alembic migrations"
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            return StoreError(f"the database {self._target} is unavailable (while {what}): {reason}")
        return StoreError(f"the database {self._target} failed while {what}: {reason}")

    def _conflict(self, exc: sa_exc.SQLAlchemyError) -> bool:
        orig = getattr(exc, "orig", None)
        code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        return code in _CONFLICTS


def _shown(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _host_connection(host: Connection | Session) -> Connection:
    if isinstance(host, Session):
        return host.connection()
    if isinstance(host, Connection):
        return host
    raise TypeError(f"bound() needs a sqlalchemy Connection or Session, got {type(host).__name__}")


class SQLAlchemyStore(_Base):
    """Accounts, audit events and the outbox in the library's tables (``build_metadata``), on
    *engine*, written with SQLAlchemy Core. Implements ``AccountStore``, ``BatchStore``,
    ``OutboxStore`` and ``QueryStore``.

    Each method is one short transaction of its own; ``bound(connection_or_session)`` gives the
    same store working inside the host's transaction instead. The engine is the host's: the
    store never disposes of it. Tested on PostgreSQL (psycopg) and SQLite (pysqlite).
    """

    def __init__(self, engine: Engine, *, schema: str | None = None) -> None:
        if not isinstance(engine, Engine):
            raise TypeError(f"SQLAlchemyStore needs a sqlalchemy Engine, got {type(engine).__name__}")
        super().__init__(schema, _shown(engine))
        self.engine = engine
        self.schema = schema
        self._host: Connection | Session | None = None

    def __repr__(self) -> str:
        bound = ", bound" if self._host is not None else ""
        return f"SQLAlchemyStore({self._target!r}, schema={self.schema!r}{bound})"

    def bound(self, host: Connection | Session) -> SQLAlchemyStore:
        """This store writing through the host's *host* (a ``Connection`` or a ``Session`` on the
        same database), inside its transaction: nothing is committed or rolled back by the store
        except a SAVEPOINT per write, so the host's commit keeps the host's writes and the
        lifecycle's together, and its rollback drops both. Run commands on it with
        ``lifecycle.using(store.bound(session))``."""
        if not isinstance(host, Connection | Session):
            raise TypeError(f"bound() needs a sqlalchemy Connection or Session, got {type(host).__name__}")
        view = copy.copy(self)
        view._host = host
        return view

    def in_host_transaction(self) -> bool:
        """Whether this store writes inside the host's transaction: True for ``bound(...)``,
        whose writes the host's commit makes durable (``confirm`` then defers its purge),
        False for the store that commits each write itself (``ports.HostTransactionStore``)."""
        return self._host is not None

    def _run(
        self,
        what: str,
        op: Callable[[Connection], T],
        *,
        write: bool = True,
        conflict: Callable[[], Exception] | None = None,
    ) -> T:
        try:
            if self._host is not None:
                return _nested(_host_connection(self._host), op, write)
            with self.engine.connect() as conn:
                return _standalone(conn, op, write)
        except sa_exc.SQLAlchemyError as exc:
            if conflict is not None and self._conflict(exc):
                raise conflict() from None
            raise self._translate(exc, what) from None

    # -- schema ----------------------------------------------------------------------------

    def migrate(self) -> tuple[int, ...]:
        """Create the library's tables that are missing (``metadata.create_all``) and record the
        schema version; return the versions applied (``(1,)`` the first time, then ``()``). For
        hosts without Alembic; idempotent, and safe from several processes at once on
        PostgreSQL (an advisory lock) and SQLite (the write lock)."""
        return self._run("migrating the schema", self._logic.migrate)

    def schema_version(self) -> int:
        """The version ``migrate()`` recorded (0 when it never ran)."""
        return self._run("reading the schema version", self._logic.schema_version, write=False)

    def status(self, *, now: datetime) -> StoreStatus:
        """A snapshot of the purge work at *now* (``account_lifecycle.health.StoreStatus``)."""
        now = require_aware(now)

        def op(conn: Connection) -> tuple[int, list[StatusRow]]:
            return self._logic.schema_version(conn), self._logic.status_rows(conn)

        version, rows = self._run("reading the status", op, write=False)
        return summarize(rows, now=now, schema_version=version, library_schema_version=SCHEMA_VERSION)

    # -- AccountStore ----------------------------------------------------------------------

    def create(
        self,
        record: AccountRecord,
        events: Sequence[AuditEvent],
        *,
        now: datetime | None = None,
        aliases: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Insert a new account with its first events (``AccountStore.create``)."""
        now = None if now is None else require_aware(now)
        self._run(
            f"creating account {record.account_id!r}",
            lambda conn: self._logic.create(conn, record, events, now, aliases),
        )

    def get(self, account_id: str) -> AccountRecord:
        """The stored record (``AccountStore.get``); ``AccountNotFound``, ``RecordCorrupt``."""
        return self._run(
            f"reading account {account_id!r}", lambda conn: self._logic.get(conn, account_id), write=False
        )

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
        statement = self._logic.update_statement(record, expected_version, lease, release, now)
        now = None if now is None else require_aware(now)

        def op(conn: Connection) -> None:
            self._logic.save(conn, record, expected_version, statement, now, erase_sealed)
            self._logic.append(conn, events)

        self._run(
            f"saving account {record.account_id!r}",
            op,
            conflict=lambda: ConcurrentUpdate(
                account_id=record.account_id, expected_version=expected_version
            ),
        )

    def save_many(self, writes: Sequence[Write], *, now: datetime) -> list[Exception | None]:
        """Every write's compare-and-set in one transaction (``BatchStore.save_many``): a refused
        write is rolled back to its own SAVEPOINT, the others are written."""
        now = require_aware(now)
        if not writes:
            return []
        statements = [
            self._logic.update_statement(w.record, w.expected_version, w.lease, w.release, now)
            for w in writes
        ]
        return self._run(
            f"saving {len(writes)} accounts",
            lambda conn: self._logic.save_many(conn, writes, statements, now),
        )

    def history(self, account_id: str) -> tuple[AuditEvent, ...]:
        """The account's audit events in order, with their sealed values (``AccountStore.history``)."""
        return self._run(
            f"reading the history of {account_id!r}",
            lambda conn: self._logic.history(conn, account_id),
            write=False,
        )

    def account_ids(self) -> tuple[str, ...]:
        """Every stored account id, in order."""
        return self._run("listing accounts", self._logic.account_ids, write=False)

    def claim_due(self, *, now: datetime, lease: Lease, limit: int) -> list[AccountRecord | CorruptRecord]:
        """Claim up to *limit* due accounts for *lease* (``AccountStore.claim_due``)."""
        now = require_aware(now)
        require_aware(lease.until)
        if _check_limit(limit) == 0:
            return []
        return self._run(
            "claiming accounts due for purge", lambda conn: self._logic.claim_due(conn, now, lease, limit)
        )

    def release(self, account_id: str, owner: str) -> None:
        """Drop *owner*'s claim on the account, and no other owner's."""
        self._run(
            f"releasing the claim on {account_id!r}",
            lambda conn: self._logic.release(conn, account_id, owner),
        )

    # -- QueryStore ------------------------------------------------------------------------

    def list_accounts(
        self, query: AccountQuery, *, after: str | None, limit: int
    ) -> list[AccountRecord | CorruptRecord]:
        """Up to *limit* accounts matching *query* after *after*, by id (``QueryStore``)."""
        query, after, limit = check_query(query), check_after(after), check_limit(limit)
        if limit == 0 or query.states == frozenset():
            return []
        return self._run(
            "listing accounts", lambda conn: self._logic.list_accounts(conn, query, after, limit), write=False
        )

    # -- OutboxStore -----------------------------------------------------------------------

    def outbox_read(self, *, after: int, limit: int) -> list[OutboxEntry]:
        """Up to *limit* outbox entries after position *after*, in order (``OutboxStore``)."""
        after, limit = check_read(after, limit)
        if limit == 0:
            return []
        return self._run(
            "reading the outbox", lambda conn: self._logic.outbox_read(conn, after, limit), write=False
        )

    def outbox_claim(self, listener: str, *, lease: Lease, now: datetime) -> OutboxCursor | None:
        """Claim *listener*'s cursor for ``lease.owner`` (``OutboxStore.outbox_claim``)."""
        validate_id(listener, "outbox listener name")
        now = require_aware(now)
        require_aware(lease.until)
        return self._run(
            f"claiming the outbox cursor of {listener!r}",
            lambda conn: self._logic.outbox_claim(conn, listener, lease, now),
        )

    def outbox_advance(
        self, cursor: OutboxCursor, *, expected_version: int, dead: Sequence[DeadLetter] = ()
    ) -> None:
        """Compare-and-set *cursor* and add the *dead* letters (``OutboxStore.outbox_advance``)."""
        check_advance(cursor, expected_version, dead)
        self._run(
            f"advancing the outbox cursor of {cursor.listener!r}",
            lambda conn: self._logic.outbox_advance(conn, cursor, expected_version, dead),
        )

    def outbox_cursors(self) -> tuple[OutboxCursor, ...]:
        """Every listener's cursor, by listener name."""
        return self._run("reading the outbox cursors", self._logic.outbox_cursors, write=False)

    def outbox_dead_letters(self, listener: str | None = None) -> tuple[DeadLetter, ...]:
        """The dead letters of *listener* (or of every listener), by listener then position."""
        return self._run(
            "reading dead letters", lambda conn: self._logic.outbox_dead_letters(conn, listener), write=False
        )

    def outbox_forget_dead(self, listener: str, positions: Sequence[int]) -> int:
        """Remove those dead letters of *listener*; how many were removed."""
        for position in positions:
            _check_position(position)
        return self._run(
            f"forgetting dead letters of {listener!r}",
            lambda conn: self._logic.outbox_forget_dead(conn, listener, positions),
        )

    def outbox_head(self) -> int:
        """The highest outbox position written so far (0 if none)."""
        return self._run("reading the outbox head", self._logic.outbox_head, write=False)


def _check_position(position: object) -> None:
    if isinstance(position, bool) or not isinstance(position, int) or position < 0:
        raise ValueError(f"an outbox position must be a whole number >= 0, got {position!r}")


# -- async -----------------------------------------------------------------------------------


def _async_host(host: AsyncConnection | AsyncSession) -> AsyncConnection | AsyncSession:
    if not isinstance(host, AsyncConnection | AsyncSession):
        raise TypeError(
            f"bound() needs a sqlalchemy AsyncConnection or AsyncSession, got {type(host).__name__}"
        )
    return host


class AsyncSQLAlchemyStore(_Base):
    """``SQLAlchemyStore`` on an ``AsyncEngine`` (``postgresql+psycopg``, ``sqlite+aiosqlite``,
    ...): every method a coroutine running the very same statements through
    ``AsyncConnection.run_sync``. ``bound(async_connection_or_session)`` works inside the host's
    transaction, as ``SQLAlchemyStore.bound`` does."""

    def __init__(self, engine: AsyncEngine, *, schema: str | None = None) -> None:
        if not isinstance(engine, AsyncEngine):
            raise TypeError(f"AsyncSQLAlchemyStore needs an AsyncEngine, got {type(engine).__name__}")
        super().__init__(schema, _shown(engine.sync_engine))
        self.engine = engine
        self.schema = schema
        self._host: AsyncConnection | AsyncSession | None = None

    def __repr__(self) -> str:
        bound = ", bound" if self._host is not None else ""
        return f"AsyncSQLAlchemyStore({self._target!r}, schema={self.schema!r}{bound})"

    def bound(self, host: AsyncConnection | AsyncSession) -> AsyncSQLAlchemyStore:
        """This store writing through the host's ``AsyncConnection`` or ``AsyncSession``, inside
        its transaction (a SAVEPOINT per write, never a commit): see ``SQLAlchemyStore.bound``."""
        view = copy.copy(self)
        view._host = _async_host(host)
        return view

    def in_host_transaction(self) -> bool:
        """True for ``bound(...)`` (see ``SQLAlchemyStore.in_host_transaction``): a plain method,
        no I/O, so ``AsyncLifecycle`` on a bound store defers its confirm purge too."""
        return self._host is not None

    async def _run(
        self,
        what: str,
        op: Callable[[Connection], T],
        *,
        write: bool = True,
        conflict: Callable[[], Exception] | None = None,
    ) -> T:
        try:
            if self._host is not None:
                host = self._host
                conn = await host.connection() if isinstance(host, AsyncSession) else host
                return await conn.run_sync(_nested, op, write)
            async with self.engine.connect() as conn:
                return await conn.run_sync(_standalone, op, write)
        except sa_exc.SQLAlchemyError as exc:
            if conflict is not None and self._conflict(exc):
                raise conflict() from None
            raise self._translate(exc, what) from None

    async def migrate(self) -> tuple[int, ...]:
        """Create the missing tables and record the schema version (``SQLAlchemyStore.migrate``)."""
        return await self._run("migrating the schema", self._logic.migrate)

    async def schema_version(self) -> int:
        """The version ``migrate()`` recorded (0 when it never ran)."""
        return await self._run("reading the schema version", self._logic.schema_version, write=False)

    async def status(self, *, now: datetime) -> StoreStatus:
        """A snapshot of the purge work at *now* (``SQLAlchemyStore.status``)."""
        now = require_aware(now)

        def op(conn: Connection) -> tuple[int, list[StatusRow]]:
            return self._logic.schema_version(conn), self._logic.status_rows(conn)

        version, rows = await self._run("reading the status", op, write=False)
        return summarize(rows, now=now, schema_version=version, library_schema_version=SCHEMA_VERSION)

    async def create(
        self,
        record: AccountRecord,
        events: Sequence[AuditEvent],
        *,
        now: datetime | None = None,
        aliases: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Insert a new account with its first events (``AccountStore.create``)."""
        now = None if now is None else require_aware(now)
        await self._run(
            f"creating account {record.account_id!r}",
            lambda conn: self._logic.create(conn, record, events, now, aliases),
        )

    async def get(self, account_id: str) -> AccountRecord:
        """The stored record (``AccountStore.get``)."""
        return await self._run(
            f"reading account {account_id!r}", lambda conn: self._logic.get(conn, account_id), write=False
        )

    async def save(
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
        """Compare-and-set the record with its events (``AccountStore.save``)."""
        statement = self._logic.update_statement(record, expected_version, lease, release, now)
        now = None if now is None else require_aware(now)

        def op(conn: Connection) -> None:
            self._logic.save(conn, record, expected_version, statement, now, erase_sealed)
            self._logic.append(conn, events)

        await self._run(
            f"saving account {record.account_id!r}",
            op,
            conflict=lambda: ConcurrentUpdate(
                account_id=record.account_id, expected_version=expected_version
            ),
        )

    async def save_many(self, writes: Sequence[Write], *, now: datetime) -> list[Exception | None]:
        """Every write's compare-and-set in one transaction (``BatchStore.save_many``)."""
        now = require_aware(now)
        if not writes:
            return []
        statements = [
            self._logic.update_statement(w.record, w.expected_version, w.lease, w.release, now)
            for w in writes
        ]
        return await self._run(
            f"saving {len(writes)} accounts",
            lambda conn: self._logic.save_many(conn, writes, statements, now),
        )

    async def history(self, account_id: str) -> tuple[AuditEvent, ...]:
        """The account's audit events in order (``AccountStore.history``)."""
        return await self._run(
            f"reading the history of {account_id!r}",
            lambda conn: self._logic.history(conn, account_id),
            write=False,
        )

    async def account_ids(self) -> tuple[str, ...]:
        """Every stored account id, in order."""
        return await self._run("listing accounts", self._logic.account_ids, write=False)

    async def claim_due(
        self, *, now: datetime, lease: Lease, limit: int
    ) -> list[AccountRecord | CorruptRecord]:
        """Claim up to *limit* due accounts for *lease* (``AccountStore.claim_due``)."""
        now = require_aware(now)
        require_aware(lease.until)
        if _check_limit(limit) == 0:
            return []
        return await self._run(
            "claiming accounts due for purge", lambda conn: self._logic.claim_due(conn, now, lease, limit)
        )

    async def release(self, account_id: str, owner: str) -> None:
        """Drop *owner*'s claim on the account, and no other owner's."""
        await self._run(
            f"releasing the claim on {account_id!r}",
            lambda conn: self._logic.release(conn, account_id, owner),
        )

    async def list_accounts(
        self, query: AccountQuery, *, after: str | None, limit: int
    ) -> list[AccountRecord | CorruptRecord]:
        """Up to *limit* accounts matching *query* after *after*, by id (``QueryStore``)."""
        query, after, limit = check_query(query), check_after(after), check_limit(limit)
        if limit == 0 or query.states == frozenset():
            return []
        return await self._run(
            "listing accounts", lambda conn: self._logic.list_accounts(conn, query, after, limit), write=False
        )

    async def outbox_read(self, *, after: int, limit: int) -> list[OutboxEntry]:
        """Up to *limit* outbox entries after position *after*, in order (``OutboxStore``)."""
        after, limit = check_read(after, limit)
        if limit == 0:
            return []
        return await self._run(
            "reading the outbox", lambda conn: self._logic.outbox_read(conn, after, limit), write=False
        )

    async def outbox_claim(self, listener: str, *, lease: Lease, now: datetime) -> OutboxCursor | None:
        """Claim *listener*'s cursor for ``lease.owner`` (``OutboxStore.outbox_claim``)."""
        validate_id(listener, "outbox listener name")
        now = require_aware(now)
        require_aware(lease.until)
        return await self._run(
            f"claiming the outbox cursor of {listener!r}",
            lambda conn: self._logic.outbox_claim(conn, listener, lease, now),
        )

    async def outbox_advance(
        self, cursor: OutboxCursor, *, expected_version: int, dead: Sequence[DeadLetter] = ()
    ) -> None:
        """Compare-and-set *cursor* and add the *dead* letters (``OutboxStore.outbox_advance``)."""
        check_advance(cursor, expected_version, dead)
        await self._run(
            f"advancing the outbox cursor of {cursor.listener!r}",
            lambda conn: self._logic.outbox_advance(conn, cursor, expected_version, dead),
        )

    async def outbox_cursors(self) -> tuple[OutboxCursor, ...]:
        """Every listener's cursor, by listener name."""
        return await self._run("reading the outbox cursors", self._logic.outbox_cursors, write=False)

    async def outbox_dead_letters(self, listener: str | None = None) -> tuple[DeadLetter, ...]:
        """The dead letters of *listener* (or of every listener), by listener then position."""
        return await self._run(
            "reading dead letters", lambda conn: self._logic.outbox_dead_letters(conn, listener), write=False
        )

    async def outbox_forget_dead(self, listener: str, positions: Sequence[int]) -> int:
        """Remove those dead letters of *listener*; how many were removed."""
        for position in positions:
            _check_position(position)
        return await self._run(
            f"forgetting dead letters of {listener!r}",
            lambda conn: self._logic.outbox_forget_dead(conn, listener, positions),
        )

    async def outbox_head(self) -> int:
        """The highest outbox position written so far (0 if none)."""
        return await self._run("reading the outbox head", self._logic.outbox_head, write=False)
