"""``SQLAlchemyStore.in_host_transaction()``: a bound store says it writes inside the host's
transaction, so ``confirm`` defers its purge on it even on a plain ``Lifecycle`` built on the
bound store (not through ``using``); the standalone store commits each write and purges inline.
On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from sqlalchemy_support import pg_store, sqlite_store

from account_lifecycle import Actor, Lifecycle, ManualClock, State, policies
from account_lifecycle.adapters.sqlalchemy import SQLAlchemyStore
from account_lifecycle.ports import in_host_transaction, on_host_commit
from account_lifecycle.testing.fakes import RecordingPurger, fake_identity_keys, recording_purgers

START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
POLICY = policies.ALLCLIENTS
OWNER = Actor.user("u-1")
CANCEL_TIME = {c.name for c in POLICY.purge.categories if c.at == "cancel"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLAlchemyStore]:
    with sqlite_store(tmp_path / "host.db") if request.param == "sqlite" else pg_store() as store:
        yield store


def lifecycle(store: SQLAlchemyStore, purgers: dict[str, RecordingPurger]) -> Lifecycle:
    return Lifecycle(
        POLICY,
        store=store,
        clock=ManualClock(START),
        purgers=purgers.values(),
        identity_keys=fake_identity_keys(),
    )


def pending_confirm(store: SQLAlchemyStore, purgers: dict[str, RecordingPurger]) -> Lifecycle:
    lc = lifecycle(store, purgers)
    lc.open("acct-1", owner="u-1")
    lc.request_cancellation("acct-1", OWNER)
    lc.skip_survey("acct-1", OWNER)
    return lc


def called(purgers: dict[str, RecordingPurger]) -> set[str]:
    return {name for name, p in purgers.items() if p.calls}


def test_the_bound_store_says_it_is_in_the_hosts_transaction(store: SQLAlchemyStore) -> None:
    assert store.in_host_transaction() is False
    with Session(store.engine) as session:
        bound = store.bound(session)
        assert bound.in_host_transaction() is True
        assert in_host_transaction(bound)
        # it cannot tell when the host commits: nothing is registered, the sweep erases
        assert on_host_commit(bound, lambda: pytest.fail("never called")) is False
    assert store.in_host_transaction() is False  # the view did not change the store


def test_a_lifecycle_built_on_the_bound_store_defers_and_a_rollback_erases_nothing(
    store: SQLAlchemyStore,
) -> None:
    purgers = recording_purgers(POLICY)
    pending_confirm(store, purgers)
    with Session(store.engine) as session:
        on_session = lifecycle(store.bound(session), purgers)  # not through using()
        assert on_session.confirm("acct-1", OWNER).state is State.CANCELLED
        assert called(purgers) == set()
        session.rollback()
    lc = lifecycle(store, purgers)
    assert lc.get("acct-1").state is State.PENDING_CONFIRM
    assert lc.sweep().purged == ()
    assert called(purgers) == set()


def test_committed_the_sweep_erases_and_outside_the_host_confirm_is_inline(store: SQLAlchemyStore) -> None:
    purgers = recording_purgers(POLICY)
    lc = pending_confirm(store, purgers)
    with Session(store.engine) as session:
        lifecycle(store.bound(session), purgers).confirm("acct-1", OWNER)
        session.commit()
    assert called(purgers) == set()
    assert lc.sweep().restorable == ("acct-1",)
    assert called(purgers) == CANCEL_TIME

    inline = recording_purgers(POLICY)
    lc = lifecycle(store, inline)
    lc.open("acct-2", owner="u-2")
    owner = Actor.user("u-2")
    lc.request_cancellation("acct-2", owner)
    lc.skip_survey("acct-2", owner)
    assert lc.confirm("acct-2", owner).state is State.RESTORABLE  # the standalone store: inline
    assert called(inline) == CANCEL_TIME


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_an_async_lifecycle_on_the_bound_async_store_defers_too(backend: str, tmp_path: Path) -> None:
    """``AsyncLifecycle`` built on ``AsyncSQLAlchemyStore.bound(session)`` (not through
    ``using``): the confirm calls no purger; rolled back, nothing is cancelled."""
    import asyncio

    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
    from sqlalchemy_support import pg_url

    from account_lifecycle.adapters.sqlalchemy import AsyncSQLAlchemyStore
    from account_lifecycle.aio import AsyncLifecycle

    async def main(url: str, schema: str | None) -> None:
        engine = create_async_engine(url)
        try:
            store = AsyncSQLAlchemyStore(engine, schema=schema)
            await store.migrate()
            purgers = recording_purgers(POLICY)

            def alc_on(target: AsyncSQLAlchemyStore) -> AsyncLifecycle:
                return AsyncLifecycle(
                    POLICY,
                    store=target,
                    clock=ManualClock(START),
                    purgers=purgers.values(),
                    identity_keys=fake_identity_keys(),
                )

            alc = alc_on(store)
            await alc.open("acct-1", owner="u-1")
            await alc.request_cancellation("acct-1", OWNER)
            await alc.skip_survey("acct-1", OWNER)
            async with AsyncSession(engine) as session:
                bound = store.bound(session)
                assert bound.in_host_transaction()
                assert not store.in_host_transaction()
                assert (await alc_on(bound).confirm("acct-1", OWNER)).state is State.CANCELLED
                assert called(purgers) == set()
                await session.rollback()
            assert (await alc.get("acct-1")).state is State.PENDING_CONFIRM
            assert called(purgers) == set()
            assert (await alc.confirm("acct-1", OWNER)).state is State.RESTORABLE  # standalone: inline
            assert called(purgers) == CANCEL_TIME
        finally:
            await engine.dispose()

    if backend == "sqlite":
        asyncio.run(main(f"sqlite+aiosqlite:///{tmp_path / 'host.db'}", None))
        return
    import pg

    with pg.throwaway_schema() as (dsn, schema):
        asyncio.run(main(pg_url(dsn), schema))
