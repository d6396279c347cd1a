"""``lifecycle_event`` is fed from the outbox: sent once per committed audit event, in commit
order, when the outbox is relayed (``lifecycle_sweep``); never on a write itself, never for a
transaction that rolled back; a receiver that raises is retried by a later relay."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from conftest import open_customer
from django.core.management import call_command
from django.db import transaction

from account_lifecycle import Actor
from account_lifecycle.contrib.django.signals import OUTBOX_LISTENER, lifecycle_event


@pytest.fixture
def received() -> Iterator[list[Any]]:
    seen: list[Any] = []

    def receiver(sender: Any, event: Any, **kwargs: Any) -> None:
        seen.append(event)

    lifecycle_event.connect(receiver, weak=False)
    try:
        yield seen
    finally:
        lifecycle_event.disconnect(receiver)


def sweep() -> str:
    out = StringIO()
    call_command("lifecycle_sweep", stdout=out, stderr=StringIO())
    return out.getvalue()


def test_events_are_signalled_when_the_outbox_is_relayed_in_commit_order(
    lc: Any, received: list[Any]
) -> None:
    """Writes send nothing themselves; the relay sends each committed event once, in order."""
    user, account_id = open_customer(lc)
    lc.request_cancellation(account_id, Actor.user(str(user.pk)))
    assert received == []

    assert "relayed: 2 events; 0 listeners retrying, 0 dead letters" in sweep()
    assert [(e.account_id, e.seq, e.action) for e in received] == [
        (account_id, 1, "open"),
        (account_id, 2, "request_cancellation"),
    ]
    assert received == list(lc.history(account_id))
    sweep()
    assert len(received) == 2  # each once


def test_a_rolled_back_transaction_is_never_signalled(lc: Any, received: list[Any]) -> None:
    user, account_id = open_customer(lc)

    def failing_view() -> None:
        with transaction.atomic():
            lc.request_cancellation(account_id, Actor.user(str(user.pk)))
            raise RuntimeError("the host's view fails")

    with pytest.raises(RuntimeError):
        failing_view()
    sweep()

    assert [e.action for e in received] == ["open"]


def test_a_failing_receiver_is_retried_by_a_later_relay(lc: Any, clock: Any, received: list[Any]) -> None:
    """The relay keeps the event when a receiver raises, reports the listener as retrying, and
    delivers it again once the backoff has passed."""
    failures = ["mail server down"]

    def flaky(sender: Any, event: Any, **kwargs: Any) -> None:
        if failures:
            raise ConnectionError(failures.pop())

    lifecycle_event.connect(flaky, weak=False)
    try:
        open_customer(lc)
        err = StringIO()
        call_command("lifecycle_sweep", stdout=StringIO(), stderr=err)
        assert err.getvalue().startswith(f"retrying: {OUTBOX_LISTENER}: ConnectionError")
        clock.advance(timedelta(hours=1))
        assert "relayed: 1 events" in sweep()
    finally:
        lifecycle_event.disconnect(flaky)

    assert [e.action for e in received] == ["open", "open"]  # at least once: again after the failure


def test_signals_off_registers_no_listener(sqlite_db: str) -> None:
    from django.conf import settings
    from django.test.utils import override_settings

    from account_lifecycle.contrib.django import conf

    with override_settings(ACCOUNT_LIFECYCLE={**settings.ACCOUNT_LIFECYCLE, "SIGNALS": False}):
        conf.reset()
        try:
            lc = conf.lifecycle()
            lc.open("acct-1", owner="1")
            assert lc.relay().total == 0
        finally:
            conf.reset()
