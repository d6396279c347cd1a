"""DjangoStore works inside the host's ``transaction.atomic()``: the host's writes and the
lifecycle's commit are kept or undone together, and a refused command leaves the host's
transaction usable."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import open_customer
from crm.models import Contact, Item
from django.db import transaction

from account_lifecycle import AccountNotFound, Actor, State
from account_lifecycle.contrib.django.models import AccountRow, EventRow, OutboxEntryRow


class HostFailure(Exception):
    pass


def test_a_host_error_undoes_the_lifecycle_commit_made_in_its_transaction(lc: Any) -> None:
    """open() and the host's own row, in one atomic block that then fails: neither is kept, no
    audit event and no outbox entry either."""

    def host_view() -> None:
        with transaction.atomic():
            lc.open("acct-9", owner="9")
            Contact.objects.create(account_id="acct-9", name="Bob")
            raise HostFailure

    with pytest.raises(HostFailure):
        host_view()

    with pytest.raises(AccountNotFound):
        lc.get("acct-9")
    assert Contact.objects.filter(account_id="acct-9").count() == 0
    assert EventRow.objects.count() == 0
    assert OutboxEntryRow.objects.count() == 0


def test_the_host_write_and_the_lifecycle_commit_are_kept_together(lc: Any) -> None:
    """A cancellation request and the host's note commit together."""
    user, account_id = open_customer(lc)
    with transaction.atomic():
        lc.request_cancellation(account_id, Actor.user(str(user.pk)))
        Item.objects.create(account_id=account_id, kind="history", text="asked to cancel")

    assert lc.get(account_id).state is State.SURVEYED
    assert Item.objects.filter(account_id=account_id, text="asked to cancel").count() == 1


def test_a_refused_command_inside_the_host_transaction_leaves_it_usable(lc: Any) -> None:
    """A command refused by the lifecycle (the owner cannot restore) rolls back its savepoint
    only: the host catches it and commits its other writes."""
    user, account_id = open_customer(lc)
    with transaction.atomic():
        Item.objects.create(account_id=account_id, kind="todos", text="before")
        with pytest.raises(Exception, match="restore"):
            lc.restore(account_id, Actor.user(str(user.pk)))
        lc.request_cancellation(account_id, Actor.user(str(user.pk)))

    assert lc.get(account_id).state is State.SURVEYED
    assert Item.objects.filter(text="before").count() == 1


def test_a_stale_write_inside_the_host_transaction_is_concurrent_update_and_writes_nothing(lc: Any) -> None:
    """The store's compare-and-set inside the host's block: a stale version is refused, the
    row keeps its version, the block goes on."""
    from account_lifecycle import ConcurrentUpdate
    from account_lifecycle.testing.store_contract import advance

    _, account_id = open_customer(lc)
    record = lc.get(account_id)
    following, events = advance(record)
    with transaction.atomic():
        with pytest.raises(ConcurrentUpdate):
            lc.store.save(following, expected_version=record.version + 5, events=events)
        Item.objects.create(account_id=account_id, kind="todos", text="after")

    assert AccountRow.objects.get(account_id=account_id).version == record.version
    assert Item.objects.filter(text="after").count() == 1
