"""Testing helpers shipped with account_lifecycle: fakes, contract suites and more, for the
library's own tests and for host applications that plug in their own ports.

Install the extra ``testing`` (Hypothesis and pytest). The modules:

- ``strategies``: Hypothesis strategies for policies, actors, tokens, acknowledgements,
  clock timelines and command sequences;
- ``stateful``: ``LifecycleStateMachine``, a rule-based test of a lifecycle against the
  independent ``reference`` model, with named, selectable invariants;
- ``store_contract``: ``StoreContract``, the suite every ``AccountStore`` must pass;
- ``async_store_contract``: ``AsyncStoreContract``, the same suite on an async store (extra
  ``async``), through ``BlockingStore`` on a ``LoopThread``;
- ``purger_contract``: ``PurgerContract``, the suite every ``Purger`` must pass;
- ``fakes``: ``FakePurger`` (``RecordingPurger``, its first name), ``FakeEffectHook``,
  ``fake_purgers``, ``recording_purgers``, ``PendingItems``, ``fake_identity_keys``;
- ``plugin``: the pytest plugin (fixtures ``manual_clock``, ``memory_lifecycle``,
  ``sqlite_lifecycle``; the Hypothesis profile ``account_lifecycle-ci``), loaded by pytest
  through its entry point.

The names below are importable from here too; each module is imported on first use, so
``import account_lifecycle.testing`` needs neither Hypothesis nor pytest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from account_lifecycle.testing.async_store_contract import AsyncStoreContract
    from account_lifecycle.testing.fakes import (
        FakeEffectHook,
        FakePurger,
        PendingItems,
        RecordingPurger,
        fake_identity_keys,
        fake_purgers,
        recording_purgers,
    )
    from account_lifecycle.testing.purger_contract import PurgerContract
    from account_lifecycle.testing.stateful import (
        INVARIANT_TABLE,
        INVARIANTS,
        GeneratedPolicyMachine,
        Invariant,
        LifecycleStateMachine,
        TeamChangesMachine,
        machine_for,
    )
    from account_lifecycle.testing.store_contract import StoreContract

__all__ = [
    "INVARIANTS",
    "INVARIANT_TABLE",
    "AsyncStoreContract",
    "FakeEffectHook",
    "FakePurger",
    "GeneratedPolicyMachine",
    "Invariant",
    "LifecycleStateMachine",
    "PendingItems",
    "PurgerContract",
    "RecordingPurger",
    "StoreContract",
    "TeamChangesMachine",
    "fake_identity_keys",
    "fake_purgers",
    "machine_for",
    "recording_purgers",
]

_HOMES = {
    "INVARIANTS": "stateful",
    "INVARIANT_TABLE": "stateful",
    "AsyncStoreContract": "async_store_contract",
    "FakeEffectHook": "fakes",
    "FakePurger": "fakes",
    "GeneratedPolicyMachine": "stateful",
    "Invariant": "stateful",
    "LifecycleStateMachine": "stateful",
    "TeamChangesMachine": "stateful",
    "PendingItems": "fakes",
    "PurgerContract": "purger_contract",
    "RecordingPurger": "fakes",
    "StoreContract": "store_contract",
    "fake_identity_keys": "fakes",
    "fake_purgers": "fakes",
    "machine_for": "stateful",
    "recording_purgers": "fakes",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'account_lifecycle.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(f"account_lifecycle.testing.{home}"), name)
