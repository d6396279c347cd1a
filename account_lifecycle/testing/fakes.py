"""Configurable fakes for tests: one purger (``FakePurger``), one effect hook
(``FakeEffectHook``) and a prerequisite check (``PendingItems``).

A fake records every call, fails on demand (the first N calls, or whenever a predicate
says so), runs a ``before`` hook inside the call (how a race test starts a competing
command while a purger runs) and, for a purger, can hold fake data that it erases for real
or return any object at all (a purger result that is invalid, on purpose).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from account_lifecycle.identity_keys import IdentityKey, IdentityKeys
from account_lifecycle.policy import Policy
from account_lifecycle.ports import PurgeContext, PurgeResult

if TYPE_CHECKING:
    from account_lifecycle.values import EffectContext

__all__ = [
    "FakeEffectHook",
    "FakePurger",
    "PendingItems",
    "RecordingPurger",
    "fake_identity_keys",
    "fake_purgers",
    "recording_purgers",
]

C = TypeVar("C", PurgeContext, "EffectContext")

#: What makes a fake fail: an exception to raise, or a callable making a fresh one (an
#: exception class will do).
Failure = BaseException | Callable[[], BaseException]
#: When a fake fails besides its first ``fail_times`` calls: always (``True``), never
#: (``False``), or when ``predicate(account_id, context)`` is true (``context.attempt`` says
#: which attempt it is).
FailWhen = bool | Callable[[str, Any], bool]


class _Fake(Generic[C]):
    """What a fake purger and a fake effect hook share: recording, failing, the ``before`` hook."""

    def __init__(
        self,
        *,
        fail_times: int,
        fail_when: FailWhen,
        fail_with: Failure,
        before: Callable[[str, C], object] | None,
        before_times: int | None,
        latency: float,
    ) -> None:
        if fail_times < 0 or (before_times is not None and before_times < 0) or latency < 0:
            raise ValueError("fail_times, before_times and latency must not be negative")
        self.fail_times = fail_times
        self.fail_when = fail_when
        self.fail_with = fail_with
        self.before: Callable[[str, C], object] | None = before
        self.before_times = before_times
        self.latency = latency
        self.calls: list[C] = []
        self.failed: list[C] = []
        self._lock = threading.Lock()

    def accounts(self) -> list[str]:
        """Account ids of every call, in call order (failed calls too)."""
        with self._lock:
            return [c.account_id for c in self.calls]

    def count(self, account_id: str) -> int:
        """How many times the fake was called for *account_id* (failed calls too)."""
        return self.accounts().count(account_id)

    def _enter(self, account_id: str, context: C) -> None:
        """Record the call, run the ``before`` hook, wait ``latency``, raise if it must fail."""
        with self._lock:
            self.calls.append(context)
            run_before = self.before is not None and self.before_times != 0
            if run_before and self.before_times is not None:
                self.before_times -= 1
        if run_before and self.before is not None:
            self.before(account_id, context)  # outside the lock: the hook may call this fake
        if self.latency:
            time.sleep(self.latency)
        with self._lock:
            fail = self.fail_times > 0
            if fail:
                self.fail_times -= 1
        when = self.fail_when
        if not fail and when is not False:
            fail = when is True or (callable(when) and bool(when(account_id, context)))
        if fail:
            with self._lock:
                self.failed.append(context)
            error = self.fail_with
            # a shared instance starts each raise with a fresh traceback
            raise error.with_traceback(None) if isinstance(error, BaseException) else error()


class FakePurger(_Fake[PurgeContext]):
    """A purger for tests, bench and demos: configure what it does instead of writing one.

    - ``items``, ``detail``: the ``PurgeResult`` it reports (``detail`` defaults to
      ``"erased <category>"``) for an account that was never ``seed``-ed.
    - ``seed(account_id, n)`` gives an account *n* items of fake data: a purge erases what
      is there and reports that count, so a second purge reports 0 (idempotent), and
      ``remaining(account_id)`` tells what is left.
    - ``fail_times``: the first N calls raise ``fail_with`` (an exception, or a callable
      making one; default ``RuntimeError("<category> backend unavailable")``); ``fail_when``
      fails further calls: ``True`` for all of them, or a predicate
      ``(account_id, context) -> bool``. A failing call erases nothing. Both are attributes a
      test may change between calls.
    - ``before(account_id, context)`` runs inside each call before anything else (on the first
      ``before_times`` calls only, when given): the hook a race test uses to start a
      competing command, or to move a ``ManualClock`` as if the purge took time.
    - ``result(account_id, context)``, when given, is what the call returns, whatever it is
      (a test of a purger returning something invalid); seeded data is erased first.
    - ``journal``: a list, perhaps shared by several fakes, to which each successful purge
      appends ``(account_id, category)``: the order across categories.
    - ``latency``: seconds each call sleeps, to simulate I/O in a benchmark. Tests must not use
      it to make a race likely: start the competing command from ``before`` instead.

    ``calls`` holds the ``PurgeContext`` of every call, ``failed`` those of the failed ones;
    ``accounts()`` and ``count(account_id)`` read them. It is safe to call from several threads.
    """

    def __init__(
        self,
        category: str,
        *,
        items: int = 1,
        detail: str | None = None,
        fail_times: int = 0,
        fail_when: FailWhen = False,
        fail_with: Failure | None = None,
        before: Callable[[str, PurgeContext], object] | None = None,
        before_times: int | None = None,
        result: Callable[[str, PurgeContext], object] | None = None,
        journal: list[tuple[str, str]] | None = None,
        latency: float = 0.0,
        name: str | None = None,
    ) -> None:
        super().__init__(
            fail_times=fail_times,
            fail_when=fail_when,
            fail_with=RuntimeError(f"{category} backend unavailable") if fail_with is None else fail_with,
            before=before,
            before_times=before_times,
            latency=latency,
        )
        PurgeResult(items=items, detail="" if detail is None else detail)  # validates both
        self.category = category
        self.items = items
        self.detail = f"erased {category}" if detail is None else detail
        self.result = result
        self.journal = journal
        self._name = name
        self._data: dict[str, int] = {}

    @property
    def name(self) -> str:
        return self._name or f"fake:{self.category}"

    def seed(self, account_id: str, items: int) -> None:
        """Add *items* items of fake data for *account_id*, erased by its next purge."""
        if items < 0:
            raise ValueError(f"cannot seed {items} items")
        with self._lock:
            self._data[account_id] = self._data.get(account_id, 0) + items

    def remaining(self, account_id: str) -> int:
        """Items of *account_id* seeded and not yet erased."""
        with self._lock:
            return self._data.get(account_id, 0)

    def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:
        self._enter(account_id, context)
        with self._lock:
            seeded = account_id in self._data
            erased = self._data.get(account_id, 0)
            if seeded:
                self._data[account_id] = 0
            if self.journal is not None:
                self.journal.append((account_id, self.category))
        if self.result is not None:
            return self.result(account_id, context)  # type: ignore[return-value]  # anything, on purpose
        return PurgeResult(items=erased if seeded else self.items, detail=self.detail)


class RecordingPurger(FakePurger):
    """The ``FakePurger`` under its first name (``recording:<category>``): records every call,
    reports ``items`` erased, raises for the first ``fail_times`` calls. Kept for existing users."""

    def __init__(self, category: str, **options: Any) -> None:
        options.setdefault("name", f"recording:{category}")
        super().__init__(category, **options)


class FakeEffectHook(_Fake["EffectContext"]):
    """An ``on_cancel`` effect hook for tests: records every call (``calls``, ``failed``,
    ``accounts()``, ``count()``), fails on demand like ``FakePurger`` (default error
    ``RuntimeError("<effect> service unavailable")``), runs ``before`` inside the call.
    It returns nothing: a hook's return value is ignored."""

    def __init__(
        self,
        effect: str,
        *,
        fail_times: int = 0,
        fail_when: FailWhen = False,
        fail_with: Failure | None = None,
        before: Callable[[str, EffectContext], object] | None = None,
        before_times: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            fail_times=fail_times,
            fail_when=fail_when,
            fail_with=RuntimeError(f"{effect} service unavailable") if fail_with is None else fail_with,
            before=before,
            before_times=before_times,
            latency=0.0,
        )
        self.effect = effect
        self.name = name or f"hook:{effect}"

    def __call__(self, account_id: str, context: EffectContext, /) -> None:
        self._enter(account_id, context)


def fake_purgers(policy: Policy, *, extra: Iterable[str] = (), **options: Any) -> dict[str, FakePurger]:
    """One ``FakePurger`` per purge category of *policy* (plus *extra* categories, such as
    protected ones, to prove they are never called), keyed by category; *options* go to each."""
    names = [c.name for c in policy.purge.categories] + list(extra)
    return {name: FakePurger(name, **options) for name in names}


def recording_purgers(policy: Policy, *, extra: Iterable[str] = ()) -> dict[str, RecordingPurger]:
    """One ``RecordingPurger`` per purge category of *policy* (plus *extra* categories, such as
    protected ones, to prove they are never called), keyed by category."""
    names = [c.name for c in policy.purge.categories] + list(extra)
    return {name: RecordingPurger(name) for name in names}


class PendingItems:
    """A prerequisite check whose pending items a test sets: ``check.pending = ["+1555..."]``."""

    def __init__(self, pending: Sequence[str] = ()) -> None:
        self.pending = list(pending)
        self.calls: list[str] = []

    def __call__(self, account_id: str) -> Sequence[str]:
        self.calls.append(account_id)
        return tuple(self.pending)


def fake_identity_keys(key_id: str = "test") -> IdentityKeys:
    """Identity keys for tests and demos: a fixed secret derived from *key_id*, so runs are
    repeatable. Never in production: anyone can derive it, so its digests protect nothing."""
    secret = hashlib.sha256(f"account_lifecycle test identity key {key_id}".encode()).digest()
    return IdentityKeys(IdentityKey(key_id, secret))
