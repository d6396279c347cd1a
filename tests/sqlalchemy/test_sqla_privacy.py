"""Issue 15's check on SQLAlchemyStore: after a purge the raw identity, identifiers, survey
answers and hold reason appear nowhere in the SQLite file (with the documented pragmas:
secure_delete, WAL checkpointed) nor in any row of the PostgreSQL schema; while the account
lived, only the sealed values (answers, reason) were there, in their own table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy_support import pg_url

from account_lifecycle import ManualClock
from account_lifecycle.adapters.sqlalchemy import PREFIX, SQLAlchemyStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import test_no_plain_personal_data as plain


def test_after_purge_no_plain_value_is_left_in_the_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "accounts.db"
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def pragmas(dbapi_connection: Any, record: Any) -> None:  # as docs/sqlalchemy.md shows
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA secure_delete=ON")

    def checkpoint() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    store = SQLAlchemyStore(engine)
    store.migrate()
    clock = ManualClock(plain.START)
    lc = plain.lifecycle(store, clock)
    seen_before: list[str] = []

    def before_purge() -> None:
        checkpoint()
        seen_before.extend(plain.found(plain.file_bytes(path), plain.PLAIN))

    try:
        plain.live_then_purged(lc, clock, before_purge)
        checkpoint()
        left = plain.found(plain.file_bytes(path), plain.PLAIN)
        plain.quarantine_still_holds(lc, clock)
    finally:
        engine.dispose()

    assert seen_before == [plain.ANSWER, plain.REASON]
    assert left == []


@pytest.mark.postgres
def test_after_purge_no_plain_value_is_left_in_any_postgres_row() -> None:
    import pg

    with pg.throwaway_schema() as (dsn, schema):
        engine = create_engine(pg_url(dsn))
        store = SQLAlchemyStore(engine, schema=schema)
        store.migrate()

        def every_row() -> bytes:
            rows: list[str] = []
            with engine.connect() as conn:
                tables = [t.name for t in store.metadata.sorted_tables]
                assert f"{PREFIX}sealed_values" in tables
                for table in tables:
                    rows += [
                        r[0] for r in conn.execute(text(f'SELECT t::text FROM "{schema}"."{table}" AS t'))
                    ]
            return "\n".join(rows).encode()

        clock = ManualClock(plain.START)
        lc = plain.lifecycle(store, clock)
        seen_before: list[str] = []
        try:
            plain.live_then_purged(
                lc, clock, lambda: seen_before.extend(plain.found(every_row(), plain.PLAIN))
            )
            left = plain.found(every_row(), plain.PLAIN)
            plain.quarantine_still_holds(lc, clock)
        finally:
            engine.dispose()

    assert seen_before == [plain.ANSWER, plain.REASON]
    assert left == []
