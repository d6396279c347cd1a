"""``manage.py lifecycle_status``: the store's health at the lifecycle's clock, as lines or JSON;
exit status 1 (``CommandError``) when due work waited longer than ``--stuck-after``."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from conftest import open_customer
from django.core.management import CommandError, call_command

from account_lifecycle import Actor


def run(*args: str) -> str:
    out = StringIO()
    call_command("lifecycle_status", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def confirmed_deferred(lc: Any) -> str:
    """An account confirmed with its cancel-time work left to the sweep: due now."""
    user, account_id = open_customer(lc)
    owner = Actor.user(str(user.pk))
    lc.request_cancellation(account_id, owner)
    lc.skip_survey(account_id, owner)
    lc.confirm(account_id, owner, defer=True)
    return account_id


def test_an_empty_store_is_healthy(lc: Any) -> None:
    out = run()
    assert "due now (backlog): 0, the oldest due -" in out
    assert "migrations: 2 applied, 2 shipped" in out
    assert out.rstrip().endswith("healthy")


def test_due_work_older_than_the_threshold_is_stuck(lc: Any, clock: Any) -> None:
    confirmed_deferred(lc)
    assert "due now (backlog): 1" in run()  # due, not stuck yet
    clock.advance(timedelta(hours=2))
    with pytest.raises(CommandError, match=r"status: 1 account\(s\) due, the oldest waiting 2h00m"):
        run()
    assert "due now (backlog): 1" in run("--stuck-after", "3 hours")
    lc.sweep()
    assert run().rstrip().endswith("healthy")


def test_json_is_the_snapshot_with_its_reasons(lc: Any, clock: Any) -> None:
    account_id = confirmed_deferred(lc)
    clock.advance(timedelta(minutes=30))
    data = json.loads(run("--json"))
    assert (data["due"], data["stuck"], data["stuck_after_seconds"]) == (1, [], 3600.0)
    assert data["oldest_due_age_seconds"] == 1800.0
    assert account_id not in json.dumps(data)  # nothing but counts for a healthy backlog


def test_a_bad_threshold_is_a_command_error(lc: Any) -> None:
    with pytest.raises(CommandError, match="--stuck-after"):
        run("--stuck-after", "soon")
