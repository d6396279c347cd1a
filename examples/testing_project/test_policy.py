"""Acme's tests of its cancellation policy, its purgers and its store, written with
account_lifecycle.testing. Run them with ``pytest --hypothesis-profile=account_lifecycle-ci``."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from acme.app import POLICY, build_lifecycle, purgers_for
from acme.purgers import Database, TablePurger
from acme.store import ChangeLogStore
from hypothesis import given, settings

from account_lifecycle import (
    AccountStore,
    Actor,
    InvalidTransition,
    ManualClock,
    MemoryStore,
    Policy,
    PrerequisiteCheck,
    Purger,
    RecoveryWindowExpired,
    State,
    WrongConfirmationToken,
)
from account_lifecycle.testing import LifecycleStateMachine, PurgerContract, StoreContract
from account_lifecycle.testing import strategies as lst
from account_lifecycle.testing.plugin import LifecycleFactory

OWNER = Actor.user("owner-1")
ACKS = ["notes_deleted"]


def no_open_invoices(account_id: str) -> Sequence[str]:
    return ()


def test_the_policy_file_reads_back_from_its_own_toml() -> None:
    """acme_policy.toml is valid, and writing it out and reading it back changes nothing."""
    assert Policy.from_toml(POLICY.to_toml()) == POLICY


# -- the whole lifecycle under random commands, on Acme's store, purgers and check --------------


class AcmeMachine(LifecycleStateMachine):
    policy = POLICY

    def make_store(self) -> AccountStore:
        self.tmp = tempfile.TemporaryDirectory()
        return ChangeLogStore(Path(self.tmp.name) / "acme.db")

    def close_store(self, store: AccountStore) -> None:
        super().close_store(store)
        self.tmp.cleanup()

    def make_purgers(self) -> Iterable[Purger]:
        self.db = Database()
        return purgers_for(self.db)

    def make_prerequisites(self, pending: Mapping[str, Sequence[str]]) -> Mapping[str, PrerequisiteCheck]:
        def open_invoices(account_id: str) -> Sequence[str]:
            return [f"INV-{item}" for item in pending.get(account_id, ())]

        return {"open_invoices": open_invoices}


TestAcmeMachine = AcmeMachine.TestCase
TestAcmeMachine.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)


# -- the contract suites ------------------------------------------------------------------------


class TestNotesPurger(PurgerContract):
    def make_purger(self) -> TablePurger:
        self.db = Database()
        return TablePurger("notes", self.db)

    def seed(self, account_id: str, items: int) -> None:
        for n in range(items):
            self.db.insert("notes", account_id, f"note {n}")

    def remaining(self, account_id: str) -> int:
        return self.db.count("notes", account_id)


class TestChangeLogStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[AccountStore]:
        store = ChangeLogStore(tmp_path / "acme.db")
        yield store
        store.close()

    # How to damage a stored row, for the contract's tests of rows that cannot be decoded.
    def corrupt_record(self, store: AccountStore, account_id: str, body: str) -> None:
        assert isinstance(store, ChangeLogStore)
        with closing(sqlite3.connect(store.inner.path, isolation_level=None)) as conn:
            conn.execute("UPDATE accounts SET body = ? WHERE account_id = ?", (body, account_id))

    def corrupt_event(self, store: AccountStore, account_id: str, seq: int, body: str) -> None:
        assert isinstance(store, ChangeLogStore)
        with closing(sqlite3.connect(store.inner.path, isolation_level=None)) as conn:
            conn.execute(
                "UPDATE events SET body = ? WHERE account_id = ? AND seq = ?", (body, account_id, seq)
            )


# -- strategies ---------------------------------------------------------------------------------


@given(typed=lst.tokens(POLICY.confirmation.token))
def test_only_the_exact_token_confirms(typed: str | None) -> None:
    """'DELETE ACME' exactly: no trimming, no case folding, no look-alikes."""
    lc = build_lifecycle(MemoryStore(), Database(), no_open_invoices)
    lc.open("acct-1", owner="owner-1")
    lc.request_cancellation("acct-1", OWNER)
    lc.skip_survey("acct-1", OWNER)

    if typed == "DELETE ACME":
        assert lc.confirm("acct-1", OWNER, typed, ACKS).state is State.RESTORABLE
    else:
        with pytest.raises(WrongConfirmationToken):
            lc.confirm("acct-1", OWNER, typed, ACKS)


# -- the plugin's fixtures ------------------------------------------------------------------------


def test_the_owner_restores_until_the_last_microsecond(
    memory_lifecycle: LifecycleFactory, manual_clock: ManualClock
) -> None:
    """Restorable for exactly 30 days: a microsecond before the end is in time, the end is not."""
    db = Database()
    lc = memory_lifecycle(POLICY, purgers=purgers_for(db), prerequisites={"open_invoices": no_open_invoices})
    for account_id in ("acct-1", "acct-2"):
        lc.open(account_id, owner="owner-1")
        lc.request_cancellation(account_id, OWNER)
        lc.skip_survey(account_id, OWNER)
        lc.confirm(account_id, OWNER, "DELETE ACME", ACKS)

    manual_clock.advance(timedelta(days=30) - timedelta(microseconds=1))
    assert lc.restore("acct-1", OWNER).state is State.ACTIVE
    manual_clock.advance(timedelta(microseconds=1))
    with pytest.raises(RecoveryWindowExpired):
        lc.restore("acct-2", OWNER)


def test_backups_go_when_the_window_ends(
    sqlite_lifecycle: LifecycleFactory, manual_clock: ManualClock
) -> None:
    """Notes and attachments go at once, backups at the sweep after 30 days; invoices stay."""
    db = Database()
    for table in ("notes", "attachments", "backups", "invoices"):
        db.insert(table, "acct-1", f"{table} row")
    lc = sqlite_lifecycle(POLICY, purgers=purgers_for(db), prerequisites={"open_invoices": no_open_invoices})
    lc.open("acct-1", owner="owner-1")
    lc.request_cancellation("acct-1", OWNER)
    lc.skip_survey("acct-1", OWNER)
    lc.confirm("acct-1", OWNER, "DELETE ACME", ACKS)
    assert [db.count(t, "acct-1") for t in ("notes", "attachments", "backups")] == [0, 0, 1]

    manual_clock.advance(timedelta(days=30))
    report = lc.sweep()

    assert report.purged == ("acct-1",)
    assert [(e.category, e.items) for e in lc.receipt("acct-1").erased] == [
        ("notes", 1),
        ("attachments", 1),
        ("backups", 1),
    ]
    assert db.count("invoices", "acct-1") == 1


def test_the_change_log_follows_every_committed_write(tmp_path: Path, manual_clock: ManualClock) -> None:
    """Acme's store wrapper logs each committed version, refused commands not at all."""
    store = ChangeLogStore(tmp_path / "acme.db")
    lc = build_lifecycle(store, Database(), no_open_invoices, clock=manual_clock)
    lc.open("acct-1", owner="owner-1")
    lc.request_cancellation("acct-1", OWNER)
    with pytest.raises(InvalidTransition):
        lc.confirm("acct-1", OWNER, "DELETE ACME", ACKS)  # the survey is neither answered nor skipped
    lc.withdraw("acct-1", OWNER)
    store.close()

    assert store.changes == [("acct-1", 1, "active"), ("acct-1", 2, "surveyed"), ("acct-1", 3, "active")]
