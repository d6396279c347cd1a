"""The relay of the transactional outbox: durable listeners fed from the store, at least once.

Every audit event a store writes is also an outbox entry, written in the same transaction, with
a store-wide position that increases in commit order (``ports.OutboxStore``). A durable listener
has a name and a cursor in the store; ``Relay.relay`` claims the cursor (one relay at a time
feeds a listener), reads the entries after it, calls the listener with each event in position
order, and advances the cursor with compare-and-set after each delivery. A crash between a
commit and a delivery loses nothing: the entry is in the store, and the next relay delivers it.
A crash after the listener ran and before the cursor moved delivers that event again: delivery
is *at least once*, and a listener makes it idempotent by remembering ``(account_id, seq)``.

A listener that raises is retried with exponential backoff on the lifecycle's clock (its
cursor keeps ``attempts``, ``retry_at`` and ``error``; later entries wait, so order holds).
After ``max_attempts`` the entry becomes a ``DeadLetter`` and the relay goes on with the
others; the later entries of the same account for that listener are parked behind it as dead
letters too, so one account's events never overtake each other. Operators look at ``status``,
and ``redeliver`` or ``dismiss`` dead letters.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import attrs

from account_lifecycle.audit import AuditEvent
from account_lifecycle.clock import require_aware
from account_lifecycle.errors import ConcurrentUpdate, ConfigurationError, LifecycleError
from account_lifecycle.model import validate_id
from account_lifecycle.ports import Clock, Listener, OutboxStore
from account_lifecycle.values import DeadLetter, Lease, OutboxCursor

__all__ = [
    "OUTBOX_METHODS",
    "ListenerStatus",
    "OutboxBusy",
    "OutboxStatus",
    "RedeliveryReport",
    "Relay",
    "RelayReport",
    "outbox_store",
]

log = logging.getLogger("account_lifecycle.outbox")

#: The methods a store needs to keep an outbox (``ports.OutboxStore``).
OUTBOX_METHODS: Final = (
    "outbox_read",
    "outbox_claim",
    "outbox_advance",
    "outbox_cursors",
    "outbox_dead_letters",
    "outbox_forget_dead",
    "outbox_head",
)
_MAX_ERROR: Final = 500
_PAGE: Final = 100


def outbox_store(store: object) -> OutboxStore | None:
    """*store* if it has every ``OutboxStore`` method, else None."""
    if all(callable(getattr(store, name, None)) for name in OUTBOX_METHODS):
        return store  # type: ignore[return-value]
    return None


def _counts(value: Mapping[str, int]) -> dict[str, int]:
    return dict(value)


def _texts(value: Mapping[Any, str]) -> dict[Any, str]:
    return dict(value)


class OutboxBusy(LifecycleError):
    """Another relay holds the cursor of *listener* (an operator's ``redeliver`` waits for no
    relay: try again when it is done, or once its claim lapsed). Nothing was delivered."""

    retryable = True

    def __init__(self, *, listener: str) -> None:
        self.listener = listener
        super().__init__(f"another relay is feeding outbox listener {listener!r}; try again shortly")


@attrs.frozen
class RelayReport:
    """What one relay did, per listener name: events *delivered*, entries *dead_lettered*
    (given up after their retries, or parked behind an earlier dead letter of their account),
    listeners *retrying* (a delivery failed; the cursor waits until its ``retry_at``, with this
    error), and listeners *busy* (another relay held the cursor)."""

    delivered: Mapping[str, int] = attrs.field(factory=dict, converter=_counts)
    dead_lettered: Mapping[str, int] = attrs.field(factory=dict, converter=_counts)
    retrying: Mapping[str, str] = attrs.field(factory=dict, converter=_texts)
    busy: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        """Events delivered, over every listener."""
        return sum(self.delivered.values())


@attrs.frozen
class ListenerStatus:
    """One durable listener as operators see it: how far it was fed (*position*) and how far
    behind the outbox's *head* it is (*lag*: head - position; entries aborted transactions never
    wrote count too on PostgreSQL), the failing delivery if any (*attempts*, *retry_at*,
    *error*), the relay holding it (*owner* until *until*), and its *dead_letters*.
    *configured* says whether this lifecycle has a listener of that name."""

    listener: str
    position: int
    head: int
    lag: int
    attempts: int
    retry_at: datetime | None
    error: str | None
    owner: str | None
    until: datetime | None
    dead_letters: tuple[DeadLetter, ...]
    configured: bool


@attrs.frozen
class OutboxStatus:
    """The outbox at one moment: its *head* and each listener's status, by name."""

    head: int
    listeners: tuple[ListenerStatus, ...]

    def listener(self, name: str) -> ListenerStatus:
        """The status of listener *name*; ``KeyError`` if there is none."""
        for status in self.listeners:
            if status.listener == name:
                return status
        raise KeyError(name)


@attrs.frozen
class RedeliveryReport:
    """What ``redeliver`` did: the positions *delivered* (their dead letters removed), and
    those it did not deliver with why (*failed*: the listener raised again, or an earlier dead
    letter of the same account is still there); those stay dead letters."""

    delivered: tuple[int, ...] = ()
    failed: Mapping[int, str] = attrs.field(factory=dict, converter=_texts)


def describe_failure(exc: BaseException, event: AuditEvent) -> str:
    """The error text kept for a failed delivery: the exception's type and message, cut to 500
    characters, with any of the event's sealed (personal) values it quotes replaced by
    ``[sealed]``: an error never carries the event's content."""
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # an exception whose __str__ fails is still recorded
        text = type(exc).__name__
    for value in sorted(_sealed_texts(event), key=len, reverse=True):
        text = text.replace(value, "[sealed]")
    return text[:_MAX_ERROR]


def _sealed_texts(event: AuditEvent) -> set[str]:
    found: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, str):
            if value:
                found.add(value)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                walk(key)
                walk(item)
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                walk(item)

    for sealed in event.sealed_values.values():
        walk(sealed.value)
    return found


def _check_positions(positions: Iterable[int]) -> list[int]:
    if isinstance(positions, str | bytes) or not isinstance(positions, Iterable):
        raise TypeError(f"positions must be a collection of whole numbers, got {type(positions).__name__}")
    out = []
    for position in positions:
        if isinstance(position, bool) or not isinstance(position, int) or position < 1:
            raise ValueError(f"an outbox position is a whole number >= 1, got {position!r}")
        out.append(position)
    return sorted(set(out))


class Relay:
    """Feeds the durable *listeners* (name -> callable taking an ``AuditEvent``) from *store*'s
    outbox. Failed deliveries are retried after *backoff*, doubled each attempt up to
    *max_backoff*, measured on *clock*; after *max_attempts* attempts an entry is a dead
    letter. A relay claims a listener's cursor for *lease*, renewed with each write of it.

    The cursor is written (compare-and-set) after every *advance_every* deliveries (1: after
    each), and before the relay stops; a crash delivers again at most the deliveries not
    written yet, so a larger batch trades more redelivery after a crash for fewer writes."""

    def __init__(
        self,
        store: OutboxStore,
        listeners: Mapping[str, Listener],
        *,
        clock: Clock,
        lease: timedelta = timedelta(minutes=5),
        backoff: timedelta = timedelta(minutes=1),
        max_backoff: timedelta = timedelta(hours=6),
        max_attempts: int = 8,
        page: int = _PAGE,
        advance_every: int = 1,
    ) -> None:
        if outbox_store(store) is None:
            missing = [name for name in OUTBOX_METHODS if not callable(getattr(store, name, None))]
            raise ConfigurationError(
                f"{type(store).__name__} keeps no outbox (it has no {', '.join(missing)}), so it "
                "cannot feed outbox listeners; use a shipped store or implement ports.OutboxStore"
            )
        self.listeners = check_listeners(listeners)
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"outbox max_attempts must be a whole number >= 1, got {max_attempts!r}")
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            raise ValueError(f"page must be a whole number >= 1, got {page!r}")
        if isinstance(advance_every, bool) or not isinstance(advance_every, int) or advance_every < 1:
            raise ValueError(f"outbox advance_every must be a whole number >= 1, got {advance_every!r}")
        self.store = store
        self.clock = clock
        self.lease = lease
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_attempts = max_attempts
        self.page = page
        self.advance_every = advance_every

    def _now(self) -> datetime:
        return require_aware(self.clock.now(), "clock.now()")

    # -- relaying ------------------------------------------------------------------------------

    def relay(self, limit: int | None = None) -> RelayReport:
        """Feed every listener, by name, up to *limit* entries each (None: until its cursor
        reaches the head, or a delivery fails)."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a whole number >= 0 or None, got {limit!r}")
        delivered: dict[str, int] = {}
        dead: dict[str, int] = {}
        retrying: dict[str, str] = {}
        busy: list[str] = []
        for name in sorted(self.listeners):
            feed = _Feed(self, name, self.listeners[name])
            feed.run(limit)
            if feed.busy:
                busy.append(name)
            if feed.delivered:
                delivered[name] = feed.delivered
            if feed.dead:
                dead[name] = feed.dead
            if feed.retrying is not None:
                retrying[name] = feed.retrying
        return RelayReport(delivered, dead, retrying, tuple(busy))

    def retry_delay(self, attempts: int) -> timedelta:
        """How long the cursor waits after the *attempts*-th failed delivery of one entry."""
        delay = self.backoff
        for _ in range(attempts - 1):
            if delay >= self.max_backoff:
                break
            delay *= 2
        return min(delay, self.max_backoff)

    # -- operators -------------------------------------------------------------------------------

    def status(self) -> OutboxStatus:
        """Every listener's cursor, lag and dead letters (the configured ones, and any other
        the store has a cursor or dead letters of), by name. Reads only."""
        head = self.store.outbox_head()
        cursors = {c.listener: c for c in self.store.outbox_cursors()}
        letters: dict[str, list[DeadLetter]] = {}
        for letter in self.store.outbox_dead_letters():
            letters.setdefault(letter.listener, []).append(letter)
        rows = []
        for name in sorted(set(self.listeners) | set(cursors) | set(letters)):
            c = cursors.get(name, OutboxCursor(name))
            rows.append(
                ListenerStatus(
                    listener=name,
                    position=c.position,
                    head=head,
                    lag=max(head - c.position, 0),
                    attempts=c.attempts,
                    retry_at=c.retry_at,
                    error=c.error,
                    owner=c.owner,
                    until=c.until,
                    dead_letters=tuple(letters.get(name, ())),
                    configured=name in self.listeners,
                )
            )
        return OutboxStatus(head, tuple(rows))

    def redeliver(self, listener: str, positions: Iterable[int]) -> RedeliveryReport:
        """Deliver those dead letters of *listener* again, in position order, removing each one
        delivered. One whose account has an earlier dead letter left is not delivered (order per
        account holds), nor are the later ones of an account whose delivery failed again.

        ``ValueError`` (nothing delivered) for a listener this relay does not have or a
        position that is not one of its dead letters; ``OutboxBusy`` while a relay feeds it."""
        deliver = self._listener(listener)
        wanted = _check_positions(positions)
        letters = {d.position: d for d in self.store.outbox_dead_letters(listener)}
        _check_known(listener, wanted, letters)
        with self._holding(listener):
            delivered: list[int] = []
            failed: dict[int, str] = {}
            blocked: dict[str, int] = {}  # account id -> the dead letter it waits behind
            for position in wanted:
                letter = letters[position]
                ahead = blocked.get(letter.account_id)
                if ahead is None:
                    ahead = next(
                        (
                            p
                            for p, d in sorted(letters.items())
                            if p < position and d.account_id == letter.account_id
                        ),
                        None,
                    )
                if ahead is not None:
                    failed[position] = f"waits behind dead letter {ahead} of the same account"
                    blocked.setdefault(letter.account_id, ahead)
                    continue
                entries = self.store.outbox_read(after=position - 1, limit=1)
                if not entries or entries[0].position != position:
                    failed[position] = "its outbox entry is gone"
                    blocked[letter.account_id] = position
                    continue
                event = entries[0].event
                try:
                    deliver(event)
                except Exception as exc:
                    failed[position] = describe_failure(exc, event)
                    blocked[letter.account_id] = position
                    log.warning(
                        "redelivery of outbox entry %d to %s failed: %s", position, listener, failed[position]
                    )
                    continue
                self.store.outbox_forget_dead(listener, [position])
                del letters[position]
                delivered.append(position)
        return RedeliveryReport(tuple(delivered), failed)

    def dismiss(self, listener: str, positions: Iterable[int]) -> int:
        """Remove those dead letters of *listener* without delivering them; how many were
        removed. ``ValueError`` (nothing removed) for a position that is not one of them."""
        validate_id(listener, "outbox listener name")
        wanted = _check_positions(positions)
        letters = {d.position: d for d in self.store.outbox_dead_letters(listener)}
        _check_known(listener, wanted, letters)
        return self.store.outbox_forget_dead(listener, wanted)

    def _listener(self, name: str) -> Listener:
        validate_id(name, "outbox listener name")
        try:
            return self.listeners[name]
        except KeyError:
            raise ValueError(
                f"no outbox listener named {name!r}; this lifecycle has "
                f"{', '.join(sorted(self.listeners)) or 'none'}"
            ) from None

    def _holding(self, listener: str) -> _Holding:
        return _Holding(self, listener)


def _check_known(listener: str, wanted: Sequence[int], letters: Mapping[int, DeadLetter]) -> None:
    unknown = [p for p in wanted if p not in letters]
    if unknown:
        raise ValueError(
            f"listener {listener!r} has no dead letter at position(s) {', '.join(map(str, unknown))}; "
            "nothing was done"
        )


def check_listeners(listeners: Mapping[str, Listener] | None) -> dict[str, Listener]:
    """The durable listeners by name: names are ids (``validate_id``), values callables."""
    if listeners is None:
        return {}
    if not isinstance(listeners, Mapping):
        raise TypeError(
            f"outbox_listeners must be a mapping of listener name to callable, got {type(listeners).__name__}"
        )
    out: dict[str, Listener] = {}
    for name, listener in listeners.items():
        validate_id(name, "outbox listener name")
        if not callable(listener):
            raise TypeError(f"outbox listener {name!r} must be callable, got {listener!r}")
        out[name] = listener
    return out


class _Holding:
    """A claim on one listener's cursor for an operator's redelivery (a context manager)."""

    def __init__(self, relay: Relay, listener: str) -> None:
        self._relay = relay
        self._listener = listener
        self._cursor: OutboxCursor | None = None

    def __enter__(self) -> OutboxCursor:
        now = self._relay._now()
        owner = f"redeliver:{uuid.uuid4().hex}"
        cursor = self._relay.store.outbox_claim(
            self._listener, lease=Lease(owner, now + self._relay.lease), now=now
        )
        if cursor is None:
            raise OutboxBusy(listener=self._listener)
        self._cursor = cursor
        return cursor

    def __exit__(self, *exc_info: object) -> None:
        cursor = self._cursor
        if cursor is None:
            return
        _release(self._relay.store, cursor)


class _Feed:
    """One listener's part of a relay: claim, deliver in order, advance, release."""

    def __init__(self, relay: Relay, name: str, listener: Callable[[AuditEvent], None]) -> None:
        self.relay = relay
        self.store = relay.store
        self.name = name
        self.listener = listener
        self.delivered = 0
        self.dead = 0
        self.retrying: str | None = None
        self.busy = False
        self.cursor: OutboxCursor | None = None  # as last written (None: not held)
        self.reached = 0  # every entry up to here was delivered or dead-lettered
        self.unwritten = 0  # deliveries since the cursor was last written

    def run(self, limit: int | None) -> None:
        relay = self.relay
        now = relay._now()
        owner = f"relay:{uuid.uuid4().hex}"
        self.cursor = self.store.outbox_claim(self.name, lease=Lease(owner, now + relay.lease), now=now)
        if self.cursor is None:
            self.busy = True
            return
        self.reached = self.cursor.position
        try:
            self._deliver(limit)
        except ConcurrentUpdate:
            # the claim lapsed and another relay took the cursor over; it goes on from there
            log.warning("outbox listener %s was taken over by another relay", self.name)
            self.cursor = None
        finally:
            self._release()

    def _deliver(self, limit: int | None) -> None:
        cursor = self.cursor
        assert cursor is not None
        if cursor.retry_at is not None and self.relay._now() < cursor.retry_at:
            self.retrying = cursor.error or "waiting to retry"
            return
        attempts = cursor.attempts  # of the entry after self.reached
        parked = {d.account_id: d.position for d in self.store.outbox_dead_letters(self.name)}
        handled = 0
        while limit is None or handled < limit:
            size = self.relay.page if limit is None else min(self.relay.page, limit - handled)
            entries = self.store.outbox_read(after=self.reached, limit=size)
            if not entries:
                return
            for entry in entries:
                now = self.relay._now()
                held = self.cursor
                assert held is not None
                if held.until is not None and now >= held.until:
                    return  # the claim lapsed: another relay may hold the cursor by now
                handled += 1
                event = entry.event
                ahead = parked.get(event.account_id)
                if ahead is not None:
                    letter = DeadLetter(
                        self.name,
                        entry.position,
                        event.account_id,
                        event.seq,
                        f"parked behind dead letter {ahead} of the same account",
                        now,
                    )
                    self.reached = entry.position
                    self._advance(now, dead=(letter,))
                    self.dead += 1
                    continue
                try:
                    self.listener(event)
                except Exception as exc:
                    error = describe_failure(exc, event)
                    attempts += 1
                    log.warning(
                        "outbox listener %s failed on %s #%d (attempt %d of %d): %s",
                        self.name,
                        event.account_id,
                        event.seq,
                        attempts,
                        self.relay.max_attempts,
                        error,
                    )
                    if attempts < self.relay.max_attempts:
                        retry_at = now + self.relay.retry_delay(attempts)
                        self._advance(now, attempts=attempts, retry_at=retry_at, error=error, release=True)
                        self.retrying = error
                        return
                    letter = DeadLetter(self.name, entry.position, event.account_id, event.seq, error, now)
                    self.reached = entry.position
                    attempts = 0
                    self._advance(now, dead=(letter,))
                    parked[event.account_id] = entry.position
                    self.dead += 1
                    continue
                self.reached = entry.position
                attempts = 0
                self.delivered += 1
                self.unwritten += 1
                if self.unwritten >= self.relay.advance_every:
                    self._advance(now)
                if limit is not None and handled >= limit:
                    return

    def _advance(
        self,
        now: datetime,
        *,
        attempts: int = 0,
        retry_at: datetime | None = None,
        error: str | None = None,
        dead: Sequence[DeadLetter] = (),
        release: bool = False,
    ) -> None:
        """Write the cursor at ``reached`` (compare-and-set) with *dead*, renewing the claim, or
        dropping it with *release*."""
        cursor = self.cursor
        assert cursor is not None
        new = attrs.evolve(
            cursor,
            position=self.reached,
            attempts=attempts,
            retry_at=retry_at,
            error=error,
            owner=None if release else cursor.owner,
            until=None if release else now + self.relay.lease,
            version=cursor.version + 1,
        )
        self.store.outbox_advance(new, expected_version=cursor.version, dead=dead)
        self.unwritten = 0
        self.cursor = None if release else new

    def _release(self) -> None:
        """Drop the claim, writing the deliveries not written yet (a failing delivery recorded
        on the cursor stays, unless the cursor moved past it)."""
        cursor = self.cursor
        if cursor is None:
            return
        self.cursor = None
        if self.reached != cursor.position:
            cursor = attrs.evolve(cursor, position=self.reached, attempts=0, retry_at=None, error=None)
        _release(self.store, cursor)


def _release(store: OutboxStore, cursor: OutboxCursor) -> None:
    """Drop the claim on *cursor*, leaving the rest of it as it is; if the claim lapsed and
    another relay took the cursor over meanwhile, it is theirs, and nothing is written."""
    with contextlib.suppress(ConcurrentUpdate):
        store.outbox_advance(
            attrs.evolve(cursor, owner=None, until=None, version=cursor.version + 1),
            expected_version=cursor.version,
        )
