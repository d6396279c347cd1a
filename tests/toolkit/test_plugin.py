"""The pytest plugin, loaded through its entry point: fixtures, the CI profile, and no clash
with this project's own fixtures and profiles."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import settings

from account_lifecycle import (
    Actor,
    ManualClock,
    MemoryStore,
    PrerequisitesPending,
    SQLiteStore,
    State,
    policies,
)
from account_lifecycle.testing import plugin
from account_lifecycle.testing.fakes import PendingItems, RecordingPurger
from account_lifecycle.testing.plugin import LifecycleFactory

OWNER = Actor.user("owner-1")


def test_the_plugin_is_registered_under_its_entry_point_name(pytestconfig: pytest.Config) -> None:
    """pytest loads account_lifecycle.testing.plugin as the plugin named 'account_lifecycle'."""
    assert pytestconfig.pluginmanager.get_plugin("account_lifecycle") is plugin


def test_plugin_fixture_names_leave_the_projects_own_alone() -> None:
    """The plugin's fixtures are exactly these three, none of them 'clock', 'store' or 'sqlite_path'."""
    fixtures = {
        name for name, obj in vars(plugin).items() if type(obj).__name__ == "FixtureFunctionDefinition"
    }

    assert fixtures == {"manual_clock", "memory_lifecycle", "sqlite_lifecycle"}
    assert fixtures.isdisjoint({"clock", "store", "sqlite_path"})


def test_manual_clock_starts_at_a_month_end(manual_clock: ManualClock) -> None:
    """manual_clock is a ManualClock at 2026-11-30 12:00 UTC."""
    assert manual_clock.now() == datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_the_projects_clock_fixture_is_still_its_own(clock: object, manual_clock: ManualClock) -> None:
    """tests/conftest.py's 'clock' and the plugin's 'manual_clock' are two different clocks."""
    assert isinstance(clock, ManualClock)
    assert clock is not manual_clock


def test_memory_lifecycle_defaults_to_allclients_with_recording_purgers(
    memory_lifecycle: LifecycleFactory, manual_clock: ManualClock
) -> None:
    """memory_lifecycle() is an ALLCLIENTS lifecycle on a MemoryStore, on manual_clock, with a
    RecordingPurger per category."""
    lc = memory_lifecycle()
    lc.open("acct-1", owner="owner-1")
    lc.request_cancellation("acct-1", OWNER)
    lc.skip_survey("acct-1", OWNER)

    record = lc.confirm("acct-1", OWNER)

    assert (lc.policy, type(lc.store), lc.clock) == (policies.ALLCLIENTS, MemoryStore, manual_clock)
    assert record.state is State.RESTORABLE
    assert record.restorable_until == datetime(2027, 2, 28, 12, 0, tzinfo=UTC)
    contacts = lc.purgers["contacts"]
    assert isinstance(contacts, RecordingPurger)
    assert [c.account_id for c in contacts.calls] == ["acct-1"]


def test_memory_lifecycle_takes_a_policy_and_gives_a_settable_check_per_prerequisite(
    memory_lifecycle: LifecycleFactory,
) -> None:
    """memory_lifecycle(SMRTPHONE) has a PendingItems check for port_outs."""
    lc = memory_lifecycle(policies.SMRTPHONE)
    check = lc.prerequisites["port_outs"]
    assert isinstance(check, PendingItems)
    check.pending = ["+15550100"]
    lc.open("acct-1", owner="owner-1")
    lc.request_cancellation("acct-1", OWNER)
    lc.submit_survey("acct-1", OWNER, "cancel")
    acks = [a.id for a in policies.SMRTPHONE.confirmation.acknowledgements]

    with pytest.raises(PrerequisitesPending) as info:
        lc.confirm("acct-1", OWNER, "CONFIRM", acks)

    assert dict(info.value.pending) == {"port_outs": ("+15550100",)}


def test_each_memory_lifecycle_has_its_own_store(memory_lifecycle: LifecycleFactory) -> None:
    """Two calls give two empty stores; a keyword of Lifecycle replaces the default."""
    shared = MemoryStore()
    first, second, third = memory_lifecycle(), memory_lifecycle(), memory_lifecycle(store=shared)
    first.open("acct-1", owner="owner-1")

    assert second.store is not first.store
    assert third.store is shared
    assert len(shared) == 0


def test_sqlite_lifecycle_keeps_accounts_in_a_file_under_tmp_path(
    sqlite_lifecycle: LifecycleFactory, manual_clock: ManualClock, tmp_path: Path
) -> None:
    """sqlite_lifecycle() writes to a new SQLite file per call, in the test's tmp_path."""
    lc = sqlite_lifecycle()
    lc.open("acct-1", owner="owner-1")
    manual_clock.advance(timedelta(days=1))
    lc.request_cancellation("acct-1", OWNER)

    reopened = SQLiteStore(tmp_path / "accounts-1.db")
    try:
        assert reopened.get("acct-1").state is State.SURVEYED
        assert [e.action for e in reopened.history("acct-1")] == ["open", "request_cancellation"]
    finally:
        reopened.close()
    assert isinstance(sqlite_lifecycle().store, SQLiteStore)
    assert sorted(p.name for p in tmp_path.glob("accounts-*.db")) == ["accounts-1.db", "accounts-2.db"]


def test_the_ci_profile_is_registered_but_not_loaded() -> None:
    """'account_lifecycle-ci' is deterministic, bounded and has no deadline; this project's
    own profile stays the loaded one."""
    profile = settings.get_profile("account_lifecycle-ci")

    assert (profile.max_examples, profile.stateful_step_count) == (50, 30)
    assert (profile.derandomize, profile.deadline, profile.database) == (True, None, None)
    assert settings.default.max_examples != 50 or settings.default.database is not None


def test_the_ci_profile_is_chosen_on_the_command_line(tmp_path: Path) -> None:
    """pytest --hypothesis-profile=account_lifecycle-ci runs a host's tests with the profile."""
    (tmp_path / "test_host.py").write_text(
        textwrap.dedent(
            """
            from hypothesis import settings

            def test_profile():
                assert settings.default.max_examples == 50
                assert settings.default.derandomize is True
                assert settings.default.deadline is None
            """
        ),
        encoding="utf-8",
    )

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--hypothesis-profile=account_lifecycle-ci",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
