"""Acme's store: the shipped SQLiteStore, wrapped to feed Acme's change log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from account_lifecycle import (
    AccountQuery,
    AccountRecord,
    AuditEvent,
    DeadLetter,
    Lease,
    OutboxCursor,
    OutboxEntry,
    SQLiteStore,
)
from account_lifecycle.ports import CorruptRecord


class ChangeLogStore:
    """An ``AccountStore`` that delegates to a ``SQLiteStore`` and, after each committed
    write, appends ``(account id, version, state)`` to a change log for Acme's search index."""

    def __init__(self, path: str | Path) -> None:
        self.inner = SQLiteStore(path)
        self.changes: list[tuple[str, int, str]] = []

    def create(
        self,
        record: AccountRecord,
        events: Sequence[AuditEvent],
        *,
        now: datetime | None = None,
        aliases: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.inner.create(record, events, now=now, aliases=aliases)
        self.changes.append((record.account_id, record.version, record.state.value))

    def get(self, account_id: str) -> AccountRecord:
        return self.inner.get(account_id)

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
        self.inner.save(
            record,
            expected_version=expected_version,
            events=events,
            lease=lease,
            release=release,
            now=now,
            erase_sealed=erase_sealed,
        )
        self.changes.append((record.account_id, record.version, record.state.value))

    def history(self, account_id: str) -> tuple[AuditEvent, ...]:
        return self.inner.history(account_id)

    def list_accounts(
        self, query: AccountQuery, *, after: str | None, limit: int
    ) -> Sequence[AccountRecord | CorruptRecord]:
        """Operators' queries (``QueryStore``): read from the inner store, which has the columns."""
        return self.inner.list_accounts(query, after=after, limit=limit)

    def account_ids(self) -> tuple[str, ...]:
        return self.inner.account_ids()

    def claim_due(self, *, now: datetime, lease: Lease, limit: int) -> list[AccountRecord | CorruptRecord]:
        return self.inner.claim_due(now=now, lease=lease, limit=limit)

    def release(self, account_id: str, owner: str) -> None:
        self.inner.release(account_id, owner)

    # -- the outbox: the inner store's, so that durable listeners can be fed ----------------

    def outbox_read(self, *, after: int, limit: int) -> Sequence[OutboxEntry]:
        return self.inner.outbox_read(after=after, limit=limit)

    def outbox_claim(self, listener: str, *, lease: Lease, now: datetime) -> OutboxCursor | None:
        return self.inner.outbox_claim(listener, lease=lease, now=now)

    def outbox_advance(
        self, cursor: OutboxCursor, *, expected_version: int, dead: Sequence[DeadLetter] = ()
    ) -> None:
        self.inner.outbox_advance(cursor, expected_version=expected_version, dead=dead)

    def outbox_cursors(self) -> tuple[OutboxCursor, ...]:
        return self.inner.outbox_cursors()

    def outbox_dead_letters(self, listener: str | None = None) -> tuple[DeadLetter, ...]:
        return self.inner.outbox_dead_letters(listener)

    def outbox_forget_dead(self, listener: str, positions: Sequence[int]) -> int:
        return self.inner.outbox_forget_dead(listener, positions)

    def outbox_head(self) -> int:
        return self.inner.outbox_head()

    def close(self) -> None:
        self.inner.close()
