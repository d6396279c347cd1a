"""The store contract catches a store that forgets to update what it filters queries on: each
test plants one such fault (flags kept from the account's creation only, or a save that leaves the flag
column as it was) and runs the contract's query tests on it, which must fail; the same tests
pass on the store without the fault."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from account_lifecycle import MemoryStore, SQLiteStore
from account_lifecycle.model import AccountRecord
from account_lifecycle.testing.store_contract import StoreContract


class CreatedFlagsMemoryStore(MemoryStore):
    """Files an account as held or failed when it is created, and never again."""

    def _flag(self, record: AccountRecord) -> None:
        if record.version == 1:
            super()._flag(record)


class StaleHoldsSQLiteStore(SQLiteStore):
    """Saves every column but ``has_holds``, which keeps the value the account was created with."""

    @staticmethod
    def _update(*args: Any) -> tuple[str, tuple[object, ...]]:
        statement, params = SQLiteStore._update(*args)
        assert "has_holds = ?" in statement
        return statement.replace("has_holds = ?", "has_holds = has_holds + 0 * ?"), params


#: Random examples that find the fault without shrinking it (the failure is all that is
#: checked here), the same examples on every run.
FIND = settings(
    max_examples=60,
    phases=(Phase.generate,),
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def _random_writes(contract: StoreContract, store: Any) -> None:
    """The contract's random-writes test on *store*, under ``FIND``."""
    inner = (
        StoreContract.test_queries_agree_with_the_decoded_records_after_random_writes.hypothesis.inner_test
    )  # type: ignore[attr-defined]

    @FIND
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        inner(contract, store, data)

    run()


CHECKS = (StoreContract.test_holds_and_failed_steps_listed_follow_every_write, _random_writes)


@pytest.fixture(params=["memory", "sqlite"])
def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Callable[[], Any], Callable[[], Any]]]:
    """(a faulty store factory, the same store without the fault)."""
    opened: list[Any] = []

    def keep(store: Any) -> Any:
        opened.append(store)
        return store

    if request.param == "memory":
        yield (lambda: keep(CreatedFlagsMemoryStore())), (lambda: keep(MemoryStore()))
    else:
        paths = iter(range(100))
        yield (
            (lambda: keep(StaleHoldsSQLiteStore(tmp_path / f"faulty-{next(paths)}.db"))),
            (lambda: keep(SQLiteStore(tmp_path / f"sound-{next(paths)}.db"))),
        )
    for store in opened:
        close = getattr(store, "close", None)
        if callable(close):
            close()


@pytest.mark.parametrize("check", CHECKS, ids=["follow_every_write", "random_writes"])
def test_the_contract_fails_a_store_that_forgets_a_flag(
    stores: tuple[Callable[[], Any], Callable[[], Any]], check: Callable[..., None]
) -> None:
    faulty, sound = stores
    contract = StoreContract()

    check(contract, sound())
    with pytest.raises(AssertionError):
        check(contract, faulty())
