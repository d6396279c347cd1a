"""The purger contract suite (account_lifecycle.testing.purger_contract) on two well-behaved
purgers: one that counts what it erases, and one that cannot."""

from __future__ import annotations

from datetime import UTC, datetime

from account_lifecycle import PurgeContext, PurgeResult
from account_lifecycle.testing.purger_contract import PurgerContract, purge_context


class ContactsTable:
    """A stand-in for a host's database table: account id -> contact names."""

    def __init__(self) -> None:
        self.rows: dict[str, list[str]] = {}

    def delete_for(self, account_id: str) -> int:
        return len(self.rows.pop(account_id, []))


class ContactsPurger:
    category = "contacts"

    def __init__(self, table: ContactsTable) -> None:
        self.table = table

    def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:
        return PurgeResult(items=self.table.delete_for(account_id), detail="contacts deleted")


class TestContactsPurger(PurgerContract):
    def make_purger(self) -> ContactsPurger:
        self.table = ContactsTable()
        return ContactsPurger(self.table)

    def seed(self, account_id: str, items: int) -> None:
        self.table.rows.setdefault(account_id, []).extend(f"contact {n}" for n in range(items))

    def remaining(self, account_id: str) -> int:
        return len(self.table.rows.get(account_id, []))


class BucketPurger:
    """Deletes a storage prefix; the storage API does not say how many objects went."""

    category = "call_recordings"

    def __init__(self, objects: set[str]) -> None:
        self.objects = objects

    def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:
        self.objects -= {key for key in self.objects if key.startswith(f"{account_id}/")}
        return PurgeResult(detail=f"deleted prefix {account_id}/")


class TestBucketPurgerThatCannotCount(PurgerContract):
    counts_items = False

    def make_purger(self) -> BucketPurger:
        self.objects: set[str] = set()
        return BucketPurger(self.objects)

    def seed(self, account_id: str, items: int) -> None:
        self.objects.update(f"{account_id}/recording-{n}.wav" for n in range(items))

    def remaining(self, account_id: str) -> int:
        return sum(1 for key in self.objects if key.startswith(f"{account_id}/"))


def test_purge_context_is_what_the_lifecycle_hands_a_purger() -> None:
    """purge_context names the purger's category, the account and the attempt."""
    context = purge_context(ContactsPurger(ContactsTable()), "acct-9", attempt=2)

    assert (context.account_id, context.category, context.attempt) == ("acct-9", "contacts", 2)
    assert (context.cancelled_at, context.now) == (
        datetime(2030, 6, 15, 11, 0, tzinfo=UTC),
        datetime(2030, 6, 15, 12, 2, tzinfo=UTC),
    )
