"""The management commands: lifecycle_sweep (once and as a bounded loop), lifecycle_verify,
lifecycle_history and lifecycle_receipt."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from conftest import open_customer
from crm.models import Contact, Item
from django.core.management import CommandError, call_command

from account_lifecycle import Actor, State
from account_lifecycle.contrib.django.models import EventRow


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def cancelled(lc: Any) -> tuple[Any, str]:
    user, account_id = open_customer(lc)
    owner = Actor.user(str(user.pk))
    lc.request_cancellation(account_id, owner)
    lc.skip_survey(account_id, owner)
    lc.confirm(account_id, owner)
    return user, account_id


def test_sweep_purges_an_account_once_its_window_ends(lc: Any, clock: Any) -> None:
    """Confirm erases the cancel-time categories; the backups stay until the window ends, and
    the sweep after it erases them and purges the account."""
    _, account_id = cancelled(lc)
    assert lc.get(account_id).state is State.RESTORABLE
    assert Contact.objects.filter(account_id=account_id).count() == 0
    assert Item.objects.filter(account_id=account_id, kind="backups").count() == 1

    assert run("lifecycle_sweep").startswith("swept: 0 purged, 0 restorable, 0 failed\n")
    clock.advance(timedelta(days=93))
    assert run("lifecycle_sweep").startswith("swept: 1 purged, 0 restorable, 0 failed\n")

    assert lc.get(account_id).state is State.PURGED
    assert Item.objects.filter(account_id=account_id).count() == 0


def test_sweep_loop_runs_the_given_number_of_sweeps(lc: Any) -> None:
    """--loop --runs 2 --interval 0.01: two sweeps, two lines, then it returns."""
    assert run("lifecycle_sweep", "--loop", "--runs", "2", "--interval", "0.01").count("swept:") == 2


def test_history_lists_the_events_and_says_the_chain_verifies(lc: Any) -> None:
    _, account_id = cancelled(lc)

    out = run("lifecycle_history", account_id)

    lines = out.splitlines()
    assert lines[-1] == f"chain verified: {len(lc.history(account_id))} events"
    assert "request_cancellation" in out
    assert "confirm" in out
    first = json.loads(run("lifecycle_history", account_id, "--json").splitlines()[0])
    assert (first["seq"], first["action"]) == (1, "open")


def test_verify_reports_a_tampered_chain_and_exits_1(lc: Any) -> None:
    """Editing an event's stored body breaks the chain: verify names the account and event."""
    _, account_id = cancelled(lc)
    open_customer(lc, "bob")
    assert run("lifecycle_verify") == "verified 2 account(s): every chain is intact\n"
    row = EventRow.objects.get(account_id=account_id, seq=2)
    row.body = row.body.replace("request_cancellation", "withdraw")
    row.save()

    err = StringIO()
    with pytest.raises(CommandError, match="1 of 2 account"):
        call_command("lifecycle_verify", stdout=StringIO(), stderr=err)
    assert err.getvalue().startswith(f"{account_id}: chain broken at event 2")
    with pytest.raises(CommandError, match="chain broken at event 2"):
        run("lifecycle_history", account_id)


def test_receipt_prints_json_once_purged_and_refuses_before(lc: Any, clock: Any) -> None:
    _, account_id = cancelled(lc)
    with pytest.raises(CommandError, match="purged"):
        run("lifecycle_receipt", account_id)
    clock.advance(timedelta(days=93))
    run("lifecycle_sweep")

    receipt = json.loads(run("lifecycle_receipt", account_id))

    assert receipt["account_id"] == account_id
    assert sorted(e["category"] for e in receipt["erased"]) == sorted(
        ["contacts", "appointments", "todos", "email_templates", "autoresponders", "history", "backups"]
    )
    with pytest.raises(CommandError, match="acct-nobody"):
        run("lifecycle_receipt", "acct-nobody")


def test_the_sweep_worker_stops_on_sigterm_and_gives_the_handlers_back(lc: Any) -> None:
    """--loop with a long interval: SIGTERM (sent by the first sweep's report, so it arrives
    while the worker waits) ends the loop; the process's own handlers are back afterwards."""
    import os
    import signal

    before = signal.getsignal(signal.SIGTERM)

    class Reporter(StringIO):
        def write(self, text: str) -> int:
            if text.startswith("swept:"):
                os.kill(os.getpid(), signal.SIGTERM)
            return super().write(text)

    out = Reporter()
    call_command("lifecycle_sweep", "--loop", "--interval", "3600", stdout=out)

    assert out.getvalue().count("swept:") == 1
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("lifecycle_sweep", "--limit", "-1"), "--limit must be >= 0"),
        (("lifecycle_sweep", "--loop", "--interval", "0"), "--interval must be > 0"),
        (("lifecycle_history", "acct-nobody"), "acct-nobody"),
        (("lifecycle_verify", "acct-nobody"), "1 of 1 account"),
    ],
)
def test_bad_arguments_are_command_errors_and_change_nothing(
    lc: Any, args: tuple[str, ...], message: str
) -> None:
    _, account_id = open_customer(lc)
    before = lc.history(account_id)

    with pytest.raises(CommandError, match=message):
        call_command(*args, stdout=StringIO(), stderr=StringIO())

    assert lc.history(account_id) == before
