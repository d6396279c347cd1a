"""Sign-up plus open() in one SQLAlchemy transaction (issue 17): the host's write and the
lifecycle's record commit together or not at all, on SQLite and PostgreSQL, through a Session
and through a Core Connection; a refused command leaves the host's transaction usable."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, MetaData, Table, Text, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy_support import pg_store, sqlite_store

from account_lifecycle import (
    AccountExists,
    AccountNotFound,
    Actor,
    Lifecycle,
    ManualClock,
    State,
    policies,
)
from account_lifecycle.adapters.sqlalchemy import SQLAlchemyStore
from account_lifecycle.testing.fakes import fake_identity_keys, recording_purgers

START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def host_users(schema: str | None) -> Table:
    """The host's own table, on its own MetaData: one row per signed-up user."""
    md = MetaData(schema=schema)
    return Table("users", md, Column("id", Text, primary_key=True), Column("email", Text, unique=True))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLAlchemyStore]:
    with sqlite_store(tmp_path / "host.db") if request.param == "sqlite" else pg_store() as store:
        host_users(store.schema).create(store.engine)
        yield store


@pytest.fixture
def users(store: SQLAlchemyStore) -> Table:
    return host_users(store.schema)


@pytest.fixture
def lc(store: SQLAlchemyStore) -> Lifecycle:
    policy = policies.ALLCLIENTS
    return Lifecycle(
        policy,
        store=store,
        clock=ManualClock(START),
        purgers=recording_purgers(policy).values(),
        identity_keys=fake_identity_keys(),
    )


def user_count(store: SQLAlchemyStore, users: Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(users)).scalar_one())


def sign_up(
    session: Session, lc: Lifecycle, store: SQLAlchemyStore, users: Table, user: str, email: str
) -> None:
    """The host's sign-up: its own row, and the account, in the session's transaction."""
    session.execute(insert(users).values(id=user, email=email))
    lc.using(store.bound(session)).open(f"acct-{user}", owner=user, identity=email)


def test_commit_keeps_the_host_row_and_the_account_together(
    store: SQLAlchemyStore, users: Table, lc: Lifecycle
) -> None:
    with Session(store.engine) as session:
        sign_up(session, lc, store, users, "u-1", "ann@example.com")
        # nothing is visible outside the transaction before the host commits
        assert store.account_ids() == ()
        session.commit()

    assert user_count(store, users) == 1
    record = lc.get("acct-u-1")
    assert record.state is State.ACTIVE
    assert [e.action for e in lc.history("acct-u-1")] == ["open"]
    assert store.outbox_head() >= 1


def test_a_failed_host_write_leaves_no_lifecycle_record(
    store: SQLAlchemyStore, users: Table, lc: Lifecycle
) -> None:
    """The host's second write fails (a duplicate e-mail in its own table) after open() wrote
    inside the transaction; the host rolls back, and the account is gone with its events."""
    with store.engine.begin() as conn:
        conn.execute(insert(users).values(id="u-0", email="taken@example.com"))
    with Session(store.engine) as session:
        lc.using(store.bound(session)).open("acct-u-1", owner="u-1", identity="ann@example.com")
        session.execute(insert(users).values(id="u-1", email="ann@example.com"))
        with pytest.raises(IntegrityError):
            session.execute(insert(users).values(id="u-2", email="taken@example.com"))
        session.rollback()

    assert user_count(store, users) == 1
    assert store.account_ids() == ()
    with pytest.raises(AccountNotFound):
        lc.get("acct-u-1")
    assert store.outbox_read(after=0, limit=10) == []
    # the identity was never taken: a new sign-up with it succeeds
    with Session(store.engine) as session:
        sign_up(session, lc, store, users, "u-1", "ann@example.com")
        session.commit()
    assert lc.get("acct-u-1").version == 1


def test_a_failed_open_leaves_no_host_row(store: SQLAlchemyStore, users: Table, lc: Lifecycle) -> None:
    """open() is refused (the identity is held by an account already); the host, seeing the
    error, rolls back, and its row is gone."""
    with Session(store.engine) as session:
        sign_up(session, lc, store, users, "u-1", "ann@example.com")
        session.commit()
    before = store.outbox_head()

    with Session(store.engine) as session:
        session.execute(insert(users).values(id="u-2", email="ann.2@example.com"))
        with pytest.raises(AccountExists):  # the host's user row is written, open() is refused
            lc.using(store.bound(session)).open("acct-u-2", owner="u-2", identity="ann@example.com")
        session.rollback()

    assert user_count(store, users) == 1
    assert store.account_ids() == ("acct-u-1",)
    assert store.outbox_head() == before


def test_a_refused_command_leaves_the_host_transaction_usable(
    store: SQLAlchemyStore, users: Table, lc: Lifecycle
) -> None:
    """On PostgreSQL a failed statement aborts the whole transaction; the store's SAVEPOINT
    rolls back its own part only, so the host may go on and commit what it wrote."""
    lc.open("acct-x", owner="u-9", identity="ann@example.com")
    with Session(store.engine) as session:
        session.execute(insert(users).values(id="u-1", email="bob@example.com"))
        bound = lc.using(store.bound(session))
        with pytest.raises(AccountExists):
            bound.open("acct-u-1", owner="u-1", identity="ann@example.com")
        bound.open("acct-u-1", owner="u-1", identity="bob@example.com")  # the host retries
        session.commit()

    assert user_count(store, users) == 1
    assert lc.get("acct-u-1").identity == fake_identity_keys().digest("identity", "bob@example.com")


def test_open_before_any_host_write_still_rolls_back(
    store: SQLAlchemyStore, users: Table, lc: Lifecycle
) -> None:
    """The lifecycle writes first in a fresh session (pysqlite begins its transaction only at the
    first INSERT, so a SAVEPOINT alone would commit on release): the rollback still undoes it."""
    with Session(store.engine) as session:
        lc.using(store.bound(session)).open("acct-u-1", owner="u-1")
        session.rollback()
    assert store.account_ids() == ()


def test_a_core_connection_works_as_the_host_transaction(
    store: SQLAlchemyStore, users: Table, lc: Lifecycle
) -> None:
    with store.engine.connect() as conn:
        conn.execute(insert(users).values(id="u-1", email="ann@example.com"))
        bound = lc.using(store.bound(conn))
        bound.open("acct-u-1", owner="u-1")
        bound.request_cancellation("acct-u-1", Actor.user("u-1"))
        assert bound.get("acct-u-1").state is State.SURVEYED  # the host's transaction sees it
        conn.rollback()
        bound.open("acct-u-2", owner="u-2")
        conn.commit()
    assert store.account_ids() == ("acct-u-2",)
    assert user_count(store, users) == 0


def test_bound_refuses_what_is_not_a_connection_or_session(store: SQLAlchemyStore) -> None:
    with pytest.raises(TypeError, match="Connection or Session"):
        store.bound(store.engine)  # type: ignore[arg-type]


def test_using_keeps_the_configuration_and_drops_in_process_listeners(lc: Lifecycle) -> None:
    """using() swaps the store and what writes to it, nothing else; listeners only when given."""
    seen: list[object] = []
    listening = Lifecycle(
        lc.policy,
        store=lc.store,
        clock=lc.clock,
        purgers=lc.purgers.values(),
        identity_keys=lc.identity_keys,
        listeners=[seen.append],
    )
    other_store = SQLAlchemyStore(lc.store.engine, schema=lc.store.schema)  # type: ignore[attr-defined]
    other = listening.using(other_store)
    assert other.store is other_store
    assert other.journal.store is other_store
    assert other.runner.store is other_store
    assert other.runner.journal is other.journal
    assert (other.policy, other.purgers, other.clock, other.identity_keys, other.lease) == (
        listening.policy,
        listening.purgers,
        listening.clock,
        listening.identity_keys,
        listening.lease,
    )
    assert other.listeners == ()
    assert listening.listeners != ()
    # nothing of the new lifecycle still points at the first store
    first = listening.store
    stale = [
        name
        for name, value in vars(other).items()
        if value is first or getattr(value, "store", None) is first
    ]
    assert other.relay().total == 0  # no relay through a view of the store
    assert stale == []
    other.open("acct-1", owner="u-1")
    assert seen == []
    assert other.using(other_store, listeners=[seen.append]).request_cancellation("acct-1", Actor.user("u-1"))
    assert len(seen) == 1


def test_transactions_decide_for_both(tmp_path: Path) -> None:
    """Drawn sequences of sign-ups on SQLite: each host write may fail, each open may be refused
    (a taken identity), each transaction is committed or rolled back. Afterwards a user row
    exists exactly when its account does."""
    with sqlite_store(tmp_path / "drawn.db") as store:
        users = host_users(None)
        users.create(store.engine)
        policy = policies.ALLCLIENTS
        lc = Lifecycle(
            policy,
            store=store,
            purgers=recording_purgers(policy).values(),
            identity_keys=fake_identity_keys(),
        )
        counter = iter(range(10**6))

        @given(
            st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans(), st.booleans()), max_size=6)
        )
        def run(steps: list[tuple[str, bool, bool]]) -> None:
            for email, host_first, commit in steps:
                user = f"u-{next(counter)}"
                with Session(store.engine) as session:
                    try:
                        if host_first:
                            session.execute(insert(users).values(id=user, email=f"{email}@example.com"))
                        lc.using(store.bound(session)).open(f"acct-{user}", owner=user, identity=email)
                        if not host_first:
                            session.execute(insert(users).values(id=user, email=f"{email}@example.com"))
                    except (AccountExists, IntegrityError):
                        session.rollback()
                        continue
                    if commit:
                        session.commit()
                    else:
                        session.rollback()
            with store.engine.connect() as conn:
                rows = {f"acct-{row[0]}" for row in conn.execute(select(users.c.id))}
            assert rows == set(store.account_ids())

        run()


def test_confirm_in_the_hosts_transaction_erases_nothing_before_the_host_commits(
    store: SQLAlchemyStore,
) -> None:
    """``confirm`` on ``lc.using(store.bound(session))`` defers its purge: no purger runs for a
    confirmation the host may still roll back. Rolled back, nothing was cancelled and nothing
    erased; committed, the account is CANCELLED with its steps due, and the sweep erases them."""
    policy = policies.ALLCLIENTS
    purgers = recording_purgers(policy)
    lc = Lifecycle(
        policy,
        store=store,
        clock=ManualClock(START),
        purgers=purgers.values(),
        identity_keys=fake_identity_keys(),
    )
    owner = Actor.user("u-1")
    lc.open("acct-1", owner="u-1")
    lc.request_cancellation("acct-1", owner)
    lc.skip_survey("acct-1", owner)

    with Session(store.engine) as session:
        record = lc.using(store.bound(session)).confirm("acct-1", owner)
        assert record.state is State.CANCELLED
        assert all(not p.calls for p in purgers.values())
        session.rollback()  # the host's request fails after the confirm
    assert lc.get("acct-1").state is State.PENDING_CONFIRM
    assert all(not p.calls for p in purgers.values())

    with Session(store.engine) as session:
        assert lc.using(store.bound(session)).confirm("acct-1", owner).state is State.CANCELLED
        assert all(not p.calls for p in purgers.values())
        session.commit()
    assert lc.get("acct-1").state is State.CANCELLED

    report = lc.sweep()
    assert report.restorable == ("acct-1",)
    assert lc.get("acct-1").state is State.RESTORABLE
    cancel_time = {c.name for c in policy.purge.categories if c.at == "cancel"}
    assert {name for name, p in purgers.items() if p.calls} == cancel_time


def test_an_explicit_inline_confirm_in_the_hosts_transaction_is_still_possible(
    store: SQLAlchemyStore,
) -> None:
    """``defer=False`` asks for the inline purge inside the host's transaction, knowingly."""
    policy = policies.ALLCLIENTS
    purgers = recording_purgers(policy)
    lc = Lifecycle(
        policy,
        store=store,
        clock=ManualClock(START),
        purgers=purgers.values(),
        identity_keys=fake_identity_keys(),
    )
    owner = Actor.user("u-1")
    lc.open("acct-1", owner="u-1")
    lc.request_cancellation("acct-1", owner)
    lc.skip_survey("acct-1", owner)
    with Session(store.engine) as session:
        assert lc.using(store.bound(session)).confirm("acct-1", owner, defer=False).state is State.RESTORABLE
        session.commit()
    assert any(p.calls for p in purgers.values())
