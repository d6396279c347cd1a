"""The outbox relay (account_lifecycle.outbox) through Lifecycle: durable listeners fed at least
once, in position order (so in order per account), a cursor per listener, retries with backoff
on the lifecycle's clock, dead letters that park the later events of their account, and the
operators' status, redelivery and dismissal. On MemoryStore and SQLiteStore (the ``store``
fixture); PostgreSQL runs the same relay in tests/integration/test_outbox_kill.py."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from account_lifecycle import (
    AccountStore,
    Actor,
    AuditEvent,
    ConfigurationError,
    Lease,
    Lifecycle,
    ManualClock,
    MemoryStore,
    OutboxBusy,
    RelayReport,
    SurveyOutcome,
    policies,
)
from account_lifecycle.testing.fakes import fake_purgers

OWNER = Actor.user("owner")
START_POLICY = policies.ALLCLIENTS
BACKOFF = timedelta(minutes=1)
_START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class Recorder:
    """A durable listener that records ``(account_id, seq, action)`` and fails on demand:
    ``fail[(account_id, seq)]`` is how many more calls for that event raise."""

    def __init__(self) -> None:
        self.got: list[tuple[str, int, str]] = []
        self.fail: dict[tuple[str, int], int] = {}
        self.message = "smtp down"

    def __call__(self, event: AuditEvent) -> None:
        key = (event.account_id, event.seq)
        if self.fail.get(key, 0) > 0:
            self.fail[key] -= 1
            raise ConnectionError(self.message)
        self.got.append((event.account_id, event.seq, event.action))


def lifecycle(
    store: Any, clock: ManualClock, listeners: dict[str, Callable[[AuditEvent], None]], **options: Any
) -> Lifecycle:
    return Lifecycle(
        START_POLICY,
        store=store,
        clock=clock,
        purgers=fake_purgers(START_POLICY).values(),
        outbox_listeners=listeners,
        retry_backoff=BACKOFF,
        max_retry_backoff=timedelta(minutes=10),
        **options,
    )


@pytest.fixture
def mailer() -> Recorder:
    return Recorder()


@pytest.fixture
def lc(store: Any, clock: ManualClock, mailer: Recorder) -> Lifecycle:
    return lifecycle(store, clock, {"mailer": mailer}, outbox_max_attempts=3)


def history_keys(lc: Lifecycle, *account_ids: str) -> list[tuple[str, int, str]]:
    return [(e.account_id, e.seq, e.action) for a in account_ids for e in lc.history(a)]


def per_account(got: list[tuple[str, int, str]], account_id: str) -> list[int]:
    return [seq for a, seq, _ in got if a == account_id]


def test_each_listener_gets_every_event_once_in_position_order(
    lc: Lifecycle, clock: ManualClock, mailer: Recorder
) -> None:
    """Two durable listeners, two cursors: each gets every committed event, in commit order,
    and a second relay delivers nothing more."""
    mirror = Recorder()
    both = lifecycle(lc.store, clock, {"mailer": mailer, "mirror": mirror})
    both.open("a", owner="owner")
    both.open("b", owner="owner")
    both.request_cancellation("a", OWNER)
    both.request_cancellation("b", OWNER)

    report = both.relay()

    expected = [("a", 1, "open"), ("b", 1, "open"), ("a", 2, "request_cancellation")]
    expected.append(("b", 2, "request_cancellation"))
    assert mailer.got == mirror.got == expected
    assert report == RelayReport(delivered={"mailer": 4, "mirror": 4})
    assert both.relay() == RelayReport()
    status = both.outbox_status()
    assert [(s.listener, s.position, s.lag, s.owner) for s in status.listeners] == [
        ("mailer", status.head, 0, None),
        ("mirror", status.head, 0, None),
    ]


def test_a_failing_delivery_is_retried_with_backoff_on_the_lifecycles_clock(
    lc: Lifecycle, clock: ManualClock, mailer: Recorder
) -> None:
    """The cursor keeps attempts, retry_at (doubling from retry_backoff) and the error; the
    relay waits until retry_at, and later entries wait behind the failing one."""
    lc.open("a", owner="owner")
    lc.open("b", owner="owner")
    mailer.fail[("a", 1)] = 2

    first = lc.relay()
    assert first.retrying == {"mailer": "ConnectionError: smtp down"}
    [status] = lc.outbox_status().listeners
    assert (status.position, status.attempts, status.retry_at) == (0, 1, clock.now() + BACKOFF)
    assert status.error == "ConnectionError: smtp down"
    assert mailer.got == []

    clock.advance(BACKOFF - timedelta(seconds=1))
    assert lc.relay().delivered == {}  # not yet
    clock.advance(timedelta(seconds=1))
    assert lc.relay().retrying == {"mailer": "ConnectionError: smtp down"}
    [status] = lc.outbox_status().listeners
    assert (status.attempts, status.retry_at) == (2, clock.now() + 2 * BACKOFF)

    clock.advance(2 * BACKOFF)
    assert lc.relay().delivered == {"mailer": 2}
    assert mailer.got == [("a", 1, "open"), ("b", 1, "open")]
    [status] = lc.outbox_status().listeners
    assert (status.attempts, status.retry_at, status.error, status.lag) == (0, None, None, 0)


def test_the_backoff_doubles_up_to_max_retry_backoff(store: Any, clock: ManualClock) -> None:
    lc = lifecycle(store, clock, {"mailer": Recorder()}, outbox_max_attempts=20)
    relay = lc._outbox()
    assert [relay.retry_delay(n) for n in (1, 2, 3, 4, 5, 6)] == [
        timedelta(minutes=m) for m in (1, 2, 4, 8, 10, 10)
    ]
    assert relay.retry_delay(10_000) == timedelta(minutes=10)


def test_after_max_attempts_an_entry_is_a_dead_letter_and_parks_its_account(
    lc: Lifecycle, clock: ManualClock, mailer: Recorder
) -> None:
    """The third failure makes the entry a dead letter; the account's later events are parked
    behind it (dead letters too), while other accounts' events are delivered."""
    lc.open("a", owner="owner")
    lc.open("b", owner="owner")
    mailer.fail[("a", 1)] = 3
    for _ in range(3):
        lc.relay()
        clock.advance(timedelta(hours=1))
    lc.request_cancellation("a", OWNER)
    lc.request_cancellation("b", OWNER)

    report = lc.relay()

    assert mailer.got == [("b", 1, "open"), ("b", 2, "request_cancellation")]
    assert report.dead_lettered == {"mailer": 1}  # the parked one (the first died in the last loop)
    letters = lc.outbox_status().listener("mailer").dead_letters
    assert [(d.account_id, d.seq) for d in letters] == [("a", 1), ("a", 2)]
    assert letters[0].error == "ConnectionError: smtp down"
    assert letters[1].error == f"parked behind dead letter {letters[0].position} of the same account"
    assert lc.outbox_status().listener("mailer").lag == 0


def test_redeliver_delivers_dead_letters_in_order_and_removes_them(
    lc: Lifecycle, clock: ManualClock, mailer: Recorder
) -> None:
    lc.open("a", owner="owner")
    mailer.fail[("a", 1)] = 3
    for _ in range(3):
        lc.relay()
        clock.advance(timedelta(hours=1))
    lc.request_cancellation("a", OWNER)
    lc.relay()
    first, second = (d.position for d in lc.outbox_status().listener("mailer").dead_letters)

    # the later one alone waits behind the earlier one: nothing is delivered out of order
    alone = lc.redeliver("mailer", [second])
    assert alone.delivered == ()
    assert alone.failed == {second: f"waits behind dead letter {first} of the same account"}
    assert mailer.got == []

    report = lc.redeliver("mailer", [second, first])

    assert report.delivered == (first, second)
    assert mailer.got == [("a", 1, "open"), ("a", 2, "request_cancellation")]
    assert lc.outbox_status().listener("mailer").dead_letters == ()
    lc.skip_survey("a", OWNER)
    lc.relay()
    assert mailer.got[-1] == ("a", 3, "skip_survey")


def test_a_redelivery_that_fails_again_keeps_the_dead_letter_and_the_ones_behind_it(
    lc: Lifecycle, clock: ManualClock, mailer: Recorder
) -> None:
    lc.open("a", owner="owner")
    mailer.fail[("a", 1)] = 4
    for _ in range(3):
        lc.relay()
        clock.advance(timedelta(hours=1))
    lc.request_cancellation("a", OWNER)
    lc.relay()
    first, second = (d.position for d in lc.outbox_status().listener("mailer").dead_letters)

    report = lc.redeliver("mailer", [first, second])

    assert report.delivered == ()
    assert report.failed == {
        first: "ConnectionError: smtp down",
        second: f"waits behind dead letter {first} of the same account",
    }
    assert [d.position for d in lc.outbox_status().listener("mailer").dead_letters] == [first, second]


def test_dismiss_removes_dead_letters_without_delivering(
    lc: Lifecycle, clock: ManualClock, mailer: Recorder
) -> None:
    lc.open("a", owner="owner")
    mailer.fail[("a", 1)] = 3
    for _ in range(3):
        lc.relay()
        clock.advance(timedelta(hours=1))
    [letter] = lc.outbox_status().listener("mailer").dead_letters

    assert lc.dismiss("mailer", [letter.position]) == 1

    assert lc.outbox_status().listener("mailer").dead_letters == ()
    assert mailer.got == []


@pytest.mark.parametrize(
    ("listener", "positions", "error", "match"),
    [
        ("mailer", [99], ValueError, "no dead letter at position"),
        ("mailer", [0], ValueError, "whole number >= 1"),
        ("mailer", ["1"], ValueError, "whole number >= 1"),
        ("mailer", "1", TypeError, "collection"),
        ("nobody", [1], ValueError, "no outbox listener named 'nobody'"),
        ("", [1], ValueError, "outbox listener name"),
    ],
)
def test_bad_redeliveries_are_refused_and_change_nothing(
    lc: Lifecycle,
    clock: ManualClock,
    mailer: Recorder,
    listener: str,
    positions: Any,
    error: type,
    match: str,
) -> None:
    lc.open("a", owner="owner")
    mailer.fail[("a", 1)] = 3
    for _ in range(3):
        lc.relay()
        clock.advance(timedelta(hours=1))
    before = lc.outbox_status()

    with pytest.raises(error, match=match):
        lc.redeliver(listener, positions)
    if listener != "nobody":
        with pytest.raises(error, match=match):
            lc.dismiss(listener, positions)

    assert lc.outbox_status() == before
    assert mailer.got == []


def test_redeliver_waits_for_no_relay_holding_the_cursor(
    lc: Lifecycle, clock: ManualClock, mailer: Recorder
) -> None:
    """While another relay holds the listener's cursor, redeliver raises OutboxBusy
    (retryable) and delivers nothing; a relay meanwhile reports the listener busy."""
    lc.open("a", owner="owner")
    mailer.fail[("a", 1)] = 3
    for _ in range(3):
        lc.relay()
        clock.advance(timedelta(hours=1))
    [letter] = lc.outbox_status().listener("mailer").dead_letters
    store: Any = lc.store
    assert store.outbox_claim(
        "mailer", lease=Lease("other", clock.now() + timedelta(minutes=5)), now=clock.now()
    )

    with pytest.raises(OutboxBusy, match="mailer") as refused:
        lc.redeliver("mailer", [letter.position])
    assert refused.value.retryable
    assert lc.relay().busy == ("mailer",)
    assert mailer.got == []

    clock.advance(timedelta(minutes=5))  # the other relay's claim lapsed
    assert lc.redeliver("mailer", [letter.position]).delivered == (letter.position,)


def test_an_error_never_carries_the_events_sealed_values(
    store: Any, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener whose exception quotes a survey answer: the cursor's error, the dead letter
    and the log line say ``[sealed]`` instead."""
    answer = "my landlord ann.secret@example.com evicted me"

    def quoting(event: AuditEvent) -> None:
        if event.sealed_values:
            raise ValueError(f"cannot mail {event.sealed_values['answers'].value}")

    lc = lifecycle(store, clock, {"mailer": quoting}, outbox_max_attempts=1)
    lc.open("a", owner="owner")
    lc.request_cancellation("a", OWNER)
    lc.submit_survey("a", OWNER, SurveyOutcome.CANCEL, {"reason": answer})
    with caplog.at_level(logging.WARNING, logger="account_lifecycle.outbox"):
        lc.relay()

    [letter] = lc.outbox_status().listener("mailer").dead_letters
    assert "[sealed]" in letter.error
    assert "ann.secret" not in letter.error
    assert "evicted" not in letter.error
    assert "ann.secret" not in caplog.text
    assert "[sealed]" in caplog.text


def test_sweep_relays_and_reports_it(lc: Lifecycle, clock: ManualClock, mailer: Recorder) -> None:
    lc.open("a", owner="owner")
    lc.request_cancellation("a", OWNER)
    lc.skip_survey("a", OWNER)
    lc.confirm("a", OWNER)
    clock.advance(timedelta(days=200))

    report = lc.sweep()

    assert report.purged == ("a",)
    assert report.relayed == len(lc.history("a"))
    assert per_account(mailer.got, "a") == list(range(1, len(lc.history("a")) + 1))


def test_a_lifecycle_without_outbox_listeners_relays_nothing(store: Any, clock: ManualClock) -> None:
    lc = Lifecycle(START_POLICY, store=store, clock=clock, purgers=fake_purgers(START_POLICY).values())
    lc.open("a", owner="owner")
    assert lc.relay() == RelayReport()
    assert lc.sweep().relayed == 0
    status = lc.outbox_status()
    assert (status.head, status.listeners) == (1, ())


class PlainStore:
    """An AccountStore of a host, written before the outbox: it has no outbox methods."""

    def __init__(self) -> None:
        self._inner = MemoryStore()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("outbox_"):
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_outbox_listeners_over_a_store_without_an_outbox_are_a_configuration_error(
    clock: ManualClock,
) -> None:
    store: AccountStore = PlainStore()  # type: ignore[assignment]
    with pytest.raises(ConfigurationError, match="outbox_read"):
        lifecycle(store, clock, {"mailer": Recorder()})
    plain = Lifecycle(START_POLICY, store=store, clock=clock, purgers=fake_purgers(START_POLICY).values())
    plain.open("a", owner="owner")  # works as before
    assert plain.relay() == RelayReport()
    with pytest.raises(ConfigurationError, match="keeps no outbox"):
        plain.outbox_status()


@pytest.mark.parametrize(
    ("listeners", "error", "match"),
    [
        ({"": print}, ValueError, "outbox listener name"),
        ({"mailer": "not callable"}, TypeError, "must be callable"),
        ([print], TypeError, "mapping of listener name"),
    ],
)
def test_bad_outbox_listeners_are_refused(
    clock: ManualClock, listeners: Any, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        lifecycle(MemoryStore(), clock, listeners)


def test_bad_relay_limits_and_attempts_are_refused(clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        lifecycle(MemoryStore(), clock, {"m": Recorder()}, outbox_max_attempts=0)
    lc = lifecycle(MemoryStore(), clock, {"m": Recorder()})
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="limit"):
            lc.relay(bad)  # type: ignore[arg-type]


def test_relay_limit_bounds_the_entries_per_listener(lc: Lifecycle, mailer: Recorder) -> None:
    lc.open("a", owner="owner")
    lc.request_cancellation("a", OWNER)
    lc.skip_survey("a", OWNER)
    assert lc.relay(limit=2).delivered == {"mailer": 2}
    assert lc.relay(limit=0) == RelayReport()
    assert lc.relay().delivered == {"mailer": 1}
    assert [seq for _, seq, _ in mailer.got] == [1, 2, 3]


def test_a_relay_whose_claim_was_taken_over_stops_and_the_other_goes_on(
    store: Any, clock: ManualClock
) -> None:
    """A listener slower than the lease: while it handles an event, the claim lapses and a
    second relay takes the cursor over. The first relay's advance is refused, it stops; the
    second delivers from the cursor as stored (the slow event again: at least once)."""
    got: list[tuple[str, int]] = []
    second_relay: list[RelayReport] = []

    def slow(event: AuditEvent) -> None:
        got.append((event.account_id, event.seq))
        if len(got) == 1:  # the first delivery outlives the lease; another relay starts
            clock.advance(timedelta(minutes=6))
            second_relay.append(other.relay())

    lc = lifecycle(store, clock, {"mailer": slow})
    other = lifecycle(store, clock, {"mailer": slow})
    lc.open("a", owner="owner")
    lc.open("b", owner="owner")

    first = lc.relay()

    assert first.delivered == {"mailer": 1}  # its listener ran; its cursor write was refused
    assert second_relay[0].delivered == {"mailer": 2}
    assert got == [("a", 1), ("a", 1), ("b", 1)]
    assert lc.outbox_status().listener("mailer").lag == 0


def test_advancing_every_few_deliveries_writes_the_rest_when_it_stops(
    store: Any, clock: ManualClock, mailer: Recorder
) -> None:
    """With ``outbox_advance_every=3`` the cursor is written after every third delivery and when
    the relay stops: a failure keeps the deliveries before it, and the failing entry's attempts
    are its own."""
    writes: list[int] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def outbox_advance(self, cursor: Any, **kwargs: Any) -> None:
            writes.append(cursor.position)
            store.outbox_advance(cursor, **kwargs)

    lc = lifecycle(Counting(), clock, {"mailer": mailer}, outbox_advance_every=3, outbox_max_attempts=3)
    for account_id in ("a", "b", "c", "d", "e"):
        lc.open(account_id, owner="owner")
    mailer.fail[("e", 1)] = 1

    assert lc.relay().delivered == {"mailer": 4}
    assert writes == [3, 4]  # after three; then the failure at 5, keeping 4 and dropping the claim
    [status] = lc.outbox_status().listeners
    assert (status.position, status.attempts, status.owner) == (4, 1, None)
    clock.advance(timedelta(hours=1))
    assert lc.relay().delivered == {"mailer": 1}
    assert [a for a, _, _ in mailer.got] == ["a", "b", "c", "d", "e"]
    assert lc.outbox_status().listener("mailer").attempts == 0


# -- properties ----------------------------------------------------------------------------------

_writes = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=12)


@given(
    writes=_writes,
    failures=st.dictionaries(st.tuples(st.sampled_from("abc"), st.integers(1, 4)), st.integers(1, 5)),
)
def test_every_account_is_fed_in_seq_order_whatever_fails(
    writes: list[str], failures: dict[tuple[str, int], int]
) -> None:
    """Any interleaving of writes to three accounts and any failures of the listener (some
    beyond max_attempts): each account's delivered events are in seq order without gaps up to
    its first dead letter, the dead letters are exactly its events from there on, and the
    other accounts lose nothing."""
    clock = ManualClock(_START)
    store = MemoryStore()
    mailer = Recorder()
    mailer.fail = dict(failures)
    lc = lifecycle(store, clock, {"mailer": mailer}, outbox_max_attempts=3)
    for account_id in writes:
        _write_one(lc, account_id)
        lc.relay()
        clock.advance(timedelta(hours=1))
    for _ in range(4):
        lc.relay()
        clock.advance(timedelta(hours=1))

    dead = lc.outbox_status().listener("mailer").dead_letters
    for account_id in "abc":
        if account_id not in writes:
            continue
        seqs = [e.seq for e in lc.history(account_id)]
        delivered = per_account(mailer.got, account_id)
        parked = [d.seq for d in dead if d.account_id == account_id]
        assert delivered + parked == seqs
        if parked:
            assert failures.get((account_id, parked[0]), 0) >= 3
    assert lc.outbox_status().listener("mailer").lag == 0


def _write_one(lc: Lifecycle, account_id: str) -> None:
    """One more event of *account_id*: open it, then move it back and forth."""
    try:
        record = lc.get(account_id)
    except Exception:
        lc.open(account_id, owner="owner")
        return
    if record.state.value == "active":
        lc.request_cancellation(account_id, OWNER)
    else:
        lc.withdraw(account_id, OWNER)
