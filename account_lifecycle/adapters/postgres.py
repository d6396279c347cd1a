"""The PostgreSQL store, on psycopg 3 (extra ``postgres``).

Each method is one short transaction on a pooled connection; none is held open across
calls. The record update is filtered by the version that was read (zero rows updated means
someone else won), the audit events are inserted in the same transaction, the database
enforces that a live identity belongs to one account (a partial unique index) and that an
identifier belongs to one account (the primary key of ``identities``), and
``claim_due`` takes accounts with ``FOR UPDATE SKIP LOCKED`` so that parallel sweepers
never get the same one.

Unlike ``SQLiteStore``, the schema is never created implicitly: run ``migrate()`` once
(at deploy time, or when a service starts; it is idempotent and safe to run from several
processes at once). A store whose tables are missing raises ``StoreError`` saying so.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cached_property
from typing import Any, ClassVar, Final, LiteralString

import attrs
import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool

from account_lifecycle.adapters._outbox import (
    check_advance,
    check_read,
    claimed_cursor,
    may_advance,
    outbox_conflict,
)
from account_lifecycle.adapters._plain_identities import DIGEST_STEP_NOTE, digested, digested_body
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
from account_lifecycle.identity_keys import IDENTITY_KIND, IdentityKeys
from account_lifecycle.model import AccountRecord
from account_lifecycle.ports import save_each
from account_lifecycle.queries import (
    UNREADABLE_FLAGS,
    AccountQuery,
    check_after,
    check_limit,
    check_query,
    flags_of,
    merge_pages,
    query_path,
)
from account_lifecycle.redact import REDACTOR, dsn_secrets, redact
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

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresStore"]

_Cursor = psycopg.Cursor[tuple[Any, ...]]

# Constraint names the store translates into ``AccountExists``.
_ID_KEY: Final = "accounts_pkey"
_IDENTITY_KEY: Final = "accounts_live_identity_key"
# The three compare-and-set statements of a save, by what they do to the claim.
_LEAVING: Final = 0
_TAKING: Final = 1
_RELEASING: Final = 2

#: ``(version, description, statements)``: applied in order by ``migrate()``, each once.
#: ``{schema}`` is replaced by the quoted schema name. Never edit a released migration:
#: append a new one.
MIGRATIONS: Final[tuple[tuple[int, str, tuple[LiteralString, ...]], ...]] = (
    (
        1,
        "accounts, audit events, live-identity and due-for-purge indexes",
        (
            """
            CREATE TABLE {schema}.accounts (
                account_id    text PRIMARY KEY,
                version       bigint NOT NULL,
                state         text NOT NULL,
                live_identity text,
                due_at        timestamptz,
                claim_owner   text,
                claim_until   timestamptz,
                body          text NOT NULL
            )
            """,
            # One live identity per account; released identities (NULL) may repeat.
            "CREATE UNIQUE INDEX accounts_live_identity_key ON {schema}.accounts (live_identity)"
            " WHERE live_identity IS NOT NULL",
            # Serves claim_due: only accounts with purge work pending are indexed.
            "CREATE INDEX accounts_due_at_idx ON {schema}.accounts (due_at, account_id)"
            " WHERE due_at IS NOT NULL",
            """
            CREATE TABLE {schema}.events (
                account_id text NOT NULL REFERENCES {schema}.accounts (account_id),
                seq        bigint NOT NULL,
                at         timestamptz NOT NULL,
                action     text NOT NULL,
                body       text NOT NULL,
                PRIMARY KEY (account_id, seq)
            )
            """,
        ),
    ),
    (
        2,
        "identities: identifiers by kind and value, held by one account until free_at",
        (
            # The primary key makes a concurrent duplicate fail: one account per identifier.
            """
            CREATE TABLE {schema}.identities (
                kind       text NOT NULL,
                value      text NOT NULL,
                account_id text NOT NULL REFERENCES {schema}.accounts (account_id),
                free_at    timestamptz,
                PRIMARY KEY (kind, value)
            )
            """,
            "CREATE INDEX identities_account_idx ON {schema}.identities (account_id)",
        ),
    ),
    (
        3,
        "identities as keyed digests (data step); sealed_values: personal data of audit events",
        (
            # The values an event sealed (its hashed body holds their commitments); erased at
            # purge. No foreign key to events: the rows go before the account does.
            """
            CREATE TABLE {schema}.sealed_values (
                account_id text NOT NULL,
                seq        bigint NOT NULL,
                field      text NOT NULL,
                salt       text NOT NULL,
                value      text NOT NULL,
                PRIMARY KEY (account_id, seq, field)
            )
            """,
        ),
    ),
    (
        4,
        "the outbox: an entry per audit event numbered in commit order, listeners' cursors, dead letters",
        (
            # Positions come from the column's sequence, drawn under a transaction advisory lock
            # held until commit (PostgresStore._outbox_append): numbering order is commit order.
            """
            CREATE TABLE {schema}.outbox (
                position   bigserial PRIMARY KEY,
                account_id text NOT NULL,
                seq        bigint NOT NULL,
                UNIQUE (account_id, seq)
            )
            """,
            """
            CREATE TABLE {schema}.outbox_cursors (
                listener    text PRIMARY KEY,
                position    bigint NOT NULL,
                attempts    integer NOT NULL,
                retry_at    timestamptz,
                error       text,
                claim_owner text,
                claim_until timestamptz,
                version     bigint NOT NULL
            )
            """,
            """
            CREATE TABLE {schema}.outbox_dead (
                listener   text NOT NULL,
                position   bigint NOT NULL,
                account_id text NOT NULL,
                seq        bigint NOT NULL,
                error      text NOT NULL,
                at         timestamptz NOT NULL,
                PRIMARY KEY (listener, position)
            )
            """,
            # The events written before the outbox get entries, per account in seq order.
            "INSERT INTO {schema}.outbox (account_id, seq)"
            " SELECT account_id, seq FROM {schema}.events ORDER BY account_id, seq",
        ),
    ),
    (
        5,
        "policy versions: the label each account is pinned to, indexed (data step: from bodies)",
        (
            # NULL: a row not labelled yet (its body says); account_ids_pinned offers it too.
            "ALTER TABLE {schema}.accounts ADD COLUMN IF NOT EXISTS policy_label text",
            "CREATE INDEX IF NOT EXISTS accounts_policy_label_idx"
            " ON {schema}.accounts (policy_label, account_id)",
        ),
    ),
    (
        6,
        "operators' queries: has_holds and has_failed_steps, indexed in id order, and (state, account_id)"
        " (data step: from bodies)",
        (
            "ALTER TABLE {schema}.accounts ADD COLUMN IF NOT EXISTS has_holds boolean NOT NULL DEFAULT false",
            "ALTER TABLE {schema}.accounts"
            " ADD COLUMN IF NOT EXISTS has_failed_steps boolean NOT NULL DEFAULT false",
            "CREATE INDEX IF NOT EXISTS accounts_held_idx ON {schema}.accounts (account_id) WHERE has_holds",
            "CREATE INDEX IF NOT EXISTS accounts_failed_idx ON {schema}.accounts (account_id)"
            " WHERE has_failed_steps",
            "CREATE INDEX IF NOT EXISTS accounts_state_idx ON {schema}.accounts (state, account_id)",
        ),
    ),
)
#: What ``migrate --sql`` prints in place of migration 6's data step.
FLAGS_STEP_NOTE: Final = (
    "-- migration 6 also fills has_holds and has_failed_steps from each stored record, which needs"
    " the library's decoder: run account-lifecycle migrate (or store.migrate()); it records version 6"
)
#: The schema version this library reads and writes.
SCHEMA_VERSION: Final = MIGRATIONS[-1][0]


def _target(conninfo: str, secrets: frozenset[str]) -> str:
    """The connection target without its password, for messages and ``repr``."""
    params = conninfo_to_dict(conninfo)
    host = params.get("host", "localhost")
    port = params.get("port", 5432)
    dbname = params.get("dbname", "")
    return redact(f"{host}:{port}/{dbname}", secrets)


def _invalid_dsn(dsn: str, exc: psycopg.Error, secrets: frozenset[str]) -> StoreError:
    """The error for a connection string libpq cannot parse. libpq quotes the piece it choked
    on, which may be (part of) the password: every quoted piece is left out."""
    scheme = dsn.partition("://")[0] if "://" in dsn else ""
    if "+" in scheme:  # a SQLAlchemy URL pasted as it is
        return StoreError(
            f"invalid PostgreSQL DSN: {redact(scheme, secrets)}:// is a SQLAlchemy URL; psycopg takes "
            f"postgresql://user:password@host/dbname (drop the '+{scheme.partition('+')[2]}')"
        )
    reason = re.sub(r'"[^"]*"?', "(...)", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return StoreError(
        f"invalid PostgreSQL DSN ({redact(reason, secrets)}); expected postgresql://user@host/dbname "
        "or 'host=... dbname=...'"
    )


class PostgresStore:
    """Accounts and audit events in PostgreSQL, in one schema (``account_lifecycle`` by default).

    *dsn_or_pool* is either a connection string (the store then owns a small
    ``psycopg_pool.ConnectionPool`` of up to *max_connections* connections and closes it in
    ``close()``), or a ``ConnectionPool`` the host manages (the store never closes it). A call
    waits at most *timeout* seconds for a connection, then raises ``StoreError``.

    Call ``migrate()`` once before first use; the constructor neither connects nor creates
    anything.
    """

    #: The pool a DSN becomes, and the one a host may hand in: where every transaction gets its
    #: connection (``_transaction``). ``AsyncPostgresStore`` puts psycopg's async pool behind it.
    _pool_class: ClassVar[type[ConnectionPool[Any]]] = ConnectionPool

    def __init__(
        self,
        dsn_or_pool: str | ConnectionPool[Any],
        *,
        schema: str = "account_lifecycle",
        max_connections: int = 10,
        timeout: float = 30.0,
    ) -> None:
        if not isinstance(schema, str) or not schema or len(schema) > 63:
            raise ValueError(f"schema must be a name of 1 to 63 characters, got {schema!r}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self.schema = schema
        self.timeout = timeout
        self._ready = False
        self._lock = threading.RLock()  # _check_schema runs a transaction while holding it
        self._secrets: frozenset[str] = frozenset()
        if isinstance(dsn_or_pool, self._pool_class):
            conninfo = dsn_or_pool.conninfo
            self._secrets = dsn_secrets(conninfo) if isinstance(conninfo, str) else frozenset()
            self._pool: ConnectionPool[Any] = dsn_or_pool
            self._owns_pool = False
            self._opened = True
            self._target = f"pool {dsn_or_pool.name!r}"
        elif isinstance(dsn_or_pool, str):
            # Every form of the password, kept out of this store's messages and psycopg's logs.
            self._secrets = dsn_secrets(dsn_or_pool)
            try:
                self._target = _target(dsn_or_pool, self._secrets)
            except psycopg.Error as exc:
                raise _invalid_dsn(dsn_or_pool, exc, self._secrets) from None
            REDACTOR.register(self._secrets)
            # Opened on first use, so building a store (say, before a fork) connects nothing.
            self._pool = self._pool_class(
                dsn_or_pool,
                min_size=1,
                max_size=max_connections,
                kwargs={"autocommit": True, "connect_timeout": max(1, round(timeout))},
                check=self._pool_class.check_connection,
                timeout=timeout,
                name=f"account_lifecycle:{schema}",
                open=False,
            )
            self._owns_pool = True
            self._opened = False
        else:
            raise TypeError(
                f"PostgresStore needs a DSN string or a psycopg_pool.ConnectionPool, "
                f"got {type(dsn_or_pool).__name__}"
            )
        self._sql = _Statements(schema)

    def __repr__(self) -> str:
        return f"PostgresStore({self._target!r}, schema={self.schema!r})"

    def close(self) -> None:
        """Close the pool if this store created it (a pool handed in stays open)."""
        if self._owns_pool:
            with self._lock:
                self._opened = True  # a closed pool cannot be opened again
                self._pool.close()
                if self._secrets:
                    REDACTOR.unregister(self._secrets)
                    self._secrets = frozenset()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transactions and errors -----------------------------------------------------------

    @contextmanager
    def _transaction(
        self,
        what: str,
        *,
        check: bool = True,
        conflict: Callable[[], LifecycleError] | None = None,
    ) -> Iterator[_Cursor]:
        """One short transaction; every psycopg error leaves as a library error. With
        *conflict*, a serialization failure or a deadlock (rolled back, so nothing was
        written) raises ``conflict()`` instead of ``StoreError``."""
        if not self._opened:
            self._open()
        if check:
            self._check_schema()
        try:
            with (
                self._pool.connection(timeout=self.timeout) as conn,
                conn.transaction(),
                conn.cursor(row_factory=tuple_row) as cursor,
            ):
                yield cursor
        except (errors.SerializationFailure, errors.DeadlockDetected) as exc:
            if conflict is not None:
                raise conflict() from None
            raise self._translate(exc, what) from None
        except psycopg.Error as exc:
            raise self._translate(exc, what) from None

    def _open(self) -> None:
        with self._lock:
            if not self._opened:
                try:
                    self._pool.open(wait=False)
                except psycopg.Error as exc:
                    raise self._translate(exc, "opening the connection pool") from None
                self._opened = True

    def _translate(self, exc: psycopg.Error, what: str) -> StoreError:
        if isinstance(exc, errors.UndefinedTable | errors.InvalidSchemaName):
            return StoreError(
                f"PostgreSQL schema {self.schema!r} at {self._target} has no account_lifecycle tables "
                f"(while {what}); run store.migrate() once before using the store"
            )
        # The server's primary message only: its DETAIL may quote the values of a row. Never
        # the password, in any form the DSN held it.
        text = exc.diag.message_primary or (str(exc).splitlines() or [type(exc).__name__])[0]
        text = redact(text, self._secrets)
        if isinstance(exc, psycopg.OperationalError):
            return StoreError(f"PostgreSQL at {self._target} is unavailable (while {what}): {text}")
        state = f" [{exc.sqlstate}]" if exc.sqlstate else ""
        return StoreError(f"PostgreSQL at {self._target} failed while {what}{state}: {text}")

    def _check_schema(self) -> None:
        """Once per store: the tables exist and have the version this library writes."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            with self._transaction("checking the schema version", check=False) as cursor:
                cursor.execute(self._sql.current_version)
                row = cursor.fetchone()
            found = 0 if row is None or row[0] is None else int(row[0])
            if found < SCHEMA_VERSION:
                raise StoreError(
                    f"PostgreSQL schema {self.schema!r} at {self._target} is at version {found}, "
                    f"this library needs {SCHEMA_VERSION}; run store.migrate()"
                )
            if found > SCHEMA_VERSION:
                raise StoreError(self._newer_message(found))
            self._ready = True

    def _newer_message(self, found: int) -> str:
        return (
            f"PostgreSQL schema {self.schema!r} at {self._target} has version {found}, newer than "
            f"this library's {SCHEMA_VERSION}; upgrade account_lifecycle"
        )

    # -- schema ----------------------------------------------------------------------------

    def migrate(self, *, identity_keys: IdentityKeys | None = None) -> tuple[int, ...]:
        """Create or upgrade the schema; return the versions this call applied.

        Idempotent, and safe when several processes start at once: the whole migration runs
        in one transaction under a PostgreSQL advisory lock keyed by the schema name.

        Migration 3 turns identities and identifier values an earlier release stored in plain
        text into keyed digests under *identity_keys* (the Lifecycle's keys); if there are
        some and no keys were given it raises ``ConfigurationError`` and nothing is applied.
        """
        with self._transaction("migrating the schema", check=False) as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"account_lifecycle.migrate:{self.schema}",),
            )
            # CREATE SCHEMA IF NOT EXISTS would need the CREATE privilege even when the
            # schema exists (say, made by a DBA); only create it when it is missing.
            cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,))
            if cursor.fetchone() is None:
                cursor.execute(self._sql.create_schema)
            cursor.execute(self._sql.create_migrations)
            cursor.execute(self._sql.current_version)
            row = cursor.fetchone()
            current = 0 if row is None or row[0] is None else int(row[0])
            if current > SCHEMA_VERSION:
                raise StoreError(self._newer_message(current))
            applied = []
            for version, description, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    cursor.execute(self._sql.format(statement))
                if version == 3 and current > 0:  # a fresh schema holds no plain identities
                    self._digest_plain_identities(cursor, identity_keys)
                if version == 5 and current > 0:
                    self._label_pins(cursor)
                if version == 6 and current > 0:
                    self._fill_flags(cursor)
                cursor.execute(self._sql.record_migration, (version, description))
                applied.append(version)
        self._ready = True
        return tuple(applied)

    def _label_pins(self, cursor: _Cursor) -> None:
        """Migration 5's data step: each row's ``policy_label`` from its body (a body that
        cannot be decoded is left NULL: ``account_ids_pinned`` still offers it)."""
        cursor.execute(self._sql.format("SELECT account_id, body FROM {schema}.accounts"))
        labels = []
        for account_id, body in cursor.fetchall():
            try:
                labels.append((record_from_json(body, account_id).policy_label, account_id))
            except LifecycleError:
                continue
        if labels:
            cursor.executemany(
                self._sql.format("UPDATE {schema}.accounts SET policy_label = %s WHERE account_id = %s"),
                labels,
            )

    def _fill_flags(self, cursor: _Cursor) -> None:
        """Migration 6's data step: each row's ``has_holds`` and ``has_failed_steps`` from its
        body (a body that cannot be decoded gets both: it is listed where operators look for
        trouble)."""
        cursor.execute(self._sql.format("SELECT account_id, body FROM {schema}.accounts"))
        flags = []
        for account_id, body in cursor.fetchall():
            try:
                held, failed = flags_of(record_from_json(body, account_id))
            except LifecycleError:
                held, failed = UNREADABLE_FLAGS
            if held or failed:
                flags.append((held, failed, account_id))
        if flags:
            cursor.executemany(
                self._sql.format(
                    "UPDATE {schema}.accounts SET has_holds = %s, has_failed_steps = %s WHERE account_id = %s"
                ),
                flags,
            )

    def account_ids_pinned(self, label: str) -> tuple[str, ...]:
        """The ids of the accounts pinned to *label* (``name@version``, or a bare name for records
        written before versions), and of rows not labelled yet, in id order (the lifecycle reads
        each record to decide)."""
        with self._transaction("listing the accounts of a policy version") as cursor:
            cursor.execute(
                self._sql.format(
                    "SELECT account_id FROM {schema}.accounts"
                    " WHERE policy_label = %s OR policy_label IS NULL ORDER BY account_id"
                ),
                (label,),
            )
            rows = cursor.fetchall()
        return tuple(row[0] for row in rows)

    def _digest_plain_identities(self, cursor: _Cursor, keys: IdentityKeys | None) -> None:
        """Migration 3's data step: every plain identity and identifier value becomes its
        digest (column, record body, identities table), in the migration's transaction."""
        where = f"PostgreSQL schema {self.schema!r} at {self._target}"
        cursor.execute(self.sql_format("SELECT account_id, live_identity, body FROM {schema}.accounts"))
        for account_id, live, body in cursor.fetchall():
            new_body = digested_body(body, keys, where)
            new_live = None if live is None else digested(keys, IDENTITY_KIND, live, where)
            if new_body is not None or new_live != live:
                cursor.execute(
                    self.sql_format(
                        "UPDATE {schema}.accounts SET live_identity = %s, body = COALESCE(%s, body)"
                        " WHERE account_id = %s"
                    ),
                    (new_live, new_body, account_id),
                )
        cursor.execute(self.sql_format("SELECT kind, value FROM {schema}.identities"))
        for kind, value in cursor.fetchall():
            new = digested(keys, kind, value, where)
            if new != value:
                cursor.execute(
                    self.sql_format(
                        "UPDATE {schema}.identities SET value = %s WHERE kind = %s AND value = %s"
                    ),
                    (new, kind, value),
                )

    def sql_format(self, statement: LiteralString) -> sql.Composed:
        """*statement* with ``{schema}`` bound to this store's quoted schema name."""
        return self._sql.format(statement)

    def schema_version(self) -> int:
        """The version recorded in the database (0 when ``migrate()`` never ran)."""
        with self._transaction("reading the schema version", check=False) as cursor:
            cursor.execute("SELECT to_regclass(%s) IS NULL", (self._sql.migrations_name,))
            row = cursor.fetchone()
            if row is not None and row[0]:
                return 0
            cursor.execute(self._sql.current_version)
            row = cursor.fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    # -- the store port --------------------------------------------------------------------

    @staticmethod
    def _columns(record: AccountRecord) -> dict[str, Any]:
        held, failed = flags_of(record)
        return {
            "account_id": record.account_id,
            "version": record.version,
            "state": record.state.value,
            "live_identity": record.live_identity,
            "due_at": due_at(record),
            "body": record_to_json(record),
            "policy_label": record.policy_label,
            "has_holds": held,
            "has_failed_steps": failed,
        }

    def _append(self, cursor: _Cursor, events: Sequence[AuditEvent]) -> None:
        rows = [(e.account_id, e.seq, require_aware(e.at), str(e.action), event_to_json(e)) for e in events]
        if len(rows) == 1:  # most writes: executemany would set up a pipeline for one row
            cursor.execute(self._sql.insert_event, rows[0])
        elif rows:
            cursor.executemany(self._sql.insert_event, rows)
        for e in events:
            for field, held in e.sealed_values.items():
                row = (e.account_id, e.seq, field, held.salt, dumps(held.value))
                cursor.execute(self._sql.insert_sealed, row)
        self._outbox_append(cursor, events)

    def _check_aliases(
        self,
        cursor: _Cursor,
        record: AccountRecord,
        aliases: Mapping[str, Sequence[str]],
        now: datetime | None,
    ) -> None:
        """``AccountExists`` if another account holds an alias of the record's identity or of
        one of its identifiers (an alias its holder freed is given up). Every value and alias
        is locked first (transaction advisory locks, in sorted order), so two opens of one
        value under different key chains cannot both pass."""
        identity = record.live_identity
        values = () if identity is None else (identity, *aliases.get(identity, ()))
        names = {f"identity:{v}" for v in values}
        for kind, held in record.identifiers.items():
            names |= {f"{kind}:{v}" for v in (held.value, *aliases.get(held.value, ()))}
        for name in sorted(names):
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (name,))
        for alias in () if identity is None else aliases.get(identity, ()):
            cursor.execute(self._sql.identity_holder, (alias, record.account_id))
            if cursor.fetchone() is not None:
                raise AccountExists(account_id=record.account_id, identity=identity)
        for kind, held in record.identifiers.items():
            for alias in aliases.get(held.value, ()):
                cursor.execute(self._sql.identifier_holder, (kind, alias, record.account_id))
                row = cursor.fetchone()
                if row is None:
                    continue
                if row[0] is None or now is None or row[0] > require_aware(now):
                    raise AccountExists(account_id=record.account_id, identity=held.value, kind=kind)
                cursor.execute(self._sql.delete_identifier, (kind, alias))

    @staticmethod
    def _taken(exc: errors.UniqueViolation, record: AccountRecord) -> AccountExists:
        if exc.diag.constraint_name == _IDENTITY_KEY:
            return AccountExists(account_id=record.account_id, identity=record.live_identity)
        return AccountExists(account_id=record.account_id)

    def _write_identifiers(self, cursor: _Cursor, record: AccountRecord, now: datetime | None) -> None:
        """Write the account's identifiers in the record's transaction: update the release
        moment of those it holds, take the others (deleting an expired holder's row first);
        ``AccountExists`` if one is held by another account (the primary key says so). Rows of
        the account that the record no longer lists are given up."""
        cursor.execute(self._sql.identifiers_of, (record.account_id,))
        listed = {(kind, held.value) for kind, held in record.identifiers.items()}
        for kind, value in cursor.fetchall():
            if (kind, value) not in listed:
                cursor.execute(self._sql.delete_identifier, (kind, value))
        for kind, held in record.identifiers.items():
            free_at = None if held.free_at is None else require_aware(held.free_at)
            cursor.execute(self._sql.update_identifier, (free_at, kind, held.value, record.account_id))
            if cursor.rowcount == 1:
                continue
            if held.free_at is not None and (now is None or held.free_at <= now):
                continue  # given up already: nothing left to hold
            if now is not None:
                cursor.execute(self._sql.free_identifier, (kind, held.value, require_aware(now)))
            try:
                cursor.execute(self._sql.insert_identifier, (kind, held.value, record.account_id, free_at))
            except errors.UniqueViolation:
                raise AccountExists(account_id=record.account_id, identity=held.value, kind=kind) from None

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
        with self._transaction(f"creating account {record.account_id!r}") as cursor:
            if aliases:
                self._check_aliases(cursor, record, aliases, now)
            try:
                cursor.execute(self._sql.insert_account, columns)
            except errors.UniqueViolation as exc:
                raise self._taken(exc, record) from None
            if cursor.rowcount != 1:
                raise AccountExists(account_id=record.account_id)
            if record.identifiers:
                self._write_identifiers(cursor, record, now)
            self._append(cursor, events)

    def get(self, account_id: str) -> AccountRecord:
        """The stored record (``AccountStore.get``); ``AccountNotFound``, ``RecordCorrupt``."""
        with self._transaction(f"reading account {account_id!r}") as cursor:
            cursor.execute(self._sql.select_account, (account_id,))
            row = cursor.fetchone()
        if row is None:
            raise AccountNotFound(account_id=account_id)
        return record_from_json(row[0], account_id)

    def _update_params(
        self,
        record: AccountRecord,
        expected_version: int,
        lease: Lease | None,
        release: str | None,
        now: datetime | None,
    ) -> tuple[int, dict[str, Any]]:
        """Which compare-and-set statement a save runs (an index into ``_Statements.updates``:
        leaves, takes or drops the claim) and its parameters."""
        params: dict[str, Any] = {**self._columns(record), "expected_version": expected_version}
        if lease is not None:
            params.update(
                claim_owner=lease.owner, claim_until=require_aware(lease.until), now=require_now(now)
            )
            return _TAKING, params
        if release is not None:
            params["release"] = release
            return _RELEASING, params
        return _LEAVING, params

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
        variant, params = self._update_params(record, expected_version, lease, release, now)
        statement = self._sql.updates[variant]

        def conflict() -> ConcurrentUpdate:
            return ConcurrentUpdate(account_id=record.account_id, expected_version=expected_version)

        with self._transaction(f"saving account {record.account_id!r}", conflict=conflict) as cursor:
            try:
                cursor.execute(statement, params)
            except errors.UniqueViolation as exc:
                raise self._taken(exc, record) from None
            if cursor.rowcount != 1:
                cursor.execute(self._sql.account_exists, (record.account_id,))
                if cursor.fetchone() is None:
                    raise AccountNotFound(account_id=record.account_id)
                raise conflict()
            self._write_identifiers(cursor, record, now)
            if erase_sealed:
                cursor.execute(self._sql.erase_sealed, (record.account_id,))
            self._append(cursor, events)

    def save_many(self, writes: Sequence[Write], *, now: datetime) -> list[Exception | None]:
        """Every write's compare-and-set in one transaction (see ``BatchStore``): the updates
        are sent together (``executemany``, pipelined: one round trip per kind of claim
        change), then the events of the writes made. A write refused by the database itself
        (an identity or identifier taken, a deadlock) aborts the transaction, which wrote
        nothing; the batch is then saved one write per transaction, which finds the refusal."""
        if not writes:
            return []
        if any(w.lease is not None for w in writes):
            now = require_now(now)
        if len({w.record.account_id for w in writes}) < len(writes):
            return save_each(self, writes, now=now)  # one account twice: in order, one by one
        groups: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        for i, w in enumerate(writes):
            variant, params = self._update_params(w.record, w.expected_version, w.lease, w.release, now)
            groups.setdefault(variant, []).append((i, params))
        results: list[Exception | None] = [None] * len(writes)
        try:
            with self._transaction(f"saving {len(writes)} accounts", conflict=_Refused) as cursor:
                made: set[str] = set()
                for variant, rows in sorted(groups.items()):
                    rows.sort(key=lambda row: str(row[1]["account_id"]))  # one lock order for all
                    try:
                        cursor.executemany(self._sql.returning[variant], [p for _, p in rows], returning=True)
                    except errors.UniqueViolation:
                        raise _Refused from None  # an identity taken: found by the one-by-one saves
                    while True:
                        made.update(row[0] for row in cursor.fetchall())
                        if not cursor.nextset():
                            break
                missing = [w.record.account_id for w in writes if w.record.account_id not in made]
                if missing:
                    cursor.execute(self._sql.accounts_among, (missing,))
                    present = {row[0] for row in cursor.fetchall()}
                    for i, w in enumerate(writes):
                        account_id = w.record.account_id
                        if account_id not in made:
                            results[i] = (
                                ConcurrentUpdate(account_id=account_id, expected_version=w.expected_version)
                                if account_id in present
                                else AccountNotFound(account_id=account_id)
                            )
                # Accounts written without identifiers give up every identifier row they had,
                # and those purged erase their sealed values: one statement each for the batch.
                unlisted: list[str] = []
                erased: list[str] = []
                for i, w in enumerate(writes):
                    if results[i] is not None:
                        continue
                    if w.record.identifiers:
                        self._write_identifiers(cursor, w.record, now)  # gives up dropped rows too
                    else:
                        unlisted.append(w.record.account_id)
                    if w.erase_sealed:
                        erased.append(w.record.account_id)
                if unlisted:
                    cursor.execute(self._sql.give_up_identifiers_of_all, (unlisted,))
                if erased:
                    cursor.execute(self._sql.erase_sealed_of_all, (erased,))
                made_events = [e for i, w in enumerate(writes) if results[i] is None for e in w.events]
                self._append(cursor, made_events)
        except (AccountExists, _Refused):
            return save_each(self, writes, now=now)
        return results

    def history(self, account_id: str) -> tuple[AuditEvent, ...]:
        """The account's audit events in order (``AccountStore.history``)."""
        with self._transaction(f"reading the history of {account_id!r}") as cursor:
            cursor.execute(self._sql.select_history, (account_id,))
            rows = cursor.fetchall()
            cursor.execute(self._sql.select_sealed, (account_id,))
            sealed = cursor.fetchall()
        if not rows:
            raise AccountNotFound(account_id=account_id)
        events = tuple(
            event_from_json(row[0], account_id, i) for i, row in enumerate(rows, 1) if row[0] is not None
        )
        if not sealed:
            return events
        by_seq: dict[int, dict[str, SealedValue]] = {}
        for seq, field, salt, value in sealed:
            by_seq.setdefault(seq, {})[field] = sealed_from_row(account_id, seq, salt, value)
        return tuple(attrs.evolve(e, sealed_values=by_seq[e.seq]) if e.seq in by_seq else e for e in events)

    def claim_due(self, *, now: datetime, lease: Lease, limit: int) -> list[AccountRecord | CorruptRecord]:
        """Claim up to *limit* due accounts for *lease* (``AccountStore.claim_due``)."""
        now = require_aware(now)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be a whole number >= 0, got {limit!r}")
        if limit == 0:
            return []
        params = {
            "now": now,
            "limit": limit,
            "owner": lease.owner,
            "until": require_aware(lease.until),
        }
        with self._transaction("claiming accounts due for purge") as cursor:
            cursor.execute(self._sql.claim_due, params)
            rows = cursor.fetchall()
        # RETURNING has no defined order: put the claimed accounts back in due order.
        rows.sort(key=lambda row: (row[0], row[1]))
        return [_decode_claimed(row[1], row[2]) for row in rows]

    def release(self, account_id: str, owner: str) -> None:
        """Drop *owner*'s claim on the account, and no other owner's."""
        with self._transaction(f"releasing the claim on {account_id!r}") as cursor:
            cursor.execute(self._sql.release, (account_id, owner))

    # -- queries ---------------------------------------------------------------------------

    def list_accounts(
        self, query: AccountQuery, *, after: str | None, limit: int
    ) -> list[AccountRecord | CorruptRecord]:
        """Up to *limit* accounts matching *query* with ids after *after*, in id order
        (``QueryStore.list_accounts``), read in one ``REPEATABLE READ, READ ONLY`` transaction.

        Every condition is a column test (``state``, ``due_at``, ``has_holds``,
        ``has_failed_steps``), in id order (the order of the column's collation: code points
        under ``C`` and ``C.UTF-8``) on an index that serves it (``query_path``: the partial
        index of held or failed accounts, ``(state, account_id)`` once per state and the pages
        merged, or the primary key). A row that cannot be decoded is returned as a
        ``CorruptRecord`` when its columns match."""
        query = check_query(query)
        after = check_after(after)
        limit = check_limit(limit)
        if limit == 0 or query.states == frozenset():
            return []
        clauses: list[sql.Composable] = []
        values: dict[str, Any] = {"limit": limit}
        if query.due_before is not None:
            clauses.append(sql.SQL("due_at < %(due_before)s"))
            values["due_before"] = query.due_before
        if query.with_holds is not None:
            clauses.append(sql.SQL("has_holds" if query.with_holds else "NOT has_holds"))
        if query.with_failed_steps is not None:
            clauses.append(sql.SQL("has_failed_steps" if query.with_failed_steps else "NOT has_failed_steps"))
        if after is not None:
            clauses.append(sql.SQL("account_id > %(after)s"))
            values["after"] = after
        states = sorted(s.value for s in query.states) if query.states is not None else None

        def page(
            cursor: _Cursor, state: sql.Composable | None, params: dict[str, Any]
        ) -> list[tuple[str, str]]:
            where = clauses if state is None else [state, *clauses]
            statement = sql.SQL(
                "SELECT account_id, body FROM {}.accounts{} ORDER BY account_id LIMIT %(limit)s"
            ).format(
                self._sql.schema,
                sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
            )
            cursor.execute(statement, params)
            return cursor.fetchall()

        with self._transaction("listing accounts") as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            if states is None:
                rows = page(cursor, None, values)
            elif query_path(query) == "states":  # the state index, once per state
                one = sql.SQL("state = %(state)s")
                pages = (page(cursor, one, {**values, "state": state}) for state in states)
                rows = merge_pages(pages, limit, _first)
            else:
                rows = page(cursor, sql.SQL("state = ANY(%(states)s)"), {**values, "states": states})
        return [_decode_claimed(account_id, body) for account_id, body in rows]

    def account_ids(self) -> tuple[str, ...]:
        """Every stored account id (for tests and tools)."""
        with self._transaction("listing accounts") as cursor:
            cursor.execute(self._sql.account_ids)
            rows = cursor.fetchall()
        return tuple(row[0] for row in rows)

    # -- read-only views for operators (status, migrate --sql) ------------------------------

    def migration_statements(self, from_version: int) -> tuple[str, ...]:
        """The statements ``migrate()`` runs on this schema at version *from_version* (0: never
        migrated), in order, as text; none when it is current. Runs nothing (``migrate --sql``).

        Migration 3 of a schema that holds data has a step SQL alone cannot do (identities in
        plain text become keyed digests, which needs the keys): from version 1 or 2, the
        statements stop before it with a comment saying to run ``migrate`` for the rest."""
        if from_version >= SCHEMA_VERSION:
            return ()
        composed: list[sql.Composable] = []
        if from_version == 0:
            composed += [self._sql.create_schema, self._sql.create_migrations]
        for version, description, statements in MIGRATIONS:
            if version == 3 and 0 < from_version < 3:
                composed.append(sql.SQL(DIGEST_STEP_NOTE))
                break
            if version > from_version:
                composed += [self._sql.format(statement) for statement in statements]
                if version == 6 and from_version > 0:
                    composed.append(sql.SQL(FLAGS_STEP_NOTE))
                    break
                composed.append(
                    sql.SQL("INSERT INTO {}.schema_migrations (version, description) VALUES ({}, {})").format(
                        self._sql.schema, sql.Literal(version), sql.Literal(description)
                    )
                )
        return tuple(" ".join(c.as_string(None).split()) for c in composed)

    def status(self, *, now: datetime) -> StoreStatus:
        """A snapshot of the purge work at *now* (backlog, oldest due, failed steps, live claims,
        schema version), read in one ``READ ONLY`` transaction: it never migrates nor writes, and
        works on an older schema. See ``account_lifecycle.health.StoreStatus``."""
        now = require_aware(now)
        with self._transaction("reading the status", check=False) as cursor:
            cursor.execute("SET TRANSACTION READ ONLY")
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (self._sql.migrations_name,))
            found = cursor.fetchone()
            version, rows = 0, []
            if found is not None and found[0]:
                cursor.execute(self._sql.current_version)
                row = cursor.fetchone()
                version = 0 if row is None or row[0] is None else int(row[0])
            if version > 0:
                cursor.execute(
                    self._sql.format(
                        "SELECT account_id, due_at, claim_owner, claim_until, body FROM {schema}.accounts"
                        " WHERE due_at IS NOT NULL OR claim_owner IS NOT NULL"
                        " OR state IN ('cancelled', 'restorable')"
                    )
                )
                rows = cursor.fetchall()
        return summarize(
            (StatusRow(r[0], r[1], r[2], r[3], _decode_claimed(r[0], r[4])) for r in rows),
            now=now,
            schema_version=version,
            library_schema_version=SCHEMA_VERSION,
        )

    # -- the outbox --------------------------------------------------------------------------

    @cached_property
    def _outbox_sql(self) -> _OutboxStatements:
        return _OutboxStatements(self._sql)

    def _outbox_append(self, cursor: _Cursor, events: Sequence[AuditEvent]) -> None:
        """The outbox entries of *events*, numbered last in the write's transaction, under a
        transaction advisory lock held until it commits: a writer numbers its entries only
        after every writer that numbered before it has committed (or rolled back), so positions
        increase in commit order and a reader never sees a position before a lower one."""
        if not events:
            return
        sql_ = self._outbox_sql
        cursor.execute(sql_.lock, (sql_.lock_name,))
        rows = [(e.account_id, e.seq) for e in events]
        if len(rows) == 1:
            cursor.execute(sql_.insert, rows[0])
        else:
            cursor.executemany(sql_.insert, rows)

    def outbox_read(self, *, after: int, limit: int) -> list[OutboxEntry]:
        """Up to *limit* entries after position *after*, in order (``OutboxStore.outbox_read``)."""
        after, limit = check_read(after, limit)
        if limit == 0:
            return []
        with self._transaction("reading the outbox") as cursor:
            cursor.execute(self._outbox_sql.read, (after, limit))
            rows = cursor.fetchall()
            sealed: list[tuple[Any, ...]] = []
            if rows:
                cursor.execute(self._outbox_sql.read_sealed, (after, rows[-1][0]))
                sealed = cursor.fetchall()
        by_event: dict[tuple[str, int], dict[str, SealedValue]] = {}
        for account_id, seq, field, salt, value in sealed:
            by_event.setdefault((account_id, seq), {})[field] = sealed_from_row(account_id, seq, salt, value)
        out = []
        for position, account_id, seq, body in rows:
            event = event_from_json(body, account_id, seq)
            held = by_event.get((account_id, seq))
            out.append(OutboxEntry(position, attrs.evolve(event, sealed_values=held) if held else event))
        return out

    def outbox_claim(self, listener: str, *, lease: Lease, now: datetime) -> OutboxCursor | None:
        """Claim *listener*'s cursor for ``lease.owner`` (``OutboxStore.outbox_claim``)."""
        now = require_aware(now)
        with self._transaction("claiming an outbox cursor") as cursor:
            cursor.execute(self._outbox_sql.create_cursor, (listener,))
            cursor.execute(self._outbox_sql.lock_cursor, (listener,))
            row = cursor.fetchone()
            assert row is not None  # created just above if it was missing
            claimed = claimed_cursor(OutboxCursor(*row), lease, now)
            if claimed is not None:
                cursor.execute(self._outbox_sql.write_cursor, _cursor_params(claimed))
        return claimed

    def outbox_advance(
        self, cursor: OutboxCursor, *, expected_version: int, dead: Sequence[DeadLetter] = ()
    ) -> None:
        """Compare-and-set *cursor* and add *dead* letters (``OutboxStore.outbox_advance``)."""
        check_advance(cursor, expected_version, dead)
        with self._transaction("advancing an outbox cursor") as db:
            db.execute(self._outbox_sql.lock_cursor, (cursor.listener,))
            row = db.fetchone()
            if row is None or not may_advance(row[7], row[5], cursor, expected_version):
                raise outbox_conflict(cursor.listener, expected_version)
            db.execute(self._outbox_sql.write_cursor, _cursor_params(cursor))
            if dead:
                db.executemany(
                    self._outbox_sql.insert_dead,
                    [
                        (d.listener, d.position, d.account_id, d.seq, d.error, require_aware(d.at))
                        for d in dead
                    ],
                )

    def outbox_cursors(self) -> tuple[OutboxCursor, ...]:
        """Every listener's cursor, by listener name."""
        with self._transaction("reading the outbox cursors") as cursor:
            cursor.execute(self._outbox_sql.cursors)
            rows = cursor.fetchall()
        return tuple(OutboxCursor(*row) for row in rows)

    def outbox_dead_letters(self, listener: str | None = None) -> tuple[DeadLetter, ...]:
        """The dead letters of *listener* (or all), by listener then position."""
        with self._transaction("reading the outbox dead letters") as cursor:
            cursor.execute(self._outbox_sql.dead, {"listener": listener})
            rows = cursor.fetchall()
        return tuple(DeadLetter(*row) for row in rows)

    def outbox_forget_dead(self, listener: str, positions: Sequence[int]) -> int:
        """Remove those dead letters of *listener*; how many were removed."""
        wanted = sorted({int(p) for p in positions})
        with self._transaction("removing outbox dead letters") as cursor:
            cursor.execute(self._outbox_sql.forget_dead, (listener, wanted))
            return cursor.rowcount

    def outbox_head(self) -> int:
        """The highest position written so far (0 if none)."""
        with self._transaction("reading the outbox head") as cursor:
            cursor.execute(self._outbox_sql.head)
            row = cursor.fetchone()
        return 0 if row is None else int(row[0])


class _Refused(LifecycleError):
    """A write of a batch the database refused, aborting the batch's transaction."""


class _Statements:
    """Every statement the store runs, bound to one schema name (quoted, never interpolated)."""

    def __init__(self, schema: str) -> None:
        self.schema = sql.Identifier(schema)
        self.migrations_name = f"{self.schema.as_string()}.schema_migrations"
        self.create_schema = sql.SQL("CREATE SCHEMA {}").format(self.schema)
        self.create_migrations = self.format(
            "CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
            " version integer PRIMARY KEY,"
            " description text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        self.current_version = self.format("SELECT max(version) FROM {schema}.schema_migrations")
        self.record_migration = self.format(
            "INSERT INTO {schema}.schema_migrations (version, description) VALUES (%s, %s)"
        )
        self.insert_account = self.format(
            "INSERT INTO {schema}.accounts"
            " (account_id, version, state, live_identity, due_at, body, policy_label, has_holds,"
            " has_failed_steps)"
            " VALUES (%(account_id)s, %(version)s, %(state)s, %(live_identity)s, %(due_at)s, %(body)s,"
            " %(policy_label)s, %(has_holds)s, %(has_failed_steps)s)"
            " ON CONFLICT (account_id) DO NOTHING"
        )
        update: LiteralString = (
            "UPDATE {schema}.accounts SET version = %(version)s, state = %(state)s,"
            " live_identity = %(live_identity)s, due_at = %(due_at)s, body = %(body)s,"
            " policy_label = %(policy_label)s,"
            " has_holds = %(has_holds)s, has_failed_steps = %(has_failed_steps)s"
        )
        where: LiteralString = " WHERE account_id = %(account_id)s AND version = %(expected_version)s"
        # A user command's write leaves the claim as it is.
        self.update_account = self.format(update + where)
        # A runner's write takes or renews its claim; refused while another owner's is live.
        self.update_account_taking_claim = self.format(
            update
            + ", claim_owner = %(claim_owner)s, claim_until = %(claim_until)s"
            + where
            + " AND (claim_owner IS NULL OR claim_owner = %(claim_owner)s OR claim_until <= %(now)s)"
        )
        # The last write of a runner drops its own claim, never another owner's.
        self.update_account_releasing_claim = self.format(
            update
            + ", claim_owner = CASE WHEN claim_owner = %(release)s THEN NULL ELSE claim_owner END"
            + ", claim_until = CASE WHEN claim_owner = %(release)s THEN NULL ELSE claim_until END"
            + where
        )
        self.updates = (
            self.update_account,
            self.update_account_taking_claim,
            self.update_account_releasing_claim,
        )
        # save_many: the same statements, telling which rows they wrote
        self.returning = tuple(sql.Composed([u, sql.SQL(" RETURNING account_id")]) for u in self.updates)
        self.accounts_among = self.format(
            "SELECT account_id FROM {schema}.accounts WHERE account_id = ANY(%s)"
        )
        self.account_exists = self.format("SELECT 1 FROM {schema}.accounts WHERE account_id = %s")
        self.select_account = self.format("SELECT body FROM {schema}.accounts WHERE account_id = %s")
        self.insert_event = self.format(
            "INSERT INTO {schema}.events (account_id, seq, at, action, body) VALUES (%s, %s, %s, %s, %s)"
        )
        # One statement: no rows means no such account; one row with a NULL body, no events.
        self.select_history = self.format(
            "SELECT e.body FROM {schema}.accounts AS a"
            " LEFT JOIN {schema}.events AS e ON e.account_id = a.account_id"
            " WHERE a.account_id = %s ORDER BY e.seq"
        )
        # Rows another sweeper is claiming are skipped, not waited for; a row claimed and
        # committed meanwhile is re-checked against the WHERE clause when it is locked.
        self.claim_due = self.format(
            "UPDATE {schema}.accounts SET claim_owner = %(owner)s, claim_until = %(until)s"
            " WHERE account_id IN ("
            "  SELECT account_id FROM {schema}.accounts"
            "  WHERE due_at <= %(now)s AND (claim_until IS NULL OR claim_until <= %(now)s)"
            "  ORDER BY due_at, account_id"
            "  LIMIT %(limit)s"
            "  FOR UPDATE SKIP LOCKED)"
            " RETURNING due_at, account_id, body"
        )
        self.release = self.format(
            "UPDATE {schema}.accounts SET claim_owner = NULL, claim_until = NULL"
            " WHERE account_id = %s AND claim_owner = %s"
        )
        self.account_ids = self.format("SELECT account_id FROM {schema}.accounts ORDER BY account_id")
        self.update_identifier = self.format(
            "UPDATE {schema}.identities SET free_at = %s WHERE kind = %s AND value = %s AND account_id = %s"
        )
        self.free_identifier = self.format(
            "DELETE FROM {schema}.identities WHERE kind = %s AND value = %s AND free_at <= %s"
        )
        self.identifiers_of = self.format("SELECT kind, value FROM {schema}.identities WHERE account_id = %s")
        self.delete_identifier = self.format("DELETE FROM {schema}.identities WHERE kind = %s AND value = %s")
        self.identity_holder = self.format(
            "SELECT 1 FROM {schema}.accounts WHERE live_identity = %s AND account_id <> %s"
        )
        self.identifier_holder = self.format(
            "SELECT free_at FROM {schema}.identities WHERE kind = %s AND value = %s AND account_id <> %s"
        )
        self.insert_sealed = self.format(
            "INSERT INTO {schema}.sealed_values (account_id, seq, field, salt, value)"
            " VALUES (%s, %s, %s, %s, %s)"
        )
        self.erase_sealed = self.format("DELETE FROM {schema}.sealed_values WHERE account_id = %s")
        # save_many: the same for every account of a batch, in one statement each
        self.give_up_identifiers_of_all = self.format(
            "DELETE FROM {schema}.identities WHERE account_id = ANY(%s)"
        )
        self.erase_sealed_of_all = self.format(
            "DELETE FROM {schema}.sealed_values WHERE account_id = ANY(%s)"
        )
        self.select_sealed = self.format(
            "SELECT seq, field, salt, value FROM {schema}.sealed_values WHERE account_id = %s"
        )
        self.insert_identifier = self.format(
            "INSERT INTO {schema}.identities (kind, value, account_id, free_at) VALUES (%s, %s, %s, %s)"
        )

    def format(self, statement: LiteralString) -> sql.Composed:
        return sql.SQL(statement).format(schema=self.schema)


def _first(row: tuple[str, str]) -> str:
    return row[0]


def _decode_claimed(account_id: str, body: str) -> AccountRecord | CorruptRecord:
    try:
        return record_from_json(body, account_id)
    except RecordCorrupt as exc:
        return CorruptRecord(account_id, exc.reason)


class _OutboxStatements:
    """The statements of the outbox, bound to the store's schema."""

    def __init__(self, statements: _Statements) -> None:
        self.lock = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
        self.lock_name = f"account_lifecycle.outbox:{statements.schema.as_string()}"
        self.insert = statements.format("INSERT INTO {schema}.outbox (account_id, seq) VALUES (%s, %s)")
        self.read = statements.format(
            "SELECT o.position, o.account_id, o.seq, e.body FROM {schema}.outbox AS o"
            " JOIN {schema}.events AS e ON e.account_id = o.account_id AND e.seq = o.seq"
            " WHERE o.position > %s ORDER BY o.position LIMIT %s"
        )
        self.read_sealed = statements.format(
            "SELECT s.account_id, s.seq, s.field, s.salt, s.value FROM {schema}.outbox AS o"
            " JOIN {schema}.sealed_values AS s ON s.account_id = o.account_id AND s.seq = o.seq"
            " WHERE o.position > %s AND o.position <= %s"
        )
        columns: LiteralString = (
            "listener, position, attempts, retry_at, error, claim_owner, claim_until, version"
        )
        self.create_cursor = statements.format(
            "INSERT INTO {schema}.outbox_cursors (listener, position, attempts, version)"
            " VALUES (%s, 0, 0, 0) ON CONFLICT (listener) DO NOTHING"
        )
        self.lock_cursor = statements.format(
            "SELECT " + columns + " FROM {schema}.outbox_cursors WHERE listener = %s FOR UPDATE"  # noqa: S608 (constant)
        )
        self.write_cursor = statements.format(
            "UPDATE {schema}.outbox_cursors SET position = %(position)s, attempts = %(attempts)s,"
            " retry_at = %(retry_at)s, error = %(error)s, claim_owner = %(owner)s,"
            " claim_until = %(until)s, version = %(version)s WHERE listener = %(listener)s"
        )
        self.cursors = statements.format(
            "SELECT " + columns + " FROM {schema}.outbox_cursors ORDER BY listener"  # noqa: S608 (constant)
        )
        self.insert_dead = statements.format(
            "INSERT INTO {schema}.outbox_dead (listener, position, account_id, seq, error, at)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (listener, position) DO NOTHING"
        )
        self.dead = statements.format(
            "SELECT listener, position, account_id, seq, error, at FROM {schema}.outbox_dead"
            " WHERE %(listener)s::text IS NULL OR listener = %(listener)s ORDER BY listener, position"
        )
        self.forget_dead = statements.format(
            "DELETE FROM {schema}.outbox_dead WHERE listener = %s AND position = ANY(%s)"
        )
        self.head = statements.format("SELECT COALESCE(max(position), 0) FROM {schema}.outbox")


def _cursor_params(cursor: OutboxCursor) -> dict[str, Any]:
    return {
        "listener": cursor.listener,
        "position": cursor.position,
        "attempts": cursor.attempts,
        "retry_at": cursor.retry_at,
        "error": cursor.error,
        "owner": cursor.owner,
        "until": cursor.until,
        "version": cursor.version,
    }
