"""One ``Lifecycle`` for many runs of a ``LifecycleStateMachine`` class, each on its own store.

Building a lifecycle builds its policy's ``transitions`` machine and decision table (about a
millisecond, as much as the rest of a 20-step run's checks). A machine class using the default
``make_lifecycle`` therefore builds one per policy and lends it to one run at a time: the
lifecycle is built over *slots* (``StoreSlot``, ``ClockSlot``, ``PrerequisiteSlot``) and the
machine's ``ObservedPurger`` wrappers, and each run points them at its own fresh store, clock,
prerequisite checks and purgers before its first step. A ``Lifecycle`` keeps no per-account
state (it reads and writes everything through its store), so a run sees exactly what a lifecycle
built for it would see. A lifecycle is lent to one live machine only, and taken back at its
``teardown``; a machine never torn down keeps its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from account_lifecycle.lifecycle import Lifecycle
from account_lifecycle.ports import AccountStore, Clock, PendingItem, PrerequisiteCheck

__all__ = ["ClockSlot", "Lent", "PrerequisiteSlot", "StoreSlot", "borrow", "give_back"]


class StoreSlot:
    """Stands for the current run's store: every attribute is that store's. Its methods, once
    looked up, are kept on the slot until it points at another store (a lookup through
    ``__getattr__`` on every store call cost about 2% of a toolkit run)."""

    def __init__(self, store: AccountStore) -> None:
        self.current = store

    @property
    def current(self) -> AccountStore | None:
        found: AccountStore | None = self.__dict__.get("_current")
        return found

    @current.setter
    def current(self, store: AccountStore | None) -> None:
        self.__dict__.clear()  # the methods kept are the previous store's
        self.__dict__["_current"] = store

    def __getattr__(self, name: str) -> Any:
        current = self.__dict__.get("_current")
        if current is None:
            raise AttributeError(f"no store lent to this lifecycle ({name})")
        value = getattr(current, name)
        if callable(value):
            self.__dict__[name] = value
        return value


class ClockSlot:
    """Stands for the current run's clock."""

    def __init__(self, clock: Clock) -> None:
        self.current = clock

    def now(self) -> datetime:
        return self.current.now()


class PrerequisiteSlot:
    """Stands for the current run's prerequisite checks, by name."""

    def __init__(self, checks: Mapping[str, PrerequisiteCheck]) -> None:
        self.current: Mapping[str, PrerequisiteCheck] = checks

    def check(self, name: str) -> PrerequisiteCheck:
        def pending(account_id: str) -> Sequence[str | PendingItem]:
            return self.current[name](account_id)

        return pending


class Lent:
    """A lifecycle and the slots and purger wrappers it was built over."""

    def __init__(
        self,
        key: tuple[Any, ...],
        build: Callable[..., Lifecycle],
        store: AccountStore,
        clock: Clock,
        checks: Mapping[str, PrerequisiteCheck],
        purgers: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> None:
        self.key = key
        self.store = StoreSlot(store)
        self.clock = ClockSlot(clock)
        self.checks = PrerequisiteSlot(checks)
        self.purgers = dict(purgers)
        self.options: dict[str, Any] = {
            **options,
            "clock": self.clock,
            "purgers": list(self.purgers.values()),
            "prerequisites": {name: self.checks.check(name) for name in checks},
        }
        self.lifecycle = build(store=self.store, **self.options)

    def lend(self, store: AccountStore, clock: Clock, checks: Mapping[str, PrerequisiteCheck]) -> None:
        self.store.current = store
        self.clock.current = clock
        self.checks.current = checks


#: (machine class, policy, store type, purger categories, prerequisite names) -> lifecycles not
#: lent now
_FREE: dict[tuple[Any, ...], list[Lent]] = {}


def borrow(key: tuple[Any, ...]) -> Lent | None:
    """A free lifecycle built for *key*, if there is one."""
    free = _FREE.get(key)
    return free.pop() if free else None


def give_back(lent: Lent) -> None:
    """Take back a lent lifecycle once its run is over (it still reads that run's store and
    clock until it is lent again)."""
    _FREE.setdefault(lent.key, []).append(lent)
