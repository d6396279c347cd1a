"""The ports of the asyncio front end: ``ports.py``'s store protocols with ``async def``
methods, and the shapes of async purgers, checks, listeners and effect hooks.

Each method means what the synchronous one of the same name in ``account_lifecycle.ports``
means (same arguments, results and errors); only the waiting is different.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from account_lifecycle.audit import AuditEvent
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
    "AsyncAccountStore",
    "AsyncBatchStore",
    "AsyncEffectHook",
    "AsyncListener",
    "AsyncOutboxStore",
    "AsyncPrerequisiteCheck",
    "AsyncPurger",
    "AsyncQueryStore",
]


@runtime_checkable
class AsyncPurger(Protocol):
    """A ``Purger`` whose ``purge`` is a coroutine: erases one data category of one account,
    idempotently (it may run again after a crash)."""

    @property
    def category(self) -> str:
        """The data category this purger erases."""
        ...

    async def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:
        """Erase the category of *account_id*; report what was erased (raise on failure)."""
        ...


class AsyncEffectHook(Protocol):
    """An ``EffectHook`` that is a coroutine function: carries out one ``on_cancel`` effect for
    one account, idempotently; raise to report a failure."""

    async def __call__(self, account_id: str, context: EffectContext, /) -> object: ...


#: ``async (account_id) -> what is still pending`` (a ``PrerequisiteCheck`` that awaits).
AsyncPrerequisiteCheck = Callable[[str], Awaitable[Sequence[str | PendingItem]]]
#: ``async (event) -> None``: receives each committed audit event (a ``Listener`` that awaits).
AsyncListener = Callable[[AuditEvent], Awaitable[None]]


class AsyncAccountStore(Protocol):
    """``AccountStore`` with ``async def`` methods: where accounts and their audit events live.
    Every write is one atomic compare-and-set with its events; claims are owned; errors are the
    synchronous store's (``ConcurrentUpdate``, ``AccountExists``, ``AccountNotFound``,
    ``RecordCorrupt``, ``HistoryTampered``, ``StoreError``). ``ThreadedStore(store)`` makes one of
    any synchronous store; ``AsyncPostgresStore`` is PostgreSQL on psycopg's async API."""

    async def create(
        self,
        record: AccountRecord,
        events: Sequence[AuditEvent],
        *,
        now: datetime | None = None,
        aliases: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Insert a new account (``AccountStore.create``)."""
        ...

    async def get(self, account_id: str) -> AccountRecord:
        """The stored record; ``AccountNotFound`` if there is none."""
        ...

    async def save(
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
        """Compare-and-set *record* with its *events* (``AccountStore.save``)."""
        ...

    async def history(self, account_id: str) -> tuple[AuditEvent, ...]:
        """The account's audit events in order (``AccountStore.history``)."""
        ...

    async def account_ids(self) -> tuple[str, ...]:
        """Every stored account id."""
        ...

    async def claim_due(
        self, *, now: datetime, lease: Lease, limit: int
    ) -> Sequence[AccountRecord | CorruptRecord]:
        """Atomically claim up to *limit* accounts whose purge work is due (``AccountStore.claim_due``)."""
        ...

    async def release(self, account_id: str, owner: str) -> None:
        """Drop *owner*'s claim on the account, if it still holds it."""
        ...


class AsyncBatchStore(AsyncAccountStore, Protocol):
    """An async store that writes many compare-and-sets in one transaction (``BatchStore``)."""

    async def save_many(self, writes: Sequence[Write], *, now: datetime) -> list[Exception | None]:
        """Every write of *writes* in one transaction, each with its own compare-and-set."""
        ...


class AsyncOutboxStore(AsyncAccountStore, Protocol):
    """An async store with a transactional outbox (``OutboxStore``)."""

    async def outbox_read(self, *, after: int, limit: int) -> Sequence[OutboxEntry]:
        """Up to *limit* entries with position > *after*, in position order."""
        ...

    async def outbox_claim(self, listener: str, *, lease: Lease, now: datetime) -> OutboxCursor | None:
        """Claim *listener*'s cursor for ``lease.owner``; None if another owner holds it."""
        ...

    async def outbox_advance(
        self, cursor: OutboxCursor, *, expected_version: int, dead: Sequence[DeadLetter] = ()
    ) -> None:
        """Write *cursor* and add the *dead* letters, compare-and-set on its version."""
        ...

    async def outbox_cursors(self) -> tuple[OutboxCursor, ...]:
        """Every listener's cursor, by listener name."""
        ...

    async def outbox_dead_letters(self, listener: str | None = None) -> tuple[DeadLetter, ...]:
        """The dead letters of *listener* (or of every listener)."""
        ...

    async def outbox_forget_dead(self, listener: str, positions: Sequence[int]) -> int:
        """Remove those dead letters of *listener*; returns how many were removed."""
        ...

    async def outbox_head(self) -> int:
        """The highest position written so far (0 if none)."""
        ...


class AsyncQueryStore(AsyncAccountStore, Protocol):
    """An async store that answers operators' queries (``QueryStore``)."""

    async def list_accounts(
        self, query: AccountQuery, *, after: str | None, limit: int
    ) -> Sequence[AccountRecord | CorruptRecord]:
        """Up to *limit* accounts matching *query* with ``account_id`` > *after*, by ``account_id``."""
        ...
