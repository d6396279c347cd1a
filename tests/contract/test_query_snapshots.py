"""A page of list_accounts is read in one transaction: SQLite's read transaction (WAL) and
PostgreSQL's REPEATABLE READ give every statement of a page the same snapshot, so a write
committed while a page is being filled does not show up half-way through it.

The interleaving is built, not hoped for: a query on two states reads one statement per state
(``queries.query_path``: the ``(state, account_id)`` index), and the merge of their pages
commits a write from another thread (joined, bounded) once the first state's page is read,
before the second state's is."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from account_lifecycle import AccountQuery, SQLiteStore, State
from account_lifecycle.adapters import sqlite as sqlite_module
from account_lifecycle.testing.store_contract import advance, new_account


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_and_module(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, ModuleType]]:
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path / "accounts.db")
        yield store, sqlite_module
        store.close()
        return
    from account_lifecycle.adapters import postgres as postgres_module

    yield request.getfixturevalue("pg_store"), postgres_module


def _write_between_pages(
    monkeypatch: pytest.MonkeyPatch, module: ModuleType, write: Callable[[], None]
) -> list[int]:
    """Make the store's merge commit *write* from another thread once the first state's page
    is read, before the next is; returns the sizes of the pages it merged."""
    sizes: list[int] = []
    real = module.merge_pages

    def merging(pages: Iterable[Sequence[Any]], limit: int, key: Any) -> list[Any]:
        pages = iter(pages)
        first = next(pages)
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
        rest = list(pages)
        sizes.extend(len(page) for page in (first, *rest))
        return list(real([first, *rest], limit, key))

    monkeypatch.setattr(module, "merge_pages", merging)
    return sizes


def test_a_page_is_read_from_one_snapshot(
    store_and_module: tuple[Any, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    """acc-1 and acc-3 active, acc-2 and acc-4 purged; a page of both states is read active
    first. A write committed after the active page (acc-2 made active, acc-5 created purged)
    does not change the page: it is the accounts in those states when the page started (acc-2
    is not lost between the two reads, acc-5 does not appear). The next read sees the write."""
    store, module = store_and_module
    records = {}
    for number, state in ((1, State.ACTIVE), (2, State.PURGED), (3, State.ACTIVE), (4, State.PURGED)):
        record, events = new_account(f"acc-{number}", state=state)
        store.create(record, events)
        records[record.account_id] = record

    def write() -> None:
        following, events = advance(records["acc-2"], state=State.ACTIVE)
        store.save(following, expected_version=1, events=events)
        store.create(*new_account("acc-5", state=State.PURGED))

    query = AccountQuery(states=frozenset({State.ACTIVE, State.PURGED}))
    sizes = _write_between_pages(monkeypatch, module, write)

    page = store.list_accounts(query, after=None, limit=10)
    monkeypatch.undo()
    later = store.list_accounts(query, after=None, limit=10)

    assert sizes == [2, 2]  # two statements, the write in between
    assert [r.account_id for r in page] == ["acc-1", "acc-2", "acc-3", "acc-4"]
    assert page[1] == records["acc-2"]
    assert [r.account_id for r in later] == ["acc-1", "acc-2", "acc-3", "acc-4", "acc-5"]
    assert later[1].state is State.ACTIVE
