"""The pytest plugin of account_lifecycle, registered through the ``pytest11`` entry point.

Installed with the package, so a host's test suite gets, without any import:

``manual_clock``
    A ``ManualClock`` at 2026-11-30 12:00 UTC (a month end: three months on is 28 February).

``memory_lifecycle``
    A *factory*: ``memory_lifecycle(policy=ALLCLIENTS, **options) -> Lifecycle`` on a fresh
    ``MemoryStore`` per call, driven by ``manual_clock``, with a ``RecordingPurger`` for every
    purge category (``lc.purgers["contacts"].calls``) and a ``PendingItems`` check for every
    prerequisite (``lc.prerequisites["port_outs"].pending = ["+15550100"]``). Any keyword of
    ``Lifecycle`` (``purgers=``, ``prerequisites=``, ``listeners=``, ``effects=``, ...)
    replaces the default.

``sqlite_lifecycle``
    The same factory on a ``SQLiteStore`` in a new file under ``tmp_path`` per call; the
    stores are closed when the test ends.

Fixture names are chosen not to collide with a project's own ``clock`` or ``store``
fixtures. The plugin also registers the Hypothesis profile ``account_lifecycle-ci``
(deterministic, bounded, no deadline, no example database) without loading it: choose it
with ``pytest --hypothesis-profile=account_lifecycle-ci``.

Hypothesis is optional here: without it (the ``testing`` extra not installed) the fixtures
still work and only the profile is missing, so the plugin never breaks a host's pytest run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import pytest

if TYPE_CHECKING:
    from account_lifecycle.clock import ManualClock
    from account_lifecycle.lifecycle import Lifecycle
    from account_lifecycle.policy import Policy
    from account_lifecycle.ports import AccountStore

__all__ = ["CI_PROFILE", "START", "LifecycleFactory"]

#: Where ``manual_clock`` starts.
START: Final = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
#: The name of the Hypothesis profile this plugin registers.
CI_PROFILE: Final = "account_lifecycle-ci"


def _register_profile() -> None:
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:  # the ``testing`` extra is not installed; the fixtures still work
        return
    settings.register_profile(
        CI_PROFILE,
        max_examples=50,
        stateful_step_count=30,
        derandomize=True,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )


_register_profile()


class LifecycleFactory(Protocol):
    """What ``memory_lifecycle`` and ``sqlite_lifecycle`` are: call them to get a lifecycle."""

    def __call__(self, policy: Policy | None = None, **options: Any) -> Lifecycle: ...


def _factory(clock: ManualClock, make_store: Callable[[], AccountStore]) -> LifecycleFactory:
    from account_lifecycle.lifecycle import Lifecycle
    from account_lifecycle.policies import ALLCLIENTS
    from account_lifecycle.testing.fakes import PendingItems, fake_identity_keys, recording_purgers

    def build(policy: Policy | None = None, **options: Any) -> Lifecycle:
        chosen = policy if policy is not None else ALLCLIENTS
        options.setdefault("clock", clock)
        options.setdefault("identity_keys", fake_identity_keys())
        if "purgers" not in options:
            options["purgers"] = list(recording_purgers(chosen).values())
        if "prerequisites" not in options:
            options["prerequisites"] = {name: PendingItems() for name in chosen.prerequisites}
        if "store" not in options:
            options["store"] = make_store()
        return Lifecycle(chosen, **options)

    return build


@pytest.fixture
def manual_clock() -> ManualClock:
    """A ``ManualClock`` at 2026-11-30 12:00 UTC; move it with ``advance()`` and ``set()``."""
    from account_lifecycle.clock import ManualClock

    return ManualClock(START)


@pytest.fixture
def memory_lifecycle(manual_clock: ManualClock) -> LifecycleFactory:
    """A factory of lifecycles on fresh in-memory stores: ``memory_lifecycle(policy, **options)``."""
    from account_lifecycle.adapters.memory import MemoryStore

    return _factory(manual_clock, MemoryStore)


@pytest.fixture
def sqlite_lifecycle(manual_clock: ManualClock, tmp_path: Path) -> Iterator[LifecycleFactory]:
    """A factory of lifecycles, each on a new SQLite file under ``tmp_path``, closed after the test."""
    from account_lifecycle.adapters.sqlite import SQLiteStore

    stores: list[SQLiteStore] = []

    def make_store() -> SQLiteStore:
        store = SQLiteStore(tmp_path / f"accounts-{len(stores) + 1}.db")
        stores.append(store)
        return store

    yield _factory(manual_clock, make_store)
    for store in stores:
        store.close()
