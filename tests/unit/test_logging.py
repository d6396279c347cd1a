"""The library stays quiet in the host's log: no INFO lines from ``transitions``, none of its
own below WARNING on the ordinary paths."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

import account_lifecycle
from account_lifecycle import Actor, Lifecycle, ManualClock, MemoryStore, policies
from account_lifecycle.testing import FakePurger


def _run_every_command() -> None:
    policy = policies.ALLCLIENTS
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    lc = Lifecycle(
        policy,
        store=MemoryStore(),
        purgers=[FakePurger(c.name) for c in policy.purge.categories],
        clock=clock,
    )
    owner = Actor.user("u-1")
    lc.open("acct-1", owner="u-1", members=["u-2"])
    lc.cancel_service("acct-1", owner, "messages")
    lc.request_cancellation("acct-1", owner)
    lc.withdraw("acct-1", owner)
    lc.request_cancellation("acct-1", owner)
    lc.skip_survey("acct-1", owner)
    lc.confirm("acct-1", owner)
    lc.restore("acct-1", Actor.support("agent-7"))
    lc.request_cancellation("acct-1", owner)
    lc.skip_survey("acct-1", owner)
    until = lc.confirm("acct-1", owner).restorable_until
    assert until is not None
    clock.set(until)
    lc.sweep()
    assert lc.get("acct-1").state == "purged"


def test_library_logger_has_a_null_handler() -> None:
    """Importing the library gives its logger a NullHandler and sets no level on it."""
    logger = logging.getLogger(account_lifecycle.__name__)
    assert any(isinstance(h, logging.NullHandler) for h in logger.handlers)
    assert logger.level == logging.NOTSET


def test_commands_write_no_info_lines_into_the_hosts_log(caplog: pytest.LogCaptureFixture) -> None:
    """With the host's root logger at INFO, a whole lifecycle logs nothing from
    ``transitions`` and nothing of the library's own below WARNING."""
    caplog.set_level(logging.INFO)  # the root logger, as logging.basicConfig(level=INFO) sets it
    _run_every_command()
    noisy = [
        (r.name, r.levelname, r.getMessage())
        for r in caplog.records
        if r.name.startswith("transitions") or r.levelno < logging.WARNING
    ]
    assert noisy == []
    assert logging.getLogger("transitions").level in (logging.NOTSET, logging.WARNING)


def test_a_failing_purger_still_warns(caplog: pytest.LogCaptureFixture) -> None:
    """Warnings that matter still reach the host's log: a purger failing inline."""
    caplog.set_level(logging.INFO)
    policy = policies.ALLCLIENTS
    purgers = [FakePurger(c.name) for c in policy.purge.categories]
    purgers[0] = FakePurger(policy.purge.categories[0].name, fail_times=1)
    lc = Lifecycle(
        policy, store=MemoryStore(), purgers=purgers, clock=ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    )
    owner = Actor.user("u-1")
    lc.open("acct-1", owner="u-1")
    lc.request_cancellation("acct-1", owner)
    lc.skip_survey("acct-1", owner)
    assert lc.confirm("acct-1", owner).state == "cancelled"
    warnings = [r for r in caplog.records if r.name.startswith("account_lifecycle")]
    assert [r.levelno for r in warnings] == [logging.WARNING]
    assert not [r for r in caplog.records if r.name.startswith("transitions")]
