"""Two accounts change to one identity at once, on SQLite and PostgreSQL: the interleaving is
built inside a store wrapper (account a's compare-and-set runs only after account b's change
committed), so the race happens every time. The store's unique key decides: exactly one
account holds the identity, the other gets ``AccountExists`` and wrote nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from backends import Backend

from account_lifecycle import AccountExists, AccountRecord, Actor, Lifecycle, ManualClock, policies
from account_lifecycle.testing.fakes import fake_identity_keys, fake_purgers

KEYS = fake_identity_keys()
AT = datetime(2031, 5, 1, 9, 0, tzinfo=UTC)


class ChangeFirst:
    """A store whose next save of account ``a`` first lets *meanwhile* run to its end."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.meanwhile: Any = None

    def save(self, record: AccountRecord, **kwargs: Any) -> None:
        if record.account_id == "a" and self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        self.inner.save(record, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def lifecycle(store: Any) -> Lifecycle:
    policy = policies.ALLCLIENTS
    return Lifecycle(
        policy, store=store, purgers=fake_purgers(policy).values(), clock=ManualClock(AT), identity_keys=KEYS
    )


def test_one_identity_two_changes_one_winner(backend: Backend) -> None:
    """b's change commits inside a's; a's compare-and-set is refused by the unique key."""
    store = ChangeFirst(backend.build())
    lc = lifecycle(store)
    other = lifecycle(backend.build())
    lc.open("a", owner="u-a", identity="a@example.com")
    lc.open("b", owner="u-b", identity="b@example.com")
    store.meanwhile = lambda: other.change_identity("b", Actor.user("u-b"), "shared@example.com")

    with pytest.raises(AccountExists):
        lc.change_identity("a", Actor.user("u-a"), "shared@example.com")

    assert store.meanwhile is None  # the interleaving ran
    assert lc.holds_identity("b", "shared@example.com")
    assert lc.holds_identity("a", "a@example.com")
    assert lc.get("a").version == 1
    assert [e.action for e in lc.history("a")] == ["open"]
    # a's old identity was never given up; b's old one is free
    lc.open("c", owner="u-c", identity="b@example.com")
