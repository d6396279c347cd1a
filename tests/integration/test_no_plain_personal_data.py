"""Issue 15, done when: after a purge the raw identity, identifiers and survey answers appear
nowhere in the SQLite file (after a WAL checkpoint: the bytes of the .db and -wal files) nor
in any row of the PostgreSQL schema; the previous schema's data (plain identities) is migrated
to digests on SQLite and PostgreSQL, and the migrated accounts keep working."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from account_lifecycle import (
    AccountExists,
    AccountRecord,
    Actor,
    ConfigurationError,
    HeldIdentifier,
    IdentityKey,
    IdentityKeys,
    Lifecycle,
    ManualClock,
    Policy,
    SQLiteStore,
    State,
    SurveyOutcome,
)
from account_lifecycle.audit import GENESIS, chain_event
from account_lifecycle.testing.fakes import fake_purgers

START = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
OWNER = Actor.user("u-1")
AGENT = Actor.support("agent")
KEYS = IdentityKeys(IdentityKey("k1", bytes(range(100, 132))))

# Each plain value is distinctive, so a match in the raw bytes can only be it.
IDENTITY = "zelda.identity@example.com"
EMAIL = "zelda.mail@example.org"
PHONE = "+15550199321"
ANSWER = "Zelda-answer: my landlord Quintus Q. at flat 12"
REASON = "hold for Zelda-case at Quintus"
PLAIN = (IDENTITY, EMAIL, PHONE, ANSWER, REASON)

POLICY = Policy.from_toml(
    'name = "private"\n'
    '[survey]\nmode = "optional"\n'
    '[recovery]\nwindow = "30 days"\n'
    '[purge]\non_hold = "wait"\n'
    'categories = [{ name = "files", at = "cancel" }, { name = "backups", at = "expiry" }]\n'
    '[identity]\nemail = "after 30 days"\nphone = "after_purge"\n'
)


def lifecycle(store: Any, clock: ManualClock) -> Lifecycle:
    return Lifecycle(
        POLICY, store=store, purgers=fake_purgers(POLICY).values(), clock=clock, identity_keys=KEYS
    )


def live_then_purged(lc: Lifecycle, clock: ManualClock, before_purge: Any) -> None:
    """Open with an identity and identifiers, answer the survey, place and release a hold,
    confirm; call *before_purge*; then let the window end and sweep."""
    lc.open("acc-1", owner="u-1", identity=IDENTITY, identifiers={"email": EMAIL, "phone": PHONE})
    lc.place_hold("acc-1", AGENT, "files", REASON)
    lc.release_hold("acc-1", AGENT, "files")
    lc.request_cancellation("acc-1", OWNER)
    lc.submit_survey("acc-1", OWNER, SurveyOutcome.CANCEL, {"why": ANSWER})
    assert lc.confirm("acc-1", OWNER).state is State.RESTORABLE
    before_purge()
    clock.advance(timedelta(days=30))
    assert lc.sweep().purged == ("acc-1",)
    lc.verify_history("acc-1")
    assert {r.field for r in lc.receipt("acc-1").redacted} == {"answers", "reason"}


def quarantine_still_holds(lc: Lifecycle, clock: ManualClock) -> None:
    """The e-mail stays quarantined for 30 days after the purge, then opens a fresh account;
    the phone and the identity are free at once."""
    purged_at = clock.now()
    lc.open("acc-2", owner="u-2", identity=IDENTITY, identifiers={"phone": PHONE})
    with pytest.raises(AccountExists):
        lc.open("acc-3", owner="u-3", identifiers={"email": EMAIL})
    clock.set(purged_at + timedelta(days=30))
    lc.open("acc-3", owner="u-3", identifiers={"email": EMAIL})


def file_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def found(data: bytes, values: tuple[str, ...]) -> list[str]:
    return [v for v in values if v.encode() in data]


# -- SQLite ------------------------------------------------------------------------------------


def test_after_purge_no_plain_value_is_left_in_the_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "accounts.db"
    store = SQLiteStore(path)
    clock = ManualClock(START)
    lc = lifecycle(store, clock)
    seen_before: list[str] = []

    def before_purge() -> None:
        store.checkpoint()
        seen_before.extend(found(file_bytes(path), PLAIN))

    try:
        live_then_purged(lc, clock, before_purge)
        store.checkpoint()
        left = found(file_bytes(path), PLAIN)
        quarantine_still_holds(lc, clock)
    finally:
        store.close()

    # while the account lived, only the sealed answers and reason were in the file
    assert seen_before == [ANSWER, REASON]
    assert left == []


# -- PostgreSQL --------------------------------------------------------------------------------


def every_row(dsn: str, schema: str) -> str:
    """Every row of every table of *schema*, as text."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
            )
        ]
        assert {"accounts", "events", "identities", "sealed_values"} <= set(tables)
        rows = []
        for table in tables:
            statement = sql.SQL("SELECT t::text FROM {}.{} AS t").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            rows += [row[0] for row in conn.execute(statement)]
    return "\n".join(rows)


@pytest.mark.postgres
def test_after_purge_no_plain_value_is_left_in_any_postgres_row(pg_schema: tuple[str, str]) -> None:
    import pg

    dsn, schema = pg_schema
    store = pg.migrated_store(dsn, schema)
    clock = ManualClock(START)
    lc = lifecycle(store, clock)
    seen_before: list[str] = []
    try:
        live_then_purged(lc, clock, lambda: seen_before.extend(found(every_row(dsn, schema).encode(), PLAIN)))
        left = found(every_row(dsn, schema).encode(), PLAIN)
        quarantine_still_holds(lc, clock)
    finally:
        store.close()

    assert seen_before == [ANSWER, REASON]
    assert left == []


# -- the previous schema's data ----------------------------------------------------------------

OLD_ACCOUNTS = {
    # a live account holding its identity and an e-mail
    "live": {"identity": IDENTITY, "identifiers": {"email": EMAIL}},
    # a purged account whose phone is quarantined until a month after its purge
    "purged": {
        "state": State.PURGED,
        "identity": "old.released@example.com",
        "identity_released_at": START,
        "identifiers": {"phone": HeldIdentifier(PHONE, free_at=START + timedelta(days=30))},
    },
}
OLD_PLAIN = (IDENTITY, EMAIL, PHONE, "old.released@example.com")


def write_old_accounts(store: Any) -> None:
    """Accounts as a release before schema 3 wrote them: identities in plain text, an ``open``
    event of version 1 each."""
    for account_id, fields in OLD_ACCOUNTS.items():
        record = AccountRecord(account_id=account_id, owner="u-1", **{"state": State.ACTIVE, **fields})
        event = chain_event(
            prev_hash=GENESIS,
            seq=1,
            account_id=account_id,
            at=START,
            actor=Actor.user("u-1"),
            action="open",
            from_state=None,
            to_state=State.ACTIVE,
            policy="private@1",
            details={"owner": "u-1", "members": []},
            version=1,
        )
        store.create(attrs.evolve(record, chain_head=event.hash, last_seq=1), (event,), now=START)


def check_migrated(store: Any) -> None:
    """The migrated accounts hold digests, their histories verify, and a lifecycle with the keys
    refuses and frees their identities as before."""
    live = store.get("live")
    assert live.identity == live.live_identity == KEYS.digest("identity", IDENTITY)
    assert live.identifiers["email"].value == KEYS.digest("email", EMAIL)
    purged = store.get("purged")
    assert purged.identity == KEYS.digest("identity", "old.released@example.com")
    assert purged.identifiers["phone"] == HeldIdentifier(
        KEYS.digest("phone", PHONE), START + timedelta(days=30)
    )
    clock = ManualClock(START)
    lc = lifecycle(store, clock)
    for account_id in OLD_ACCOUNTS:
        lc.verify_history(account_id)
    with pytest.raises(AccountExists):
        lc.open("new-1", owner="u-9", identity=IDENTITY)
    with pytest.raises(AccountExists):
        lc.open("new-2", owner="u-9", identifiers={"email": EMAIL})
    with pytest.raises(AccountExists):
        lc.open("new-3", owner="u-9", identifiers={"phone": PHONE})
    clock.set(START + timedelta(days=30))
    lc.open("new-3", owner="u-9", identifiers={"phone": PHONE})
    lc.open("new-4", owner="u-9", identity="old.released@example.com")


@pytest.fixture
def old_sqlite_file(tmp_path: Path) -> Path:
    """A file at schema version 2 holding plain identities."""
    import sqlite3
    from contextlib import closing

    path = tmp_path / "old.db"
    store = SQLiteStore(path)
    write_old_accounts(store)
    store.close()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DROP TABLE sealed_values")
        for table in ("outbox", "outbox_cursors", "outbox_dead"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    assert found(file_bytes(path), OLD_PLAIN) == list(OLD_PLAIN)
    return path


def test_a_version_2_sqlite_file_needs_the_keys_and_is_left_as_it_was_without(old_sqlite_file: Path) -> None:
    before = file_bytes(old_sqlite_file)
    with pytest.raises(ConfigurationError, match="holds identities in plain text") as caught:
        SQLiteStore(old_sqlite_file)
    assert found(str(caught.value).encode(), OLD_PLAIN) == []
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(old_sqlite_file)) as conn:
        assert conn.execute("SELECT value FROM meta").fetchone() == ("2",)
        assert conn.execute("SELECT live_identity FROM accounts WHERE account_id = 'live'").fetchone() == (
            IDENTITY,
        )
    assert found(file_bytes(old_sqlite_file), OLD_PLAIN) == found(before, OLD_PLAIN)


def test_a_version_2_sqlite_file_is_migrated_to_digests(old_sqlite_file: Path) -> None:
    store = SQLiteStore(old_sqlite_file, identity_keys=KEYS)
    try:
        assert store.schema_version() == 6
        store.checkpoint()
        assert found(file_bytes(old_sqlite_file), OLD_PLAIN) == []
        check_migrated(store)
        store.migrate(identity_keys=KEYS)  # idempotent
        assert store.get("live").identity == KEYS.digest("identity", IDENTITY)
    finally:
        store.close()


@pytest.mark.postgres
def test_a_version_2_postgres_schema_is_migrated_to_digests(pg_schema: tuple[str, str]) -> None:
    import pg
    import psycopg

    from account_lifecycle import PostgresStore

    dsn, schema = pg_schema
    store = pg.migrated_store(dsn, schema)
    write_old_accounts(store)
    store.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP TABLE "{schema}".sealed_values')
        for table in ("outbox", "outbox_cursors", "outbox_dead"):
            conn.execute(f'DROP TABLE "{schema}".{table}')
        conn.execute(f'DELETE FROM "{schema}".schema_migrations WHERE version >= 3')
        conn.execute(f'ALTER TABLE "{schema}".accounts DROP COLUMN policy_label')
    assert found(every_row_but_sealed(dsn, schema).encode(), OLD_PLAIN) == list(OLD_PLAIN)

    old = PostgresStore(dsn, schema=schema)
    try:
        with pytest.raises(ConfigurationError, match="holds identities in plain text"):
            old.migrate()
        assert old.schema_version() == 2  # nothing applied
        assert old.migrate(identity_keys=KEYS) == (3, 4, 5, 6)
        assert found(every_row(dsn, schema).encode(), OLD_PLAIN) == []
        check_migrated(old)
    finally:
        old.close()


def every_row_but_sealed(dsn: str, schema: str) -> str:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = []
        for table in ("accounts", "events", "identities"):
            statement = sql.SQL("SELECT t::text FROM {}.{} AS t").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            rows += [row[0] for row in conn.execute(statement)]
    return "\n".join(rows)
