"""DjangoStore.list_accounts (QueryStore): conditions, keyset pages by account id, undecodable
rows in place; on SQLite and PostgreSQL. (The public contract suite's queries section runs on
DjangoStore too, in test_store_contract.py, once the suite has it.)"""

from __future__ import annotations

from datetime import timedelta

import pytest

from account_lifecycle import Hold, State
from account_lifecycle.contrib.django.models import AccountRow
from account_lifecycle.contrib.django.store import DjangoStore
from account_lifecycle.testing.store_contract import NOW, due_record, new_account
from account_lifecycle.values import AccountQuery


@pytest.fixture(params=["sqlite_db", pytest.param("pg_db", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> DjangoStore:
    store = DjangoStore(request.getfixturevalue(request.param))
    hold = Hold(at=NOW, by="support:agent-1", reason="case 7")
    store.create(*new_account("a-active"))
    store.create(*new_account("b-held", holds={"contacts": hold}))
    store.create(due_record("c-due-early", NOW - timedelta(hours=2)), ())
    store.create(due_record("d-due-late", NOW + timedelta(hours=2)), ())
    store.create(*new_account("e-active"))
    return store


def ids(items: object) -> list[str]:
    return [item.account_id for item in items]  # type: ignore[attr-defined]


def test_each_condition_filters_and_pages_follow_the_id(store: DjangoStore) -> None:
    everything = store.list_accounts(AccountQuery(), after=None, limit=10)
    assert ids(everything) == ["a-active", "b-held", "c-due-early", "d-due-late", "e-active"]
    active = AccountQuery(states=frozenset({State.ACTIVE}))
    assert ids(store.list_accounts(active, after=None, limit=2)) == ["a-active", "b-held"]
    assert ids(store.list_accounts(active, after="b-held", limit=2)) == ["e-active"]
    assert ids(store.list_accounts(AccountQuery(due_before=NOW), after=None, limit=10)) == ["c-due-early"]
    assert ids(store.list_accounts(AccountQuery(with_holds=True), after=None, limit=10)) == ["b-held"]
    assert "b-held" not in ids(store.list_accounts(AccountQuery(with_holds=False), after=None, limit=10))
    assert store.list_accounts(AccountQuery(states=frozenset()), after=None, limit=10) == []


def test_an_undecodable_row_comes_back_in_place_when_its_columns_match(store: DjangoStore) -> None:
    AccountRow.objects.using(store.using).filter(account_id="b-held").update(body="{not json")

    page = store.list_accounts(AccountQuery(states=frozenset({State.ACTIVE})), after=None, limit=10)

    assert [type(item).__name__ for item in page] == ["AccountRecord", "CorruptRecord", "AccountRecord"]
    assert ids(page) == ["a-active", "b-held", "e-active"]


def test_bad_arguments_are_typed_errors(store: DjangoStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.list_accounts(AccountQuery(), after=None, limit=-1)
    with pytest.raises(TypeError, match="AccountQuery"):
        store.list_accounts({"states": None}, after=None, limit=1)  # type: ignore[arg-type]
