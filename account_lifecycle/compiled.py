"""A decision table compiled from a policy's ``transitions`` machine, for the command path.

``PolicyMachine.decide`` fires the machine's event: ``transitions`` looks the event up, builds
its ``EventData``, runs (empty) callback lists, resolves each condition and compares its result
with ``== True``, then sets the cursor's state. That bookkeeping costs several times what the
guards themselves cost. ``DecisionTable`` reads the machine once, when the policy's rules are
built, and keeps for every (trigger, source state) the machine's transitions in the order it
tries them, each as its guards (the very ``Guard`` objects of the machine) and its destination.
``decide`` then walks that list as ``Event._process`` and ``Transition.execute`` do: the first
transition whose guards all pass wins, a guard stops its transition at its first refusal (the
first refusal of the attempt is kept), an exception in a guard propagates, and a state with no
transition for the trigger is an ``InvalidTransition``.

The table is built from whatever the machine holds (every event, every source), never from a
list of actions. A transition it cannot reproduce exactly (a condition that is not a ``Guard``
or is an ``unless``, prepare/before/after callbacks, machine or state callbacks, ignored invalid
triggers) is left to the machine: its (trigger, source) pair is decided by firing the machine.
``tests/unit/test_compiled.py`` proves the table equal to firing the machine for every state,
trigger and guard outcome. ``verify``, diagrams and ``allowed_actions`` read the machine itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from account_lifecycle.errors import InvalidTransition
from account_lifecycle.machine import _NOT_THIS_WAY, Attempt, Guard
from account_lifecycle.model import Relation, State

if TYPE_CHECKING:
    from account_lifecycle.machine import PolicyMachine

__all__ = ["DecisionTable"]

#: One transition: its guards in the order the machine checks them, and where it leads.
Row = tuple[tuple[Guard, ...], State]
#: The (trigger, source) pairs decided by firing the machine instead of by a row list.
_FIRE: Final = None
#: Each state's value (``State.value`` is a descriptor call on every read).
_VALUE: Final = {state: state.value for state in State}


class DecisionTable:
    """The decisions of one ``PolicyMachine``, as a table read once from it."""

    def __init__(self, machine: PolicyMachine) -> None:
        self.machine = machine
        self.policy = machine.policy
        raw = machine.machine
        # Machine-wide behaviour the table does not reproduce: fire the machine for everything.
        whole = bool(
            raw.prepare_event
            or raw.before_state_change
            or raw.after_state_change
            or raw.finalize_event
            or getattr(raw, "on_exception", None)
            or raw.ignore_invalid_triggers
            or not raw.send_event
            or any(s.on_enter or s.on_exit or s.ignore_invalid_triggers for s in raw.states.values())
        )
        #: trigger -> source state value -> rows (or ``None``: fire the machine)
        self.rows: dict[str, dict[str, tuple[Row, ...] | None]] = {}
        for name, event in raw.events.items():
            by_source: dict[str, tuple[Row, ...] | None] = {}
            for source, transitions in event.transitions.items():
                by_source[source] = _FIRE if whole else _rows(source, transitions)
            self.rows[str(name)] = by_source
        self.compiled = not whole
        #: (trigger, source state) -> (the relations let through, destination), for each pair
        #: the machine decides with one transition guarded by permission checks alone
        #: (``Guard.relations``): there, the decision is whether the actor's relation is in
        #: the set, whatever else the attempt holds (``decide.decide_express`` reads it).
        self.permitted: dict[tuple[str, str], tuple[frozenset[Relation], State]] = {}
        for trigger, by_source in self.rows.items():
            for source, rows in by_source.items():
                if rows is None or len(rows) != 1:
                    continue
                guards, dest = rows[0]
                if guards and all(guard.relations is not None for guard in guards):
                    let_through = frozenset.intersection(
                        *(guard.relations or frozenset() for guard in guards)
                    )
                    self.permitted[(trigger, source)] = (let_through, dest)

    def decide(self, trigger: str, attempt: Attempt) -> State:
        """The new state for *trigger* on the attempt's state, or the typed error of the first
        guard that refused: what ``PolicyMachine.decide`` returns or raises for the same attempt."""
        by_source = self.rows.get(trigger)
        state = attempt.record.state
        if by_source is None:
            raise InvalidTransition(
                state=state, action=trigger, reason=f"policy {self.policy.label} has no such step"
            )
        try:
            rows = by_source[state]  # a State finds its value's key (a StrEnum hashes as its text)
        except KeyError:
            raise InvalidTransition(state=state, action=trigger) from None
        if rows is None:
            return self.machine.decide(trigger, attempt)
        for guards, dest in rows:
            for guard in guards:
                refusal = guard.check(attempt)
                if refusal is not None:
                    if attempt.refusal is None:
                        attempt.refusal = refusal
                    break
            else:
                attempt.state = _VALUE[dest]
                return dest
        refusal = attempt.refusal
        if refusal is None or refusal is _NOT_THIS_WAY:
            raise InvalidTransition(state=state, action=trigger)
        raise refusal


def _rows(source: str, transitions: list[Any]) -> tuple[Row, ...] | None:
    """The rows of one (trigger, source), or ``None`` if one transition is beyond the table."""
    rows: list[Row] = []
    for t in transitions:
        if t.prepare or t.before or t.after:
            return _FIRE
        guards: list[Guard] = []
        for condition in t.conditions:
            if not isinstance(condition.func, Guard) or condition.target is not True:
                return _FIRE
            guards.append(condition.func)
        rows.append((tuple(guards), State(t.dest if t.dest is not None else source)))
    return tuple(rows)
