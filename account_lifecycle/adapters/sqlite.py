"""The embedded default store: one SQLite file, WAL, one transaction per write.

Each thread gets its own connection; several processes may share the file. Writes
start with ``BEGIN IMMEDIATE`` so two writers never interleave, and the record update
is filtered by the version that was read: zero rows updated means someone else won.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from os import PathLike
from typing import Any, Final

import attrs

from account_lifecycle.adapters._outbox import (
    check_advance,
    check_read,
    claimed_cursor,
    may_advance,
    outbox_conflict,
)
from account_lifecycle.adapters._plain_identities import DIGEST_STEP_NOTE, digested, digested_body
from account_lifecycle.audit import AuditEvent, format_time
from account_lifecycle.clock import require_aware
from account_lifecycle.codec import (
    dumps,
    event_from_json,
    event_to_json,
    record_from_json,
    record_to_json,
    sealed_from_row,
    time_text,
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
from account_lifecycle.ports import REFUSALS
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

__all__ = ["SQLiteStore"]

#: 1: accounts, events, meta. 2: identities (identifiers by kind, held until free_at).
#: 3: identities and identifier values as keyed digests; sealed_values (personal data of events).
#: The due index is (due_at, account_id), the claim's order, so a claim reads only the rows it
#: takes, however many accounts share a due time (it was (due_at): every due row was sorted).
#: 4: the outbox: an entry per event (its position is the rowid: writers are serialized by
#: BEGIN IMMEDIATE, so positions increase in commit order), listeners' cursors, dead letters.
#: 5: accounts.policy_label, the policy version each account is pinned to (policy versions).
#: 6: accounts.has_holds and has_failed_steps (``queries.flags_of``), with partial indexes on
#: account_id and an index on (state, account_id): operators' queries walk only what they list.
SCHEMA_VERSION: Final = 6
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS accounts (
    account_id    TEXT PRIMARY KEY,
    version       INTEGER NOT NULL,
    state         TEXT NOT NULL,
    live_identity TEXT UNIQUE,
    due_at        TEXT,
    claim_owner   TEXT,
    claim_until   TEXT,
    body          TEXT NOT NULL
);
DROP INDEX IF EXISTS accounts_due;
CREATE INDEX IF NOT EXISTS accounts_due_order ON accounts (due_at, account_id) WHERE due_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    account_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (account_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS identities (
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (account_id),
    free_at    TEXT,
    PRIMARY KEY (kind, value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS identities_account ON identities (account_id);
CREATE TABLE IF NOT EXISTS sealed_values (
    account_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    field      TEXT NOT NULL,
    salt       TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (account_id, seq, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    position   INTEGER PRIMARY KEY,
    account_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    UNIQUE (account_id, seq)
);
CREATE TABLE IF NOT EXISTS outbox_cursors (
    listener    TEXT PRIMARY KEY,
    position    INTEGER NOT NULL,
    attempts    INTEGER NOT NULL,
    retry_at    TEXT,
    error       TEXT,
    claim_owner TEXT,
    claim_until TEXT,
    version     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox_dead (
    listener   TEXT NOT NULL,
    position   INTEGER NOT NULL,
    account_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    error      TEXT NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (listener, position)
) WITHOUT ROWID;
"""
#: Schema 4's data step: the events a store written before the outbox holds get entries, in a
#: stable order (by account, then by seq: each account's events in their own order).
_OUTBOX_BACKFILL: Final = (
    "INSERT INTO outbox (account_id, seq) SELECT account_id, seq FROM events AS e"
    " WHERE NOT EXISTS (SELECT 1 FROM outbox AS o WHERE o.account_id = e.account_id AND o.seq = e.seq)"
    " ORDER BY account_id, seq"
)

#: Schema 5 (policy versions): the label (``name@version``) each account is pinned to, indexed
#: to select the accounts of one version (``account_ids_pinned``). Run after ``_SCHEMA`` when
#: the column is missing; idempotent. NULL: a row not labelled yet (its body says).
_VERSIONS_COLUMN: Final = "ALTER TABLE accounts ADD COLUMN policy_label TEXT"
_VERSIONS_INDEX: Final = (
    "CREATE INDEX IF NOT EXISTS accounts_policy_label ON accounts (policy_label, account_id)"
)

#: Schema 6 (operators' queries): whether the record has a legal hold / a failed purge step,
#: written with every body, and the indexes that walk them (and each state) in id order. The
#: columns are added after ``_SCHEMA`` when missing, then filled from the bodies (``migrate``).
_FLAG_COLUMNS: Final = (
    "ALTER TABLE accounts ADD COLUMN has_holds INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE accounts ADD COLUMN has_failed_steps INTEGER NOT NULL DEFAULT 0",
)
_FLAG_INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS accounts_held ON accounts (account_id) WHERE has_holds",
    "CREATE INDEX IF NOT EXISTS accounts_failed ON accounts (account_id) WHERE has_failed_steps",
    "CREATE INDEX IF NOT EXISTS accounts_state ON accounts (state, account_id)",
)
#: What ``migrate --sql`` prints in place of schema 6's data step.
_FLAGS_STEP_NOTE: Final = (
    "-- schema 6 also fills has_holds and has_failed_steps from each stored record, which needs the"
    " library's decoder: run account-lifecycle migrate (or open the file with SQLiteStore); it"
    " records version 6"
)
#: Which partial index walks a query's rows (``queries.query_path``), named for ``INDEXED BY``.
_PATH_INDEX: Final = {"holds": "accounts_held", "failed": "accounts_failed", "states": "accounts_state"}

_SET = (
    "UPDATE accounts SET version = ?, state = ?, live_identity = ?, due_at = ?, body = ?, policy_label = ?,"
    " has_holds = ?, has_failed_steps = ?"
)
_WHERE = " WHERE account_id = ? AND version = ?"
#: A write that leaves the claim as it is (a user command).
_SAVE: Final = _SET + _WHERE
#: A write that takes or renews the claim: refused while another owner's claim is live.
_SAVE_TAKING_CLAIM: Final = (
    _SET
    + ", claim_owner = ?, claim_until = ?"
    + _WHERE
    + " AND (claim_owner IS NULL OR claim_owner = ? OR claim_until <= ?)"
)
#: A write that drops the claim if (and only if) the named owner holds it.
_SAVE_RELEASING_CLAIM: Final = (
    _SET
    + ", claim_owner = CASE WHEN claim_owner = ? THEN NULL ELSE claim_owner END"
    + ", claim_until = CASE WHEN claim_owner = ? THEN NULL ELSE claim_until END"
    + _WHERE
)


class SQLiteStore:
    """Accounts and audit events in one SQLite database file.

    ``synchronous="FULL"`` (the default) makes every commit durable against power loss;
    ``"NORMAL"`` keeps it durable against a crash of the process only, and is faster.

    Building the store migrates the file (``migrate``); a file an earlier release wrote with
    identities in plain text needs *identity_keys* for that, once. Deleted content is
    overwritten (``PRAGMA secure_delete``), so erased values do not linger in free pages; the
    write-ahead log keeps copies of recent pages until a checkpoint (``checkpoint()``).
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        timeout: float = 30.0,
        synchronous: str = "FULL",
        identity_keys: IdentityKeys | None = None,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, got {synchronous!r}")
        self.path = str(path)
        if self.path == ":memory:" or self.path.startswith("file::memory:"):
            # each thread has its own connection, and each would see its own empty database
            raise ValueError("SQLiteStore needs a file; use MemoryStore for an in-process store")
        self.timeout = timeout
        self.synchronous = synchronous
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.migrate(identity_keys=identity_keys)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # -- connections -----------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                # Each connection is used by its own thread only; check_same_thread=False lets
                # close() shut the connections other threads opened.
                conn = self._connect()
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self.synchronous}")
                conn.execute("PRAGMA foreign_keys=ON")
                # erased rows (sealed values, given-up identifiers) are overwritten, not left in
                # free space of the file
                conn.execute("PRAGMA secure_delete=ON")
            except sqlite3.Error as exc:
                if conn is not None:
                    conn.close()
                raise StoreError(f"cannot open SQLite database {self.path!r}: {_described(exc)}") from None
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        """A new connection to the file (a subclass may open it otherwise, say read-only)."""
        return sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)

    def _forget(self, conn: sqlite3.Connection) -> None:
        """Close *conn*, whose state is unknown, so that this thread's next call opens a fresh
        one. Closing a connection rolls back whatever it had not committed."""
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)
        with suppress(sqlite3.Error):  # closing is all that is left to try
            conn.close()

    def _rollback(self, conn: sqlite3.Connection) -> None:
        """End the open transaction without writing it. SQLite rolls some failures back by itself
        (a full disk, an I/O error), so there may be none left; a ROLLBACK that fails leaves the
        connection in an unknown state, and it is closed (which rolls back) instead."""
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            self._forget(conn)

    @contextmanager
    def _write(self, what: str = "write") -> Iterator[sqlite3.Connection]:
        """One write transaction: ``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error.
        Every sqlite3 error leaves as ``StoreError``; nothing of the transaction is kept."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._rollback(conn)
            raise StoreError(
                f"SQLite database {self.path!r} is unavailable ({what}): {_described(exc)}"
            ) from None
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback(conn)
            raise StoreError(
                f"{what} in {self.path!r} failed; nothing was written: {_described(exc)}"
            ) from None
        except BaseException:
            self._rollback(conn)
            raise

    @contextmanager
    def _read(self, what: str) -> Iterator[sqlite3.Connection]:
        """A read on this thread's connection; every sqlite3 error leaves as ``StoreError``."""
        conn = self._conn()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise StoreError(f"{what} from {self.path!r} failed: {_described(exc)}") from None

    def migrate(self, *, identity_keys: IdentityKeys | None = None) -> None:
        """Create the schema if it is missing, or bring an older one up to date (every statement
        is ``IF NOT EXISTS``). Idempotent; safe to call from several processes.

        From a version before 3, identities and identifier values stored in plain text become
        keyed digests under *identity_keys*, in the same transaction; ``ConfigurationError``
        (nothing changed) if there are some and no keys were given."""
        with self._write("migrating the schema") as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            columns = {r[1] for r in conn.execute("PRAGMA table_info(accounts)").fetchall()}
            if "policy_label" not in columns:
                conn.execute(_VERSIONS_COLUMN)
                self._label_pins(conn)
            conn.execute(_VERSIONS_INDEX)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if "has_holds" not in columns:
                for statement in _FLAG_COLUMNS:
                    conn.execute(statement)
            for statement in _FLAG_INDEXES:
                conn.execute(statement)
            if row is not None and int(row[0]) < 3:
                self._digest_plain_identities(conn, identity_keys)
            if row is not None and int(row[0]) < 4:
                conn.execute(_OUTBOX_BACKFILL)
            if row is not None and int(row[0]) < 6:  # also when migrate --sql added the columns
                self._fill_flags(conn)
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path!r} has schema version {row[0]}, newer than this library's {SCHEMA_VERSION}"
                )
            elif int(row[0]) < SCHEMA_VERSION:
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    def _digest_plain_identities(self, conn: sqlite3.Connection, keys: IdentityKeys | None) -> None:
        """Schema 3's data step: every plain identity and identifier value becomes its digest
        (column, record body, identities table)."""
        where = f"SQLite database {self.path!r}"
        rows = conn.execute("SELECT account_id, live_identity, CAST(body AS BLOB) FROM accounts").fetchall()
        for account_id, live, body in rows:
            new_body = digested_body(body, keys, where)
            new_live = None if live is None else digested(keys, IDENTITY_KIND, live, where)
            if new_body is not None or new_live != live:
                conn.execute(
                    "UPDATE accounts SET live_identity = ?, body = COALESCE(?, body) WHERE account_id = ?",
                    (new_live, new_body, account_id),
                )
        for kind, value in conn.execute("SELECT kind, value FROM identities").fetchall():
            new = digested(keys, kind, value, where)
            if new != value:
                conn.execute(
                    "UPDATE identities SET value = ? WHERE kind = ? AND value = ?", (new, kind, value)
                )

    @staticmethod
    def _label_pins(conn: sqlite3.Connection) -> None:
        """Schema 5's data step: each row's ``policy_label`` from its body (a body that cannot
        be decoded is left NULL: ``account_ids_pinned`` still offers it)."""
        rows = conn.execute("SELECT account_id, CAST(body AS BLOB) FROM accounts").fetchall()
        for account_id, body in rows:
            try:
                label = record_from_json(body, account_id).policy_label
            except LifecycleError:
                continue
            conn.execute("UPDATE accounts SET policy_label = ? WHERE account_id = ?", (label, account_id))

    @staticmethod
    def _fill_flags(conn: sqlite3.Connection) -> None:
        """Schema 6's data step: each row's ``has_holds`` and ``has_failed_steps`` from its body
        (a body that cannot be decoded gets both: it is listed where operators look for trouble)."""
        rows = conn.execute("SELECT account_id, CAST(body AS BLOB) FROM accounts").fetchall()
        flags = []
        for account_id, body in rows:
            try:
                held, failed = flags_of(record_from_json(body, account_id))
            except LifecycleError:
                held, failed = UNREADABLE_FLAGS
            if held or failed:
                flags.append((int(held), int(failed), account_id))
        conn.executemany(
            "UPDATE accounts SET has_holds = ?, has_failed_steps = ? WHERE account_id = ?", flags
        )

    def account_ids_pinned(self, label: str) -> tuple[str, ...]:
        """The ids of the accounts pinned to *label* (``name@version``, or a bare name for records
        written before versions), and of rows not labelled yet, in id order (the lifecycle reads
        each record to decide)."""
        with self._read("listing the accounts of a policy version") as conn:
            rows = conn.execute(
                "SELECT account_id FROM accounts WHERE policy_label = ? OR policy_label IS NULL"
                " ORDER BY account_id",
                (label,),
            ).fetchall()
        return tuple(row[0] for row in rows)

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the file and truncate it (``wal_checkpoint(TRUNCATE)``),
        so that pages holding erased values are gone from the log too. ``StoreError`` if a
        reader keeps the log busy: call it again later."""
        with self._read("checkpointing the write-ahead log") as conn:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise StoreError(f"the write-ahead log of {self.path!r} is busy; checkpoint again later")

    def schema_version(self) -> int:
        """The schema version recorded in the file."""
        with self._read("reading the schema version") as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return 0 if row is None else int(row[0])

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- the store port --------------------------------------------------------------------

    @staticmethod
    def _columns(record: AccountRecord) -> tuple[int, str, str | None, str | None, str, str, bool, bool]:
        due = due_at(record)
        return (
            record.version,
            record.state.value,
            record.live_identity,
            None if due is None else time_text(due),
            record_to_json(record),
            record.policy_label,
            *flags_of(record),
        )

    def _append(self, conn: sqlite3.Connection, events: Sequence[AuditEvent]) -> None:
        conn.executemany(
            "INSERT INTO events (account_id, seq, body) VALUES (?, ?, ?)",
            [(e.account_id, e.seq, event_to_json(e)) for e in events],
        )
        self._outbox_append(conn, events)
        sealed = [
            (e.account_id, e.seq, field, held.salt, dumps(held.value))
            for e in events
            for field, held in e.sealed_values.items()
        ]
        if sealed:
            conn.executemany(
                "INSERT INTO sealed_values (account_id, seq, field, salt, value) VALUES (?, ?, ?, ?, ?)",
                sealed,
            )

    @staticmethod
    def _check_aliases(
        conn: sqlite3.Connection,
        record: AccountRecord,
        aliases: Mapping[str, Sequence[str]],
        now: datetime | None,
    ) -> None:
        """``AccountExists`` if another account holds an alias of the record's identity or of
        one of its identifiers; an alias whose holder freed it is given up. Runs inside the
        write transaction (``BEGIN IMMEDIATE``: no other writer in between)."""
        identity = record.live_identity
        for alias in () if identity is None else aliases.get(identity, ()):
            row = conn.execute(
                "SELECT 1 FROM accounts WHERE live_identity = ? AND account_id <> ?",
                (alias, record.account_id),
            ).fetchone()
            if row is not None:
                raise AccountExists(account_id=record.account_id, identity=identity)
        for kind, held in record.identifiers.items():
            for alias in aliases.get(held.value, ()):
                row = conn.execute(
                    "SELECT free_at FROM identities WHERE kind = ? AND value = ? AND account_id <> ?",
                    (kind, alias, record.account_id),
                ).fetchone()
                if row is None:
                    continue
                if row[0] is None or now is None or row[0] > format_time(now):
                    raise AccountExists(account_id=record.account_id, identity=held.value, kind=kind)
                conn.execute("DELETE FROM identities WHERE kind = ? AND value = ?", (kind, alias))

    @staticmethod
    def _write_identifiers(conn: sqlite3.Connection, record: AccountRecord, now: datetime | None) -> None:
        """Write the account's identifiers: update the release moment of those it holds, take
        the others (an expired holder's row is deleted first), give up those it no longer lists;
        ``AccountExists`` if one is held by another account. Runs inside the write transaction
        of the record."""
        listed = {(kind, held.value) for kind, held in record.identifiers.items()}
        for kind, value in conn.execute(
            "SELECT kind, value FROM identities WHERE account_id = ?", (record.account_id,)
        ).fetchall():
            if (kind, value) not in listed:
                conn.execute("DELETE FROM identities WHERE kind = ? AND value = ?", (kind, value))
        for kind, held in record.identifiers.items():
            free_at = None if held.free_at is None else format_time(held.free_at)
            cursor = conn.execute(
                "UPDATE identities SET free_at = ? WHERE kind = ? AND value = ? AND account_id = ?",
                (free_at, kind, held.value, record.account_id),
            )
            if cursor.rowcount == 1:
                continue
            if held.free_at is not None and (now is None or held.free_at <= now):
                continue  # given up already: nothing left to hold
            if now is not None:
                conn.execute(
                    "DELETE FROM identities WHERE kind = ? AND value = ? AND free_at <= ?",
                    (kind, held.value, format_time(now)),
                )
            try:
                conn.execute(
                    "INSERT INTO identities (kind, value, account_id, free_at) VALUES (?, ?, ?, ?)",
                    (kind, held.value, record.account_id, free_at),
                )
            except sqlite3.IntegrityError:
                raise AccountExists(account_id=record.account_id, identity=held.value, kind=kind) from None

    def _exists(self, conn: sqlite3.Connection, account_id: str) -> bool:
        return (
            conn.execute("SELECT 1 FROM accounts WHERE account_id = ?", (account_id,)).fetchone() is not None
        )

    def create(
        self,
        record: AccountRecord,
        events: Sequence[AuditEvent],
        *,
        now: datetime | None = None,
        aliases: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Insert a new account with its first events (``AccountStore.create``)."""
        version, state, identity, due, body, label, held, failed = self._columns(record)
        with self._write(f"creating {record.account_id!r}") as conn:
            if self._exists(conn, record.account_id):
                raise AccountExists(account_id=record.account_id)
            if aliases:
                self._check_aliases(conn, record, aliases, now)
            try:
                conn.execute(
                    "INSERT INTO accounts"
                    " (account_id, version, state, live_identity, due_at, body, policy_label,"
                    " has_holds, has_failed_steps) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (record.account_id, version, state, identity, due, body, label, held, failed),
                )
            except sqlite3.IntegrityError:
                raise AccountExists(account_id=record.account_id, identity=identity) from None
            if record.identifiers:
                self._write_identifiers(conn, record, now)
            self._append(conn, events)

    def get(self, account_id: str) -> AccountRecord:
        """The stored record (``AccountStore.get``); ``AccountNotFound``, ``RecordCorrupt``."""
        # The body is read as bytes: text that is not UTF-8 then fails to decode as one
        # corrupt record, instead of as an sqlite3 error that quotes it.
        with self._read(f"reading {account_id!r}") as conn:
            row = conn.execute(
                "SELECT CAST(body AS BLOB) FROM accounts WHERE account_id = ?", (account_id,)
            ).fetchone()
        if row is None:
            raise AccountNotFound(account_id=account_id)
        return record_from_json(row[0], account_id)

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
        statement, params = self._update(record, expected_version, lease, release, now)
        with self._write(f"saving {record.account_id!r}") as conn:
            self._save_in(conn, record, expected_version, statement, params, now, erase_sealed)
            self._append(conn, events)

    def save_many(self, writes: Sequence[Write], *, now: datetime) -> list[Exception | None]:
        """Every write's compare-and-set in one ``BEGIN IMMEDIATE`` ... ``COMMIT`` (see
        ``BatchStore``): one commit, and one sync with ``synchronous=FULL``, for the batch."""
        updates = [self._update(w.record, w.expected_version, w.lease, w.release, now) for w in writes]
        results: list[Exception | None] = []
        events: list[AuditEvent] = []
        # Accounts written without identifiers give up every identifier row they had, and those
        # purged erase their sealed values: one statement each for the batch, after the updates
        # (unless an account is written twice: then each write in turn, as ``save`` does).
        unlisted: list[tuple[str]] = []
        erased: list[tuple[str]] = []
        once = len({w.record.account_id for w in writes}) == len(writes)
        with self._write(f"saving {len(writes)} accounts") as conn:
            for w, (statement, params) in zip(writes, updates, strict=True):
                account_id = w.record.account_id
                if once and not w.record.identifiers:
                    try:
                        self._compare_and_set(conn, w.record, w.expected_version, statement, params)
                    except REFUSALS as exc:
                        results.append(exc)
                        continue
                    unlisted.append((account_id,))
                    if w.erase_sealed:
                        erased.append((account_id,))
                    results.append(None)
                    events.extend(w.events)
                    continue
                savepoint = bool(w.record.identifiers)  # its identifier rows may be refused
                if savepoint:
                    conn.execute("SAVEPOINT one_write")
                try:
                    self._save_in(conn, w.record, w.expected_version, statement, params, now, w.erase_sealed)
                except REFUSALS as exc:
                    if savepoint:
                        conn.execute("ROLLBACK TO one_write")
                        conn.execute("RELEASE one_write")
                    results.append(exc)
                    continue
                if savepoint:
                    conn.execute("RELEASE one_write")
                results.append(None)
                events.extend(w.events)
            if unlisted:
                conn.executemany("DELETE FROM identities WHERE account_id = ?", unlisted)
            if erased:
                conn.executemany("DELETE FROM sealed_values WHERE account_id = ?", erased)
            self._append(conn, events)
        return results

    @staticmethod
    def _update(
        record: AccountRecord,
        expected_version: int,
        lease: Lease | None,
        release: str | None,
        now: datetime | None,
    ) -> tuple[str, tuple[object, ...]]:
        """The compare-and-set statement of one save and its parameters."""
        values: tuple[object, ...] = SQLiteStore._columns(record)
        where: tuple[object, ...] = (record.account_id, expected_version)
        if lease is not None:
            statement = _SAVE_TAKING_CLAIM
            moment = time_text(require_now(now))
            values += (lease.owner, time_text(lease.until))
            where += (lease.owner, moment)
        elif release is not None:
            statement = _SAVE_RELEASING_CLAIM
            values += (release, release)
        else:
            statement = _SAVE
        return statement, values + where

    def _compare_and_set(
        self,
        conn: sqlite3.Connection,
        record: AccountRecord,
        expected_version: int,
        statement: str,
        params: tuple[object, ...],
    ) -> None:
        """The record's row update, if its version is still *expected_version*: else
        ``ConcurrentUpdate`` or ``AccountNotFound`` (``AccountExists``: its identity is taken),
        the statement undone and the transaction going on."""
        try:
            cursor = conn.execute(statement, params)
        except sqlite3.IntegrityError:  # the statement is undone; the transaction goes on
            raise AccountExists(account_id=record.account_id, identity=record.live_identity) from None
        if cursor.rowcount != 1:
            if not self._exists(conn, record.account_id):
                raise AccountNotFound(account_id=record.account_id)
            raise ConcurrentUpdate(account_id=record.account_id, expected_version=expected_version)

    def _save_in(
        self,
        conn: sqlite3.Connection,
        record: AccountRecord,
        expected_version: int,
        statement: str,
        params: tuple[object, ...],
        now: datetime | None,
        erase_sealed: bool = False,
    ) -> None:
        """One compare-and-set inside the open write transaction, without its events; with
        *erase_sealed*, the account's sealed values go in it too."""
        self._compare_and_set(conn, record, expected_version, statement, params)
        self._write_identifiers(conn, record, now)  # also gives up the rows it no longer lists
        if erase_sealed:
            conn.execute("DELETE FROM sealed_values WHERE account_id = ?", (record.account_id,))

    def history(self, account_id: str) -> tuple[AuditEvent, ...]:
        """The account's audit events in order (``AccountStore.history``)."""
        with self._read(f"reading the history of {account_id!r}") as conn:
            rows = conn.execute(
                "SELECT CAST(body AS BLOB) FROM events WHERE account_id = ? ORDER BY seq", (account_id,)
            ).fetchall()
            if not rows and not self._exists(conn, account_id):
                raise AccountNotFound(account_id=account_id)
            sealed = conn.execute(
                "SELECT seq, field, salt, CAST(value AS BLOB) FROM sealed_values WHERE account_id = ?",
                (account_id,),
            ).fetchall()
        events = tuple(event_from_json(row[0], account_id, i) for i, row in enumerate(rows, 1))
        return _with_sealed(account_id, events, sealed)

    def claim_due(self, *, now: datetime, lease: Lease, limit: int) -> list[AccountRecord | CorruptRecord]:
        """Claim up to *limit* due accounts for *lease* (``AccountStore.claim_due``)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be a whole number >= 0, got {limit!r}")
        if limit == 0:
            return []
        moment = format_time(now)
        with self._write("claiming accounts due for purge") as conn:
            rows = conn.execute(
                "SELECT account_id, CAST(body AS BLOB) FROM accounts"
                " WHERE due_at IS NOT NULL AND due_at <= ? AND (claim_until IS NULL OR claim_until <= ?)"
                " ORDER BY due_at, account_id LIMIT ?",
                (moment, moment, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE accounts SET claim_owner = ?, claim_until = ? WHERE account_id = ?",
                [(lease.owner, format_time(lease.until), row[0]) for row in rows],
            )
        return [_decode_claimed(row[0], row[1]) for row in rows]

    def release(self, account_id: str, owner: str) -> None:
        """Drop *owner*'s claim on the account, and no other owner's."""
        with self._write(f"releasing the claim on {account_id!r}") as conn:
            conn.execute(
                "UPDATE accounts SET claim_owner = NULL, claim_until = NULL"
                " WHERE account_id = ? AND claim_owner = ?",
                (account_id, owner),
            )

    # -- queries ---------------------------------------------------------------------------

    def list_accounts(
        self, query: AccountQuery, *, after: str | None, limit: int
    ) -> list[AccountRecord | CorruptRecord]:
        """Up to *limit* accounts matching *query* with ids after *after*, in id order
        (``QueryStore.list_accounts``), read in one read transaction; never writes.

        Every condition is a column test (``state``, ``due_at``, ``has_holds``,
        ``has_failed_steps``); the rows are walked in id order on the index ``query_path``
        names (the partial index of held or failed accounts, the ``(state, account_id)`` index
        once per state, or the primary key), so a page reads the rows it returns plus those the
        other conditions drop. A row that cannot be decoded is returned as a ``CorruptRecord``
        when its columns match."""
        query = check_query(query)
        after = check_after(after)
        limit = check_limit(limit)
        if limit == 0 or query.states == frozenset():
            return []
        clauses: list[str] = []
        values: list[object] = []
        if query.due_before is not None:
            clauses.append("due_at IS NOT NULL AND due_at < ?")
            values.append(format_time(query.due_before))
        if query.with_holds is not None:
            clauses.append("has_holds" if query.with_holds else "NOT has_holds")
        if query.with_failed_steps is not None:
            clauses.append("has_failed_steps" if query.with_failed_steps else "NOT has_failed_steps")
        if after is not None:
            clauses.append("account_id > ?")
            values.append(after)
        path = query_path(query)
        index = _PATH_INDEX.get(path)
        # fixed clauses and index names only; every value is a parameter
        select = "SELECT account_id, CAST(body AS BLOB) FROM accounts"
        select += f" INDEXED BY {index}" if index else ""

        def page(state_clauses: list[str], state_values: list[object]) -> list[tuple[str, bytes]]:
            where = [*state_clauses, *clauses]
            statement = select + (" WHERE " + " AND ".join(where) if where else "")
            statement += " ORDER BY account_id LIMIT ?"
            return conn.execute(statement, (*state_values, *values, limit)).fetchall()

        states = sorted(s.value for s in query.states) if query.states is not None else None
        with self._read("listing accounts") as conn:
            conn.execute("BEGIN")
            try:
                if states is None:
                    rows = page([], [])
                elif path == "states":  # the state index, once per state: each page in id order
                    rows = merge_pages((page(["state = ?"], [s]) for s in states), limit, _first)
                else:
                    rows = page([f"state IN ({', '.join('?' * len(states))})"], list(states))
            finally:
                conn.execute("COMMIT")
        return [_decode_claimed(account_id, body) for account_id, body in rows]

    def account_ids(self) -> tuple[str, ...]:
        """Every stored account id (for tests and tools)."""
        with self._read("listing accounts") as conn:
            rows = conn.execute("SELECT account_id FROM accounts ORDER BY account_id").fetchall()
        return tuple(row[0] for row in rows)

    # -- read-only views for operators (status, migrate --sql) ------------------------------

    @classmethod
    def open_read_only(cls, path: str | PathLike[str], *, timeout: float = 30.0) -> SQLiteStore:
        """The existing file *path*, opened read-only: never created, never migrated, and SQLite
        refuses every write (``StoreError``). For ``status`` and ``migrate --sql``; ``migrate()``
        on it raises ``StoreError``. ``StoreError`` if the file does not exist."""
        if not os.path.isfile(path):
            raise StoreError(f"SQLite database {str(path)!r} does not exist")
        return _ReadOnlySQLiteStore(path, timeout=timeout)

    @staticmethod
    def migration_statements(from_version: int) -> tuple[str, ...]:
        """The statements ``migrate()`` runs on a file at schema version *from_version* (0: a new
        file), in order; none when it is current. Printed by ``account-lifecycle migrate --sql``.

        From a version before 3 the last step is not SQL: identities stored in plain text become
        keyed digests, which needs the keys. The statements then create the tables and leave the
        recorded version as it was, and a closing comment says to run ``migrate`` for the rest.
        From 3, schema 4 adds the outbox and numbers the stored events; schema 5 adds the
        ``policy_label`` column and its index; rows left without a label are still offered by
        ``account_ids_pinned`` (``migrate`` fills them in). Schema 6 adds ``has_holds`` and
        ``has_failed_steps`` and their indexes; filling them from the stored records needs the
        library's decoder, so from a file with accounts (1 to 5) the statements leave the
        recorded version as it was and a closing comment says to run ``migrate``."""
        if from_version >= SCHEMA_VERSION:
            return ()
        flags = [*_FLAG_COLUMNS, *_FLAG_INDEXES]
        if from_version == 5:
            return (*flags, _FLAGS_STEP_NOTE)
        if from_version == 4:  # schema 5: the column and its index (labels: see migrate)
            return (_VERSIONS_COLUMN, _VERSIONS_INDEX, *flags, _FLAGS_STEP_NOTE)
        statements = [" ".join(s.split()) for s in _SCHEMA.split(";") if s.strip()]
        if from_version == 0 or from_version >= 3:  # before 3, migrate() adds them with the digests
            statements += [_VERSIONS_COLUMN, _VERSIONS_INDEX, *flags]
        if from_version == 0:
            statements.append(f"INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}')")  # noqa: S608 (an int)
        elif from_version < 3:
            statements.append(DIGEST_STEP_NOTE)
        else:
            statements += [_OUTBOX_BACKFILL, _FLAGS_STEP_NOTE]
        return tuple(statements)

    def status(self, *, now: datetime) -> StoreStatus:
        """A snapshot of the purge work at *now* (backlog, oldest due, failed steps, live claims,
        schema version), read in one read transaction that writes nothing and never migrates.
        See ``account_lifecycle.health.StoreStatus``."""
        now = require_aware(now)
        with self._read("reading the status") as conn:
            conn.execute("BEGIN")
            try:
                has_meta = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
                ).fetchone()
                version_row = (
                    conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                    if has_meta
                    else None
                )
                rows = (
                    conn.execute(
                        "SELECT account_id, due_at, claim_owner, claim_until, CAST(body AS BLOB)"
                        " FROM accounts WHERE due_at IS NOT NULL OR claim_owner IS NOT NULL"
                        " OR state IN ('cancelled', 'restorable')"
                    ).fetchall()
                    if has_meta
                    else []
                )
            finally:
                conn.execute("COMMIT")
        return summarize(
            (
                StatusRow(row[0], _moment(row[1]), row[2], _moment(row[3]), _decode_claimed(row[0], row[4]))
                for row in rows
            ),
            now=now,
            schema_version=0 if version_row is None else int(version_row[0]),
            library_schema_version=SCHEMA_VERSION,
        )

    # -- the outbox --------------------------------------------------------------------------

    def _outbox_append(self, conn: sqlite3.Connection, events: Sequence[AuditEvent]) -> None:
        """The outbox entries of *events*, in the write's transaction: positions are rowids,
        numbered under the write lock (``BEGIN IMMEDIATE``), so they increase in commit order."""
        conn.executemany(
            "INSERT INTO outbox (account_id, seq) VALUES (?, ?)", [(e.account_id, e.seq) for e in events]
        )

    def outbox_read(self, *, after: int, limit: int) -> list[OutboxEntry]:
        """Up to *limit* entries after position *after*, in order (``OutboxStore.outbox_read``)."""
        after, limit = check_read(after, limit)
        if limit == 0:
            return []
        with self._read("reading the outbox") as conn:
            conn.execute("BEGIN")  # one snapshot for the entries and their sealed values
            try:
                rows = conn.execute(
                    "SELECT o.position, o.account_id, o.seq, CAST(e.body AS BLOB) FROM outbox AS o"
                    " JOIN events AS e ON e.account_id = o.account_id AND e.seq = o.seq"
                    " WHERE o.position > ? ORDER BY o.position LIMIT ?",
                    (after, limit),
                ).fetchall()
                sealed = (
                    conn.execute(
                        "SELECT s.account_id, s.seq, s.field, s.salt, CAST(s.value AS BLOB)"
                        " FROM outbox AS o JOIN sealed_values AS s"
                        " ON s.account_id = o.account_id AND s.seq = o.seq"
                        " WHERE o.position > ? AND o.position <= ?",
                        (after, rows[-1][0]),
                    ).fetchall()
                    if rows
                    else []
                )
            finally:
                conn.execute("COMMIT")
        return _entries(rows, sealed)

    def outbox_claim(self, listener: str, *, lease: Lease, now: datetime) -> OutboxCursor | None:
        """Claim *listener*'s cursor for ``lease.owner`` (``OutboxStore.outbox_claim``)."""
        now = require_aware(now)
        with self._write("claiming an outbox cursor") as conn:
            row = conn.execute(
                f"SELECT {_CURSOR_COLUMNS} FROM outbox_cursors WHERE listener = ?",  # noqa: S608 (constant)
                (listener,),
            ).fetchone()
            cursor = OutboxCursor(listener) if row is None else _cursor(row)
            claimed = claimed_cursor(cursor, lease, now)
            if claimed is not None:
                conn.execute(
                    f"INSERT OR REPLACE INTO outbox_cursors ({_CURSOR_COLUMNS})"  # noqa: S608 (constant)
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    _cursor_row(claimed),
                )
        return claimed

    def outbox_advance(
        self, cursor: OutboxCursor, *, expected_version: int, dead: Sequence[DeadLetter] = ()
    ) -> None:
        """Compare-and-set *cursor* and add *dead* letters (``OutboxStore.outbox_advance``)."""
        check_advance(cursor, expected_version, dead)
        with self._write("advancing an outbox cursor") as conn:
            row = conn.execute(
                "SELECT version, claim_owner FROM outbox_cursors WHERE listener = ?", (cursor.listener,)
            ).fetchone()
            if row is None or not may_advance(row[0], row[1], cursor, expected_version):
                raise outbox_conflict(cursor.listener, expected_version)
            conn.execute(
                f"INSERT OR REPLACE INTO outbox_cursors ({_CURSOR_COLUMNS})"  # noqa: S608 (constant)
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                _cursor_row(cursor),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO outbox_dead (listener, position, account_id, seq, error, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(d.listener, d.position, d.account_id, d.seq, d.error, format_time(d.at)) for d in dead],
            )

    def outbox_cursors(self) -> tuple[OutboxCursor, ...]:
        """Every listener's cursor, by listener name."""
        with self._read("reading the outbox cursors") as conn:
            rows = conn.execute(
                f"SELECT {_CURSOR_COLUMNS} FROM outbox_cursors ORDER BY listener"  # noqa: S608 (constant)
            ).fetchall()
        return tuple(_cursor(row) for row in rows)

    def outbox_dead_letters(self, listener: str | None = None) -> tuple[DeadLetter, ...]:
        """The dead letters of *listener* (or all), by listener then position."""
        with self._read("reading the outbox dead letters") as conn:
            rows = conn.execute(
                "SELECT listener, position, account_id, seq, error, at FROM outbox_dead"
                " WHERE ? IS NULL OR listener = ? ORDER BY listener, position",
                (listener, listener),
            ).fetchall()
        return tuple(DeadLetter(r[0], r[1], r[2], r[3], r[4], datetime.fromisoformat(r[5])) for r in rows)

    def outbox_forget_dead(self, listener: str, positions: Sequence[int]) -> int:
        """Remove those dead letters of *listener*; how many were removed."""
        with self._write("removing outbox dead letters") as conn:
            removed = 0
            for position in sorted(set(positions)):
                removed += conn.execute(
                    "DELETE FROM outbox_dead WHERE listener = ? AND position = ?", (listener, position)
                ).rowcount
        return removed

    def outbox_head(self) -> int:
        """The highest position written so far (0 if none)."""
        with self._read("reading the outbox head") as conn:
            row = conn.execute("SELECT COALESCE(MAX(position), 0) FROM outbox").fetchone()
        return int(row[0])


class _ReadOnlySQLiteStore(SQLiteStore):
    """``SQLiteStore.open_read_only``: connections opened with ``mode=ro``; nothing is migrated."""

    def __init__(self, path: str | PathLike[str], *, timeout: float) -> None:
        self._opening = True  # SQLiteStore.__init__ calls migrate(): a no-op while opening
        super().__init__(path, timeout=timeout)
        self._opening = False

    def __repr__(self) -> str:
        return f"SQLiteStore.open_read_only({self.path!r})"

    def _connect(self) -> sqlite3.Connection:
        uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=ro"
        return sqlite3.connect(
            uri, uri=True, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )

    def migrate(self, *, identity_keys: IdentityKeys | None = None) -> None:
        """Refused: this store was opened read-only."""
        if self._opening:
            return
        raise StoreError(f"{self.path!r} was opened read-only: it is not migrated")

    def schema_version(self) -> int:
        """The schema version recorded in the file; 0 for a file without the library's tables."""
        with self._read("reading the schema version") as conn:
            if not conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
            ).fetchone():
                return 0
        return super().schema_version()


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _described(exc: sqlite3.Error) -> str:
    """What failed, for a message: SQLite's text, cut before any stored text the sqlite3 module
    quotes (a column that is not UTF-8)."""
    return str(exc).split(" with text ", 1)[0]


def _with_sealed(
    account_id: str, events: tuple[AuditEvent, ...], rows: Sequence[tuple[int, str, str, bytes]]
) -> tuple[AuditEvent, ...]:
    """*events* with the sealed values of their side rows ``(seq, field, salt, value)``."""
    if not rows:
        return events
    by_seq: dict[int, dict[str, SealedValue]] = {}
    for seq, field, salt, value in rows:
        by_seq.setdefault(seq, {})[field] = sealed_from_row(account_id, seq, salt, value)
    return tuple(attrs.evolve(e, sealed_values=by_seq[e.seq]) if e.seq in by_seq else e for e in events)


def _first(row: tuple[str, bytes]) -> str:
    return row[0]


def _decode_claimed(account_id: str, body: bytes) -> AccountRecord | CorruptRecord:
    try:
        return record_from_json(body, account_id)
    except RecordCorrupt as exc:
        return CorruptRecord(account_id, exc.reason)


_CURSOR_COLUMNS: Final = "listener, position, attempts, retry_at, error, claim_owner, claim_until, version"


def _cursor(row: tuple[Any, ...]) -> OutboxCursor:
    listener, position, attempts, retry_at, error, owner, until, version = row
    return OutboxCursor(
        listener, position, attempts, _moment(retry_at), error, owner, _moment(until), version
    )


def _cursor_row(cursor: OutboxCursor) -> tuple[object, ...]:
    return (
        cursor.listener,
        cursor.position,
        cursor.attempts,
        None if cursor.retry_at is None else format_time(cursor.retry_at),
        cursor.error,
        cursor.owner,
        None if cursor.until is None else format_time(cursor.until),
        cursor.version,
    )


def _entries(
    rows: Sequence[tuple[int, str, int, bytes]], sealed: Sequence[tuple[str, int, str, str, bytes]]
) -> list[OutboxEntry]:
    """Outbox entries from rows ``(position, account_id, seq, body)`` and the sealed values
    ``(account_id, seq, field, salt, value)`` of their events."""
    by_event: dict[tuple[str, int], dict[str, SealedValue]] = {}
    for account_id, seq, field, salt, value in sealed:
        by_event.setdefault((account_id, seq), {})[field] = sealed_from_row(account_id, seq, salt, value)
    out = []
    for position, account_id, seq, body in rows:
        event = event_from_json(body, account_id, seq)
        held = by_event.get((account_id, seq))
        out.append(OutboxEntry(position, attrs.evolve(event, sealed_values=held) if held else event))
    return out
