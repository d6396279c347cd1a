"""What ``LifecycleStateMachine`` needs to check each step against what was appended only.

Two pieces, both exact (a step they skip or shorten could not have failed the full check):

* ``TouchedModel``: the reference model's dict, remembering which accounts a rule may have
  changed (any read of an account's ``RefAccount`` through it, as rules do before mutating it);
  an account that no rule touched and whose record and history are what was checked at the
  previous step needs no per-account check again.
* ``Trail``: what the per-account checks learned from the audit trail up to the events checked
  last (the events themselves, the versions, the purge steps in flight, the reminders sent
  since the last confirmation, the purge's time); ``extend`` walks only the events appended
  since, when the earlier ones are still there unchanged, and from the first event otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import attrs

from account_lifecycle.audit import AuditEvent
from account_lifecycle.model import Action
from account_lifecycle.policy import Policy
from account_lifecycle.purge import EFFECT_PREFIX
from account_lifecycle.testing.reference import RefAccount

__all__ = ["TouchedModel", "Trail", "resealed", "same_sealed"]


class TouchedModel(dict[str, RefAccount]):
    """``account id -> RefAccount`` that records in ``touched`` every account whose reference
    was handed out (``model[id]``, ``get``, ``setdefault``, ``values``, ``items``, ``pop``,
    ``popitem``) or stored: whoever holds a ``RefAccount`` may change it. Membership tests and
    iteration over ids touch nothing. ``quiet_items`` is the checks' own, untouching view."""

    def __init__(self) -> None:
        super().__init__()
        self.touched: set[str] = set()

    def __getitem__(self, key: str) -> RefAccount:
        self.touched.add(key)
        return super().__getitem__(key)

    def __setitem__(self, key: str, value: RefAccount) -> None:
        self.touched.add(key)
        super().__setitem__(key, value)

    def get(self, key: str, default: Any = None) -> Any:
        self.touched.add(key)
        return super().get(key, default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self.touched.add(key)
        return super().setdefault(key, default)

    def pop(self, key: str, *default: Any) -> Any:
        self.touched.add(key)
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, RefAccount]:
        self.touched.update(self.keys())
        return super().popitem()

    def values(self) -> Any:
        self.touched.update(self.keys())
        return super().values()

    def items(self) -> Any:
        self.touched.update(self.keys())
        return super().items()

    def update(self, *args: Any, **kwargs: Any) -> None:
        other = dict(*args, **kwargs)
        self.touched.update(other)
        super().update(other)

    def quiet_items(self) -> Iterator[tuple[str, RefAccount]]:
        """The accounts and their references, without marking them touched."""
        return iter(dict.items(self))

    def __copy__(self) -> TouchedModel:
        copied = TouchedModel()
        dict.update(copied, self)
        copied.touched = set(self.touched)
        return copied

    def __reduce__(self) -> Any:  # deepcopy and pickle: a plain dict of copies, all touched
        return (_rebuild, (dict(dict.items(self)),))


def _rebuild(items: dict[str, RefAccount]) -> TouchedModel:
    model = TouchedModel()
    model.update(items)
    return model


@attrs.define
class Trail:
    """The per-account checks' knowledge of one account's audit trail, up to ``events``.

    ``extend`` asserts nothing: it notes the first problem of each kind (``versions_ok``,
    ``step_problem``), so that the machine reports them in its own order of checks."""

    events: tuple[AuditEvent, ...] = ()
    #: the versions named by the events run 1, 2, 3, ... without a gap
    versions_ok: bool = True
    #: purge steps started and not finished, categories on hold (``purge_steps_started_first``)
    in_flight: set[str] = attrs.Factory(set)
    held: set[str] = attrs.Factory(set)
    #: the first purge-step problem found, as the failure says it
    step_problem: str | None = None
    #: reminders sent since the last confirmation, in order
    sent: list[str] = attrs.Factory(list)
    #: when the latest ``purge`` event happened
    purged_at: datetime | None = None
    #: whether the sealed values of ``events`` were checked as those of a purged account
    sealed_as_purged: bool = False

    def extend(
        self, policy: Policy, account_id: str, history: tuple[AuditEvent, ...], *, steps: bool
    ) -> bool:
        """Walk the events of *history* not walked yet (and the purge steps, if *steps*); from
        the first event when the events walked before are not all still there, equal field by
        field (then the trail starts over). Returns whether only appended events were walked."""
        known = len(self.events)
        appended = 0 < known <= len(history) and history[:known] == self.events
        if not appended:
            fresh = Trail()
            for field in attrs.fields(Trail):
                setattr(self, field.name, getattr(fresh, field.name))
            known = 0
        previous = self.events[-1].version if known else 0
        for e in history[known:]:
            version = e.version
            if (version != 1) if previous == 0 else (version - previous not in (0, 1)):
                self.versions_ok = False
            previous = version
            action = e.action
            if action == Action.CONFIRM:
                self.sent = []
            elif action == "reminder":
                self.sent.append(e.details["before"])
            elif action == "purge":
                self.purged_at = e.at if self.purged_at is None else max(self.purged_at, e.at)
            if steps and self.step_problem is None:
                self.step_problem = self._step(policy, account_id, e)
        self.events = history
        return appended

    def _step(self, policy: Policy, account_id: str, e: AuditEvent) -> str | None:
        """One event of the purge-step walk: a confirm starts the cancel-time steps (its own
        write), an ``erasure_started`` the steps it names; each outcome must be of a step in
        flight, and a start while steps are in flight must say ``resumed``. The problem, if any."""
        held = self.held
        if e.action == "hold_placed":
            held.add(e.details["category"])
        elif e.action == "hold_released":
            held.discard(e.details["category"])
        elif e.action == Action.CONFIRM:
            self.in_flight = set(policy.purge.at("cancel")) - held  # started in the confirm's own write
        elif e.action == "erasure_started":
            steps = {k for k in e.details["steps"] if not k.startswith(EFFECT_PREFIX)}
            if e.details.get("resumed", False):
                if not self.in_flight & steps:
                    return f"{account_id}: event {e.seq} resumes steps that were not in flight"
            elif self.in_flight:
                return (
                    f"{account_id}: event {e.seq} starts {sorted(steps)} while {sorted(self.in_flight)} "
                    "are in flight, without saying resumed"
                )
            if steps & held:
                return f"{account_id}: event {e.seq} starts held {sorted(steps & held)}"
            self.in_flight = steps
        elif e.action in ("category_purged", "purge_failed"):
            category = e.details["category"]
            if category not in self.in_flight:
                return f"{account_id}: event {e.seq} {e.action} {category} without a start in flight"
            self.in_flight.discard(category)
        elif e.action == Action.RESTORE:
            self.in_flight = set()
        return None


def same_sealed(events: Sequence[AuditEvent], known: Sequence[AuditEvent]) -> bool:
    """Whether the events of *events* hold the same sealed values as those of *known* at the
    same positions (``AuditEvent`` equality leaves sealed values out)."""
    return all(
        a is b or a.sealed_values == b.sealed_values
        for a, b in zip(events, known, strict=False)
        if a.sealed_values or b.sealed_values
    )


def resealed(events: Sequence[AuditEvent], known: Sequence[AuditEvent]) -> list[AuditEvent]:
    """The events of *events* whose sealed values differ from those at the same position of
    *known*, then those past the end of *known*."""
    changed = [
        a
        for a, b in zip(events, known, strict=False)
        if a is not b and (a.sealed_values or b.sealed_values) and a.sealed_values != b.sealed_values
    ]
    return changed + list(events[len(known) :])
