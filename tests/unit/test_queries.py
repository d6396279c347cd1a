"""Lifecycle.accounts: pages of accounts by state, due time, holds and failed steps, with an
opaque cursor that is checked (account_lifecycle.queries), on the in-memory and SQLite stores."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from account_lifecycle import (
    AccountPage,
    AccountQuery,
    AccountRecord,
    AccountStore,
    Actor,
    ConfigurationError,
    Lifecycle,
    ManualClock,
    MemoryStore,
    Policy,
    State,
)
from account_lifecycle.queries import MAX_PAGE, decode_cursor, encode_cursor, query_of
from account_lifecycle.testing.fakes import fake_purgers

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OWNER = Actor.user("u-1")
AGENT = Actor.support("ann")

POLICY = Policy.from_toml(
    """
name = "queries"
[survey]
mode = "off"
[permissions]
request_cancellation = ["owner"]
withdraw = ["owner"]
confirm = ["owner"]
restore = ["owner"]
[recovery]
window = "30 days"
[purge]
on_hold = "wait"
categories = [
  { name = "contacts", at = "cancel" },
  { name = "files", at = "cancel" },
  { name = "backups", at = "expiry" },
]
"""
)


class Desk:
    """A support desk's view of one store: accounts opened, cancelled, held, failing."""

    def __init__(self, store: AccountStore) -> None:
        self.clock = ManualClock(START)
        self.purgers = fake_purgers(POLICY, fail_when=lambda account_id, context: account_id.endswith("-f"))
        self.lc = Lifecycle(
            POLICY,
            store=store,
            clock=self.clock,
            purgers=self.purgers.values(),
            retry_backoff=timedelta(hours=1),
        )

    def open(self, *ids: str) -> None:
        for account_id in ids:
            self.lc.open(account_id, owner="u-1")

    def cancel(self, *ids: str) -> None:
        for account_id in ids:
            self.lc.request_cancellation(account_id, OWNER)
            self.lc.confirm(account_id, OWNER)


@pytest.fixture
def desk(store: AccountStore) -> Desk:
    """Seven accounts: active, held, cancelled and failing, restorable."""
    desk = Desk(store)
    desk.open("a-active", "b-held", "c-ok", "d-f", "e-held-f", "f-active", "g-ok")
    desk.lc.place_hold("b-held", AGENT, "contacts", "case 1")
    desk.lc.place_hold("e-held-f", AGENT, "files", "case 2")
    desk.cancel("c-ok", "d-f", "e-held-f", "g-ok")
    return desk


def walk(lc: Lifecycle, limit: int, **conditions: Any) -> list[list[str]]:
    """The ids of every page, page by page."""
    pages, cursor = [], None
    while True:
        page = lc.accounts(cursor=cursor, limit=limit, **conditions)
        pages.append(list(page.account_ids))
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


class TestPages:
    def test_every_account_page_by_page_in_id_order(self, desk: Desk) -> None:
        """Without conditions: every account, in id order; the last page has no next cursor,
        and a page that ends exactly with the last account says so (no empty page after it)."""
        assert walk(desk.lc, 3) == [
            ["a-active", "b-held", "c-ok"],
            ["d-f", "e-held-f", "f-active"],
            ["g-ok"],
        ]
        assert walk(desk.lc, 7) == [["a-active", "b-held", "c-ok", "d-f", "e-held-f", "f-active", "g-ok"]]
        assert desk.lc.accounts(limit=50).next_cursor is None

    def test_the_records_are_the_stored_ones(self, desk: Desk) -> None:
        page = desk.lc.accounts(states={State.RESTORABLE})

        assert isinstance(page, AccountPage)
        assert page.account_ids == ("c-ok", "g-ok")
        assert list(page.accounts) == [desk.lc.get("c-ok"), desk.lc.get("g-ok")]

    def test_the_conditions_of_a_support_screen(self, desk: Desk) -> None:
        """States by value or by name, failed steps, holds, work due before a moment, combined."""
        lc = desk.lc

        assert lc.accounts(states={"cancelled"}).account_ids == ("d-f", "e-held-f")
        assert lc.accounts(states=[State.ACTIVE, "restorable"], with_holds=False).account_ids == (
            "a-active",
            "c-ok",
            "f-active",
            "g-ok",
        )
        assert lc.accounts(with_failed_steps=True).account_ids == ("d-f", "e-held-f")
        assert lc.accounts(with_holds=True).account_ids == ("b-held", "e-held-f")
        assert lc.accounts(with_holds=True, with_failed_steps=True).account_ids == ("e-held-f",)
        # the failed steps are retried an hour later; the restorable ones are due when their window ends
        assert lc.accounts(due_before=START + timedelta(hours=1)).account_ids == ()
        assert lc.accounts(due_before=START + timedelta(hours=1, microseconds=1)).account_ids == (
            "d-f",
            "e-held-f",
        )
        assert lc.accounts(due_before=START + timedelta(days=31)).account_ids == (
            "c-ok",
            "d-f",
            "e-held-f",
            "g-ok",
        )

    def test_a_query_object_reads_as_its_keywords(self, desk: Desk) -> None:
        query = AccountQuery(states=frozenset({State.CANCELLED}), with_failed_steps=True)

        assert desk.lc.accounts(query, limit=1) == desk.lc.accounts(
            states={"cancelled"}, with_failed_steps=True, limit=1
        )
        assert walk(desk.lc, 1, states={"cancelled"}) == [["d-f"], ["e-held-f"]]

    def test_a_page_follows_accounts_that_change_between_reads(self, desk: Desk) -> None:
        """An account that stops matching after its page was read is not read again; one after
        the cursor that starts matching is read; none comes twice."""
        lc = desk.lc
        first = lc.accounts(states={"active"}, limit=1)
        lc.request_cancellation("a-active", OWNER)
        lc.withdraw("a-active", OWNER)  # still active, a new version
        lc.restore("c-ok", OWNER)  # active again, after the cursor
        second = lc.accounts(states={"active"}, cursor=first.next_cursor, limit=50)

        assert first.account_ids == ("a-active",)
        assert second.account_ids == ("b-held", "c-ok", "f-active")

    def test_an_undecodable_record_is_listed_as_corrupt(self, tmp_path: Any) -> None:
        import sqlite3
        from contextlib import closing

        from account_lifecycle import CorruptRecord, SQLiteStore

        store = SQLiteStore(tmp_path / "accounts.db")
        desk = Desk(store)
        desk.open("a", "b", "c")
        with closing(sqlite3.connect(store.path, isolation_level=None)) as conn:
            conn.execute("UPDATE accounts SET body = '{' WHERE account_id = 'b'")

        page = desk.lc.accounts(states={"active"}, with_holds=False)
        store.close()

        assert page.account_ids == ("a", "b", "c")
        assert isinstance(page.accounts[1], CorruptRecord)


class TestRefusals:
    @pytest.fixture
    def lc(self) -> Lifecycle:
        desk = Desk(MemoryStore())
        desk.open("a", "b", "c")
        return desk.lc

    @pytest.mark.parametrize("limit", [0, -1, MAX_PAGE + 1, True, 2.0, "5", None])
    def test_a_limit_out_of_bounds_is_a_value_error(self, lc: Lifecycle, limit: Any) -> None:
        with pytest.raises(ValueError, match="limit"):
            lc.accounts(limit=limit)

    def test_a_naive_moment_is_a_value_error(self, lc: Lifecycle) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            lc.accounts(due_before=datetime(2026, 1, 1))
        with pytest.raises(ValueError, match="timezone-aware"):
            lc.accounts(AccountQuery(due_before=datetime(2026, 1, 1)))

    def test_bad_states_are_named(self, lc: Lifecycle) -> None:
        with pytest.raises(ValueError, match="unknown state 'closed'; expected one of active"):
            lc.accounts(states={"closed"})
        with pytest.raises(TypeError, match="not one string"):
            lc.accounts(states="cancelled")
        with pytest.raises(TypeError, match="State values"):
            lc.accounts(AccountQuery(states=frozenset({"cancelled"})))  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="with_holds"):
            lc.accounts(AccountQuery(with_holds="yes"))  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="AccountQuery"):
            lc.accounts({"states": ["cancelled"]})  # type: ignore[arg-type]

    def test_a_query_and_keywords_at_once_is_a_type_error(self, lc: Lifecycle) -> None:
        with pytest.raises(TypeError, match="not both"):
            lc.accounts(AccountQuery(), with_holds=True)

    def test_a_cursor_for_other_conditions_is_refused(self, lc: Lifecycle) -> None:
        cursor = lc.accounts(limit=1).next_cursor

        with pytest.raises(ValueError, match="another query"):
            lc.accounts(states={"active"}, cursor=cursor, limit=1)
        assert cursor is not None
        assert lc.accounts(cursor=cursor, limit=1).account_ids == ("b",)

    def test_garbled_and_edited_cursors_are_refused_saying_why(self, lc: Lifecycle) -> None:
        cursor = lc.accounts(limit=1).next_cursor
        assert cursor is not None
        prefix, body, check = cursor.split(".")
        forged = base64.urlsafe_b64encode(b'[1,"b","' + b"0" * 16 + b'"]').decode().rstrip("=")
        cases = {
            "": "does not start with",
            "hello": "does not start with",
            f"{prefix}.{body}": "its check is missing",
            f"{prefix}.{body}x.{check}": "garbled",
            f"{prefix}.{body[:-2]}.{check}": "garbled",
            f"{prefix}.{forged}.{check}": "garbled or was edited",
            f"{prefix}.!!!.{check}": "garbled",
            "ac1." + "A" * 5000: "too long",
        }
        for text, reason in cases.items():
            with pytest.raises(ValueError, match=reason) as info:
                lc.accounts(cursor=text, limit=1)
            assert body not in str(info.value)
        with pytest.raises(TypeError, match="cursor must be a str"):
            lc.accounts(cursor=b"ac1.x.y", limit=1)  # type: ignore[arg-type]

    def test_a_store_that_cannot_list_is_a_configuration_error(self) -> None:
        class Plain:
            """A store of the first protocol only: get works, list_accounts does not exist."""

            def __init__(self) -> None:
                self.inner = MemoryStore()

            def __getattr__(self, name: str) -> Any:
                if name == "list_accounts":
                    raise AttributeError(name)
                return getattr(self.inner, name)

        lc = Lifecycle(POLICY, store=Plain(), purgers=fake_purgers(POLICY).values())  # type: ignore[arg-type]

        with pytest.raises(ConfigurationError, match="Plain cannot list accounts: it has no list_accounts"):
            lc.accounts()


_IDS = st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S")), min_size=1, max_size=40)
_QUERIES = st.builds(
    query_of,
    states=st.none() | st.frozensets(st.sampled_from(list(State))),
    due_before=st.none() | st.datetimes(timezones=st.just(UTC)),
    with_holds=st.none() | st.booleans(),
    with_failed_steps=st.none() | st.booleans(),
)


@given(after=_IDS, query=_QUERIES)
def test_a_cursor_leads_back_to_its_account_id(after: str, query: AccountQuery) -> None:
    assert decode_cursor(query, encode_cursor(query, after)) == after


@given(text=st.text(max_size=200) | st.from_regex(r"ac1\.[A-Za-z0-9_-]{0,60}\.[0-9a-f]{16}", fullmatch=True))
def test_any_other_text_is_a_value_error_naming_the_problem(text: str) -> None:
    """Random text, even shaped like a cursor, is refused with a ValueError, never another error."""
    with pytest.raises(ValueError, match="cursor"):
        decode_cursor(AccountQuery(), text)


def test_a_page_of_corrupt_and_whole_records_reads_its_ids() -> None:
    from account_lifecycle import CorruptRecord

    record = AccountRecord("a", State.ACTIVE, "u-1")
    page = AccountPage((record, CorruptRecord("b", "it is not valid JSON")), None)

    assert page.account_ids == ("a", "b")
