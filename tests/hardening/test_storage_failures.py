"""Storage failures surface as ``StoreError`` on every store path, and leave the stored state
exactly as it was before the call: a full disk and a read-only file for SQLite, a statement
the engine aborts (and a ``ROLLBACK`` that fails too), a row that is not UTF-8, and a
PostgreSQL connection terminated by the server in the middle of a transaction.

Every failure is made deterministic inside the store: a subclass opens its connections with
a page limit, read-only, or with a hook that aborts the statement naming a marker; for
PostgreSQL a cursor kills its own backend (``pg_terminate_backend`` from another connection,
waiting until it is gone) just before it runs the statement naming the marker. The stored
state is compared table by table, read with a separate connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pg
import pytest

from account_lifecycle import ConcurrentUpdate, SQLiteStore, StoreError
from account_lifecycle.errors import AccountExists, HistoryTampered, RecordCorrupt
from account_lifecycle.ports import CorruptRecord, Lease
from account_lifecycle.testing.fakes import fake_identity_keys
from account_lifecycle.testing.store_contract import NOW, advance, due_record, new_account

LEASE = timedelta(minutes=5)
SECRET = "ann.secret@example.com"
#: Enough members that the record needs pages of its own (overflow pages) wherever it goes.
BIG = frozenset(f"member-{n:05d}" for n in range(3_000))


# -- SQLite ---------------------------------------------------------------------------------


class FaultySQLiteStore(SQLiteStore):
    """A ``SQLiteStore`` whose connections can be opened with a page limit (the file is full
    once it has ``max_pages`` pages), read-only (``mode=ro``), or with a hook that makes the
    engine abort (``SQLITE_INTERRUPT``) any statement containing one of ``abort_on``."""

    max_pages: int | None = None
    read_only = False
    abort_on: tuple[str, ...] = ()

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            conn = sqlite3.connect(
                f"file:{self.path}?mode=ro",
                uri=True,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        else:
            conn = super()._connect()
        if self.max_pages is not None:
            conn.execute(f"PRAGMA max_page_count = {self.max_pages}")
        running = [""]
        conn.set_trace_callback(lambda statement: running.__setitem__(0, statement))
        conn.set_progress_handler(lambda: int(any(m in running[0] for m in self.abort_on)), 1)
        return conn

    def reopen(self, **faults: Any) -> None:
        """Close every connection; the next ones are opened with *faults*."""
        self.close()
        for name, value in faults.items():
            setattr(self, name, value)


def sqlite_state(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read with a connection of its own."""
    with closing(sqlite3.connect(path)) as conn:
        tables = [
            row[0]
            for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        ]
        return {table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall() for table in tables}


def seeded(path: Path) -> FaultySQLiteStore:
    """A store holding an active account with two events, a due account claimed by
    ``sweeper-1``, and one more due account nobody claimed."""
    store = FaultySQLiteStore(path)
    store.create(*new_account("acc-1", actions=("open", "welcome"), identity="ann@example.com"))
    store.create(due_record("due-1", NOW - timedelta(hours=2)), ())
    store.create(due_record("due-2", NOW - timedelta(hours=1)), ())
    [claimed] = store.claim_due(now=NOW, lease=Lease("sweeper-1", NOW + LEASE), limit=1)
    assert claimed.account_id == "due-1"
    return store


def _create(store: Any) -> None:
    store.create(*new_account("acc-new", actions=("open", "welcome"), members=BIG))


def _save_with_events(store: Any) -> None:
    record = store.get("acc-1")
    following, events = advance(record, members=BIG, actions=("change", "note"))
    store.save(following, expected_version=record.version, events=events)


def _save_with_lease(store: Any) -> None:
    record = store.get("due-2")
    following, events = advance(record, members=BIG)
    store.save(
        following,
        expected_version=record.version,
        events=events,
        lease=Lease("sweeper-2", NOW + LEASE),
        now=NOW,
    )


def _save_releasing(store: Any) -> None:
    record = store.get("due-1")
    following, events = advance(record, members=BIG)
    store.save(following, expected_version=record.version, events=events, release="sweeper-1")


def _claim_due(store: Any) -> None:
    # A long owner name: each claimed row grows by a page or more, so a full file refuses it.
    owner = "sweeper-2/" + "x" * 5_000
    store.claim_due(now=NOW + 2 * LEASE, lease=Lease(owner, NOW + 3 * LEASE), limit=10)


def _release(store: Any) -> None:
    store.release("due-1", "sweeper-1")


def _migrate(store: Any) -> None:
    store.migrate()


WRITES: dict[str, Callable[[Any], None]] = {
    "create": _create,
    "save": _save_with_events,
    "save-lease": _save_with_lease,
    "save-release": _save_releasing,
    "claim_due": _claim_due,
    "release": _release,
}


def _assert_store_error(info: pytest.ExceptionInfo[StoreError], *secrets: str) -> None:
    assert type(info.value) is StoreError
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    for secret in secrets:
        assert secret not in str(info.value)


@pytest.mark.parametrize("path_name", sorted(set(WRITES) - {"release"}))
def test_sqlite_disk_full_is_a_store_error_and_writes_nothing(tmp_path: Path, path_name: str) -> None:
    """With the file full (no page may be added), each write that needs a new page raises
    StoreError saying the disk is full, and every table holds what it held before. (SQLite rolls a
    transaction back by itself on a full disk: the store must not fail on its own ROLLBACK.)
    The same store works again once there is room."""
    path = tmp_path / "accounts.db"
    store = seeded(path)
    before = sqlite_state(path)
    with closing(sqlite3.connect(path)) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    store.reopen(max_pages=pages)

    with pytest.raises(StoreError) as info:
        WRITES[path_name](store)

    _assert_store_error(info)
    assert "database or disk is full" in str(info.value)
    assert "nothing was written" in str(info.value)
    assert sqlite_state(path) == before
    store.reopen(max_pages=None)
    WRITES[path_name](store)
    assert sqlite_state(path) != before
    store.close()


def test_sqlite_migrate_on_a_full_disk_creates_nothing(tmp_path: Path) -> None:
    """Building a store (which migrates) on a file with no room raises StoreError and leaves no
    table behind: the schema is created in one transaction."""
    path = tmp_path / "accounts.db"

    class Tiny(FaultySQLiteStore):
        max_pages = 1

    with pytest.raises(StoreError) as info:
        Tiny(path)

    _assert_store_error(info)
    assert "database or disk is full" in str(info.value)
    assert sqlite_state(path) == {}


@pytest.mark.parametrize("path_name", sorted(WRITES))
def test_sqlite_read_only_file_refuses_every_write_and_keeps_every_read(
    tmp_path: Path, path_name: str
) -> None:
    """On a database opened read-only, each write raises StoreError (SQLITE_READONLY) and
    changes nothing; get and history still read the state as it was."""
    path = tmp_path / "accounts.db"
    store = seeded(path)
    before = sqlite_state(path)
    first = store.get("acc-1")
    history = store.history("acc-1")
    store.reopen(read_only=True)

    with pytest.raises(StoreError) as info:
        WRITES[path_name](store)

    _assert_store_error(info)
    assert "attempt to write a readonly database" in str(info.value)
    assert sqlite_state(path) == before
    assert store.get("acc-1") == first
    assert store.history("acc-1") == history
    store.close()


def test_sqlite_migrate_on_a_read_only_file_of_an_older_schema_changes_nothing(tmp_path: Path) -> None:
    """migrate() that has something to write (a file at schema version 1) on a read-only file
    raises StoreError and leaves the recorded version as it was."""
    path = tmp_path / "accounts.db"
    store = seeded(path)
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    before = sqlite_state(path)
    store.reopen(read_only=True)

    with pytest.raises(StoreError) as info:
        store.migrate(identity_keys=fake_identity_keys())

    _assert_store_error(info)
    assert sqlite_state(path) == before
    assert store.schema_version() == 1
    store.close()


#: Each store path, and a statement it runs that the engine is made to abort.
ABORTED: dict[str, tuple[Callable[[Any], Any], str]] = {
    "create": (_create, "INSERT INTO events"),
    "save": (_save_with_events, "INSERT INTO events"),
    "save-identifiers": (lambda s: _save_identifiers(s), "INSERT INTO identities"),
    "get": (lambda s: s.get("acc-1"), "FROM accounts WHERE account_id"),
    "history": (lambda s: s.history("acc-1"), "FROM events"),
    "claim_due": (_claim_due, "UPDATE accounts SET claim_owner"),
    "release": (_release, "UPDATE accounts SET claim_owner"),
    "migrate": (_migrate, "CREATE INDEX IF NOT EXISTS identities_account"),
    "schema_version": (lambda s: s.schema_version(), "FROM meta"),
    "account_ids": (lambda s: s.account_ids(), "SELECT account_id FROM accounts ORDER"),
}


def _save_identifiers(store: Any) -> None:
    record = store.get("acc-1")
    following, events = advance(record, identifiers={"email": "ann@example.com"})
    store.save(following, expected_version=record.version, events=events, now=NOW)


@pytest.mark.parametrize("fail_rollback", [False, True], ids=["rollback-ok", "rollback-fails"])
@pytest.mark.parametrize("path_name", sorted(ABORTED))
def test_sqlite_an_aborted_statement_is_a_store_error_and_writes_nothing(
    tmp_path: Path, path_name: str, fail_rollback: bool
) -> None:
    """Each store path whose statement the engine aborts midway (after the statements before it
    in the transaction ran) raises StoreError, never a sqlite3 error, and leaves every table as
    it was; so does it when the ROLLBACK fails too (the connection is then closed, which rolls
    back, and the next call opens a fresh one)."""
    path = tmp_path / "accounts.db"
    store = seeded(path)
    before = sqlite_state(path)
    call, marker = ABORTED[path_name]
    store.reopen(abort_on=(marker, "ROLLBACK") if fail_rollback else (marker,))

    with pytest.raises(StoreError) as info:
        call(store)

    _assert_store_error(info)
    assert "interrupted" in str(info.value)
    assert sqlite_state(path) == before
    store.reopen(abort_on=())
    call(store)  # works again
    store.close()


@pytest.mark.parametrize("path_name", ["create-taken", "save-stale", "lease-refused"])
def test_sqlite_a_failing_rollback_never_hides_the_refusal(tmp_path: Path, path_name: str) -> None:
    """A write refused inside its transaction (a taken id, a stale version, another owner's
    live claim) raises its own error even when the ROLLBACK after it fails, and writes nothing;
    the store keeps working."""
    path = tmp_path / "accounts.db"
    store = seeded(path)
    before = sqlite_state(path)
    record = store.get("acc-1")
    store.reopen(abort_on=("ROLLBACK",))

    if path_name == "create-taken":
        with pytest.raises(AccountExists):
            store.create(*new_account("acc-1"))
    elif path_name == "save-stale":
        following, events = advance(record)
        with pytest.raises(ConcurrentUpdate):
            store.save(following, expected_version=record.version + 1, events=events)
    else:
        due = store.get("due-1")
        following, events = advance(due)
        with pytest.raises(ConcurrentUpdate):
            store.save(
                following, expected_version=1, events=events, lease=Lease("sweeper-2", NOW + LEASE), now=NOW
            )

    assert sqlite_state(path) == before
    assert store.get("acc-1") == record
    store.close()


def test_sqlite_an_unreadable_file_is_a_store_error_on_every_path(tmp_path: Path) -> None:
    """A file that is no database at all: opening it, and each read and write, raise StoreError."""
    path = tmp_path / "accounts.db"
    store = seeded(path)
    store.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"this is not a database, only " + SECRET.encode() + b" " * 4096)

    calls: dict[str, Callable[[], Any]] = {
        "get": lambda: store.get("acc-1"),
        "history": lambda: store.history("acc-1"),
        "create": lambda: _create(store),
        "claim_due": lambda: _claim_due(store),
        "release": lambda: _release(store),
        "migrate": store.migrate,
        "account_ids": store.account_ids,
        "open": lambda: SQLiteStore(path),
    }
    for name, call in calls.items():
        with pytest.raises(StoreError) as info:
            call()
        _assert_store_error(info, SECRET)
        assert "file is not a database" in str(info.value), name


def test_sqlite_a_body_that_is_not_utf8_is_one_corrupt_account(tmp_path: Path) -> None:
    """A record or event whose stored text is not UTF-8 is that account's corruption, like any
    other undecodable row: get raises RecordCorrupt, history HistoryTampered, claim_due returns
    it as a CorruptRecord among the others; no message quotes the bytes."""
    path = tmp_path / "accounts.db"
    store = seeded(path)
    store.create(*new_account("acc-2", actions=("open", "welcome")))
    garbage = b"\xff\xfe" + SECRET.encode()
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("UPDATE accounts SET body = CAST(? AS TEXT) WHERE account_id = 'due-2'", (garbage,))
        conn.execute("UPDATE accounts SET body = CAST(? AS TEXT) WHERE account_id = 'acc-1'", (garbage,))
        conn.execute(
            "UPDATE events SET body = CAST(? AS TEXT) WHERE account_id = 'acc-2' AND seq = 2", (garbage,)
        )

    with pytest.raises(RecordCorrupt) as corrupt:
        store.get("acc-1")
    with pytest.raises(HistoryTampered) as tampered:
        store.history("acc-2")
    claimed = store.claim_due(now=NOW + 2 * LEASE, lease=Lease("sweeper-2", NOW + 3 * LEASE), limit=10)

    assert corrupt.value.account_id == "acc-1"
    assert tampered.value.seq == 2
    assert [(type(c).__name__, c.account_id) for c in claimed] == [
        ("AccountRecord", "due-1"),
        ("CorruptRecord", "due-2"),
    ]
    assert isinstance(claimed[1], CorruptRecord)
    for text in (str(corrupt.value), str(tampered.value), claimed[1].reason):
        assert SECRET not in text
        assert "\ufffd" not in text
    store.close()


# -- PostgreSQL -----------------------------------------------------------------------------

PASSWORD = "s3cret-pg-password"


def _with_password(target: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(target)
    params["password"] = PASSWORD  # the test server trusts local connections: it is ignored
    return make_conninfo(**params)


def _cursor_class(kill_on: list[str], target: str) -> type[Any]:
    import psycopg

    class Killing(psycopg.Cursor[Any]):
        """Before running a statement naming the armed marker, terminates its own backend from
        another connection and waits until the server reports it gone."""

        def _maybe_kill(self, query: Any) -> None:
            text = query if isinstance(query, str) else query.as_string(self.connection)
            if kill_on and kill_on[0] in text:
                kill_on.clear()
                pid = self.connection.info.backend_pid
                with psycopg.connect(target, autocommit=True) as killer:
                    row = killer.execute("SELECT pg_terminate_backend(%s, 30000)", (pid,)).fetchone()
                assert row == (True,)

        def execute(self, query: Any, params: Any = None, **options: Any) -> Any:
            self._maybe_kill(query)
            return super().execute(query, params, **options)

        def executemany(self, query: Any, params_seq: Any, **options: Any) -> None:
            self._maybe_kill(query)
            super().executemany(query, params_seq, **options)

    return Killing


def pg_state(target: str, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    import psycopg
    from psycopg import sql

    with psycopg.connect(target, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1",
                (schema,),
            ).fetchall()
        ]
        return {
            table: conn.execute(
                sql.SQL("SELECT * FROM {}.{} ORDER BY 1, 2").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
            ).fetchall()
            for table in tables
            if table != "schema_migrations"
        } | {
            "schema_migrations": conn.execute(
                sql.SQL("SELECT version, description FROM {}.schema_migrations ORDER BY 1").format(
                    sql.Identifier(schema)
                )
            ).fetchall()
            if "schema_migrations" in tables
            else []
        }


@attrs.define
class KillingPostgres:
    store: Any
    kill_on: list[str]
    pool: Any

    def arm(self, marker: str) -> None:
        self.kill_on[:] = [marker]


@pytest.fixture
def killing_pg(pg_schema: tuple[str, str]) -> Iterator[KillingPostgres]:
    from psycopg_pool import ConnectionPool

    from account_lifecycle.adapters.postgres import PostgresStore

    target, schema = pg_schema
    kill_on: list[str] = []
    pool: ConnectionPool[Any] = ConnectionPool(
        _with_password(target),
        min_size=1,
        max_size=2,
        kwargs={"autocommit": True, "cursor_factory": _cursor_class(kill_on, target)},
        check=ConnectionPool.check_connection,
        open=True,
    )
    try:
        yield KillingPostgres(PostgresStore(pool, schema=schema, timeout=30), kill_on, pool)
    finally:
        pool.close()


PG_PATHS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "create": (_create, ".events (account_id"),
    "save": (_save_with_events, ".events (account_id"),
    "save-identifiers": (_save_identifiers, ".identities (kind"),
    "save-lease": (_save_with_lease, "claim_until <="),
    "get": (lambda s: s.get("acc-1"), "SELECT body FROM"),
    "history": (lambda s: s.history("acc-1"), "SELECT e.body"),
    "claim_due": (_claim_due, "FOR UPDATE SKIP LOCKED"),
    "release": (_release, "SET claim_owner = NULL"),
    "schema_version": (lambda s: s.schema_version(), "to_regclass"),
    "account_ids": (lambda s: s.account_ids(), "SELECT account_id FROM"),
}


@pytest.mark.postgres
@pytest.mark.parametrize("path_name", sorted(PG_PATHS))
def test_postgres_a_lost_connection_is_a_store_error_and_writes_nothing(
    killing_pg: KillingPostgres, pg_schema: tuple[str, str], path_name: str
) -> None:
    """The server terminates the store's connection in the middle of each path's transaction
    (after the statements before the marked one ran): StoreError saying the server is
    unavailable, no password in the message, every table as it was; the next call gets a fresh
    connection from the pool and works."""
    target, schema = pg_schema
    store = killing_pg.store
    store.migrate()
    store.create(*new_account("acc-1", actions=("open", "welcome"), identity="ann@example.com"))
    store.create(due_record("due-1", NOW - timedelta(hours=2)), ())
    store.create(due_record("due-2", NOW - timedelta(hours=1)), ())
    store.claim_due(now=NOW, lease=Lease("sweeper-1", NOW + LEASE), limit=1)
    before = pg_state(target, schema)
    call, marker = PG_PATHS[path_name]
    killing_pg.arm(marker)

    with pytest.raises(StoreError) as info:
        call(store)

    assert killing_pg.kill_on == []  # the marked statement was reached
    _assert_store_error(info, PASSWORD)
    assert "unavailable" in str(info.value)
    assert pg_state(target, schema) == before
    call(store)  # a fresh connection: works again


@pytest.mark.postgres
def test_postgres_a_lost_connection_during_migrate_leaves_no_schema(
    killing_pg: KillingPostgres, pg_schema: tuple[str, str]
) -> None:
    """The connection lost in the middle of migrate() (migration 1 done, migration 2 running):
    StoreError, and nothing of the schema exists; migrate() then applies both."""
    target, schema = pg_schema
    killing_pg.arm("CREATE INDEX identities_account_idx")

    with pytest.raises(StoreError) as info:
        killing_pg.store.migrate()

    _assert_store_error(info, PASSWORD)
    assert pg_state(target, schema) == {"schema_migrations": []}
    assert killing_pg.store.schema_version() == 0
    assert killing_pg.store.migrate() == (1, 2, 3, 4, 5, 6)


@pytest.mark.postgres
def test_postgres_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    """A server that refuses connections: StoreError naming host and port, never the password."""
    from account_lifecycle.adapters.postgres import PostgresStore

    pg.require_server()
    store = PostgresStore(f"postgresql://app:{PASSWORD}@127.0.0.1:1/accounts", timeout=1, max_connections=1)
    try:
        for call in (store.migrate, lambda: store.get("acc-1"), store.schema_version):
            with pytest.raises(StoreError) as info:
                call()
            _assert_store_error(info, PASSWORD)
            assert "127.0.0.1:1" in str(info.value)
    finally:
        store.close()
