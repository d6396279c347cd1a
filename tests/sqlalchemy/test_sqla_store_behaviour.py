"""What SQLAlchemyStore promises beyond the contract: storage failures as StoreError naming the
database without its password nor any stored value, bad input refused before anything is
written, status(), and outbox positions numbered in commit order on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy_support import pg_store, sqlite_store

from account_lifecycle import StoreError
from account_lifecycle.adapters.sqlalchemy import SQLAlchemyStore
from account_lifecycle.testing.store_contract import NOW, advance, due_record, new_account
from account_lifecycle.values import AccountQuery, Lease

SECRET = "ann.secret@example.com"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLAlchemyStore]:
    with sqlite_store(tmp_path / "accounts.db") if request.param == "sqlite" else pg_store() as store:
        yield store


def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    engine = create_engine("postgresql+psycopg://app:s3cr3t-pw@127.0.0.1:1/accounts?connect_timeout=2")
    store = SQLAlchemyStore(engine)
    with pytest.raises(StoreError) as info:
        store.get("acc-1")
    assert "s3cr3t-pw" not in str(info.value)
    assert "127.0.0.1:1/accounts" in str(info.value)
    assert info.value.__cause__ is None
    assert "s3cr3t-pw" not in repr(store)


def test_missing_tables_say_to_migrate(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        store = SQLAlchemyStore(engine)
        with pytest.raises(StoreError, match=r"store\.migrate\(\) or your Alembic migrations"):
            store.create(*new_account("acc-1", identity=SECRET))
        assert store.schema_version() == 0
    finally:
        engine.dispose()


def test_a_failed_write_quotes_no_stored_value(store: SQLAlchemyStore) -> None:
    """A storage failure inside a write (here: the events table dropped under the store) is a
    StoreError that quotes neither the statement's parameters nor any stored value, and writes
    nothing."""
    with store.engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {store._logic.sealed.fullname}"))
    record, events = new_account("acc-1", identity=SECRET)
    from account_lifecycle.sealed import SealedValue

    events = (
        events[0].__class__(**{**_fields(events[0]), "sealed_values": {"why": SealedValue("s", SECRET)}}),
    )
    with pytest.raises(StoreError) as info:
        store.create(record, events)
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None
    assert store.account_ids() == ()


def _fields(event: object) -> dict[str, object]:
    import attrs

    return attrs.asdict(event, recurse=False)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.claim_due(now=NOW, lease=Lease("w", NOW), limit=-1),
        lambda s: s.claim_due(now=NOW.replace(tzinfo=None), lease=Lease("w", NOW), limit=1),
        lambda s: s.claim_due(now=NOW, lease=Lease("w", NOW.replace(tzinfo=None)), limit=1),
        lambda s: s.list_accounts(AccountQuery(), after=None, limit=True),
        lambda s: s.list_accounts(AccountQuery(due_before=NOW.replace(tzinfo=None)), after=None, limit=1),
        lambda s: s.outbox_read(after=-1, limit=1),
        lambda s: s.outbox_claim("", lease=Lease("w", NOW), now=NOW),
        lambda s: s.save(advance(s.get("due-1"))[0], expected_version=1, events=(), lease=Lease("w", NOW)),
    ],
)
def test_bad_input_is_a_typed_error_and_changes_nothing(store: SQLAlchemyStore, call: object) -> None:
    store.create(due_record("due-1", NOW - timedelta(hours=1)), ())
    before = (store.get("due-1"), store.outbox_cursors(), store.outbox_head())

    with pytest.raises((ValueError, TypeError)):
        call(store)  # type: ignore[operator]

    assert (store.get("due-1"), store.outbox_cursors(), store.outbox_head()) == before
    assert len(store.claim_due(now=NOW, lease=Lease("w", NOW + timedelta(minutes=5)), limit=5)) == 1


def test_status_counts_due_work_and_claims(store: SQLAlchemyStore) -> None:
    store.create(due_record("due-1", NOW - timedelta(hours=2)), ())
    store.create(due_record("due-2", NOW - timedelta(hours=1)), ())
    store.create(*new_account("active"))
    store.claim_due(now=NOW, lease=Lease("sweeper", NOW + timedelta(minutes=5)), limit=1)

    status = store.status(now=NOW)

    assert status.due == 2
    assert status.oldest_due == NOW - timedelta(hours=2)
    assert dict(status.claims) == {"sweeper": 1}
    assert status.schema_version == status.library_schema_version == 2


def test_moments_in_any_offset_are_compared_as_instants(store: SQLAlchemyStore) -> None:
    """A due moment written with a +05:00 offset is due exactly when its UTC instant has passed
    (SQLite keeps wall times: every moment is written in UTC)."""
    from datetime import timezone

    plus5 = timezone(timedelta(hours=5))
    store.create(due_record("due-1", (NOW - timedelta(minutes=1)).astimezone(plus5)), ())
    lease = Lease("w", NOW + timedelta(minutes=5))
    assert store.claim_due(now=NOW - timedelta(minutes=2), lease=lease, limit=5) == []
    assert [r.account_id for r in store.claim_due(now=NOW.astimezone(plus5), lease=lease, limit=5)] == [
        "due-1"
    ]


@pytest.mark.postgres
def test_outbox_positions_follow_commit_order_on_postgres() -> None:
    """Two host transactions write events on PostgreSQL; the first holds the outbox lock until it
    commits, so the second waits to number its entry, and a reader never sees the second's
    position before the first's: a reader that has seen position p never later finds one below."""
    with pg_store() as store:
        store.create(*new_account("acc-a"))
        store.create(*new_account("acc-b"))
        head = store.outbox_head()
        first_wrote, first_may_commit, second_done = threading.Event(), threading.Event(), threading.Event()
        errors: list[BaseException] = []

        def first() -> None:
            try:
                with store.engine.connect() as conn:
                    record, events = advance(store.get("acc-a"))
                    store.bound(conn).save(record, expected_version=1, events=events)
                    first_wrote.set()
                    assert first_may_commit.wait(timeout=30)
                    conn.commit()
            except BaseException as exc:
                errors.append(exc)
                first_wrote.set()

        def second() -> None:
            try:
                record, events = advance(store.get("acc-b"))
                store.save(record, expected_version=1, events=events)  # waits for the lock
            except BaseException as exc:
                errors.append(exc)
            finally:
                second_done.set()

        a = threading.Thread(target=first)
        a.start()
        assert first_wrote.wait(timeout=30)
        b = threading.Thread(target=second)
        b.start()
        _wait_for_a_lock_wait(store)  # the second save is blocked on the outbox lock
        assert not second_done.is_set()
        assert store.outbox_read(after=head, limit=10) == []  # nothing committed yet
        first_may_commit.set()
        a.join(timeout=30)
        b.join(timeout=30)
        assert errors == []
        entries = store.outbox_read(after=head, limit=10)
        assert [(e.event.account_id, e.position > head) for e in entries] == [
            ("acc-a", True),
            ("acc-b", True),
        ]
        assert entries[0].position < entries[1].position


def _wait_for_a_lock_wait(store: SQLAlchemyStore) -> None:
    """Until a session of the test database waits for an advisory lock (bounded: 30 s)."""
    deadline = datetime.now().timestamp() + 30
    query = (
        select(text("count(*)"))
        .select_from(text("pg_locks"))
        .where(text("locktype = 'advisory' AND NOT granted"))
    )
    while datetime.now().timestamp() < deadline:
        with store.engine.connect() as conn:
            if conn.execute(query).scalar_one():
                return
        threading.Event().wait(0.01)
    raise AssertionError("the second save never waited for the outbox lock")
