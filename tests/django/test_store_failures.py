"""DjangoStore's storage failures are StoreError, quoting no password and no stored value; an
alias DATABASES does not define is a ConfigurationError when the store is built."""

from __future__ import annotations

import pytest

from account_lifecycle import ConfigurationError, StoreError
from account_lifecycle.contrib.django.store import DjangoStore
from account_lifecycle.testing.store_contract import NOW, new_account
from account_lifecycle.values import Lease

pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[postgres]'")


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get("acct-1"),
        lambda s: s.create(*new_account("acct-1", identity="ann.secret@example.com")),
        lambda s: s.claim_due(now=NOW, lease=Lease("sweeper", NOW), limit=5),
        lambda s: s.outbox_head(),
    ],
    ids=["get", "create", "claim_due", "outbox_head"],
)
def test_an_unreachable_database_is_a_store_error_without_secrets(call: object) -> None:
    store = DjangoStore("unreachable")

    with pytest.raises(StoreError) as info:
        call(store)  # type: ignore[operator]

    message = str(info.value)
    assert "'unreachable'" in message
    assert "hunter2" not in message
    assert "ann.secret" not in message
    assert info.value.__cause__ is None


def test_an_unknown_alias_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="'nowhere'"):
        DjangoStore("nowhere")
