"""A page of list_accounts is read in one transaction: SQLite's read transaction (WAL) and
PostgreSQL's REPEATABLE READ give every chunk of a scan the same snapshot, so a write committed
while a page is being filled does not show up half-way through it.

The interleaving is built, not hoped for: the scan reads two rows at a time, and the filter it
calls on each decoded record commits a write from another thread (joined, bounded) right after
the first chunk, before the next chunk is read."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from account_lifecycle import AccountQuery, AccountRecord, Hold, SQLiteStore
from account_lifecycle.adapters import sqlite as sqlite_module
from account_lifecycle.testing.store_contract import NOW, advance, new_account

HOLD = {"files": Hold(NOW, "support:ann", "case 5")}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_and_module(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, ModuleType]]:
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path / "accounts.db")
        yield store, sqlite_module
        store.close()
        return
    from account_lifecycle.adapters import postgres as postgres_module

    yield request.getfixturevalue("pg_store"), postgres_module


def _write_between_chunks(
    monkeypatch: pytest.MonkeyPatch, module: ModuleType, after: str, write: Callable[[], None]
) -> list[str]:
    """Make the scan commit *write* from another thread once it has checked the record *after*;
    returns the ids the filter saw, in order."""
    seen: list[str] = []
    real = module.unindexed_match

    def checking(query: AccountQuery, record: AccountRecord) -> bool:
        seen.append(record.account_id)
        if record.account_id == after:
            failures: list[BaseException] = []

            def run() -> None:
                try:
                    write()
                except BaseException as exc:  # reported below, in the test's thread
                    failures.append(exc)

            writer = threading.Thread(target=run)
            writer.start()
            writer.join(timeout=30)
            assert not writer.is_alive(), "the write did not finish while the page was read"
            assert failures == []
        return bool(real(query, record))

    monkeypatch.setattr(module, "unindexed_match", checking)
    return seen


def test_a_page_is_read_from_one_snapshot(
    store_and_module: tuple[Any, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Holds on acc-1, acc-3, acc-5; a page of 3 read 3 rows at a time. A write committed after
    the first chunk (acc-5's hold released, one placed on acc-6) does not change the page: it
    is the accounts with a hold when the page started. The next read sees the write."""
    store, module = store_and_module
    records = {}
    for number in range(1, 7):
        record, events = new_account(f"acc-{number}", holds=HOLD if number in (1, 3, 5) else {})
        store.create(record, events)
        records[record.account_id] = record

    def write() -> None:
        for account_id, holds in (("acc-5", {}), ("acc-6", HOLD)):
            following, events = advance(records[account_id], holds=holds)
            store.save(following, expected_version=1, events=events)

    monkeypatch.setattr(store, "_QUERY_CHUNK", 1)  # a chunk is then the page's 3 rows
    seen = _write_between_chunks(monkeypatch, module, "acc-3", write)

    page = store.list_accounts(AccountQuery(with_holds=True), after=None, limit=3)
    monkeypatch.undo()
    later = store.list_accounts(AccountQuery(with_holds=True), after=None, limit=3)

    assert seen == [f"acc-{n}" for n in range(1, 6)]  # two chunks, the write in between
    assert [r.account_id for r in page] == ["acc-1", "acc-3", "acc-5"]
    assert page[2] == records["acc-5"]
    assert [r.account_id for r in later] == ["acc-1", "acc-3", "acc-6"]
