"""The behaviour every ``AccountStore`` must have, as a pytest suite a host subclasses.

Subclass ``StoreContract`` in a test module (its name must start with ``Test`` for pytest
to collect it) and say how to build a fresh, empty store: either implement ``make_store()``
or, when building one needs other fixtures, override the ``store`` fixture::

    from account_lifecycle.testing.store_contract import StoreContract

    class TestMyStore(StoreContract):
        def make_store(self) -> MyStore:
            return MyStore(...)

    class TestMyStoreOnDisk(StoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            store = MyStore(tmp_path / "accounts.db")
            yield store
            store.close()

Records and events are built here directly (no ``Lifecycle``), and every moment is passed
explicitly, so a failure names a store behaviour, not a policy one. The suite needs pytest
(extra ``testing``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final, cast

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from account_lifecycle.audit import GENESIS, AuditEvent, chain_event
from account_lifecycle.codec import record_to_dict
from account_lifecycle.errors import (
    AccountExists,
    AccountNotFound,
    ConcurrentUpdate,
    HistoryTampered,
    RecordCorrupt,
    StoreError,
)
from account_lifecycle.model import (
    AccountRecord,
    Actor,
    HeldIdentifier,
    Hold,
    PurgeProgress,
    PurgeStatus,
    Reminder,
    ServiceState,
    State,
)
from account_lifecycle.outbox import OUTBOX_METHODS
from account_lifecycle.ports import AccountStore, CorruptRecord, Lease, OutboxStore, Write, save_many
from account_lifecycle.sealed import SealedValue, commitment
from account_lifecycle.values import AccountQuery, DeadLetter, OutboxCursor

__all__ = ["NOW", "StoreContract", "advance", "due_record", "new_account"]

#: The moment the suite's claims are made at.
NOW = datetime(2030, 6, 15, 12, 0, tzinfo=UTC)
_POLICY = "contract@1"
_TICK = timedelta(microseconds=1)
_LEASE = timedelta(minutes=5)


def _events(
    record: AccountRecord, actions: Sequence[str], *, from_state: State | None
) -> tuple[AccountRecord, tuple[AuditEvent, ...]]:
    """Chain *actions* onto *record*'s history; return the record pointing at the new head."""
    head, seq, events = record.chain_head or GENESIS, record.last_seq, []
    for action in actions:
        seq += 1
        event = chain_event(
            prev_hash=head,
            seq=seq,
            account_id=record.account_id,
            at=NOW + seq * _TICK,
            actor=Actor.system(),
            action=action,
            from_state=from_state,
            to_state=record.state,
            policy=_POLICY,
            details={"step": seq},
        )
        head = event.hash
        events.append(event)
    return attrs.evolve(record, chain_head=head, last_seq=seq), tuple(events)


def new_account(
    account_id: str, *, actions: Sequence[str] = ("open",), **fields: Any
) -> tuple[AccountRecord, tuple[AuditEvent, ...]]:
    """A version-1 record (``ACTIVE`` unless *fields* say otherwise) and its first events."""
    fields.setdefault("state", State.ACTIVE)
    fields.setdefault("owner", "owner-1")
    record = AccountRecord(account_id=account_id, version=1, **fields)
    return _events(record, actions, from_state=None)


def advance(
    record: AccountRecord, *, actions: Sequence[str] = ("change",), **changes: Any
) -> tuple[AccountRecord, tuple[AuditEvent, ...]]:
    """The next version of *record* with *changes*, and the events that go with it."""
    following = attrs.evolve(record, version=record.version + 1, **changes)
    return _events(following, actions, from_state=record.state)


def due_record(account_id: str, due: datetime, **fields: Any) -> AccountRecord:
    """A ``CANCELLED`` record whose cancel-time purge is due at *due*."""
    fields.setdefault("purge", {"contacts": PurgeProgress()})
    record, _ = new_account(account_id, state=State.CANCELLED, cancelled_at=due, **fields)
    return record


def _write(
    written: tuple[AccountRecord, tuple[AuditEvent, ...]],
    expected_version: int,
    *,
    lease: Lease | None = None,
    release: str | None = None,
) -> Write:
    record, events = written
    return Write(record, expected_version, events, lease, release)


def _datetimes(record: AccountRecord) -> list[datetime]:
    moments = [record.cancelled_at, record.restorable_until, record.identity_released_at]
    for progress in record.purge.values():
        moments += [progress.at, progress.retry_at]
    return [m for m in moments if m is not None]


#: Personal data planted in damaged rows: no error message may quote it.
_SECRET = "ann.secret@example.com"


def _record_text(record: AccountRecord, **changes: Any) -> str:
    data = record_to_dict(record)
    data.update(changes)
    return json.dumps(data)


def _event_text(event: AuditEvent, **changes: Any) -> str:
    data = event.to_dict()
    data.update(changes)
    return json.dumps(data)


#: Ways a stored record can be damaged: each gives the text to store instead of the record.
_DAMAGED_RECORDS: dict[str, Callable[[AccountRecord], str]] = {
    "not-json": lambda r: _record_text(r)[:-40] + f' "{_SECRET}',
    "not-an-object": lambda r: json.dumps([_SECRET, r.account_id]),
    "a-field-missing": lambda r: json.dumps({"account_id": r.account_id, "owner": _SECRET}),
    "wrong-types": lambda r: _record_text(r, members=7, owner=_SECRET),
    "an-unknown-state": lambda r: _record_text(r, state=_SECRET),
    "a-time-that-is-no-time": lambda r: _record_text(r, cancelled_at=_SECRET),
    "another-accounts-record": lambda r: _record_text(r, account_id=_SECRET),
    "nested-too-deeply": lambda r: "[" * 100_000 + json.dumps(_SECRET) + "]" * 100_000,
    "empty": lambda r: "",
}

#: Ways a stored audit event can be damaged.
_DAMAGED_EVENTS: dict[str, Callable[[AuditEvent], str]] = {
    "not-json": lambda e: _event_text(e)[:-30] + f' "{_SECRET}',
    "not-an-object": lambda e: json.dumps([_SECRET]),
    "a-field-missing": lambda e: json.dumps({"seq": e.seq, "details": {"note": _SECRET}}),
    "wrong-types": lambda e: _event_text(e, details=[_SECRET], seq="two", to_state=7),
    "an-unknown-actor": lambda e: _event_text(e, actor=_SECRET),
    "a-time-that-is-no-time": lambda e: _event_text(e, at=_SECRET),
    "nested-too-deeply": lambda e: "{" * 50_000 + json.dumps(_SECRET),
}


#: Hypothesis in the queries tests: the store fixture is one store for every example (each
#: example writes ids of its own), and each subclass of the suite runs the same test methods.
_QUERY_CHECKS: Final = (
    HealthCheck.function_scoped_fixture,
    HealthCheck.too_slow,
    HealthCheck.differing_executors,
)


class StoreContract:
    """The ``AccountStore`` contract. Subclass it and implement ``make_store()`` (a fresh,
    empty store per test) or override the ``store`` fixture."""

    def make_store(self) -> AccountStore:
        raise NotImplementedError(
            f"{type(self).__name__} must implement make_store() or override the store fixture"
        )

    def close_store(self, store: AccountStore) -> None:
        """Called after each test; closes the store if it has a ``close()``."""
        close = getattr(store, "close", None)
        if callable(close):
            close()

    @pytest.fixture
    def store(self) -> Iterator[AccountStore]:
        store = self.make_store()
        try:
            yield store
        finally:
            self.close_store(store)

    # -- optional hooks ----------------------------------------------------------------------

    def corrupt_record(self, store: AccountStore, account_id: str, body: str) -> None:
        """Optional: replace the stored record of *account_id* with *body*, as a damaged disk, a
        bad hand edit or a bug would (SQL stores: write it into the record's column). The tests
        of undecodable rows are skipped, with this reason, when a host does not implement it."""
        pytest.skip(
            f"{type(self).__name__} does not implement corrupt_record(store, account_id, body): "
            "the tests of undecodable records need a store-specific way to damage a stored row"
        )

    def corrupt_event(self, store: AccountStore, account_id: str, seq: int, body: str) -> None:
        """Optional: replace the stored audit event *seq* of *account_id* with *body*. The tests
        of undecodable events are skipped, with this reason, when a host does not implement it."""
        pytest.skip(
            f"{type(self).__name__} does not implement corrupt_event(store, account_id, seq, body): "
            "the tests of undecodable events need a store-specific way to damage a stored row"
        )

    # -- create and get --------------------------------------------------------------------

    def test_get_returns_the_created_record_field_for_field(self, store: AccountStore) -> None:
        """get() returns every field of the created record: purge progress, services, aware times."""
        plus_two = timezone(timedelta(hours=2))
        record, events = new_account(
            "acc-full",
            actions=("open", "confirm", "category_purged"),
            state=State.RESTORABLE,
            owner="owner-7",
            members=frozenset({"member-1", "member-2"}),
            identity="ann@example.com",
            cancelled_at=datetime(2030, 1, 31, 23, 59, 58, 123456, tzinfo=plus_two),
            restorable_until=datetime(2030, 4, 30, 21, 59, 58, 123456, tzinfo=UTC),
            identity_released_at=datetime(2030, 2, 1, 0, 0, 0, 1, tzinfo=UTC),
            purge={
                "contacts": PurgeProgress(
                    status=PurgeStatus.DONE,
                    attempts=2,
                    items=1234,
                    at=datetime(2030, 2, 1, 1, 2, 3, 999999, tzinfo=UTC),
                    purger="crm-eraser",
                ),
                "backups": PurgeProgress(
                    status=PurgeStatus.FAILED,
                    attempts=3,
                    error="TimeoutError: backup host \u2603 did not answer \u00fc",
                    at=datetime(2030, 2, 1, 1, 0, tzinfo=UTC),
                    retry_at=datetime(2030, 2, 1, 5, 0, tzinfo=UTC),
                ),
                "todos": PurgeProgress(),
            },
            services={"messages": ServiceState.CANCELLED, "voice": ServiceState.ACTIVE},
        )
        store.create(record, events)

        got = store.get("acc-full")

        for field in attrs.fields(AccountRecord):
            assert getattr(got, field.name) == getattr(record, field.name), field.name
        assert got == record
        assert got.last_seq == 3
        assert len(_datetimes(got)) == 6
        assert all(moment.utcoffset() is not None for moment in _datetimes(got))

    def test_history_returns_the_created_events(self, store: AccountStore) -> None:
        """history() returns the events given to create(), equal and in order."""
        record, events = new_account("acc-1", actions=("open", "welcome"))
        store.create(record, events)

        assert store.history("acc-1") == events
        assert [e.seq for e in store.history("acc-1")] == [1, 2]

    def test_history_of_an_account_created_without_events_is_empty(self, store: AccountStore) -> None:
        """An account created with no events has an empty history, not AccountNotFound."""
        record, _ = new_account("acc-1")
        store.create(attrs.evolve(record, chain_head="", last_seq=0), ())

        assert store.history("acc-1") == ()

    def test_create_rejects_a_taken_account_id_and_keeps_the_first(self, store: AccountStore) -> None:
        """create() with an existing id raises AccountExists naming it; the first account is untouched."""
        first, first_events = new_account("acc-1", owner="owner-1")
        store.create(first, first_events)
        second, second_events = new_account("acc-1", owner="owner-2", actions=("open", "other"))

        with pytest.raises(AccountExists) as info:
            store.create(second, second_events)

        assert info.value.account_id == "acc-1"
        assert info.value.identity is None
        assert store.get("acc-1") == first
        assert store.history("acc-1") == first_events

    def test_create_rejects_a_live_identity_held_by_another_account(self, store: AccountStore) -> None:
        """create() with a live identity another account holds raises AccountExists naming the
        identity, and stores nothing of the new account."""
        first, first_events = new_account("acc-1", identity="ann@example.com")
        store.create(first, first_events)
        second, second_events = new_account("acc-2", identity="ann@example.com")

        with pytest.raises(AccountExists) as info:
            store.create(second, second_events)

        assert info.value.account_id == "acc-2"
        assert info.value.identity == "ann@example.com"
        with pytest.raises(AccountNotFound):
            store.get("acc-2")
        with pytest.raises(AccountNotFound):
            store.history("acc-2")
        assert store.get("acc-1") == first

    def test_create_accepts_an_identity_its_previous_account_released(self, store: AccountStore) -> None:
        """An identity whose account has identity_released_at set may open a new account."""
        old, old_events = new_account(
            "acc-old", identity="ann@example.com", identity_released_at=NOW - timedelta(days=1)
        )
        store.create(old, old_events)
        new, new_events = new_account("acc-new", identity="ann@example.com")

        store.create(new, new_events)

        assert store.get("acc-new").live_identity == "ann@example.com"
        assert store.get("acc-old").live_identity is None

    def test_save_releasing_an_identity_lets_a_new_account_take_it(self, store: AccountStore) -> None:
        """Once a save sets identity_released_at, another account may be created with that identity."""
        old, old_events = new_account("acc-old", identity="ann@example.com")
        store.create(old, old_events)
        released, events = advance(old, state=State.PURGED, identity_released_at=NOW)
        store.save(released, expected_version=1, events=events)
        new, new_events = new_account("acc-new", identity="ann@example.com")

        store.create(new, new_events)

        assert store.get("acc-new") == new

    def test_accounts_without_an_identity_never_conflict(self, store: AccountStore) -> None:
        """Any number of accounts may have no identity."""
        for account_id in ("acc-1", "acc-2", "acc-3"):
            record, events = new_account(account_id, identity=None)
            store.create(record, events)

        assert [store.get(a).identity for a in ("acc-1", "acc-2", "acc-3")] == [None, None, None]

    def test_save_rejects_taking_a_live_identity_another_account_holds(self, store: AccountStore) -> None:
        """save() giving an account a live identity held by another raises AccountExists and
        writes nothing: neither the record nor the events."""
        holder, holder_events = new_account("acc-1", identity="ann@example.com")
        store.create(holder, holder_events)
        other, other_events = new_account("acc-2")
        store.create(other, other_events)
        taking, events = advance(other, identity="ann@example.com")

        with pytest.raises(AccountExists) as info:
            store.save(taking, expected_version=1, events=events)

        assert info.value.account_id == "acc-2"
        assert info.value.identity == "ann@example.com"
        assert store.get("acc-2") == other
        assert store.history("acc-2") == other_events

    def test_save_may_keep_the_accounts_own_identity(self, store: AccountStore) -> None:
        """An account saved with the identity it already holds does not conflict with itself."""
        record, events = new_account("acc-1", identity="ann@example.com")
        store.create(record, events)
        following, more = advance(record, members=frozenset({"member-1"}))

        store.save(following, expected_version=1, events=more)

        assert store.get("acc-1") == following

    # -- compare-and-set -------------------------------------------------------------------

    def test_save_writes_the_record_and_appends_its_events(self, store: AccountStore) -> None:
        """save() with the stored version replaces the record and appends the events after the
        earlier ones, in seq order."""
        record, events = new_account("acc-1")
        store.create(record, events)
        second, second_events = advance(record, state=State.SURVEYED, actions=("request", "note"))
        store.save(second, expected_version=1, events=second_events)
        third, third_events = advance(second, state=State.ACTIVE, actions=("keep",))

        store.save(third, expected_version=2, events=third_events)

        assert store.get("acc-1") == third
        assert store.get("acc-1").version == 3
        assert store.history("acc-1") == events + second_events + third_events
        assert [e.seq for e in store.history("acc-1")] == [1, 2, 3, 4]

    @pytest.mark.parametrize("expected_version", [1, 3])
    def test_save_with_another_version_raises_concurrent_update_and_writes_nothing(
        self, store: AccountStore, expected_version: int
    ) -> None:
        """save() whose expected_version is not the stored one raises ConcurrentUpdate and writes
        nothing: neither the record nor the events."""
        record, events = new_account("acc-1")
        store.create(record, events)
        current, current_events = advance(record, state=State.SURVEYED)
        store.save(current, expected_version=1, events=current_events)
        rival, rival_events = advance(record, state=State.PENDING_CONFIRM, actions=("rival",))

        with pytest.raises(ConcurrentUpdate) as info:
            store.save(rival, expected_version=expected_version, events=rival_events)

        assert info.value.account_id == "acc-1"
        assert info.value.expected_version == expected_version
        assert store.get("acc-1") == current
        assert store.history("acc-1") == events + current_events

    # -- unknown ids -----------------------------------------------------------------------

    def test_get_of_an_unknown_id_raises_account_not_found(self, store: AccountStore) -> None:
        """get() of an id never created raises AccountNotFound naming it."""
        with pytest.raises(AccountNotFound) as info:
            store.get("missing")

        assert info.value.account_id == "missing"

    def test_save_of_an_unknown_id_raises_account_not_found_and_writes_nothing(
        self, store: AccountStore
    ) -> None:
        """save() of an id never created raises AccountNotFound and creates nothing."""
        ghost, _ = new_account("ghost")
        following, events = advance(ghost)

        with pytest.raises(AccountNotFound) as info:
            store.save(following, expected_version=1, events=events)

        assert info.value.account_id == "ghost"
        with pytest.raises(AccountNotFound):
            store.get("ghost")
        with pytest.raises(AccountNotFound):
            store.history("ghost")

    def test_history_of_an_unknown_id_raises_account_not_found(self, store: AccountStore) -> None:
        """history() of an id never created raises AccountNotFound naming it."""
        with pytest.raises(AccountNotFound) as info:
            store.history("missing")

        assert info.value.account_id == "missing"

    def test_history_is_kept_per_account(self, store: AccountStore) -> None:
        """Each account's history holds its own events only."""
        first, first_events = new_account("acc-1", actions=("open", "a"))
        second, second_events = new_account("acc-2", actions=("open", "b", "c"))
        store.create(first, first_events)
        store.create(second, second_events)

        assert store.history("acc-1") == first_events
        assert store.history("acc-2") == second_events

    # -- claims taken, kept and dropped by save -------------------------------------------

    def _claimed(self, store: AccountStore, owner: str = "sweeper-1") -> AccountRecord:
        """A due account ``acc-1``, claimed by *owner* until ``NOW + 5 minutes``."""
        record = due_record("acc-1", NOW - timedelta(hours=1))
        store.create(record, ())
        assert store.claim_due(now=NOW, lease=Lease(owner, NOW + _LEASE), limit=10) == [record]
        return record

    def test_save_with_a_lease_claims_the_account_until_the_lease_ends(self, store: AccountStore) -> None:
        """save(lease=...) holds the account against claim_due until lease.until, then frees it."""
        record, events = new_account("acc-1")
        store.create(record, events)
        until = NOW + _LEASE
        cancelled, more = advance(
            record, state=State.CANCELLED, cancelled_at=NOW, purge={"contacts": PurgeProgress()}
        )
        store.save(cancelled, expected_version=1, events=more, lease=Lease("confirm:1", until), now=NOW)

        assert store.claim_due(now=NOW, lease=Lease("sweeper", NOW + _LEASE), limit=10) == []
        assert store.claim_due(now=until - _TICK, lease=Lease("sweeper", until + _LEASE), limit=10) == []
        assert store.claim_due(now=until, lease=Lease("sweeper", until + _LEASE), limit=10) == [cancelled]

    def test_save_without_a_lease_keeps_another_owners_claim(self, store: AccountStore) -> None:
        """save() without lease or release (a user's command) writes the record and leaves the
        claim exactly as it was: its owner still holds it, nobody else may claim the account."""
        record = self._claimed(store, "sweeper-1")
        following, events = advance(record, members=frozenset({"member-1"}))

        store.save(following, expected_version=1, events=events)

        assert store.get("acc-1") == following
        assert store.claim_due(now=NOW, lease=Lease("sweeper-2", NOW + _LEASE), limit=10) == []
        store.release("acc-1", "sweeper-1")
        assert store.claim_due(now=NOW, lease=Lease("sweeper-2", NOW + _LEASE), limit=10) == [following]

    def test_a_lease_write_is_refused_while_another_owners_claim_is_live(self, store: AccountStore) -> None:
        """save(lease=...) for another owner while the claim is live, up to a tick before it
        lapses, raises ConcurrentUpdate and writes nothing: not the record, not its events,
        not the claim (its owner still holds it)."""
        record = self._claimed(store, "sweeper-1")
        taking, events = advance(record, state=State.PURGED)

        for now in (NOW, NOW + _LEASE - _TICK):
            with pytest.raises(ConcurrentUpdate) as info:
                store.save(
                    taking,
                    expected_version=1,
                    events=events,
                    lease=Lease("sweeper-2", now + _LEASE),
                    now=now,
                )
            assert (info.value.account_id, info.value.expected_version) == ("acc-1", 1)

        assert store.get("acc-1") == record
        assert store.history("acc-1") == ()
        assert store.claim_due(now=NOW + _LEASE - _TICK, lease=Lease("s-3", NOW + _LEASE), limit=9) == []
        store.save(taking, expected_version=1, events=events, lease=Lease("sweeper-1", NOW + _LEASE), now=NOW)
        assert store.get("acc-1") == taking

    def test_a_lease_write_takes_a_lapsed_claim_for_its_owner(self, store: AccountStore) -> None:
        """Once another owner's claim has lapsed (at lease.until), save(lease=...) succeeds and
        the claim is the new owner's: the former owner's lease writes are refused from then on."""
        record = self._claimed(store, "sweeper-dead")
        until = NOW + _LEASE
        taken, events = advance(record, purge={"contacts": PurgeProgress(attempts=1)})

        store.save(
            taken, expected_version=1, events=events, lease=Lease("sweeper-2", until + _LEASE), now=until
        )

        assert store.get("acc-1") == taken
        late, late_events = advance(taken, state=State.PURGED)
        with pytest.raises(ConcurrentUpdate):
            store.save(
                late,
                expected_version=2,
                events=late_events,
                lease=Lease("sweeper-dead", until + _LEASE),
                now=until,
            )
        assert store.get("acc-1") == taken
        assert (
            store.claim_due(now=until + _LEASE - _TICK, lease=Lease("s-3", until + 2 * _LEASE), limit=9) == []
        )
        assert store.claim_due(now=until + _LEASE, lease=Lease("s-3", until + 2 * _LEASE), limit=9) == [taken]

    def test_a_lease_write_by_the_claims_owner_renews_it(self, store: AccountStore) -> None:
        """save(lease=...) by the owner of a live claim succeeds and moves the claim's end to
        the new lease.until."""
        record = self._claimed(store, "sweeper-1")
        later = NOW + 3 * _LEASE
        renewed, events = advance(record, purge={"contacts": PurgeProgress(attempts=1)})

        store.save(renewed, expected_version=1, events=events, lease=Lease("sweeper-1", later), now=NOW)

        assert store.get("acc-1") == renewed
        assert store.claim_due(now=NOW + _LEASE, lease=Lease("sweeper-2", later + _LEASE), limit=9) == []
        assert store.claim_due(now=later - _TICK, lease=Lease("sweeper-2", later + _LEASE), limit=9) == []
        assert store.claim_due(now=later, lease=Lease("sweeper-2", later + _LEASE), limit=9) == [renewed]

    def test_a_lease_write_without_now_is_a_value_error_and_writes_nothing(self, store: AccountStore) -> None:
        """save(lease=...) needs now= (to tell whether another claim is live): without it, or with
        a naive one, ValueError, and nothing is written."""
        record, events = new_account("acc-1")
        store.create(record, events)
        following, more = advance(record)

        with pytest.raises(ValueError, match="now"):
            store.save(following, expected_version=1, events=more, lease=Lease("s", NOW + _LEASE))
        with pytest.raises(ValueError, match="now"):
            store.save(
                following,
                expected_version=1,
                events=more,
                lease=Lease("s", NOW + _LEASE),
                now=NOW.replace(tzinfo=None),
            )

        assert store.get("acc-1") == record
        assert store.history("acc-1") == events

    def test_save_releasing_drops_the_claim_of_its_owner(self, store: AccountStore) -> None:
        """save(release=owner) by the claim's owner writes the record and drops the claim in the
        same write: another worker may claim the account at once."""
        record = self._claimed(store, "sweeper-1")
        following, events = advance(record, purge={"contacts": PurgeProgress(attempts=1)})

        store.save(following, expected_version=1, events=events, release="sweeper-1")

        assert store.get("acc-1") == following
        assert store.claim_due(now=NOW, lease=Lease("sweeper-2", NOW + _LEASE), limit=10) == [following]

    def test_save_releasing_for_another_owner_keeps_the_claim(self, store: AccountStore) -> None:
        """save(release=name) when another owner holds the claim writes the record and keeps that
        owner's claim; with no claim at all it writes the record and claims nothing."""
        record = self._claimed(store, "sweeper-1")
        following, events = advance(record, purge={"contacts": PurgeProgress(attempts=1)})

        store.save(following, expected_version=1, events=events, release="sweeper-2")

        assert store.get("acc-1") == following
        assert store.claim_due(now=NOW, lease=Lease("sweeper-3", NOW + _LEASE), limit=10) == []
        store.release("acc-1", "sweeper-1")
        third, more = advance(following, purge={"contacts": PurgeProgress(attempts=2)})
        store.save(third, expected_version=2, events=more, release="sweeper-1")
        assert store.claim_due(now=NOW, lease=Lease("sweeper-3", NOW + _LEASE), limit=10) == [third]

    @pytest.mark.parametrize("how", ["plain", "lease", "release"])
    def test_a_refused_save_leaves_the_claim_as_it_was(self, store: AccountStore, how: str) -> None:
        """A save refused with ConcurrentUpdate (a stale version) neither takes, renews nor drops
        the claim, whether it came with a lease, a release or neither."""
        record = self._claimed(store, "sweeper-1")
        stale, stale_events = advance(record, state=State.PURGED)
        choices: dict[str, dict[str, Any]] = {
            "plain": {},
            "lease": {"lease": Lease("sweeper-1", NOW + 10 * _LEASE), "now": NOW},
            "release": {"release": "sweeper-1"},
        }
        options = choices[how]

        with pytest.raises(ConcurrentUpdate):
            store.save(stale, expected_version=4, events=stale_events, **options)

        assert store.get("acc-1") == record
        assert store.claim_due(now=NOW, lease=Lease("sweeper-2", NOW + _LEASE), limit=10) == []
        assert store.claim_due(now=NOW + _LEASE, lease=Lease("sweeper-2", NOW + 2 * _LEASE), limit=9) == [
            record
        ]

    def test_one_owner_wins_the_claim_when_two_threads_write_with_leases(self, store: AccountStore) -> None:
        """Two workers, each in its own thread, read the account and save it with a lease of
        their own, over and over, while a third thread saves it without a lease (a user's
        commands). Whatever the interleaving, the first lease write takes the claim and every
        lease write of the other worker is refused; the user's writes never drop the claim."""
        record, events = new_account("acc-1")
        store.create(record, events)
        barrier = threading.Barrier(3)
        user_done = threading.Event()
        wins: dict[str, int] = {"worker-a": 0, "worker-b": 0, "user": 0}
        failures: list[BaseException] = []

        def attempt(who: str) -> None:
            current = store.get("acc-1")
            following, more = advance(current, actions=(f"by-{who}",))
            try:
                if who == "user":
                    store.save(following, expected_version=current.version, events=more)
                else:
                    lease = Lease(who, NOW + _LEASE)
                    store.save(following, expected_version=current.version, events=more, lease=lease, now=NOW)
            except ConcurrentUpdate:
                return
            wins[who] += 1

        def user() -> None:
            try:
                barrier.wait(timeout=30)
                for _ in range(25):
                    attempt("user")
            except BaseException as exc:  # reported below
                failures.append(exc)
            finally:
                user_done.set()

        def worker(who: str) -> None:
            # Each worker goes on until the user is done, then makes one more attempt: with the
            # user gone, a failed attempt means the other worker wrote, so one of them wins.
            try:
                barrier.wait(timeout=30)
                while True:
                    last = user_done.is_set()
                    attempt(who)
                    if last:
                        break
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=user)] + [
            threading.Thread(target=worker, args=(who,)) for who in ("worker-a", "worker-b")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

        assert failures == []
        winners = [who for who in ("worker-a", "worker-b") if wins[who]]
        assert len(winners) == 1, wins
        [winner] = winners
        loser = "worker-b" if winner == "worker-a" else "worker-a"
        final = store.get("acc-1")
        assert final.version == 1 + sum(wins.values())
        assert [e.seq for e in store.history("acc-1")] == list(range(1, final.last_seq + 1))
        following, more = advance(final)
        with pytest.raises(ConcurrentUpdate):
            store.save(
                following, expected_version=final.version, events=more, lease=Lease(loser, NOW), now=NOW
            )
        store.save(following, expected_version=final.version, events=more, lease=Lease(winner, NOW), now=NOW)

    # -- claim_due -------------------------------------------------------------------------

    def test_claim_due_returns_only_accounts_whose_purge_work_is_due(self, store: AccountStore) -> None:
        """claim_due() returns cancelled accounts due at or before now and restorable accounts
        whose window has ended, and nothing else."""
        hour = timedelta(hours=1)
        records = [
            due_record("cancelled-an-hour-ago", NOW - hour),
            due_record("cancelled-right-now", NOW),
            due_record("cancelled-in-an-hour", NOW + hour),
            due_record(
                "failed-retry-later",
                NOW - hour,
                purge={"contacts": PurgeProgress(status=PurgeStatus.FAILED, attempts=1, retry_at=NOW + hour)},
            ),
            new_account("active")[0],
            new_account("pending", state=State.PENDING_CONFIRM)[0],
            new_account(
                "window-open",
                state=State.RESTORABLE,
                cancelled_at=NOW - 2 * hour,
                restorable_until=NOW + hour,
            )[0],
            new_account(
                "window-ended",
                state=State.RESTORABLE,
                cancelled_at=NOW - 3 * hour,
                restorable_until=NOW - _TICK,
            )[0],
            new_account("purged", state=State.PURGED, cancelled_at=NOW - 5 * hour)[0],
        ]
        for record in records:
            store.create(record, ())

        claimed = store.claim_due(now=NOW, lease=Lease("sweeper", NOW + _LEASE), limit=100)

        assert [r.account_id for r in claimed] == [
            "cancelled-an-hour-ago",
            "window-ended",
            "cancelled-right-now",
        ]
        assert claimed == [store.get(r.account_id) for r in claimed]

    def test_claim_due_orders_accounts_by_due_time(self, store: AccountStore) -> None:
        """claim_due() returns the longest-overdue accounts first, whatever the creation order."""
        offsets = {"acc-c": 3, "acc-a": 50, "acc-e": 1, "acc-b": 20, "acc-d": 7}
        for account_id, minutes in offsets.items():
            store.create(due_record(account_id, NOW - timedelta(minutes=minutes)), ())

        claimed = store.claim_due(now=NOW, lease=Lease("sweeper", NOW + _LEASE), limit=10)

        assert [r.account_id for r in claimed] == ["acc-a", "acc-b", "acc-d", "acc-c", "acc-e"]

    def test_claim_due_returns_at_most_limit_accounts(self, store: AccountStore) -> None:
        """claim_due(limit=n) claims the n most overdue accounts; the next call gets the next ones."""
        for minutes in range(1, 6):
            store.create(due_record(f"acc-{minutes}", NOW - timedelta(minutes=minutes)), ())

        def claim(owner: str, limit: int) -> list[str]:
            lease = Lease(owner, NOW + _LEASE)
            return [r.account_id for r in store.claim_due(now=NOW, lease=lease, limit=limit)]

        assert claim("sweeper-0", 0) == []
        assert claim("sweeper-1", 2) == ["acc-5", "acc-4"]
        assert claim("sweeper-2", 2) == ["acc-3", "acc-2"]
        assert claim("sweeper-3", 2) == ["acc-1"]
        assert claim("sweeper-4", 2) == []

    def test_claim_due_skips_accounts_under_a_live_claim(self, store: AccountStore) -> None:
        """An account claimed by one worker is not handed to another while the claim lasts."""
        store.create(due_record("acc-1", NOW - timedelta(hours=1)), ())
        store.create(due_record("acc-2", NOW - timedelta(hours=2)), ())
        first = store.claim_due(now=NOW, lease=Lease("sweeper-1", NOW + _LEASE), limit=10)

        second = store.claim_due(now=NOW + _LEASE - _TICK, lease=Lease("sweeper-2", NOW + _LEASE), limit=10)

        assert [r.account_id for r in first] == ["acc-2", "acc-1"]
        assert second == []

    def test_an_expired_claim_can_be_claimed_again(self, store: AccountStore) -> None:
        """A claim whose lease ended (a worker that died) is claimable from lease.until on."""
        record = due_record("acc-1", NOW - timedelta(hours=1))
        store.create(record, ())
        until = NOW + _LEASE
        store.claim_due(now=NOW, lease=Lease("sweeper-dead", until), limit=10)

        early = store.claim_due(now=until - _TICK, lease=Lease("sweeper-2", until + _LEASE), limit=10)
        late = store.claim_due(now=until, lease=Lease("sweeper-2", until + _LEASE), limit=10)

        assert early == []
        assert late == [record]

    def test_claim_due_follows_the_saved_state(self, store: AccountStore) -> None:
        """Saving an account into CANCELLED makes it due; saving it into PURGED takes it out."""
        record, events = new_account("acc-1")
        store.create(record, events)
        lease = Lease("sweeper", NOW + _LEASE)
        assert store.claim_due(now=NOW, lease=lease, limit=10) == []
        cancelled, more = advance(
            record, state=State.CANCELLED, cancelled_at=NOW, purge={"contacts": PurgeProgress()}
        )
        store.save(cancelled, expected_version=1, events=more)
        assert store.claim_due(now=NOW, lease=lease, limit=10) == [cancelled]
        purged, last = advance(
            cancelled, state=State.PURGED, purge={"contacts": PurgeProgress(status=PurgeStatus.DONE)}
        )

        store.save(purged, expected_version=2, events=last, lease=None)

        assert store.claim_due(now=NOW + timedelta(days=365), lease=lease, limit=10) == []

    def test_two_claimers_never_get_the_same_account(self, store: AccountStore) -> None:
        """Workers claiming in parallel threads split the due accounts: none is claimed twice."""
        due = [f"acc-{n:02d}" for n in range(40)]
        for n, account_id in enumerate(due):
            store.create(due_record(account_id, NOW - timedelta(seconds=n)), ())
        workers = 6
        barrier = threading.Barrier(workers)
        claimed: list[list[str]] = [[] for _ in range(workers)]
        failures: list[BaseException] = []

        def work(index: int) -> None:
            try:
                barrier.wait(timeout=30)
                lease = Lease(f"sweeper-{index}", NOW + _LEASE)
                while batch := store.claim_due(now=NOW, lease=lease, limit=3):
                    claimed[index].extend(r.account_id for r in batch)
            except BaseException as exc:  # reported below, with the worker's traceback
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert failures == []
        everything = [account_id for batch in claimed for account_id in batch]
        assert len(everything) == len(due)
        assert sorted(everything) == sorted(due)

    # -- release ---------------------------------------------------------------------------

    def test_release_by_the_claim_owner_frees_the_account(self, store: AccountStore) -> None:
        """release() by the worker holding the claim lets another worker claim the account at once."""
        record = due_record("acc-1", NOW - timedelta(hours=1))
        store.create(record, ())
        store.claim_due(now=NOW, lease=Lease("sweeper-1", NOW + _LEASE), limit=10)

        store.release("acc-1", "sweeper-1")

        assert store.claim_due(now=NOW, lease=Lease("sweeper-2", NOW + _LEASE), limit=10) == [record]

    def test_release_by_another_worker_keeps_the_claim(self, store: AccountStore) -> None:
        """release() by a worker that does not hold the claim changes nothing."""
        store.create(due_record("acc-1", NOW - timedelta(hours=1)), ())
        store.claim_due(now=NOW, lease=Lease("sweeper-1", NOW + _LEASE), limit=10)

        store.release("acc-1", "sweeper-2")

        assert store.claim_due(now=NOW, lease=Lease("sweeper-3", NOW + _LEASE), limit=10) == []

    def test_release_without_a_claim_does_nothing(self, store: AccountStore) -> None:
        """release() of an unclaimed or unknown account neither fails nor changes anything."""
        record = due_record("acc-1", NOW - timedelta(hours=1))
        store.create(record, ())

        store.release("acc-1", "sweeper-1")
        store.release("missing", "sweeper-1")

        assert store.get("acc-1") == record
        assert store.claim_due(now=NOW, lease=Lease("sweeper-2", NOW + _LEASE), limit=10) == [record]

    # -- rows that cannot be decoded ------------------------------------------------------

    @pytest.mark.parametrize("damage", sorted(_DAMAGED_RECORDS))
    def test_get_of_an_undecodable_record_raises_record_corrupt(
        self, store: AccountStore, damage: str
    ) -> None:
        """get() of a record whose stored text cannot be decoded raises RecordCorrupt (a
        StoreError) naming the account and what is wrong, never a JSON, key, type or value
        error, and its message quotes none of the stored text; other accounts still read."""
        record, events = new_account("acc-1", identity=_SECRET)
        store.create(record, events)
        other, _ = new_account("acc-2")
        store.create(other, ())
        self.corrupt_record(store, "acc-1", _DAMAGED_RECORDS[damage](record))

        with pytest.raises(RecordCorrupt) as info:
            store.get("acc-1")

        assert isinstance(info.value, StoreError)
        assert info.value.account_id == "acc-1"
        assert info.value.reason
        assert _SECRET not in str(info.value)
        assert info.value.__cause__ is None
        assert store.get("acc-2") == other
        assert store.history("acc-1") == events

    @pytest.mark.parametrize("damage", sorted(_DAMAGED_EVENTS))
    def test_history_with_an_undecodable_event_raises_history_tampered(
        self, store: AccountStore, damage: str
    ) -> None:
        """history() with an event whose stored text cannot be decoded raises HistoryTampered at
        that event's position, and its message quotes none of the stored text."""
        record, events = new_account("acc-1", actions=("open", "second", "third"))
        store.create(record, events)
        self.corrupt_event(store, "acc-1", 2, _DAMAGED_EVENTS[damage](events[1]))

        with pytest.raises(HistoryTampered) as info:
            store.history("acc-1")

        assert (info.value.account_id, info.value.seq) == ("acc-1", 2)
        assert _SECRET not in str(info.value)
        assert info.value.__cause__ is None
        assert store.get("acc-1") == record

    def test_claim_due_returns_an_undecodable_record_as_corrupt_among_the_others(
        self, store: AccountStore
    ) -> None:
        """claim_due() claims a due account whose record cannot be decoded like any other and
        returns it, in its place, as a CorruptRecord naming it and what is wrong (no stored
        text); the accounts around it come back decoded. The corrupt one stays claimed until
        its owner releases it or the lease lapses."""
        oldest = due_record("acc-1", NOW - timedelta(hours=3))
        broken = due_record("acc-2", NOW - timedelta(hours=2), identity=_SECRET)
        newest = due_record("acc-3", NOW - timedelta(hours=1))
        for record in (oldest, broken, newest):
            store.create(record, ())
        self.corrupt_record(store, "acc-2", _DAMAGED_RECORDS["not-json"](broken))

        claimed = store.claim_due(now=NOW, lease=Lease("sweeper-1", NOW + _LEASE), limit=10)

        assert [type(item).__name__ for item in claimed] == [
            "AccountRecord",
            "CorruptRecord",
            "AccountRecord",
        ]
        assert claimed[0] == oldest
        assert claimed[2] == newest
        corrupt = claimed[1]
        assert isinstance(corrupt, CorruptRecord)
        assert corrupt.account_id == "acc-2"
        assert corrupt.reason
        assert _SECRET not in corrupt.reason
        assert store.claim_due(now=NOW, lease=Lease("sweeper-2", NOW + _LEASE), limit=10) == []
        store.release("acc-2", "sweeper-2")  # not its claim: kept
        assert store.claim_due(now=NOW, lease=Lease("sweeper-2", NOW + _LEASE), limit=10) == []
        store.release("acc-2", "sweeper-1")
        [again] = store.claim_due(now=NOW, lease=Lease("sweeper-2", NOW + _LEASE), limit=10)
        assert isinstance(again, CorruptRecord)
        assert again.account_id == "acc-2"

    def test_claim_due_counts_an_undecodable_record_in_its_limit(self, store: AccountStore) -> None:
        """A corrupt due record takes one place of the batch like any other (limit=1 returns it
        alone when it is the most overdue); the next call returns the next account."""
        broken = due_record("acc-1", NOW - timedelta(hours=2))
        fine = due_record("acc-2", NOW - timedelta(hours=1))
        store.create(broken, ())
        store.create(fine, ())
        self.corrupt_record(store, "acc-1", _DAMAGED_RECORDS["wrong-types"](broken))

        first = store.claim_due(now=NOW, lease=Lease("sweeper-1", NOW + _LEASE), limit=1)
        second = store.claim_due(now=NOW, lease=Lease("sweeper-1", NOW + _LEASE), limit=1)

        assert [(type(item).__name__, item.account_id) for item in first] == [("CorruptRecord", "acc-1")]
        assert second == [fine]

    # -- holds, reminders, identifiers -----------------------------------------------------

    def test_holds_reminders_and_identifiers_round_trip(self, store: AccountStore) -> None:
        """get() returns legal holds, reminders and identifiers exactly as created and saved."""
        record, events = new_account(
            "acc-1",
            state=State.RESTORABLE,
            cancelled_at=NOW - timedelta(days=60),
            restorable_until=NOW + timedelta(days=30),
            holds={"contacts": Hold(at=NOW - timedelta(days=61), by="support:ann", reason="case 7 \u00e9")},
            reminders=(Reminder("7 days", NOW + timedelta(days=23), sent_at=None),),
            identifiers={"email": "ann@example.com", "phone": HeldIdentifier("+15550100", NOW)},
        )
        store.create(record, events, now=NOW)
        sent, more = advance(
            record,
            reminders=(Reminder("7 days", NOW + timedelta(days=23), sent_at=NOW + timedelta(days=23)),),
            holds={},
        )
        store.save(sent, expected_version=1, events=more, now=NOW)

        assert store.get("acc-1") == sent
        assert store.get("acc-1").identifiers["phone"] == HeldIdentifier("+15550100", NOW)

    def test_create_rejects_an_identifier_another_account_holds(self, store: AccountStore) -> None:
        """create() with an identifier (kind and value) another account holds raises AccountExists
        naming the value and the kind, and stores nothing of the new account."""
        store.create(*new_account("acc-1", identifiers={"email": "ann@example.com"}), now=NOW)
        second, events = new_account("acc-2", identifiers={"phone": "+15550100", "email": "ann@example.com"})

        with pytest.raises(AccountExists) as info:
            store.create(second, events, now=NOW)

        assert (info.value.account_id, info.value.identity, info.value.kind) == (
            "acc-2",
            "ann@example.com",
            "email",
        )
        with pytest.raises(AccountNotFound):
            store.get("acc-2")
        store.create(*new_account("acc-3", identifiers={"phone": "+15550100"}), now=NOW)  # not taken

    def test_identifiers_are_unique_per_kind(self, store: AccountStore) -> None:
        """The same value under two kinds, or two values of one kind, never conflict; nor does an
        identifier with the single identity of the same text."""
        store.create(*new_account("acc-1", identity="ann", identifiers={"email": "ann", "username": "ann"}))
        store.create(*new_account("acc-2", identifiers={"email": "bob", "username": "bob"}))

        assert store.get("acc-1").identifiers["username"].value == "ann"
        assert store.get("acc-2").identifiers["email"].value == "bob"

    @pytest.mark.parametrize(
        ("free_at", "now", "taken"),
        [
            (NOW - _TICK, NOW, True),
            (NOW, NOW, True),
            (NOW + _TICK, NOW, False),
            (None, NOW, False),
            (NOW - timedelta(days=1), None, False),
        ],
    )
    def test_an_identifier_may_be_taken_once_its_holder_frees_it(
        self, store: AccountStore, free_at: datetime | None, now: datetime | None, taken: bool
    ) -> None:
        """create(now=...) takes an identifier whose holder's free_at is at or before now; one
        held until further notice (None), or later, or compared with no now, is refused."""
        holder = {"email": HeldIdentifier("ann@example.com", free_at)}
        store.create(*new_account("acc-old", identifiers=holder), now=NOW - timedelta(days=2))
        record, events = new_account("acc-new", identifiers={"email": "ann@example.com"})

        if taken:
            store.create(record, events, now=now)
            assert store.get("acc-new") == record
        else:
            with pytest.raises(AccountExists):
                store.create(record, events, now=now)

    def test_save_frees_an_identifier_and_the_holder_keeps_saving_after_it_is_taken(
        self, store: AccountStore
    ) -> None:
        """save() writes each identifier's free_at; once it has passed another account may take
        the identifier, and the former holder's later saves neither fail nor take it back."""
        old, events = new_account("acc-old", identifiers={"email": "ann@example.com"})
        store.create(old, events, now=NOW)
        freed, more = advance(
            old, state=State.PURGED, identifiers={"email": HeldIdentifier("ann@example.com", NOW)}
        )
        store.save(freed, expected_version=1, events=more, now=NOW)
        early, early_events = new_account("acc-early", identifiers={"email": "ann@example.com"})
        with pytest.raises(AccountExists):
            store.create(early, early_events, now=NOW - _TICK)
        store.create(*new_account("acc-new", identifiers={"email": "ann@example.com"}), now=NOW)
        later, last = advance(freed, members=frozenset({"member-1"}))

        store.save(later, expected_version=2, events=last, now=NOW + _TICK)

        assert store.get("acc-old") == later
        rival, rival_events = new_account("acc-rival", identifiers={"email": "ann@example.com"})
        with pytest.raises(AccountExists):
            store.create(rival, rival_events, now=NOW + timedelta(days=365))

    def test_save_rejects_taking_an_identifier_another_account_holds(self, store: AccountStore) -> None:
        """save() giving an account an identifier another account holds raises AccountExists
        and writes nothing."""
        store.create(*new_account("acc-1", identifiers={"phone": "+15550100"}), now=NOW)
        other, other_events = new_account("acc-2")
        store.create(other, other_events)
        taking, events = advance(other, identifiers={"phone": "+15550100"})

        with pytest.raises(AccountExists) as info:
            store.save(taking, expected_version=1, events=events, now=NOW)

        assert (info.value.identity, info.value.kind) == ("+15550100", "phone")
        assert store.get("acc-2") == other
        assert store.history("acc-2") == other_events

    @pytest.mark.parametrize("quarantine_over", [True, False])
    def test_concurrent_opens_of_one_quarantined_identifier_have_at_most_one_winner(
        self, store: AccountStore, quarantine_over: bool
    ) -> None:
        """Accounts created at once in parallel threads with the identifier a purged account
        held: exactly one wins once its quarantine is over, none while it lasts; the others get
        AccountExists."""
        free_at = NOW - timedelta(days=1) if quarantine_over else NOW + timedelta(days=1)
        held = {"email": HeldIdentifier("ann@example.com", free_at)}
        store.create(
            *new_account("acc-old", state=State.PURGED, identifiers=held), now=NOW - timedelta(days=40)
        )
        workers = 6
        barrier = threading.Barrier(workers)
        outcomes: list[str] = []
        failures: list[BaseException] = []

        def work(index: int) -> None:
            record, events = new_account(f"acc-{index}", identifiers={"email": "ann@example.com"})
            try:
                barrier.wait(timeout=30)
                store.create(record, events, now=NOW)
                outcomes.append(record.account_id)
            except AccountExists:
                outcomes.append("refused")
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert failures == []
        winners = [o for o in outcomes if o != "refused"]
        assert len(outcomes) == workers
        assert len(winners) == (1 if quarantine_over else 0)
        for winner in winners:
            assert store.get(winner).identifiers["email"].value == "ann@example.com"

    def test_claim_due_skips_work_that_waits_for_a_legal_hold(self, store: AccountStore) -> None:
        """A cancelled account whose only pending category is under a "wait" hold is not due; a
        "retain" hold lets it move on, so it is due; once the hold is gone it is due again."""
        hour = timedelta(hours=1)
        waiting = due_record(
            "waiting", NOW - hour, holds={"contacts": Hold(NOW - 2 * hour, "support:ann", "case 1")}
        )
        retained = due_record(
            "retained",
            NOW - hour,
            holds={"contacts": Hold(NOW - 2 * hour, "support:ann", "case 2", "retain")},
        )
        store.create(waiting, ())
        store.create(retained, ())

        claimed = store.claim_due(now=NOW, lease=Lease("sweeper", NOW + _LEASE), limit=10)
        released, events = advance(waiting, holds={})
        store.save(released, expected_version=1, events=events)

        assert [r.account_id for r in claimed] == ["retained"]
        assert store.claim_due(now=NOW, lease=Lease("sweeper-2", NOW + _LEASE), limit=10) == [released]

    def test_claim_due_follows_the_next_unsent_reminder(self, store: AccountStore) -> None:
        """A restorable account is due at its earliest unsent reminder, before its window ends."""
        until = NOW + timedelta(days=7)
        record, events = new_account(
            "acc-1",
            state=State.RESTORABLE,
            cancelled_at=NOW - timedelta(days=23),
            restorable_until=until,
            reminders=(
                Reminder("7 days", NOW, sent_at=NOW),
                Reminder("1 day", until - timedelta(days=1)),
            ),
        )
        store.create(record, events)

        early = store.claim_due(
            now=until - timedelta(days=1) - _TICK, lease=Lease("s", NOW + _LEASE), limit=9
        )
        on_time = store.claim_due(now=until - timedelta(days=1), lease=Lease("s", until), limit=9)

        assert early == []
        assert on_time == [record]

    # -- sealed values, aliases, given-up identifiers, account ids -----------------------------

    def test_sealed_values_come_back_with_their_events(self, store: AccountStore) -> None:
        """An event's ``sealed_values`` are written beside it and come back from ``history``
        with it; events without any come back without any."""
        record, events = _sealed_account("acc-1", {"answers": {"why": "too dear"}})
        store.create(record, events)
        following, more = _sealed_events(record, {"reason": "case 7"}, version=2)
        store.save(following, expected_version=1, events=more)

        history = store.history("acc-1")

        assert [dict(e.sealed_values) for e in history] == [
            {},
            {"answers": SealedValue("salt-2", {"why": "too dear"})},
            {"reason": SealedValue("salt-3", "case 7")},
        ]
        assert [e.hash for e in history] == [e.hash for e in (*events, *more)]

    def test_erase_sealed_erases_every_sealed_value_of_the_account_only(self, store: AccountStore) -> None:
        """``save(..., erase_sealed=True)`` erases the sealed values of the account's events in
        the write, keeps the events themselves, and leaves other accounts' values alone; the
        events of that same write keep theirs."""
        first, first_events = _sealed_account("acc-1", {"answers": {"why": "too dear"}})
        other, other_events = _sealed_account("acc-2", {"answers": {"why": "moving"}})
        store.create(first, first_events)
        store.create(other, other_events)
        purged, purge_events = _sealed_events(first, {"note": "kept"}, version=2)

        store.save(purged, expected_version=1, events=purge_events, erase_sealed=True)

        history = store.history("acc-1")
        assert [e.hash for e in history] == [e.hash for e in (*first_events, *purge_events)]
        assert [dict(e.sealed_values) for e in history] == [{}, {}, {"note": SealedValue("salt-3", "kept")}]
        assert store.history("acc-2")[1].sealed_values["answers"].value == {"why": "moving"}

    def test_a_refused_save_erases_no_sealed_value(self, store: AccountStore) -> None:
        """A save refused with ``ConcurrentUpdate`` erases nothing."""
        record, events = _sealed_account("acc-1", {"answers": {"why": "too dear"}})
        store.create(record, events)
        stale, more = advance(record)

        with pytest.raises(ConcurrentUpdate):
            store.save(stale, expected_version=7, events=more, erase_sealed=True)

        assert store.history("acc-1")[1].sealed_values["answers"].value == {"why": "too dear"}

    def test_an_alias_held_as_a_live_identity_refuses_the_create(self, store: AccountStore) -> None:
        """An alias of the new record's identity that another account holds live counts as the
        identity itself: ``AccountExists``, nothing stored."""
        holder, holder_events = new_account("acc-1", identity="k1:old-digest")
        store.create(holder, holder_events)
        record, events = new_account("acc-2", identity="k1+k2:new-digest")

        with pytest.raises(AccountExists) as info:
            store.create(record, events, now=NOW, aliases={"k1+k2:new-digest": ("k1:old-digest",)})

        assert info.value.identity == "k1+k2:new-digest"
        with pytest.raises(AccountNotFound):
            store.get("acc-2")

    def test_an_alias_of_a_released_identity_does_not_refuse(self, store: AccountStore) -> None:
        """An alias whose holder released the identity lets the new account open."""
        holder, holder_events = new_account("acc-1", identity="k1:old", identity_released_at=NOW)
        store.create(holder, holder_events)
        record, events = new_account("acc-2", identity="k1+k2:new")

        store.create(record, events, now=NOW, aliases={"k1+k2:new": ("k1:old",)})

        assert store.get("acc-2").live_identity == "k1+k2:new"

    def test_an_alias_of_an_identifier_is_refused_while_held_and_given_up_once_free(
        self, store: AccountStore
    ) -> None:
        """An alias of an identifier held by another account refuses the create until the
        holder's ``free_at``; from then on the new account takes it and the alias is given up
        (it no longer refuses anyone)."""
        holder, holder_events = new_account(
            "acc-1", identifiers={"email": HeldIdentifier("k1:old", free_at=NOW + timedelta(days=1))}
        )
        store.create(holder, holder_events, now=NOW)
        aliases = {"k1+k2:new": ("k1:old",)}
        early, early_events = new_account("acc-2", identifiers={"email": "k1+k2:new"})

        with pytest.raises(AccountExists) as info:
            store.create(early, early_events, now=NOW, aliases=aliases)
        assert (info.value.kind, info.value.identity) == ("email", "k1+k2:new")

        later = NOW + timedelta(days=1)
        store.create(early, early_events, now=later, aliases=aliases)
        third, third_events = new_account("acc-3", identifiers={"email": "k1:old"})
        store.create(third, third_events, now=later)  # the alias row was given up

        assert store.get("acc-2").identifiers["email"].value == "k1+k2:new"
        other, other_events = new_account("acc-4", identifiers={"email": "k1+k2:new"})
        with pytest.raises(AccountExists):
            store.create(other, other_events, now=later)

    def test_save_gives_up_identifiers_the_record_no_longer_lists(self, store: AccountStore) -> None:
        """An identifier the saved record does not list any more is free for another account at
        once (a re-keyed digest replaces the old one; a purge drops one free from then on)."""
        record, events = new_account("acc-1", identifiers={"email": "k1:old", "phone": "k1:tel"})
        store.create(record, events, now=NOW)
        rekeyed, more = advance(record, identifiers={"email": "k1+k2:new", "phone": "k1:tel"})
        store.save(rekeyed, expected_version=1, events=more, now=NOW)

        other, other_events = new_account("acc-2", identifiers={"email": "k1:old"})
        store.create(other, other_events, now=NOW)
        taken, taken_events = new_account("acc-3", identifiers={"email": "k1+k2:new"})
        with pytest.raises(AccountExists):
            store.create(taken, taken_events, now=NOW)
        phone, phone_events = new_account("acc-4", identifiers={"phone": "k1:tel"})
        with pytest.raises(AccountExists):
            store.create(phone, phone_events, now=NOW)

    def test_save_many_erases_the_sealed_values_of_a_write_that_says_so(self, store: AccountStore) -> None:
        """In a batch (``save_many``, or its one-save-per-write fallback) a write with
        ``erase_sealed`` erases its account's sealed values; the other writes keep theirs."""
        first, first_events = _sealed_account("acc-1", {"answers": {"why": "too dear"}})
        other, other_events = _sealed_account("acc-2", {"answers": {"why": "moving"}})
        store.create(first, first_events)
        store.create(other, other_events)
        purged, purge_events = advance(first)
        kept, kept_events = advance(other)

        results = save_many(
            store,
            [Write(purged, 1, purge_events, erase_sealed=True), Write(kept, 1, kept_events)],
            now=NOW,
        )

        assert results == [None, None]
        assert [dict(e.sealed_values) for e in store.history("acc-1")] == [{}, {}, {}]
        assert store.history("acc-2")[1].sealed_values["answers"].value == {"why": "moving"}

    def test_save_many_gives_up_identifiers_and_erases_sealed_values_of_the_writes_made_only(
        self, store: AccountStore
    ) -> None:
        """In a batch, a write made without identifiers gives up the identifier rows its account
        held, and one made with ``erase_sealed`` erases its sealed values; a refused write (a
        stale version) gives up and erases nothing, and an account written with identifiers
        keeps them."""
        accounts = {}
        for i in range(3):
            record, events = new_account(f"acc-{i}", identifiers={"email": f"k1:mail-{i}"})
            sealed, more = _sealed_events(record, {"answers": {"why": f"reason {i}"}}, version=1)
            store.create(sealed, (*events, *more), now=NOW)
            accounts[i] = sealed
        dropped = [advance(accounts[i], identifiers={}) for i in range(3)]
        kept = advance(accounts[2])

        results = save_many(
            store,
            [
                Write(dropped[0][0], 1, dropped[0][1], erase_sealed=True),  # made: gives up, erases
                Write(dropped[1][0], 7, dropped[1][1], erase_sealed=True),  # stale: refused
                Write(kept[0], 1, kept[1]),  # made, keeping its identifier and sealed values
            ],
            now=NOW,
        )
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], ConcurrentUpdate)

        assert [dict(e.sealed_values) for e in store.history("acc-0")] == [{}, {}, {}]
        assert store.history("acc-1")[1].sealed_values["answers"].value == {"why": "reason 1"}
        assert store.history("acc-2")[1].sealed_values["answers"].value == {"why": "reason 2"}
        store.create(*new_account("new-0", identifiers={"email": "k1:mail-0"}), now=NOW)  # free now
        for i in (1, 2):
            with pytest.raises(AccountExists):
                store.create(*new_account(f"new-{i}", identifiers={"email": f"k1:mail-{i}"}), now=NOW)

    def test_account_ids_lists_every_account(self, store: AccountStore) -> None:
        for account_id in ("b", "a", "c"):
            store.create(*new_account(account_id))

        assert sorted(store.account_ids()) == ["a", "b", "c"]

    # -- queries: list_accounts (optional: QueryStore; skipped, saying so, without it) ---------

    @staticmethod
    def _lister(store: AccountStore) -> Callable[..., Sequence[AccountRecord | CorruptRecord]]:
        """The store's ``list_accounts``; the test is skipped when it has none."""
        lister = getattr(store, "list_accounts", None)
        if not callable(lister):
            pytest.skip(
                f"{type(store).__name__} has no list_accounts(query, *, after, limit): it is no "
                "QueryStore, so the tests of operators' queries do not apply"
            )
        return cast(Callable[..., Sequence[AccountRecord | CorruptRecord]], lister)

    @staticmethod
    def _walk(
        lister: Callable[..., Sequence[AccountRecord | CorruptRecord]],
        query: AccountQuery,
        *,
        limit: int,
        after: str | None = None,
        between: Callable[[int], None] | None = None,
    ) -> list[str]:
        """Every page of *query* from *after*, *limit* at a time: the ids in the order read.
        *between* (the number of pages read so far) runs between two page reads."""
        ids: list[str] = []
        for pages in range(1, 10_000):
            page = lister(query, after=after, limit=limit)
            assert len(page) <= limit
            ids += [item.account_id for item in page]
            if len(page) < limit:
                return ids
            after = page[-1].account_id
            if between is not None:
                between(pages)
        raise AssertionError("the walk never ended: a full page kept coming")

    def test_list_accounts_returns_every_account_in_id_order_as_get_reads_it(
        self, store: AccountStore
    ) -> None:
        """Without conditions every account comes back, ordered by account_id whatever the order
        they were created in, each equal field for field to what get() returns."""
        lister = self._lister(store)
        created = [
            new_account("acc-3"),
            (due_record("acc-1", NOW - timedelta(hours=1), identity="digest-1"), ()),
            new_account("acc-2", members=frozenset({"m-1"})),
        ]
        for record, events in created:
            store.create(record, events)

        listed = lister(AccountQuery(), after=None, limit=10)

        assert [r.account_id for r in listed] == ["acc-1", "acc-2", "acc-3"]
        assert list(listed) == [store.get(r.account_id) for r in listed]

    def test_list_accounts_filters_by_state(self, store: AccountStore) -> None:
        """states: the account is in one of them; an empty set matches nothing."""
        lister = self._lister(store)
        store.create(*new_account("a-active"))
        store.create(due_record("b-cancelled", NOW), ())
        store.create(*new_account("c-purged", state=State.PURGED))
        store.create(*new_account("d-active"))

        def ids(*states: State) -> list[str]:
            query = AccountQuery(states=frozenset(states))
            return [r.account_id for r in lister(query, after=None, limit=10)]

        assert ids(State.ACTIVE) == ["a-active", "d-active"]
        assert ids(State.CANCELLED, State.PURGED) == ["b-cancelled", "c-purged"]
        assert ids(State.RESTORABLE) == []
        assert ids() == []

    def test_list_accounts_filters_by_work_due_strictly_before_a_moment(self, store: AccountStore) -> None:
        """due_before: the account's next purge work (schedule.due_at) is due strictly before the
        moment; an account with nothing due (active, or waiting for a legal hold) never matches."""
        lister = self._lister(store)
        hour = timedelta(hours=1)
        store.create(due_record("early", NOW - hour), ())
        store.create(due_record("exactly", NOW), ())
        store.create(due_record("late", NOW + hour), ())
        store.create(*new_account("active"))
        held = {"contacts": Hold(NOW - 2 * hour, "support:ann", "case 1")}
        store.create(due_record("waiting", NOW - hour, holds=held), ())

        def ids(moment: datetime) -> list[str]:
            return [r.account_id for r in lister(AccountQuery(due_before=moment), after=None, limit=10)]

        assert ids(NOW) == ["early"]
        assert ids(NOW + _TICK) == ["early", "exactly"]
        assert ids(NOW + 2 * hour) == ["early", "exactly", "late"]
        assert ids(NOW - 2 * hour) == []
        # the same moment in another zone is the same moment
        assert ids(NOW.astimezone(timezone(timedelta(hours=-5)))) == ["early"]

    def test_list_accounts_filters_by_legal_holds_both_ways(self, store: AccountStore) -> None:
        """with_holds=True: accounts with a legal hold; False: those without one."""
        lister = self._lister(store)
        hold = Hold(NOW, "support:ann", "case 7", "retain")
        store.create(*new_account("a-held", holds={"files": hold}))
        store.create(*new_account("b-free"))
        store.create(due_record("c-held", NOW, holds={"contacts": hold}), ())

        held = lister(AccountQuery(with_holds=True), after=None, limit=10)
        free = lister(AccountQuery(with_holds=False), after=None, limit=10)

        assert [r.account_id for r in held] == ["a-held", "c-held"]
        assert [r.account_id for r in free] == ["b-free"]

    def test_list_accounts_filters_by_failed_steps_both_ways(self, store: AccountStore) -> None:
        """with_failed_steps=True: a purge step of the account has failed; False: none has (a
        pending or done step is no failure)."""
        lister = self._lister(store)
        failed = PurgeProgress(PurgeStatus.FAILED, attempts=2, error="timeout", at=NOW, retry_at=NOW)
        store.create(due_record("a-failed", NOW, purge={"contacts": PurgeProgress(), "files": failed}), ())
        store.create(due_record("b-pending", NOW), ())
        done = PurgeProgress(PurgeStatus.DONE, attempts=1, at=NOW)
        store.create(*new_account("c-purged", state=State.PURGED, purge={"contacts": done}))

        with_failures = lister(AccountQuery(with_failed_steps=True), after=None, limit=10)
        without = lister(AccountQuery(with_failed_steps=False), after=None, limit=10)

        assert [r.account_id for r in with_failures] == ["a-failed"]
        assert [r.account_id for r in without] == ["b-pending", "c-purged"]

    def test_list_accounts_pages_after_an_id_and_takes_at_most_limit(self, store: AccountStore) -> None:
        """after: only ids greater than it (it need not be a stored id); limit: at most that many,
        and 0 reads none."""
        lister = self._lister(store)
        for account_id in ("acc-1", "acc-2", "acc-4", "acc-5"):
            store.create(*new_account(account_id))

        def ids(after: str | None, limit: int) -> list[str]:
            return [r.account_id for r in lister(AccountQuery(), after=after, limit=limit)]

        assert ids(None, 2) == ["acc-1", "acc-2"]
        assert ids("acc-2", 2) == ["acc-4", "acc-5"]
        assert ids("acc-3", 1) == ["acc-4"]
        assert ids("acc-5", 2) == []
        assert ids(None, 0) == []

    def test_a_page_is_short_only_when_nothing_more_matches(self, store: AccountStore) -> None:
        """Matches far apart, with hundreds of accounts between them that do not match, still fill
        the page: a store that filters after reading must read on until the page is full."""
        lister = self._lister(store)
        hold = {"files": Hold(NOW, "support:ann", "case 9")}
        store.create(*new_account("acc-0000", holds=hold))
        for number in range(1, 600):
            store.create(*new_account(f"acc-{number:04d}"))
        store.create(*new_account("acc-0600", holds=hold))
        store.create(*new_account("acc-0601", holds=hold))

        first = lister(AccountQuery(with_holds=True), after=None, limit=2)
        rest = lister(AccountQuery(with_holds=True), after="acc-0600", limit=2)

        assert [r.account_id for r in first] == ["acc-0000", "acc-0600"]
        assert [r.account_id for r in rest] == ["acc-0601"]

    @pytest.mark.parametrize("damage", ["not-json", "a-field-missing", "wrong-types"])
    def test_list_accounts_returns_an_undecodable_record_as_corrupt_in_its_place(
        self, store: AccountStore, damage: str
    ) -> None:
        """A row that cannot be decoded comes back as a CorruptRecord, in its place, when what
        the store keeps beside it matches (state, due time, holds and failed steps, as last
        written: a store that keeps no columns cannot tell them and lists it), and not when its
        state or due time do not; the reason quotes none of the stored text."""
        lister = self._lister(store)
        hold = {"files": Hold(NOW, "support:ann", "case 3")}
        store.create(due_record("acc-1", NOW - _TICK, holds=hold), ())
        broken = due_record("acc-2", NOW - _TICK, identity=_SECRET, holds=hold)
        store.create(broken, ())
        store.create(due_record("acc-3", NOW - _TICK, holds=hold), ())
        self.corrupt_record(store, "acc-2", _DAMAGED_RECORDS[damage](broken))

        cancelled = frozenset({State.CANCELLED})
        listed = lister(AccountQuery(states=cancelled, due_before=NOW, with_holds=True), after=None, limit=10)
        paged = lister(AccountQuery(states=cancelled), after="acc-1", limit=1)
        active = lister(AccountQuery(states=frozenset({State.ACTIVE})), after=None, limit=10)
        not_due = lister(AccountQuery(due_before=NOW - _TICK), after=None, limit=10)

        assert [type(item).__name__ for item in listed] == ["AccountRecord", "CorruptRecord", "AccountRecord"]
        corrupt = listed[1]
        assert isinstance(corrupt, CorruptRecord)
        assert corrupt.account_id == "acc-2"
        assert corrupt.reason
        assert _SECRET not in corrupt.reason
        assert [(type(item).__name__, item.account_id) for item in paged] == [("CorruptRecord", "acc-2")]
        assert active == []
        assert not_due == []

    @given(data=st.data())
    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=_QUERY_CHECKS,
    )
    def test_walking_every_page_yields_exactly_the_matching_ids_in_order_once(
        self, store: AccountStore, data: st.DataObject
    ) -> None:
        """For random accounts (states, due times, holds, failed steps), a random query and a
        random page size, walking every page yields exactly the ids of the matching accounts, in
        order, each once. (Each example writes its own ids, all after the earlier examples'.)"""
        lister = self._lister(store)
        prefix = self._example_prefix(store)
        records = data.draw(st.lists(_query_records(prefix), max_size=12, unique_by=lambda r: r.account_id))
        for record in records:
            store.create(record, ())
        query = data.draw(_queries())
        limit = data.draw(st.integers(min_value=1, max_value=5))

        ids = self._walk(lister, query, limit=limit, after=prefix)

        assert ids == sorted(r.account_id for r in records if _matches(query, r))

    @given(data=st.data())
    @settings(
        max_examples=20,
        deadline=None,
        suppress_health_check=_QUERY_CHECKS,
    )
    def test_walking_while_accounts_change_state_never_yields_an_id_twice(
        self, store: AccountStore, data: st.DataObject
    ) -> None:
        """Accounts saved with new states between two page reads (some already listed, some not
        yet) never make the walk yield an id twice nor go back; an account that matched all along
        is yielded exactly once."""
        lister = self._lister(store)
        prefix = self._example_prefix(store)
        states = (State.ACTIVE, State.PENDING_CONFIRM, State.PURGED)
        count = data.draw(st.integers(min_value=1, max_value=10))
        current = {}
        for number in range(count):
            record, events = new_account(f"{prefix}n{number:02d}", state=data.draw(st.sampled_from(states)))
            store.create(record, events)
            current[record.account_id] = record
        wanted = frozenset(data.draw(st.sets(st.sampled_from(states), min_size=1)))
        query = AccountQuery(states=wanted)
        limit = data.draw(st.integers(min_value=1, max_value=3))
        changed: set[str] = set()

        def change(pages: int) -> None:
            moves = data.draw(st.lists(st.tuples(st.sampled_from(sorted(current)), st.sampled_from(states))))
            for account_id, state in moves:
                record = current[account_id]
                following, events = advance(record, state=state)
                store.save(following, expected_version=record.version, events=events)
                current[account_id] = following
                changed.add(account_id)

        ids = self._walk(lister, query, limit=limit, after=prefix, between=change)

        assert ids == sorted(set(ids))
        assert all(i.startswith(prefix) for i in ids)
        steady = {i for i, r in current.items() if i not in changed and r.state in wanted}
        assert steady <= set(ids)

    def _listed_and_decoded(
        self,
        store: AccountStore,
        query: AccountQuery,
        ids: Sequence[str],
        *,
        after: str | None,
        limit: int = 2,
    ) -> tuple[list[str], list[str]]:
        """The ids *query* lists after *after* (every page, *limit* at a time), and those of
        *ids* (every id after *after*) whose record, read back with ``get``, matches it."""
        listed = self._walk(self._lister(store), query, limit=limit, after=after)
        decoded = sorted(i for i in ids if _matches(query, store.get(i)))
        return listed, decoded

    def test_holds_and_failed_steps_listed_follow_every_write(self, store: AccountStore) -> None:
        """After holds are placed and released and purge steps fail and are retried (by save and
        by save_many), every query on holds and failed steps (alone, together, with a state)
        lists exactly the accounts whose records, decoded, match it: a store that keeps what it
        filters on beside the record must update it with every write."""
        self._lister(store)
        hold = {"files": Hold(NOW, "support:ann", "case 12")}
        failed = {
            "contacts": PurgeProgress(PurgeStatus.FAILED, attempts=1, error="timeout", at=NOW, retry_at=NOW)
        }
        retried = {"contacts": PurgeProgress(PurgeStatus.PENDING, attempts=1, at=NOW)}
        ids = [f"flag-{n}" for n in range(6)]
        records = {}
        for account_id in ids:
            record = due_record(account_id, NOW, holds=hold if account_id in ("flag-0", "flag-3") else {})
            store.create(record, ())
            records[account_id] = record

        def write(changes: dict[str, dict[str, Any]], *, batch: bool) -> None:
            nxt = {i: advance(records[i], **fields) for i, fields in changes.items()}
            if batch:
                assert save_many(store, [_write(w, records[i].version) for i, w in nxt.items()], now=NOW) == [
                    None
                ] * len(nxt)
            else:
                for i, (record, events) in nxt.items():
                    store.save(record, expected_version=records[i].version, events=events)
            records.update({i: record for i, (record, _) in nxt.items()})

        write({"flag-0": {"holds": {}}, "flag-1": {"holds": hold}, "flag-2": {"purge": failed}}, batch=False)
        write(
            {"flag-3": {"holds": {}, "purge": failed}, "flag-4": {"purge": failed, "holds": hold}}, batch=True
        )
        write({"flag-2": {"purge": retried}, "flag-5": {"holds": hold}}, batch=False)
        write({"flag-4": {"holds": {}}, "flag-5": {"holds": {}, "purge": failed}}, batch=True)
        write({"flag-1": {"state": State.RESTORABLE, "restorable_until": NOW}}, batch=False)

        cancelled = frozenset({State.CANCELLED})
        for with_holds in (True, False, None):
            for with_failed_steps in (True, False, None):
                for states in (None, cancelled):
                    query = AccountQuery(states, None, with_holds, with_failed_steps)
                    listed, decoded = self._listed_and_decoded(store, query, ids, after=None)
                    assert listed == decoded, query
        held = AccountQuery(with_holds=True)
        assert self._listed_and_decoded(store, held, ids, after=None) == (["flag-1"], ["flag-1"])
        failing = AccountQuery(with_failed_steps=True)
        assert self._listed_and_decoded(store, failing, ids, after=None)[0] == ["flag-3", "flag-4", "flag-5"]

    @given(data=st.data())
    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=_QUERY_CHECKS,
    )
    def test_queries_agree_with_the_decoded_records_after_random_writes(
        self, store: AccountStore, data: st.DataObject
    ) -> None:
        """Random accounts, then random writes that place and release holds, fail and retry
        steps and change states (each by save or by save_many): every query then lists exactly
        the accounts whose records, read back and decoded, match it, page by page."""
        prefix = self._example_prefix(store)
        records = {
            r.account_id: r
            for r in data.draw(
                st.lists(_query_records(prefix), min_size=1, max_size=8, unique_by=lambda r: r.account_id)
            )
        }
        for record in records.values():
            store.create(record, ())
        for _ in range(data.draw(st.integers(min_value=1, max_value=6))):
            account_id = data.draw(st.sampled_from(sorted(records)))
            current = records[account_id]
            drawn = data.draw(_query_records(prefix))
            following, events = advance(
                current,
                state=drawn.state,
                holds=drawn.holds,
                purge=drawn.purge,
                cancelled_at=drawn.cancelled_at,
                restorable_until=drawn.restorable_until,
            )
            if data.draw(st.booleans()):
                store.save(following, expected_version=current.version, events=events)
            else:
                assert save_many(store, [Write(following, current.version, events)], now=NOW) == [None]
            records[account_id] = following
        query = data.draw(_queries())
        limit = data.draw(st.integers(min_value=1, max_value=4))
        listed, decoded = self._listed_and_decoded(store, query, sorted(records), after=prefix, limit=limit)

        assert listed == decoded

    @staticmethod
    def _example_prefix(store: AccountStore) -> str:
        """An id prefix after every id the store holds: one Hypothesis example's accounts."""
        taken = store.account_ids()
        number = len({account_id[:5] for account_id in taken})
        return f"x{number:04d}"

    # -- batches: save_many (optional; account_lifecycle.ports.save_many falls back to save) --

    def test_save_many_writes_every_write_in_order(self, store: AccountStore) -> None:
        """save_many of three accounts writes each record and appends its events, as three
        saves would; each write's result is None."""
        created = [new_account(f"acc-{i}") for i in range(3)]
        for record, events in created:
            store.create(record, events)
        nxt = [advance(record, purge={"contacts": PurgeProgress(attempts=1)}) for record, _ in created]

        results = save_many(store, [_write(w, 1) for w in nxt], now=NOW)

        assert results == [None, None, None]
        for (_, first_events), (record, events) in zip(created, nxt, strict=True):
            assert store.get(record.account_id) == record
            assert store.history(record.account_id) == first_events + events
        assert save_many(store, [], now=NOW) == []

    def test_save_many_refuses_a_stale_or_unknown_write_alone(self, store: AccountStore) -> None:
        """A write of the batch with a stale version gets ConcurrentUpdate, one of an unknown
        account AccountNotFound; nothing of either is written and the others are written."""
        created = [new_account(f"acc-{i}") for i in range(3)]
        for record, events in created:
            store.create(record, events)
        nxt = [advance(record) for record, _ in created]
        ghost, ghost_events = new_account("acc-ghost")

        results = save_many(
            store,
            [
                _write(nxt[0], 1),
                _write(nxt[1], 7),
                _write((ghost, ghost_events), 0),
                _write(nxt[2], 1),
            ],
            now=NOW,
        )

        assert results[0] is None and results[3] is None
        assert isinstance(results[1], ConcurrentUpdate)
        assert (results[1].account_id, results[1].expected_version) == ("acc-1", 7)
        assert isinstance(results[2], AccountNotFound) and results[2].account_id == "acc-ghost"
        assert store.get("acc-0") == nxt[0][0] and store.get("acc-2") == nxt[2][0]
        assert store.get("acc-1") == created[1][0]
        assert store.history("acc-1") == created[1][1]

    def test_save_many_refuses_taking_a_held_identifier_alone(self, store: AccountStore) -> None:
        """A write of the batch that takes an identifier another account holds gets
        AccountExists and writes nothing; the writes before and after it are written."""
        store.create(*new_account("holder", identifiers={"phone": "+15550100"}), now=NOW)
        created = [new_account(f"acc-{i}") for i in range(3)]
        for record, events in created:
            store.create(record, events)
        first, taking, last = (
            advance(created[0][0]),
            advance(created[1][0], identifiers={"phone": "+15550100"}),
            advance(created[2][0]),
        )

        results = save_many(store, [_write(w, 1) for w in (first, taking, last)], now=NOW)

        assert results[0] is None and results[2] is None
        assert isinstance(results[1], AccountExists) and results[1].kind == "phone"
        assert store.get("acc-0") == first[0] and store.get("acc-2") == last[0]
        assert store.get("acc-1") == created[1][0]
        assert store.history("acc-1") == created[1][1]

    def test_save_many_takes_renews_and_drops_claims_per_write(self, store: AccountStore) -> None:
        """Each write of a batch treats the claim as its save would: a lease write is refused
        while another owner's claim is live (ConcurrentUpdate), renews its owner's; a release
        write drops its owner's claim."""
        for account_id in ("mine", "theirs", "done"):
            store.create(due_record(account_id, NOW - _TICK), ())
        assert len(store.claim_due(now=NOW, lease=Lease("me", NOW + _LEASE), limit=2)) == 2  # done, mine
        assert len(store.claim_due(now=NOW, lease=Lease("them", NOW + _LEASE), limit=9)) == 1  # theirs
        later = NOW + 3 * _LEASE
        tried = {"contacts": PurgeProgress(attempts=1)}
        writes = [
            _write(advance(store.get("mine"), purge=tried), 1, lease=Lease("me", later)),
            _write(advance(store.get("theirs"), state=State.PURGED), 1, lease=Lease("me", later)),
            _write(advance(store.get("done"), purge=tried), 1, release="me"),
        ]

        results = save_many(store, writes, now=NOW)

        assert results[0] is None and results[2] is None
        assert isinstance(results[1], ConcurrentUpdate)
        assert store.get("theirs").version == 1
        lease = Lease("other", later + _LEASE)
        early = store.claim_due(now=NOW + _LEASE - _TICK, lease=lease, limit=9)
        assert [r.account_id for r in early] == ["done"]
        assert [r.account_id for r in store.claim_due(now=later, lease=lease, limit=9)] == ["mine", "theirs"]

    def test_save_many_writes_one_account_twice_in_order(self, store: AccountStore) -> None:
        """Two writes of one account in a batch are made in order: the second, expecting the
        version the first wrote, is written too; a third expecting an older one is refused."""
        record, events = new_account("acc-1")
        store.create(record, events)
        second = advance(record)
        third = advance(second[0])
        stale = advance(record, state=State.PURGED)

        results = save_many(store, [_write(second, 1), _write(third, 2), _write(stale, 1)], now=NOW)

        assert results[:2] == [None, None]
        assert isinstance(results[2], ConcurrentUpdate)
        assert store.get("acc-1") == third[0]
        assert store.history("acc-1") == events + second[1] + third[1]

    # -- the outbox (OutboxStore; skipped, saying so, for a store without it) ------------------

    def test_an_empty_store_has_an_empty_outbox(self, store: AccountStore) -> None:
        """No entries (head 0), no cursors, no dead letters."""
        outbox = _outbox(store)
        assert outbox.outbox_head() == 0
        assert list(outbox.outbox_read(after=0, limit=10)) == []
        assert outbox.outbox_cursors() == ()
        assert outbox.outbox_dead_letters() == ()

    def test_every_event_written_gets_an_outbox_entry_in_commit_order(self, store: AccountStore) -> None:
        """``create``, ``save`` and ``save_many`` each write an entry per event, in the write's
        transaction; positions increase in the order the writes committed, each account's
        events in their own order; the head is the last position."""
        outbox = _outbox(store)
        a1, a_events = new_account("acc-a", actions=("open", "survey"))
        outbox.create(a1, a_events)
        b1, b_events = new_account("acc-b")
        outbox.create(b1, b_events)
        a2 = advance(a1)
        outbox.save(a2[0], expected_version=1, events=a2[1])
        b2 = advance(b1, actions=("one", "two"))
        a3 = advance(a2[0])
        assert save_many(outbox, [_write(b2, 1), _write(a3, 2)], now=NOW) == [None, None]

        entries = list(outbox.outbox_read(after=0, limit=100))

        expected = [*a_events, *b_events, *a2[1], *b2[1], *a3[1]]
        assert [e.event for e in entries] == expected
        positions = [e.position for e in entries]
        assert positions == sorted(positions)
        assert len(set(positions)) == len(positions)
        assert positions[0] >= 1
        assert outbox.outbox_head() == positions[-1]

    def test_a_refused_write_writes_no_outbox_entry(self, store: AccountStore) -> None:
        """A create of a taken id, a stale save and the refused write of a batch add nothing to
        the outbox; the writes a batch made do."""
        outbox = _outbox(store)
        record, events = new_account("acc-1")
        outbox.create(record, events)
        with pytest.raises(AccountExists):
            outbox.create(*new_account("acc-1", actions=("open", "again")))
        stale = advance(record)
        outbox.save(stale[0], expected_version=1, events=stale[1])
        with pytest.raises(ConcurrentUpdate):
            outbox.save(advance(record, actions=("lost",))[0], expected_version=1, events=stale[1])
        lost = advance(record, actions=("lost-in-batch",))
        other = new_account("acc-2")
        outbox.create(*other)
        results = save_many(
            outbox, [_write(lost, 1), _write(advance(other[0], actions=("made",)), 1)], now=NOW
        )
        assert isinstance(results[0], ConcurrentUpdate)
        assert results[1] is None

        actions = [(e.event.account_id, e.event.action) for e in outbox.outbox_read(after=0, limit=100)]

        assert actions == [("acc-1", "open"), ("acc-1", "change"), ("acc-2", "open"), ("acc-2", "made")]

    def test_outbox_read_pages_after_a_position(self, store: AccountStore) -> None:
        """``outbox_read(after=p, limit=n)`` returns the first *n* entries above *p*."""
        outbox = _outbox(store)
        record, events = new_account("acc-1", actions=("a", "b", "c", "d", "e"))
        outbox.create(record, events)
        every = list(outbox.outbox_read(after=0, limit=100))

        page = list(outbox.outbox_read(after=every[1].position, limit=2))

        assert page == every[2:4]
        assert list(outbox.outbox_read(after=every[-1].position, limit=10)) == []
        assert list(outbox.outbox_read(after=0, limit=0)) == []

    def test_outbox_read_of_bad_arguments_is_a_value_error(self, store: AccountStore) -> None:
        """A negative or non-integer *after* or *limit* is a ``ValueError`` naming it."""
        outbox = _outbox(store)
        for after, limit in ((-1, 1), (0, -1), (True, 1), (0, 1.5)):
            with pytest.raises(ValueError, match=r"after|limit"):  # the message names the argument
                outbox.outbox_read(after=after, limit=limit)  # type: ignore[arg-type]

    def test_outbox_entries_carry_sealed_values_until_they_are_erased(self, store: AccountStore) -> None:
        """An entry's event comes with its sealed values while they are held, as from
        ``history``; once ``erase_sealed`` erased them it comes without."""
        outbox = _outbox(store)
        record, events = _sealed_account("acc-1", {"answers": {"why": "too dear"}})
        outbox.create(record, events)

        before = [e.event for e in outbox.outbox_read(after=0, limit=10)]
        assert before == list(outbox.history("acc-1"))
        assert before[1].sealed_values["answers"].value == {"why": "too dear"}

        purged = advance(record, actions=("purged",))
        outbox.save(purged[0], expected_version=1, events=purged[1], erase_sealed=True)

        after = [e.event for e in outbox.outbox_read(after=0, limit=10)]
        assert [dict(e.sealed_values) for e in after] == [{}, {}, {}]
        assert [e.hash for e in after] == [e.hash for e in (*events, *purged[1])]

    def test_a_new_listeners_cursor_starts_at_zero_claimed(self, store: AccountStore) -> None:
        """The first claim of a listener creates its cursor at position 0, version 0, held by
        the lease's owner until the lease ends."""
        outbox = _outbox(store)
        cursor = outbox.outbox_claim("mailer", lease=Lease("relay-1", NOW + _LEASE), now=NOW)

        assert cursor == OutboxCursor("mailer", 0, 0, None, None, "relay-1", NOW + _LEASE, 0)
        assert outbox.outbox_cursors() == (cursor,)

    def test_a_live_cursor_claim_is_refused_to_another_owner_and_renewed_by_its_own(
        self, store: AccountStore
    ) -> None:
        """One relay at a time feeds a listener: another owner gets None while the claim is
        live; its owner renews it."""
        outbox = _outbox(store)
        first = outbox.outbox_claim("mailer", lease=Lease("relay-1", NOW + _LEASE), now=NOW)
        assert first is not None

        assert outbox.outbox_claim("mailer", lease=Lease("relay-2", NOW + 2 * _LEASE), now=NOW) is None
        renewed = outbox.outbox_claim("mailer", lease=Lease("relay-1", NOW + 2 * _LEASE), now=NOW)

        assert renewed is not None
        assert (renewed.owner, renewed.until) == ("relay-1", NOW + 2 * _LEASE)
        other = outbox.outbox_claim("audit-mirror", lease=Lease("relay-2", NOW + _LEASE), now=NOW)
        assert other is not None
        assert [c.listener for c in outbox.outbox_cursors()] == ["audit-mirror", "mailer"]

    def test_a_lapsed_cursor_claim_is_taken_over_and_its_first_owner_cannot_advance(
        self, store: AccountStore
    ) -> None:
        """Once the claim lapsed another owner takes the cursor; a write by the first owner,
        made from the cursor it claimed, is then refused (``ConcurrentUpdate``)."""
        outbox = _outbox(store)
        first = outbox.outbox_claim("mailer", lease=Lease("relay-1", NOW + _LEASE), now=NOW)
        assert first is not None
        later = NOW + _LEASE
        second = outbox.outbox_claim("mailer", lease=Lease("relay-2", later + _LEASE), now=later)
        assert second is not None
        assert second.owner == "relay-2"

        with pytest.raises(ConcurrentUpdate):
            outbox.outbox_advance(
                attrs.evolve(first, position=5, version=first.version + 1), expected_version=first.version
            )

        assert outbox.outbox_cursors()[0].position == 0
        outbox.outbox_advance(
            attrs.evolve(second, position=5, version=second.version + 1), expected_version=second.version
        )
        assert outbox.outbox_cursors()[0].position == 5

    def test_outbox_advance_is_compare_and_set_on_the_version(self, store: AccountStore) -> None:
        """A write from a stale version is refused and writes nothing, dead letters included; a
        cursor whose version is not expected_version + 1 is a ``ValueError``."""
        outbox = _outbox(store)
        cursor = outbox.outbox_claim("mailer", lease=Lease("relay-1", NOW + _LEASE), now=NOW)
        assert cursor is not None
        moved = attrs.evolve(cursor, position=3, version=cursor.version + 1)
        outbox.outbox_advance(moved, expected_version=cursor.version)
        assert outbox.outbox_cursors() == (moved,)

        letter = DeadLetter("mailer", 4, "acc-1", 2, "ValueError: no", NOW)
        with pytest.raises(ConcurrentUpdate):
            outbox.outbox_advance(
                attrs.evolve(moved, position=9, version=cursor.version + 1),
                expected_version=cursor.version,
                dead=[letter],
            )
        with pytest.raises(ValueError, match="version"):
            outbox.outbox_advance(attrs.evolve(moved, position=9), expected_version=moved.version)

        assert outbox.outbox_cursors() == (moved,)
        assert outbox.outbox_dead_letters() == ()

    def test_a_cursor_keeps_its_failing_delivery_and_drops_its_claim(self, store: AccountStore) -> None:
        """``attempts``, ``retry_at`` and ``error`` round-trip; a cursor written with
        ``owner=None`` drops the claim, and another owner may claim it at once."""
        outbox = _outbox(store)
        cursor = outbox.outbox_claim("mailer", lease=Lease("relay-1", NOW + _LEASE), now=NOW)
        assert cursor is not None
        failing = attrs.evolve(
            cursor,
            position=2,
            attempts=3,
            retry_at=NOW + timedelta(minutes=4),
            error="ConnectionError: smtp down",
            owner=None,
            until=None,
            version=cursor.version + 1,
        )

        outbox.outbox_advance(failing, expected_version=cursor.version)

        assert outbox.outbox_cursors() == (failing,)
        taken = outbox.outbox_claim("mailer", lease=Lease("relay-2", NOW + _LEASE), now=NOW)
        assert taken is not None
        assert (taken.owner, taken.attempts, taken.error) == ("relay-2", 3, "ConnectionError: smtp down")

    def test_dead_letters_are_written_with_the_cursor_listed_and_forgotten(self, store: AccountStore) -> None:
        """Dead letters come back by listener then position, for one listener or all;
        ``outbox_forget_dead`` removes those named and says how many it removed."""
        outbox = _outbox(store)
        for name in ("mailer", "audit-mirror"):
            cursor = outbox.outbox_claim(name, lease=Lease("relay-1", NOW + _LEASE), now=NOW)
            assert cursor is not None
            dead = [
                DeadLetter(name, 7, "acc-1", 2, "TimeoutError: slow", NOW),
                DeadLetter(name, 3, "acc-2", 1, "ValueError: bad", NOW + _TICK),
            ]
            outbox.outbox_advance(
                attrs.evolve(cursor, position=7, version=cursor.version + 1),
                expected_version=cursor.version,
                dead=dead,
            )

        mailer = outbox.outbox_dead_letters("mailer")
        assert [(d.listener, d.position, d.account_id, d.seq) for d in mailer] == [
            ("mailer", 3, "acc-2", 1),
            ("mailer", 7, "acc-1", 2),
        ]
        assert mailer[0] == DeadLetter("mailer", 3, "acc-2", 1, "ValueError: bad", NOW + _TICK)
        assert [d.listener for d in outbox.outbox_dead_letters()] == ["audit-mirror"] * 2 + ["mailer"] * 2

        assert outbox.outbox_forget_dead("mailer", [3, 99]) == 1
        assert [d.position for d in outbox.outbox_dead_letters("mailer")] == [7]
        assert len(outbox.outbox_dead_letters("audit-mirror")) == 2
        assert outbox.outbox_forget_dead("nobody", [7]) == 0

    def test_one_of_two_threads_claiming_a_cursor_at_once_gets_it(self, store: AccountStore) -> None:
        """Two relays claiming one listener's cursor at the same moment: exactly one holds it."""
        outbox = _outbox(store)
        barrier = threading.Barrier(2, timeout=30)
        got: dict[str, OutboxCursor | None] = {}

        def claim(owner: str) -> None:
            barrier.wait()
            got[owner] = outbox.outbox_claim("mailer", lease=Lease(owner, NOW + _LEASE), now=NOW)

        threads = [threading.Thread(target=claim, args=(f"relay-{n}",)) for n in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        winners = [owner for owner, cursor in got.items() if cursor is not None]
        assert len(got) == 2
        assert len(winners) == 1
        assert outbox.outbox_cursors()[0].owner == winners[0]


# -- queries: the accounts Hypothesis draws, the queries, and what a query means -----------------


def _query_record(
    prefix: str, number: int, state: State, hours: int, held: bool, waits: bool, failed: bool
) -> AccountRecord:
    """An account of *state* whose work (if any) is due *hours* from ``NOW``; with a legal hold
    (on its pending category when it *waits*, which makes it not due), and a failed step."""
    moment = NOW + timedelta(hours=hours)
    step = (
        PurgeProgress(PurgeStatus.FAILED, attempts=1, error="timeout", at=moment, retry_at=moment)
        if failed
        else PurgeProgress()
    )
    fields: dict[str, Any] = {"state": state, "purge": {"contacts": step}}
    if held:
        fields["holds"] = {"contacts" if waits else "files": Hold(NOW, "support:ann", "case")}
    if state in (State.CANCELLED, State.RESTORABLE, State.PURGED):
        fields["cancelled_at"] = moment if state is State.CANCELLED else moment - timedelta(days=30)
    if state is State.RESTORABLE:
        fields["restorable_until"] = moment
    record, _ = new_account(f"{prefix}n{number:02d}", **fields)
    return record


def _query_records(prefix: str) -> st.SearchStrategy[AccountRecord]:
    return st.builds(
        _query_record,
        st.just(prefix),
        st.integers(min_value=0, max_value=99),
        st.sampled_from(list(State)),
        st.integers(min_value=-3, max_value=3),
        st.booleans(),
        st.booleans(),
        st.booleans(),
    )


def _queries() -> st.SearchStrategy[AccountQuery]:
    return st.builds(
        AccountQuery,
        states=st.none() | st.frozensets(st.sampled_from(list(State))),
        due_before=st.none() | st.integers(min_value=-4, max_value=4).map(lambda h: NOW + timedelta(hours=h)),
        with_holds=st.none() | st.booleans(),
        with_failed_steps=st.none() | st.booleans(),
    )


def _matches(query: AccountQuery, record: AccountRecord) -> bool:
    """What ``QueryStore.list_accounts`` means by a match, written out on its own."""
    from account_lifecycle.schedule import due_at  # the moment stores index

    if query.states is not None and record.state not in query.states:
        return False
    if query.due_before is not None:
        due = due_at(record)
        if due is None or due >= query.due_before:
            return False
    if query.with_holds is not None and bool(record.holds) is not query.with_holds:
        return False
    failed = any(p.status is PurgeStatus.FAILED for p in record.purge.values())
    return query.with_failed_steps is None or failed is query.with_failed_steps


def _sealed_account(account_id: str, sealed: dict[str, Any]) -> tuple[AccountRecord, tuple[AuditEvent, ...]]:
    """A version-1 record whose second event sealed *sealed* (with salts ``salt-2``, ...)."""
    record, events = new_account(account_id)
    following, more = _sealed_events(record, sealed, version=1)
    return following, (*events, *more)


def _sealed_events(
    record: AccountRecord, sealed: dict[str, Any], *, version: int
) -> tuple[AccountRecord, tuple[AuditEvent, ...]]:
    seq = record.last_seq + 1
    values = {field: SealedValue(f"salt-{seq}", value) for field, value in sealed.items()}
    event = chain_event(
        prev_hash=record.chain_head or GENESIS,
        seq=seq,
        account_id=record.account_id,
        at=NOW + seq * _TICK,
        actor=Actor.system(),
        action="sealed",
        from_state=record.state,
        to_state=record.state,
        policy=_POLICY,
        details={"sealed": {f: commitment(f, v.salt, v.value) for f, v in values.items()}},
        version=version,
        sealed_values=values,
    )
    return attrs.evolve(record, version=version, chain_head=event.hash, last_seq=seq), (event,)


def _outbox(store: AccountStore) -> OutboxStore:
    """*store* as an ``OutboxStore``; the test is skipped, saying so, for a store without one."""
    missing = [name for name in OUTBOX_METHODS if not callable(getattr(store, name, None))]
    if missing:
        pytest.skip(
            f"{type(store).__name__} keeps no outbox (no {', '.join(missing)}): OutboxStore is optional"
        )
    return store  # type: ignore[return-value]
