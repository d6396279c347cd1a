"""AsyncLifecycle on AsyncSQLAlchemyStore: sign-up plus open() in one AsyncSession transaction
(``alc.using(store.bound(session))``) commits or rolls back with the host's write, on aiosqlite
and async psycopg; the whole cancellation flow runs on the async store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, Table, Text, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy_support import pg_url

from account_lifecycle import AccountExists, AccountNotFound, Actor, ManualClock, State, policies
from account_lifecycle.adapters.sqlalchemy import AsyncSQLAlchemyStore
from account_lifecycle.aio import AsyncLifecycle
from account_lifecycle.testing.fakes import fake_identity_keys, recording_purgers

START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def host_users(schema: str | None) -> Table:
    md = MetaData(schema=schema)
    return Table("users", md, Column("id", Text, primary_key=True), Column("email", Text, unique=True))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """The URL of an async engine and its schema: a SQLite file or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'host.db'}", None
        return
    import pg

    with pg.throwaway_schema() as (dsn, schema):
        yield pg_url(dsn), schema


async def setup(
    url: str, schema: str | None
) -> tuple[AsyncEngine, AsyncSQLAlchemyStore, AsyncLifecycle, Table]:
    engine = create_async_engine(url)
    store = AsyncSQLAlchemyStore(engine, schema=schema)
    await store.migrate()
    users = host_users(schema)
    async with engine.begin() as conn:
        await conn.run_sync(users.create)
    policy = policies.ALLCLIENTS
    alc = AsyncLifecycle(
        policy,
        store=store,
        clock=ManualClock(START),
        purgers=recording_purgers(policy).values(),
        identity_keys=fake_identity_keys(),
    )
    return engine, store, alc, users


async def count(engine: AsyncEngine, users: Table) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())


def test_sign_up_commits_or_rolls_back_with_the_host(target: tuple[str, str | None]) -> None:
    async def main() -> None:
        engine, store, alc, users = await setup(*target)
        try:
            # commit: both
            async with AsyncSession(engine) as session:
                await session.execute(insert(users).values(id="u-1", email="ann@example.com"))
                await alc.using(store.bound(session)).open(
                    "acct-u-1", owner="u-1", identity="ann@example.com"
                )
                await session.commit()
            assert await count(engine, users) == 1
            assert (await alc.get("acct-u-1")).state is State.ACTIVE

            # the host's second write fails: no account
            async with AsyncSession(engine) as session:
                await alc.using(store.bound(session)).open(
                    "acct-u-2", owner="u-2", identity="bob@example.com"
                )
                with pytest.raises(IntegrityError):
                    await session.execute(insert(users).values(id="u-2", email="ann@example.com"))
                await session.rollback()
            with pytest.raises(AccountNotFound):
                await alc.get("acct-u-2")

            # open() is refused: the host rolls back its row
            async with AsyncSession(engine) as session:
                await session.execute(insert(users).values(id="u-3", email="carl@example.com"))
                with pytest.raises(AccountExists):
                    await alc.using(store.bound(session)).open(
                        "acct-u-3", owner="u-3", identity="ann@example.com"
                    )
                await session.rollback()
            assert await count(engine, users) == 1
            assert await store.account_ids() == ("acct-u-1",)

            # the flow goes on outside any host transaction, on the same store
            owner = Actor.user("u-1")
            await alc.request_cancellation("acct-u-1", owner)
            await alc.skip_survey("acct-u-1", owner)
            record = await alc.confirm("acct-u-1", owner)
            assert record.state is State.RESTORABLE
        finally:
            await engine.dispose()

    asyncio.run(main())


def test_using_refuses_a_synchronous_store(tmp_path: Path) -> None:
    from account_lifecycle import SQLiteStore

    async def main() -> None:
        engine, _store, alc, _ = await setup(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", None)
        try:
            sync = SQLiteStore(tmp_path / "b.db")
            with pytest.raises(TypeError, match="async store"):
                alc.using(sync)  # type: ignore[arg-type]
            sync.close()
        finally:
            await engine.dispose()

    asyncio.run(main())
