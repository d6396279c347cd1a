"""Sign-up plus open() in one AsyncSession transaction: AsyncSQLAlchemyStore.bound() writes in
the host's transaction, on aiosqlite and async psycopg. The lifecycle is synchronous, so its
commands run on the async store through the blocking facade of the tests, the host's session
being driven on the same event loop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, Table, Text, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy_support import Blocking, async_pg_store, async_sqlite_store

from account_lifecycle import AccountExists, AccountNotFound
from account_lifecycle.adapters.sqlalchemy import AsyncSQLAlchemyStore
from account_lifecycle.testing.store_contract import new_account


def host_users(schema: str | None) -> Table:
    md = MetaData(schema=schema)
    return Table("users", md, Column("id", Text, primary_key=True), Column("email", Text, unique=True))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Blocking]:
    with async_sqlite_store(tmp_path / "host.db") if request.param == "sqlite" else async_pg_store() as store:
        inner: AsyncSQLAlchemyStore = store.inner

        async def create() -> None:
            async with inner.engine.begin() as conn:
                await conn.run_sync(host_users(inner.schema).create)

        store.call(create())
        yield store


def users_of(store: Blocking) -> Table:
    return host_users(store.inner.schema)


def count_users(store: Blocking) -> int:
    async def count() -> int:
        async with store.inner.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(users_of(store)))).scalar_one())

    return store.call(count())


def sign_up(store: Blocking, *, user: str, email: str, fail_host: bool = False, commit: bool = True) -> Any:
    """The host's sign-up in one AsyncSession: its row, then the account (on the bound store),
    then optionally a second host write that fails; commit, or roll back on any error."""
    inner: AsyncSQLAlchemyStore = store.inner
    users = users_of(store)

    async def run() -> Any:
        async with AsyncSession(inner.engine) as session:
            try:
                await session.execute(insert(users).values(id=user, email=email))
                record, events = new_account(f"acct-{user}", identity=f"digest-of-{email}")
                await inner.bound(session).create(record, events)
                if fail_host:
                    await session.execute(insert(users).values(id=user, email="again"))
            except (IntegrityError, AccountExists) as exc:
                await session.rollback()
                return exc
            if commit:
                await session.commit()
            else:
                await session.rollback()
            return None

    return store.call(run())


def test_commit_keeps_both(store: Blocking) -> None:
    assert sign_up(store, user="u-1", email="ann@example.com") is None
    assert count_users(store) == 1
    assert store.get("acct-u-1").version == 1
    assert [e.action for e in store.history("acct-u-1")] == ["open"]


def test_a_failed_host_write_leaves_no_lifecycle_record(store: Blocking) -> None:
    assert isinstance(sign_up(store, user="u-1", email="ann@example.com", fail_host=True), IntegrityError)
    assert count_users(store) == 0
    with pytest.raises(AccountNotFound):
        store.get("acct-u-1")
    assert store.outbox_read(after=0, limit=10) == []


def test_a_refused_create_leaves_no_host_row(store: Blocking) -> None:
    assert sign_up(store, user="u-1", email="ann@example.com") is None
    # another sign-up with the same identity digest: the store refuses, the host rolls back
    inner: AsyncSQLAlchemyStore = store.inner
    users = users_of(store)

    async def run() -> None:
        async with AsyncSession(inner.engine) as session:
            await session.execute(insert(users).values(id="u-2", email="bob@example.com"))
            record, events = new_account("acct-u-2", identity="digest-of-ann@example.com")
            with pytest.raises(AccountExists):
                await inner.bound(session).create(record, events)
            await session.rollback()

    store.call(run())
    assert count_users(store) == 1
    assert store.account_ids() == ("acct-u-1",)


def test_a_rollback_drops_what_the_bound_store_wrote(store: Blocking) -> None:
    assert sign_up(store, user="u-1", email="ann@example.com", commit=False) is None
    assert count_users(store) == 0
    assert store.account_ids() == ()


def test_bound_refuses_a_sync_session(store: Blocking) -> None:
    from sqlalchemy.orm import Session

    with pytest.raises(TypeError, match="AsyncConnection or AsyncSession"):
        store.inner.bound(Session())
