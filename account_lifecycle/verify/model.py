"""The policy's own machine (``PolicyMachine.decide``), driven over abstract situations."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import attrs

from account_lifecycle.machine import EXPIRE, SETTLE, Attempt, PolicyMachine
from account_lifecycle.model import AccountRecord, Action, ServiceState, State
from account_lifecycle.policy import phase_bounds
from account_lifecycle.verify.probes import _Probe
from account_lifecycle.verify.situation import (
    _ACCOUNT,
    _ACTORS,
    _CANCELLED_AT,
    _NO_WINDOW,
    _NOW,
    _REFUSALS,
    Situation,
    Step,
)

_REMOVED = "member removed"

# -- one machine over abstract situations ---------------------------------------------------


@attrs.frozen
class _Outcome:
    target: Situation | None
    refusal: str | None = None

    @property
    def accepted(self) -> bool:
        return self.target is not None

    def signature(self) -> str:
        if self.target is not None:
            return f"allows it: {self.target.state.value}"
        assert self.refusal is not None
        return f"refuses it: {self.refusal.partition(':')[0]}"


def _pending_checks(names: Iterable[str], pending: bool) -> dict[str, Callable[[str], Sequence[str]]]:
    def check(account_id: str) -> Sequence[str]:
        return ("pending work",) if pending else ()

    return dict.fromkeys(names, check)


class _Model:
    """The policy's real machine, driven over situations."""

    def __init__(self, machine: PolicyMachine, prerequisite_names: Iterable[str]) -> None:
        self.machine = machine
        self.policy = machine.policy
        self._checks = {pending: _pending_checks(prerequisite_names, pending) for pending in (False, True)}
        self._records: dict[Situation, AccountRecord] = {}
        self.phased = bool(self.policy.recovery.phases)
        self._bounds: dict[str, tuple[tuple[datetime, datetime], ...]] = {}

    def bounds(self, choice: str) -> tuple[tuple[datetime, datetime], ...]:
        """``(starts, ends)`` of each phase of the window (of *choice*), opened at ``_CANCELLED_AT``."""
        bounds = self._bounds.get(choice)
        if bounds is None:
            picked = None if choice == _NO_WINDOW else self.policy.recovery.choose(choice)
            bounds = phase_bounds(self.policy.recovery_phases(picked), _CANCELLED_AT)
            self._bounds[choice] = bounds
        return bounds

    def record(self, situation: Situation) -> AccountRecord:
        record = self._records.get(situation)
        if record is None:
            cancelled = situation.state in (State.CANCELLED, State.RESTORABLE, State.PURGED)
            bounds = self.bounds(situation.choice)
            record = AccountRecord(
                account_id=_ACCOUNT,
                state=situation.state,
                owner="owner",
                members=frozenset() if situation.team == _REMOVED else frozenset({"member"}),
                cancelled_at=_CANCELLED_AT if cancelled else None,
                restorable_until=bounds[-1][1] if cancelled and bounds else None,
                services=dict.fromkeys(self.policy.services, ServiceState.ACTIVE),
            )
            self._records[situation] = record
        return record

    def now(self, situation: Situation) -> datetime:
        bounds = self.bounds(situation.choice)
        if situation.window == "ended" and bounds:
            return bounds[-1][1]  # the very moment the window ends: restore must already be refused
        if situation.window.startswith("phase ") and bounds:
            number = int(situation.window.split()[1])
            if number > 1:
                return bounds[number - 1][0]  # the very moment the phase begins
        return _NOW

    def choice(self, probe: _Probe) -> str:
        """The window a confirm probe picks, as the situation records it (``ValueError`` if the
        policy refuses it, exactly as ``Lifecycle.confirm`` does before deciding)."""
        if not self.policy.recovery.choices and probe.window is None:
            return _NO_WINDOW
        return str(self.policy.recovery.choose(probe.window))

    def decide(self, situation: Situation, trigger: str, actor: str, probe: _Probe | None) -> State | str:
        """The new state, or the refusal as ``"ErrorName: message"``."""
        record = self.record(situation)
        who = _ACTORS[actor]
        now = self.now(situation)
        attempt = Attempt(
            record=record,
            actor=who,
            relation=None if probe is None else record.relation_of(who),
            now=now,
            prerequisites=self._checks[probe is not None and probe.pending],
            authenticated_at=now if probe is not None and probe.logged_in else None,
            **({} if probe is None else probe.inputs),
        )
        try:
            return self.machine.decide(trigger, attempt)
        except _REFUSALS as exc:
            return f"{type(exc).__name__}: {exc}"

    def command(self, situation: Situation, probe: _Probe) -> _Outcome:
        if probe.trigger in (Action.PLACE_HOLD, Action.RELEASE_HOLD):
            return self._hold(situation, probe)
        if probe.trigger in (Action.ADD_MEMBER, Action.REMOVE_MEMBER):
            return self._team(situation, probe)
        choice = situation.choice
        if probe.trigger == Action.CONFIRM:
            try:
                choice = self.choice(probe)
            except _REFUSALS as exc:
                return _Outcome(None, f"{type(exc).__name__}: {exc}")
        result = self.decide(situation, probe.trigger, probe.step.actor, probe)
        if not isinstance(result, State):
            return _Outcome(None, result)
        return _Outcome(_after(situation, result, probe.step, phased=self.phased, choice=choice))

    def system_steps(self, situation: Situation) -> Iterator[tuple[Step, _Outcome]]:
        """What the sweeper and the clock do from *situation*."""
        state = situation.state
        in_phase = situation.window.startswith("phase ")
        if state is State.RESTORABLE and in_phase:
            number = int(situation.window.split()[1])
            if number < len(self.bounds(situation.choice)):
                yield (
                    Step("clock", "phase_ends", (("phase", str(number)),)),
                    _Outcome(attrs.evolve(situation, window=f"phase {number + 1}")),
                )
                return
        if state is State.RESTORABLE and (situation.window == "open" or in_phase):  # the last phase
            yield (
                Step("clock", "window_ends"),
                _Outcome(attrs.evolve(situation, window="ended", purge="pending")),
            )
            return
        if state is State.CANCELLED:
            phase, trigger = "cancel", SETTLE
        elif state is State.RESTORABLE:
            phase, trigger = "expiry", EXPIRE
        else:
            if state is State.PURGED:  # nothing may fire from PURGED, not even internal events
                for event in (SETTLE, EXPIRE):
                    if event in self.machine.events():
                        yield self._internal(situation, event)
            return
        if (
            situation.held != _NO_WINDOW
            and self.policy.purge.on_hold == "wait"
            and self.policy.purge.at(phase)
        ):
            # The held category is not erased and the account waits in its state: only
            # releasing the hold leads on.
            waits = Step(
                "system", "purge", (("categories", f"{phase}-time"), ("result", "waits for the hold"))
            )
            yield waits, _Outcome(situation)
            return
        step = Step("system", "purge", (("categories", f"{phase}-time"), ("result", "done")))
        result = self.decide(situation, trigger, "system", None)
        if not isinstance(result, State):
            yield step, _Outcome(None, result)
        else:
            yield step, _Outcome(_after(situation, result, step, phased=self.phased))
        if self.policy.purge.at(phase):
            failed = Step("system", "purge", (("categories", f"{phase}-time"), ("result", "failed")))
            yield failed, _Outcome(attrs.evolve(situation, purge="failed"))

    def _hold(self, situation: Situation, probe: _Probe) -> _Outcome:
        """Placing a legal hold (on some category: one more changes nothing abstract) or
        releasing it; the state stays, the ``held`` fact changes."""
        if probe.trigger == Action.RELEASE_HOLD and situation.held == _NO_WINDOW:
            return _Outcome(None, "InvalidTransition: no category is held")
        result = self.decide(situation, probe.trigger, probe.step.actor, probe)
        if not isinstance(result, State):
            return _Outcome(None, result)
        held = "yes" if probe.trigger == Action.PLACE_HOLD else _NO_WINDOW
        return _Outcome(attrs.evolve(situation, held=held))

    def _team(self, situation: Situation, probe: _Probe) -> _Outcome:
        """Adding or removing the one member (the guards refuse the owner, and a member added
        twice or removed when gone); the state stays, the ``team`` fact changes."""
        result = self.decide(situation, probe.trigger, probe.step.actor, probe)
        if not isinstance(result, State):
            return _Outcome(None, result)
        team = _REMOVED if probe.trigger == Action.REMOVE_MEMBER else _NO_WINDOW
        return _Outcome(attrs.evolve(situation, team=team))

    def _internal(self, situation: Situation, event: str) -> tuple[Step, _Outcome]:
        step = Step("system", event)
        result = self.decide(situation, event, "system", None)
        if not isinstance(result, State):
            return step, _Outcome(None, result)
        return step, _Outcome(_after(situation, result, step, phased=self.phased))


def _after(situation: Situation, dest: State, step: Step, **facts: Any) -> Situation:
    """The situation after an accepted step moved the account to *dest*; legal holds and the
    team stay through every move."""
    after = _moved(situation, dest, step, **facts)
    if after.held == situation.held and after.team == situation.team:
        return after
    return attrs.evolve(after, held=situation.held, team=situation.team)


def _moved(
    situation: Situation, dest: State, step: Step, *, phased: bool = False, choice: str | None = None
) -> Situation:
    """The situation after an accepted step moved the account to *dest*; a confirm records the
    window *choice* it made."""
    if dest is situation.state:
        return situation
    if dest in (State.ACTIVE, State.SURVEYED, State.PENDING_CONFIRM):
        return Situation(dest)
    confirmed_by = step.actor if step.action == Action.CONFIRM else situation.confirmed_by
    chosen = situation.choice if choice is None else choice
    if dest is State.CANCELLED:
        return Situation(dest, confirmed_by=confirmed_by, purge="pending", choice=chosen)
    if dest is State.RESTORABLE:
        window = "phase 1" if phased else "open"
        return Situation(dest, window=window, confirmed_by=confirmed_by, choice=chosen)
    return Situation(dest, confirmed_by=confirmed_by, choice=chosen)
