"""The behaviour every ``Purger`` must have, as a pytest suite a host subclasses.

Subclass ``PurgerContract`` in a test module (its name must start with ``Test`` for pytest
to collect it) and say how to build a purger over a fresh, empty backend, how to put data
of its category in that backend, and how to count what is left::

    from account_lifecycle.testing.purger_contract import PurgerContract

    class TestContactsPurger(PurgerContract):
        def make_purger(self) -> ContactsPurger:
            self.crm = FakeCrm()
            return ContactsPurger(self.crm)

        def seed(self, account_id: str, items: int) -> None:
            for n in range(items):
                self.crm.add_contact(account_id, f"contact {n}")

        def remaining(self, account_id: str) -> int:
            return len(self.crm.contacts_of(account_id))

Each test gets a fresh purger from ``make_purger()`` (pytest makes a fresh instance of the
class per test, so keeping the backend on ``self`` is safe). The suite checks that a
purger erases the account's data, reports the number of items it erased, only touches the
account it is given, handles an account with nothing to erase, and is idempotent: the
lifecycle may call it again after a crash, and the second call must erase nothing more and
must not fail. A purger that cannot count what it erased sets ``counts_items = False``
(the item checks then only ask for a whole number >= 0). The suite needs pytest and
Hypothesis (extra ``testing``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from account_lifecycle.ports import PurgeContext, Purger, PurgeResult

__all__ = ["PurgerContract", "purge_context"]

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
#: The moment the suite's purge contexts are made at.
NOW = datetime(2030, 6, 15, 12, 0, tzinfo=UTC)


def purge_context(purger: Purger, account_id: str, *, attempt: int = 1) -> PurgeContext:
    """The context the lifecycle would hand *purger* for *account_id*'s *attempt*-th try."""
    return PurgeContext(
        account_id=account_id,
        category=purger.category,
        policy="contract@1",
        attempt=attempt,
        cancelled_at=NOW - timedelta(hours=1),
        now=NOW + timedelta(minutes=attempt),
    )


class PurgerContract:
    """The ``Purger`` contract. Implement ``make_purger()``, ``seed()`` and ``remaining()``."""

    #: Whether ``PurgeResult.items`` counts what the purger erased (set False if it cannot).
    counts_items: ClassVar[bool] = True

    # -- hooks a host implements -------------------------------------------------------------

    def make_purger(self) -> Purger:
        """A purger over a fresh, empty backend."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_purger()")

    def seed(self, account_id: str, items: int) -> None:
        """Put *items* items of the purger's category for *account_id* in its backend."""
        raise NotImplementedError(f"{type(self).__name__} must implement seed(account_id, items)")

    def remaining(self, account_id: str) -> int:
        """How many items of the purger's category *account_id* still has in the backend."""
        raise NotImplementedError(f"{type(self).__name__} must implement remaining(account_id)")

    def close_purger(self, purger: Purger) -> None:
        """Called after each test; closes the purger if it has a ``close()``."""
        close = getattr(purger, "close", None)
        if callable(close):
            close()

    @pytest.fixture
    def purger(self) -> Iterator[Purger]:
        purger = self.make_purger()
        try:
            yield purger
        finally:
            self.close_purger(purger)

    # -- helpers -----------------------------------------------------------------------------

    def _purge(
        self, purger: Purger, account_id: str, *, attempt: int = 1, what: str = "a purge"
    ) -> PurgeResult:
        """Call the purger as the lifecycle does; turn an exception into a failure naming the call."""
        try:
            result = purger.purge(account_id, purge_context(purger, account_id, attempt=attempt))
        except Exception as exc:
            raise AssertionError(
                f"{what} of {account_id!r} by purger {purger.category!r} raised {type(exc).__name__}: {exc}"
            ) from exc
        assert isinstance(result, PurgeResult), (
            f"{what} of {account_id!r} returned {type(result).__name__}, not a PurgeResult"
        )
        return result

    def _check_items(self, result: PurgeResult, erased: int, what: str) -> None:
        if self.counts_items:
            assert result.items == erased, f"{what} erased {erased} item(s) but reported items={result.items}"

    # -- the contract ------------------------------------------------------------------------

    def test_category_is_a_policy_name(self, purger: Purger) -> None:
        """category is a lower-case name a policy can list ('contacts', 'call_recordings')."""
        category = purger.category
        assert isinstance(category, str) and _NAME.fullmatch(category), (
            f"category must be a lower-case name like 'contacts', got {category!r}"
        )

    def test_purge_returns_a_purge_result(self, purger: Purger) -> None:
        """purge() returns a PurgeResult, not a count or None."""
        self.seed("acct-1", 1)

        result = self._purge(purger, "acct-1")

        assert isinstance(result.items, int) and result.items >= 0
        assert isinstance(result.detail, str)

    def test_purge_erases_every_item_of_the_account(self, purger: Purger) -> None:
        """After purge() the account has nothing of the category left."""
        self.seed("acct-1", 3)

        self._purge(purger, "acct-1")

        assert self.remaining("acct-1") == 0

    def test_items_is_the_number_of_items_erased(self, purger: Purger) -> None:
        """PurgeResult.items equals what the purge erased."""
        self.seed("acct-1", 3)

        result = self._purge(purger, "acct-1")

        self._check_items(result, 3 - self.remaining("acct-1"), "the purge")

    def test_a_second_purge_erases_nothing_more_and_does_not_fail(self, purger: Purger) -> None:
        """Idempotent: called again (after a crash), purge() succeeds, reports 0 items, changes nothing."""
        self.seed("acct-1", 2)
        self._purge(purger, "acct-1")

        again = self._purge(purger, "acct-1", attempt=2, what="a second purge")

        assert self.remaining("acct-1") == 0
        if self.counts_items:
            assert again.items == 0, f"a second purge reported items={again.items}; nothing was left"

    def test_an_account_with_nothing_to_erase_purges_cleanly(self, purger: Purger) -> None:
        """An account with no data of the category (or unknown to the backend) purges with 0 items."""
        result = self._purge(purger, "acct-empty", what="a purge of an empty account")

        assert self.remaining("acct-empty") == 0
        self._check_items(result, 0, "a purge of an empty account")

    def test_purge_touches_only_the_given_account(self, purger: Purger) -> None:
        """Other accounts keep every item, even ones whose id starts like the purged one."""
        self.seed("acct-1", 2)
        self.seed("acct-10", 3)
        self.seed("acct-2", 1)

        self._purge(purger, "acct-1")

        assert (self.remaining("acct-1"), self.remaining("acct-10"), self.remaining("acct-2")) == (0, 3, 1)

    def test_any_sequence_of_purges_erases_exactly_the_purged_accounts(self) -> None:
        """Random data on several accounts, purged in any order, some twice: each purged account
        ends empty, every other keeps its items, and the reported items add up."""

        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            seeded=st.lists(st.integers(0, 4), min_size=1, max_size=4),
            order=st.lists(st.integers(0, 3), max_size=6),
        )
        def check(seeded: list[int], order: list[int]) -> None:
            purger = self.make_purger()
            try:
                accounts = [f"acct-{n}" for n in range(len(seeded))]
                for account_id, items in zip(accounts, seeded, strict=True):
                    self.seed(account_id, items)
                reported = dict.fromkeys(accounts, 0)
                purged: set[str] = set()
                for index in order:
                    account_id = accounts[index % len(accounts)]
                    repeat = account_id in purged
                    what = "a repeated purge" if repeat else "a purge"
                    result = self._purge(purger, account_id, attempt=2 if repeat else 1, what=what)
                    reported[account_id] += result.items
                    purged.add(account_id)
                left = {a: self.remaining(a) for a in accounts}
                expected = {a: 0 if a in purged else n for a, n in zip(accounts, seeded, strict=True)}
                assert left == expected, f"items left {left}, expected {expected}"
                if self.counts_items:
                    erased = {a: n if a in purged else 0 for a, n in zip(accounts, seeded, strict=True)}
                    assert reported == erased, f"reported items {reported}, erased {erased}"
            finally:
                self.close_purger(purger)

        check()
