"""The ports a host application implements or chooses an adapter for: protocols only.

The values that cross them (``Lease``, ``PurgeContext``, ``PurgeResult``, ``PendingItem``,
``CorruptRecord``) live in ``account_lifecycle.values`` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Final, Protocol, runtime_checkable

from account_lifecycle.audit import AuditEvent
from account_lifecycle.errors import AccountExists, AccountNotFound, ConcurrentUpdate
from account_lifecycle.model import AccountRecord
from account_lifecycle.values import (
    AccountQuery,
    CorruptRecord,
    DeadLetter,
    EffectContext,
    Lease,
    OutboxCursor,
    OutboxEntry,
    PendingItem,
    PurgeContext,
    PurgeResult,
    Write,
)

__all__ = [
    "REFUSALS",
    "AccountQuery",
    "AccountStore",
    "BatchStore",
    "Clock",
    "CorruptRecord",
    "DeadLetter",
    "EffectContext",
    "EffectHook",
    "HostCommitStore",
    "HostTransactionStore",
    "Lease",
    "Listener",
    "OutboxCursor",
    "OutboxEntry",
    "OutboxStore",
    "PendingItem",
    "PrerequisiteCheck",
    "PurgeContext",
    "PurgeResult",
    "Purger",
    "QueryStore",
    "Write",
    "in_host_transaction",
    "on_host_commit",
    "save_each",
    "save_many",
]


@runtime_checkable
class Purger(Protocol):
    """Erases one data category of one account. Must be idempotent: it may run again after a crash."""

    @property
    def category(self) -> str:
        """The data category this purger erases."""
        ...

    def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:
        """Erase the category of *account_id*; report what was erased (raise on failure)."""
        ...


class EffectHook(Protocol):
    """Carries out one ``on_cancel`` effect for one account (revoke team access, forfeit
    credit). Must be idempotent: it may run again after a crash. Raise to report a failure;
    the return value is ignored."""

    def __call__(self, account_id: str, context: EffectContext, /) -> object: ...


class Clock(Protocol):
    """Where the lifecycle reads the time: ``SystemClock``, or ``ManualClock`` in tests."""

    def now(self) -> datetime:
        """The current moment, timezone-aware."""
        ...


#: ``(account_id) -> what is still pending``, as strings or ``PendingItem``s; an empty
#: sequence means the prerequisite is met.
PrerequisiteCheck = Callable[[str], Sequence[str | PendingItem]]
#: Receives each committed audit event (notifications, revoking team access, ...).
Listener = Callable[[AuditEvent], None]


class AccountStore(Protocol):
    """Where accounts and their audit events live.

    Every write is one atomic step: the record is saved only if the stored version is
    still ``expected_version``, together with its audit events, or nothing is written.
    Reads raise ``RecordCorrupt`` for a record and ``HistoryTampered`` for an event that
    cannot be decoded; a failure of the storage itself is a ``StoreError``.

    Claims are owned: a claim (``claim_due``, or a ``save`` with a *lease*) belongs to its
    lease's owner until it lapses; only that owner drops it (``release``, or ``save`` with
    *release*), and a write without a lease leaves it as it is.

    Identities and identifier values arrive as keyed digests (``identity_keys``): the store
    compares them as opaque strings. An event's ``sealed_values`` (personal data it sealed) are
    written beside it, never into its stored body, come back with it from ``history`` while
    they exist, and are erased by ``save(..., erase_sealed=True)``.
    """

    def create(
        self,
        record: AccountRecord,
        events: Sequence[AuditEvent],
        *,
        now: datetime | None = None,
        aliases: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Insert a new account; ``AccountExists`` if the id or its live identity is taken, or
        one of its ``identifiers`` is held by another account (``.identity`` names the value).
        An identifier whose holder's ``free_at`` is at or before *now* (the lifecycle's clock)
        is given up to the new account in the same transaction; without *now*, none is.

        *aliases* maps a value the record holds (its identity, an identifier's value) to other
        values that name the same thing (its digests under older keys, during a key rotation):
        an alias held by another account counts as the value itself, in the same transaction."""
        ...

    def get(self, account_id: str) -> AccountRecord:
        """The stored record; ``AccountNotFound`` if there is none."""
        ...

    def save(
        self,
        record: AccountRecord,
        *,
        expected_version: int,
        events: Sequence[AuditEvent],
        lease: Lease | None = None,
        release: str | None = None,
        now: datetime | None = None,
        erase_sealed: bool = False,
    ) -> None:
        """Compare-and-set: write *record* and append *events* if the stored version is
        *expected_version*, else raise ``ConcurrentUpdate`` and write nothing. With
        *erase_sealed*, the sealed values of the account's earlier events are erased in the
        same transaction (the move to ``PURGED``).

        The account's claim is left as it is unless: *lease* is given, and the write takes or
        renews the claim for ``lease.owner`` (``ConcurrentUpdate``, nothing written, if another
        owner's claim is still live at *now*, which is then required); or *release* names the
        claim's owner, and the claim is dropped with the write (another owner's is kept).

        ``AccountExists`` if the record takes a live identity another account holds, or an
        identifier another account holds (one whose ``free_at`` is at or before *now* is given
        up, as in ``create``). The ``free_at`` of each identifier the account holds is written
        with the record; identifiers the record no longer lists are given up."""
        ...

    def history(self, account_id: str) -> tuple[AuditEvent, ...]:
        """The account's audit events in order, each with the sealed values still held for it;
        ``AccountNotFound`` for an unknown id."""
        ...

    def account_ids(self) -> tuple[str, ...]:
        """Every stored account id (re-keying identities walks them)."""
        ...

    def claim_due(
        self, *, now: datetime, lease: Lease, limit: int
    ) -> Sequence[AccountRecord | CorruptRecord]:
        """Atomically claim up to *limit* accounts whose purge work is due at *now* and that
        nobody holds a live claim on; return them, as read in the claiming transaction.
        Parallel callers never get the same one. A claimed row whose record cannot be decoded
        comes back as a ``CorruptRecord``, so one bad row never stops the batch."""
        ...

    def release(self, account_id: str, owner: str) -> None:
        """Drop *owner*'s claim on the account, if it still holds it; another owner's claim is kept."""
        ...


class BatchStore(AccountStore, Protocol):
    """A store that also writes many compare-and-sets in one transaction (optional: the
    runner falls back to one ``save`` per record on a store without ``save_many``)."""

    def save_many(self, writes: Sequence[Write], *, now: datetime) -> list[Exception | None]:
        """Every write of *writes*, each a ``save`` with its own compare-and-set, in one
        transaction. Returns, in order, None for each write made and the error ``save`` would
        have raised (``ConcurrentUpdate``, ``AccountNotFound``, ``AccountExists``) for each
        refused one, which wrote nothing; the others are written all the same. A failure of
        the storage itself is a ``StoreError`` and writes none of them."""
        ...


class OutboxStore(AccountStore, Protocol):
    """A store that keeps a transactional outbox (every shipped store does; a host store
    without these methods cannot feed outbox listeners, and ``Lifecycle`` says so when built
    with one).

    Every audit event a ``create``, ``save`` or ``save_many`` writes is also an outbox entry,
    written in the same transaction, with a store-wide *position* that increases in commit
    order: once a reader has read position p, no entry below p can appear later (SQLite and
    MemoryStore serialize writers; PostgreSQL takes a transaction-scoped advisory lock just
    before it numbers the entries, so numbering order is commit order). Aborted transactions
    leave gaps, which readers skip.

    Cursors are per listener name, claimed like accounts (one relay at a time feeds a
    listener), and advanced with compare-and-set on their ``version``."""

    def outbox_read(self, *, after: int, limit: int) -> Sequence[OutboxEntry]:
        """Up to *limit* entries with position > *after*, in position order, each with its
        event as ``history`` returns it (with the sealed values still held)."""
        ...

    def outbox_claim(self, listener: str, *, lease: Lease, now: datetime) -> OutboxCursor | None:
        """Claim *listener*'s cursor for ``lease.owner`` until ``lease.until`` and return it (a
        new listener's cursor starts at position 0, version 0, and is created); None if another
        owner's claim on it is live at *now*."""
        ...

    def outbox_advance(
        self, cursor: OutboxCursor, *, expected_version: int, dead: Sequence[DeadLetter] = ()
    ) -> None:
        """Write *cursor* (its version must be *expected_version* + 1) and add the *dead*
        letters, in one transaction, if the stored cursor's version is still *expected_version*
        and its owner is ``cursor.owner``; else ``ConcurrentUpdate`` and nothing written. A
        cursor written with ``owner=None`` drops the claim."""
        ...

    def outbox_cursors(self) -> tuple[OutboxCursor, ...]:
        """Every listener's cursor, by listener name (for operators: lag, failing deliveries)."""
        ...

    def outbox_dead_letters(self, listener: str | None = None) -> tuple[DeadLetter, ...]:
        """The dead letters of *listener* (or of every listener), by listener then position."""
        ...

    def outbox_forget_dead(self, listener: str, positions: Sequence[int]) -> int:
        """Remove those dead letters of *listener* (after an operator redelivered or dismissed
        them); returns how many were removed."""
        ...

    def outbox_head(self) -> int:
        """The highest position written so far (0 if none): a listener's lag is head - position."""
        ...


class QueryStore(AccountStore, Protocol):
    """A store that answers operators' queries (every shipped store does)."""

    def list_accounts(
        self, query: AccountQuery, *, after: str | None, limit: int
    ) -> Sequence[AccountRecord | CorruptRecord]:
        """Up to *limit* accounts matching *query* with ``account_id`` > *after* (None: from the
        start), ordered by ``account_id`` (a stable cursor: the last id of a page is the next
        page's *after*). A page has fewer than *limit* only when no more match. A row that
        cannot be decoded comes back as a ``CorruptRecord`` when its indexed columns match."""
        ...


class HostTransactionStore(AccountStore, Protocol):
    """A store that can write inside its host's own database transaction and says when it does
    (optional: ``in_host_transaction`` below answers False for a store without the method).

    While it does, nothing the store writes is durable until the host commits, so ``confirm``
    calls no purger (the host may still roll the confirmation back): it defers the cancel-time
    purge unless told ``defer=False``. ``DjangoStore`` answers from the connection (inside a
    ``transaction.atomic()`` block, or with autocommit off); ``SQLAlchemyStore.bound(...)``
    always answers True, the standalone store False."""

    def in_host_transaction(self) -> bool:
        """Whether a write made now would be committed only when the host commits."""
        ...


class HostCommitStore(HostTransactionStore, Protocol):
    """A store that can also run a callable once the host's transaction has committed (optional:
    ``DjangoStore`` does, with ``transaction.on_commit``). ``confirm`` uses it to erase as soon
    as a confirmation deferred by the host's transaction is durable, not at the next sweep."""

    def on_commit(self, callback: Callable[[], object]) -> bool:
        """Call *callback* once the host's transaction commits (never if it rolls back; at once
        when no transaction is open) and return True; False when the store cannot tell when the
        host commits, and *callback* is never called."""
        ...


def in_host_transaction(store: AccountStore) -> bool:
    """``store.in_host_transaction()`` when the store has it, else False (a store written
    before the signal existed commits each write itself)."""
    ask = getattr(store, "in_host_transaction", None)
    return ask is not None and bool(ask())


def on_host_commit(store: AccountStore, callback: Callable[[], object]) -> bool:
    """``store.on_commit(callback)`` when the store has it, else False (nothing registered: the
    sweep does the deferred work)."""
    register = getattr(store, "on_commit", None)
    return register is not None and register(callback) is True


#: What a refused write of a batch is; anything else a store raises fails the whole batch.
REFUSALS: Final = (ConcurrentUpdate, AccountNotFound, AccountExists)


def save_many(store: AccountStore, writes: Sequence[Write], *, now: datetime) -> list[Exception | None]:
    """``store.save_many`` when the store has it, else one ``save`` per write (a host store
    written before batches existed keeps working, one transaction per record)."""
    batch = getattr(store, "save_many", None)
    if batch is not None:
        results: list[Exception | None] = batch(writes, now=now)
        return results
    return save_each(store, writes, now=now)


def save_each(store: AccountStore, writes: Sequence[Write], *, now: datetime) -> list[Exception | None]:
    """One ``save`` (one transaction) per write, in order: what ``save_many`` returns, for a
    store without it, or for a batch a store cannot write as one."""
    out: list[Exception | None] = []
    for write in writes:
        try:
            if write.erase_sealed:  # a store written before sealed values need not take it else
                store.save(
                    write.record,
                    expected_version=write.expected_version,
                    events=write.events,
                    lease=write.lease,
                    release=write.release,
                    now=now,
                    erase_sealed=True,
                )
            else:
                store.save(
                    write.record,
                    expected_version=write.expected_version,
                    events=write.events,
                    lease=write.lease,
                    release=write.release,
                    now=now,
                )
        except REFUSALS as exc:
            out.append(exc)
        else:
            out.append(None)
    return out
