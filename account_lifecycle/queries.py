"""Operators' queries over a store: which accounts match an ``AccountQuery``, pages of them, and
the opaque cursor that leads from one page to the next.

A store answers one page at a time (``QueryStore.list_accounts``: accounts after an id, in
``account_id`` order). ``account_page`` (what ``Lifecycle.accounts`` and the console's
``accounts`` command call) wraps that in a cursor: the last id of a page, bound to the query it
was made for and checked by a digest, so that a garbled or edited cursor, or one handed to
another query, is a ``ValueError`` instead of a wrong page. The cursor is no secret and grants
nothing: it names an account id the caller could list anyway.

``AccountQuery`` (from ``account_lifecycle.values``) is re-exported here. ``check_query``,
``check_limit``, ``flags_of``, ``query_path``, ``merge_pages``, ``unindexed_match`` and
``account_matches`` are for stores. The shipped SQL stores keep two booleans beside each record,
``has_holds`` and ``has_failed_steps`` (``flags_of(record)``, written in the same statement as
the body), with indexes that serve the id order, so that every condition is answered on columns
and a page costs the rows it returns, not the size of the table (``query_path`` says which
index walks a query); ``MemoryStore`` keeps the same flags as sets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import itertools
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final, Literal, TypeVar

import attrs

from account_lifecycle.audit import format_time
from account_lifecycle.clock import require_aware
from account_lifecycle.errors import ConfigurationError
from account_lifecycle.model import AccountRecord, PurgeStatus, State, validate_id
from account_lifecycle.schedule import due_at
from account_lifecycle.values import AccountQuery, CorruptRecord

__all__ = [
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "UNREADABLE_FLAGS",
    "AccountPage",
    "AccountQuery",
    "account_matches",
    "account_page",
    "check_after",
    "check_limit",
    "check_query",
    "decode_cursor",
    "encode_cursor",
    "flags_of",
    "merge_pages",
    "query_of",
    "query_path",
    "unindexed_match",
]

#: The page size ``Lifecycle.accounts`` uses unless told otherwise.
DEFAULT_PAGE: Final = 50
#: The largest page ``Lifecycle.accounts`` returns.
MAX_PAGE: Final = 1_000
#: Longer than any cursor this module makes (an id is at most 255 characters).
_MAX_CURSOR: Final = 2_048
_CURSOR_VERSION: Final = 1
_CURSOR_PREFIX: Final = "ac1."
#: The flags a SQL store's migration gives a stored body it cannot decode: "may have a hold, may
#: have a failed step", so the row is listed where an operator looks for trouble.
UNREADABLE_FLAGS: Final = (True, True)

_Row = TypeVar("_Row")


@attrs.frozen
class AccountPage:
    """One page of ``Lifecycle.accounts``: the matching *accounts* in ``account_id`` order (a
    record that cannot be decoded is a ``CorruptRecord`` in its place), and *next_cursor*, to
    pass as ``cursor=`` for the next page, or None when no more accounts match."""

    accounts: tuple[AccountRecord | CorruptRecord, ...]
    next_cursor: str | None = None

    @property
    def account_ids(self) -> tuple[str, ...]:
        """The ids of the page's accounts, in order."""
        return tuple(item.account_id for item in self.accounts)


def check_query(query: object) -> AccountQuery:
    """*query* if it is a well-formed ``AccountQuery`` (its moment made UTC); ``TypeError`` for
    a value of the wrong type, ``ValueError`` for a naive ``due_before``."""
    if not isinstance(query, AccountQuery):
        raise TypeError(f"query must be an AccountQuery, got {type(query).__name__}")
    states = query.states
    if states is not None:
        if not isinstance(states, frozenset | set):
            raise TypeError(f"AccountQuery.states must be a frozenset of State, got {type(states).__name__}")
        wrong = sorted(type(s).__name__ for s in states if not isinstance(s, State))
        if wrong:
            raise TypeError(f"AccountQuery.states must hold State values only, got {', '.join(wrong)}")
        states = frozenset(states)
    due_before = query.due_before
    if due_before is not None:
        due_before = require_aware(due_before, "AccountQuery.due_before")
    for name in ("with_holds", "with_failed_steps"):
        value = getattr(query, name)
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"AccountQuery.{name} must be True, False or None, got {type(value).__name__}")
    return attrs.evolve(query, states=states, due_before=due_before)


def query_of(
    *,
    states: Iterable[State | str] | None = None,
    due_before: datetime | None = None,
    with_holds: bool | None = None,
    with_failed_steps: bool | None = None,
) -> AccountQuery:
    """The ``AccountQuery`` of these conditions, checked; *states* may be ``State`` values or
    their names (``"cancelled"``). ``ValueError`` naming an unknown state; ``TypeError`` for a
    single string given as *states* or a value of the wrong type."""
    wanted: frozenset[State] | None = None
    if states is not None:
        if isinstance(states, str):
            raise TypeError(f"states must be a collection of states, not one string ({states!r})")
        chosen = set()
        for state in states:
            if not isinstance(state, str):
                raise TypeError(f"states must hold State values or their names, got {type(state).__name__}")
            try:
                chosen.add(State(state))
            except ValueError:
                names = ", ".join(s.value for s in State)
                raise ValueError(f"unknown state {state!r}; expected one of {names}") from None
        wanted = frozenset(chosen)
    return check_query(AccountQuery(wanted, due_before, with_holds, with_failed_steps))


def check_limit(limit: object, *, at_most: int | None = None, least: int = 0) -> int:
    """*limit* if it is a whole number from *least* (to *at_most*); else ``ValueError``."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValueError(f"limit must be a whole number, got {limit!r}")
    if limit < least or (at_most is not None and limit > at_most):
        bound = f"from {least}" + ("" if at_most is None else f" to {at_most}")
        raise ValueError(f"limit must be {bound}, got {limit}")
    return limit


def check_after(after: object) -> str | None:
    """*after* if it is None or an account id (``TypeError``/``ValueError`` otherwise)."""
    return None if after is None else validate_id(after, "after")


def _has_failed_step(record: AccountRecord) -> bool:
    return any(progress.status is PurgeStatus.FAILED for progress in record.purge.values())


def flags_of(record: AccountRecord) -> tuple[bool, bool]:
    """``(has_holds, has_failed_steps)`` of *record*: whether it has a legal hold, and whether a
    purge step of it has failed. The two columns a SQL store writes with every body (in the
    same statement), so ``with_holds`` and ``with_failed_steps`` are answered on indexes."""
    return bool(record.holds), _has_failed_step(record)


def query_path(query: AccountQuery) -> Literal["holds", "failed", "states", "all"]:
    """Which index a store walks, in id order, to answer *query* (a checked query with a
    non-empty *states*, if any): ``"holds"`` / ``"failed"``, the partial index of the accounts
    with a hold / a failed step (the rare ones an operator looks for); ``"states"``, the
    ``(state, account_id)`` index once per state, pages merged with ``merge_pages``; ``"all"``,
    the primary key. Every other condition is a column test on the rows walked."""
    if query.with_holds is True:
        return "holds"
    if query.with_failed_steps is True:
        return "failed"
    if query.states is not None:
        return "states"
    return "all"


def merge_pages(pages: Iterable[Sequence[_Row]], limit: int, key: Any) -> list[_Row]:
    """The first *limit* rows of *pages* (each already in *key* order, none sharing a key), in
    *key* order: the page of a query answered one state at a time. *pages* may be lazy (each
    page read as it is taken): a store passes its reads, in its open transaction."""
    return list(itertools.islice(heapq.merge(*pages, key=key), limit))


def unindexed_match(query: AccountQuery, record: AccountRecord) -> bool:
    """Whether *record* meets the conditions of *query* on legal holds and failed purge steps
    (for a store that keeps no columns for them; the shipped SQL stores do: ``flags_of``)."""
    if query.with_holds is not None and bool(record.holds) != query.with_holds:
        return False
    return query.with_failed_steps is None or _has_failed_step(record) == query.with_failed_steps


def account_matches(query: AccountQuery, record: AccountRecord) -> bool:
    """Whether *record* meets every condition of *query* (a store without columns, such as
    ``MemoryStore``, filters with this alone)."""
    if query.states is not None and record.state not in query.states:
        return False
    if query.due_before is not None:
        due = due_at(record)
        if due is None or not due < query.due_before:
            return False
    return unindexed_match(query, record)


# -- cursors ------------------------------------------------------------------------------------


def _fingerprint(query: AccountQuery) -> str:
    """A short digest of what *query* asks, so a cursor can be checked against its query."""
    parts: list[Any] = [
        None if query.states is None else sorted(s.value for s in query.states),
        None if query.due_before is None else format_time(query.due_before),
        query.with_holds,
        query.with_failed_steps,
    ]
    text = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check(payload: bytes) -> str:
    return hashlib.sha256(b"account_lifecycle cursor\x00" + payload).hexdigest()[:16]


def encode_cursor(query: AccountQuery, after: str) -> str:
    """The opaque cursor of the page that starts after *after*, for *query*."""
    payload = json.dumps([_CURSOR_VERSION, after, _fingerprint(query)], separators=(",", ":")).encode()
    text = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return f"{_CURSOR_PREFIX}{text}.{_check(payload)}"


def decode_cursor(query: AccountQuery, cursor: object) -> str:
    """The account id *cursor* starts after; ``ValueError`` saying what is wrong (never quoting
    it) if it is not a cursor this module made for *query*, ``TypeError`` if it is no string."""
    if not isinstance(cursor, str):
        raise TypeError(f"cursor must be a str (a page's next_cursor), got {type(cursor).__name__}")
    if len(cursor) > _MAX_CURSOR:
        raise ValueError(f"the cursor is not one this library made: {len(cursor)} characters is too long")
    if not cursor.startswith(_CURSOR_PREFIX):
        raise ValueError("the cursor is not one this library made: it does not start with 'ac1.'")
    body, sep, check = cursor[len(_CURSOR_PREFIX) :].rpartition(".")
    if not sep:
        raise ValueError("the cursor is not one this library made: its check is missing")
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("the cursor is garbled: it is not base64 text") from None
    if not hmac.compare_digest(check, _check(payload)):
        raise ValueError("the cursor is garbled or was edited: its check does not match")
    try:
        version, after, fingerprint = json.loads(payload)
    except (ValueError, TypeError):
        raise ValueError("the cursor is not one this library made: its content cannot be read") from None
    if version != _CURSOR_VERSION or not isinstance(after, str) or not isinstance(fingerprint, str):
        raise ValueError("the cursor is not one this library made: unknown version or content")
    if fingerprint != _fingerprint(query):
        raise ValueError(
            "the cursor was made for another query: pass the same conditions as for the first "
            "page, or start again without a cursor"
        )
    try:
        return validate_id(after, "the cursor's account id")
    except ValueError:
        raise ValueError("the cursor is not one this library made: it names no valid account id") from None


# -- pages ----------------------------------------------------------------------------------------


def account_page(
    store: object, query: AccountQuery | None = None, *, cursor: str | None = None, limit: int = DEFAULT_PAGE
) -> AccountPage:
    """The page of *store*'s accounts matching *query* (None: every account) that *cursor* points
    at (None: the first), at most *limit* (1 to ``MAX_PAGE``) long. Reads only.

    ``ConfigurationError`` if *store* has no ``list_accounts`` (it is no ``QueryStore``)."""
    query = check_query(AccountQuery() if query is None else query)
    limit = check_limit(limit, least=1, at_most=MAX_PAGE)
    after = None if cursor is None else decode_cursor(query, cursor)
    list_accounts = getattr(store, "list_accounts", None)
    if not callable(list_accounts):
        raise ConfigurationError(
            f"{type(store).__name__} cannot list accounts: it has no list_accounts(query, *, after, "
            "limit) (account_lifecycle.ports.QueryStore); every shipped store has one"
        )
    # One more than asked: whether there is a next page is known without a second call.
    found: Sequence[AccountRecord | CorruptRecord] = list_accounts(query, after=after, limit=limit + 1)
    items = tuple(found[:limit])
    more = len(found) > limit
    return AccountPage(items, encode_cursor(query, items[-1].account_id) if more else None)
