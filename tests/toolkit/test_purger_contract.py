"""The purger contract suite (account_lifecycle.testing.purger_contract) on two well-behaved
purgers: one that counts what it erases, and one that cannot."""

from __future__ import annotations

from datetime import UTC, datetime

from account_lifecycle import PurgeResult
from account_lifecycle.testing.fakes import FakePurger
from account_lifecycle.testing.purger_contract import PurgerContract, purge_context


class TestContactsPurger(PurgerContract):
    """A purger over a stand-in table that counts what it deletes: the toolkit's FakePurger
    with seeded rows (nothing to report for an account without any)."""

    def make_purger(self) -> FakePurger:
        self.table = FakePurger("contacts", items=0, detail="contacts deleted")
        return self.table

    def seed(self, account_id: str, items: int) -> None:
        self.table.seed(account_id, items)

    def remaining(self, account_id: str) -> int:
        return self.table.remaining(account_id)


class TestBucketPurgerThatCannotCount(PurgerContract):
    """Deletes a storage prefix; the storage API does not say how many objects went, so the
    purger erases what was seeded and reports no count."""

    counts_items = False

    def make_purger(self) -> FakePurger:
        self.bucket = FakePurger(
            "call_recordings",
            result=lambda account_id, _: PurgeResult(detail=f"deleted prefix {account_id}/"),
        )
        return self.bucket

    def seed(self, account_id: str, items: int) -> None:
        self.bucket.seed(account_id, items)

    def remaining(self, account_id: str) -> int:
        return self.bucket.remaining(account_id)


def test_purge_context_is_what_the_lifecycle_hands_a_purger() -> None:
    """purge_context names the purger's category, the account and the attempt."""
    context = purge_context(FakePurger("contacts"), "acct-9", attempt=2)

    assert (context.account_id, context.category, context.attempt) == ("acct-9", "contacts", 2)
    assert (context.cancelled_at, context.now) == (
        datetime(2030, 6, 15, 11, 0, tzinfo=UTC),
        datetime(2030, 6, 15, 12, 2, tzinfo=UTC),
    )
