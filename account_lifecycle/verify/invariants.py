"""The invariants, checked over the graph of a policy: ``verify_policy``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from account_lifecycle.machine import EXPIRE, SETTLE, PolicyMachine
from account_lifecycle.model import Action, State
from account_lifecycle.policy import ACTIONS_WITH_PERMISSIONS, INVARIANTS, Policy
from account_lifecycle.verify.graph import _Edge, _first, _Graph, _refusals
from account_lifecycle.verify.model import _Model
from account_lifecycle.verify.probes import _Alphabet, _probes
from account_lifecycle.verify.report import Counterexample, InvariantResult, VerificationReport
from account_lifecycle.verify.situation import _NO_WINDOW, Situation

_TEAM: Final = frozenset({Action.ADD_MEMBER, Action.REMOVE_MEMBER})
_DESCRIPTIONS: Final = {
    "owner_confirms": "nothing is purged unless the owner confirmed",
    "no_restore_after_window": "restore is accepted only while the recovery window is open",
    "purged_terminal": "nothing is accepted once the account is purged",
    "all_states_reachable": "every state the policy's machine can be in is reachable",
    "no_dead_end": "from every reachable situation, active or purged can still be reached",
}


def _owner_confirms(edge: _Edge) -> str | None:
    if (
        edge.source.team != _NO_WINDOW
        and edge.step.actor == "member"
        and edge.step.action == Action.CONFIRM
        and edge.outcome.accepted
    ):
        return "a removed member's confirmation was accepted: it is a stranger to the account"
    confirmed_by = edge.source.confirmed_by
    if confirmed_by == "owner":
        return None
    target = edge.outcome.target
    purging = edge.step.action == "purge" or (
        target is not None and target.state is State.PURGED and edge.source.state is not State.PURGED
    )
    if not purging:
        return None
    who = confirmed_by if confirmed_by != _NO_WINDOW else "nobody"
    return f"data is purged, but the cancellation was confirmed by {who}, not by the owner"


def _no_restore_after_window(policy: Policy) -> Callable[[_Edge], str | None]:
    phases = policy.recovery.phases

    def broken(edge: _Edge) -> str | None:
        if edge.step.action != Action.RESTORE or not edge.outcome.accepted:
            return None
        window = edge.source.window
        if window == "open":
            return None
        if window.startswith("phase ") and phases:
            number = int(window.split()[1])
            allowed = phases[number - 1].restore
            if edge.step.actor in allowed:
                return None
            who = ", ".join(r.value for r in allowed)
            return (
                f"restore by {edge.step.actor} was accepted in recovery phase {number}, "
                f"where only {who} may restore"
            )
        if window == "ended":
            return "restore was accepted after the recovery window had ended"
        return f"restore was accepted from {edge.source.state.value}, where no recovery window is open"

    return broken


def _purged_terminal(edge: _Edge) -> str | None:
    if edge.source.state is State.PURGED and edge.outcome.accepted:
        return "a step was accepted after the account was purged"
    return None


def _all_states_reachable(graph: _Graph, machine: PolicyMachine) -> Counterexample | None:
    reached = {s.state for s in graph.order}
    missing = sorted((s for s in machine.reachable_states if s not in reached), key=list(State).index)
    if not missing:
        return None
    names = ", ".join(s.value for s in missing)
    # Where the machine has a way into a missing state from a reached one: show it refused.
    for trigger, source, dest, _guards in machine.transitions():
        if dest in missing and source in reached:
            situation = next(s for s in graph.order if s.state is source)
            tried = [
                e
                for e in graph.edges[situation]
                if e.step.action == trigger or (trigger in (SETTLE, EXPIRE) and e.step.action == "purge")
            ]
            refused = sorted(
                (e for e in tried if not e.outcome.accepted),
                key=lambda e: (e.step.actor != "owner", ("outcome", "cancel") not in e.step.inputs),
            )
            if refused:
                conclusion = (
                    f"never reached: {names}. The machine's {trigger} from {source.value} to "
                    f"{dest.value} is refused whoever tries it: {_refusals(refused)}"
                )
                return graph.counterexample(refused[0], conclusion)
    return Counterexample((), f"never reached: {names}; no step of the policy leads there")


def _no_dead_end(graph: _Graph, machine: PolicyMachine) -> Counterexample | None:
    good = {s for s in graph.order if s.state in (State.ACTIVE, State.PURGED)}
    incoming: dict[Situation, list[Situation]] = {}
    for edge in graph.all_edges():
        if edge.outcome.target is not None:
            incoming.setdefault(edge.outcome.target, []).append(edge.source)
    frontier = list(good)
    while frontier:
        situation = frontier.pop()
        for source in incoming.get(situation, ()):
            if source not in good:
                good.add(source)
                frontier.append(source)
    for situation in graph.order:
        if situation not in good:
            stuck = {s.state.value for s in graph.order if s not in good}
            leaving = [e for e in graph.edges[situation] if e.outcome.target != situation]
            # a team change leaves the situation but not its state: no way on
            moves = sorted(
                {
                    e.outcome.target.state.value
                    for e in leaving
                    if e.outcome.target is not None
                    and (e.outcome.target.state is not situation.state or e.step.action not in _TEAM)
                }
            )
            conclusion = (
                f"dead end: from {situation} neither active nor purged can be reached"
                f" (stuck states: {', '.join(sorted(stuck))})"
            )
            if moves:
                conclusion += f"; steps lead only to {', '.join(moves)}"
            else:
                # The refusals worth reading are those of the machine's own ways out.
                ways_out = {
                    t[0] for t in machine.transitions() if t[1] is situation.state and t[2] is not t[1]
                }
                relevant = sorted(
                    (e for e in leaving if e.step.action in ways_out), key=lambda e: e.step.actor != "owner"
                )
                if situation.held != _NO_WINDOW and machine.policy.purge.on_hold == "wait":
                    releases = [e for e in leaving if e.step.action == Action.RELEASE_HOLD]
                    relevant = [*releases, *relevant]  # the way out of a legal hold comes first
                conclusion += f"; every step is refused: {_refusals(relevant or leaving, limit=4)}"
            return Counterexample(tuple(graph.path_to(situation)), conclusion)
    return None


def _notes(policy: Policy, machine: PolicyMachine) -> tuple[str, ...]:
    triggers = {t[0] for t in machine.transitions()}
    notes = []
    for action in ACTIONS_WITH_PERMISSIONS:
        granted = policy.permissions.get(action, frozenset())
        if granted and action.value not in triggers:
            who = ", ".join(sorted(r.value for r in granted))
            why = {
                Action.RESTORE: "the policy has no recovery.window",
                Action.SKIP_SURVEY: f"the survey is {policy.survey.mode}",
                Action.SUBMIT_SURVEY: "the survey is off",
                Action.CANCEL_SERVICE: "the policy lists no services",
            }.get(action, "the machine has no such step")
            notes.append(f"permissions.{action.value} grants {who}, but {why}: it can never happen")
    if policy.recovery.phases:
        granted = policy.permissions.get(Action.RESTORE, frozenset())
        in_phases = {r for phase in policy.recovery.phases for r in phase.restore}
        idle = sorted(r.value for r in granted - in_phases)
        if idle:
            notes.append(
                f"permissions.restore grants {', '.join(idle)}, but no recovery phase lets "
                f"{'it' if len(idle) == 1 else 'them'} restore: it can never happen"
            )
    return tuple(notes)


def verify_policy(policy: Policy, *, machine: PolicyMachine | None = None) -> VerificationReport:
    """Explore every reachable abstract situation of *policy* and check every invariant.

    *machine* defaults to ``PolicyMachine(policy)``; tests pass a deliberately broken one.
    """
    if not isinstance(policy, Policy):
        raise TypeError(f"verify_policy() takes a Policy, got {type(policy).__name__}")
    machine = machine if machine is not None else PolicyMachine(policy)
    probes = _probes(policy, _Alphabet.of(policy))
    graph = _Graph(_Model(machine, policy.prerequisites), probes)
    found = {
        "owner_confirms": _first(graph, _owner_confirms),
        "no_restore_after_window": _first(graph, _no_restore_after_window(policy)),
        "purged_terminal": _first(graph, _purged_terminal),
        "all_states_reachable": _all_states_reachable(graph, machine),
        "no_dead_end": _no_dead_end(graph, machine),
    }
    results = tuple(
        InvariantResult(
            id=invariant,
            holds=found[invariant] is None,
            waived=invariant in policy.waivers,
            description=_DESCRIPTIONS[invariant],
            counterexample=found[invariant],
        )
        for invariant in INVARIANTS
    )
    return VerificationReport(
        policy=policy.label,
        situations=len(graph.order),
        steps=sum(len(edges) for edges in graph.edges.values()),
        reachable=frozenset(s.state for s in graph.order),
        results=results,
        waivers=policy.waivers,
        notes=_notes(policy, machine),
    )
