"""Hand-written fakes for tests: purgers that record, fail on demand, and prerequisite checks."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from account_lifecycle.policy import Policy
from account_lifecycle.ports import PurgeContext, PurgeResult

__all__ = ["PendingItems", "RecordingPurger", "recording_purgers"]


class RecordingPurger:
    """Records every call; erases ``items`` items; raises for the first ``fail_times`` calls."""

    def __init__(self, category: str, *, items: int = 1, fail_times: int = 0) -> None:
        self.category = category
        self.items = items
        self.fail_times = fail_times
        self.calls: list[PurgeContext] = []
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"recording:{self.category}"

    def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:
        with self._lock:
            self.calls.append(context)
            if self.fail_times > 0:
                self.fail_times -= 1
                raise RuntimeError(f"{self.category} backend unavailable")
        return PurgeResult(items=self.items, detail=f"erased {self.category}")

    def accounts(self) -> list[str]:
        """Account ids in call order."""
        return [c.account_id for c in self.calls]


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
