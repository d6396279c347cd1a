"""Behavioural differences between two policies: ``diff_policies``."""

from __future__ import annotations

from collections import deque

from account_lifecycle.machine import PolicyMachine
from account_lifecycle.model import State
from account_lifecycle.policy import Policy
from account_lifecycle.verify.changes import policy_changes
from account_lifecycle.verify.model import _Model, _Outcome
from account_lifecycle.verify.probes import _Alphabet, _probes
from account_lifecycle.verify.report import Difference, DiffReport, Move
from account_lifecycle.verify.situation import Situation, Step


def _describe(outcome: _Outcome) -> str:
    if outcome.target is not None:
        return f"allows it: {outcome.target.state.value}"
    return f"refuses it: {outcome.refusal}"


def diff_policies(a: Policy, b: Policy) -> DiffReport:
    """Every difference between *a* and *b*, from *a* to *b*.

    Semantic (``DiffReport.changes``): each field of the policies compared, worded for the
    customer, support agent or auditor who would notice it, risky ones marked. Behavioural
    (``DiffReport.differences``): a path both allow, then a step one allows and the other
    refuses (or that leads them to different states); only the first divergence on each path
    is reported, the shortest example of each kind."""
    names = tuple(dict.fromkeys((*a.prerequisites, *b.prerequisites)))
    models = (_Model(PolicyMachine(a), names), _Model(PolicyMachine(b), names))
    alphabet = _Alphabet.of(a, b)
    probes = tuple(zip(_probes(a, alphabet), _probes(b, alphabet), strict=True))
    start = Situation(State.ACTIVE)
    parent: dict[Situation, tuple[Situation, Step] | None] = {start: None}
    queue = deque([start])
    differences: list[Difference] = []
    kinds: set[tuple[str, ...]] = set()

    def path_to(situation: Situation) -> tuple[Move, ...]:
        moves: list[Move] = []
        link = parent[situation]
        current = situation
        while link is not None:
            previous, step = link
            moves.append(Move(step, previous.state, current.state))
            current = previous
            link = parent[previous]
        return tuple(moves[::-1])

    while queue:
        situation = queue.popleft()
        pairs = [
            (pa.step, models[0].command(situation, pa), models[1].command(situation, pb)) for pa, pb in probes
        ]
        system_a = dict(models[0].system_steps(situation))
        system_b = dict(models[1].system_steps(situation))
        pairs += [(step, system_a[step], system_b[step]) for step in system_a if step in system_b]
        for step, one, other in pairs:
            if one.target == other.target:
                if one.target is not None and one.target not in parent:
                    parent[one.target] = (situation, step)
                    queue.append(one.target)
                continue  # the same move, or refused by both (maybe for different reasons)
            kind = (situation.state.value, step.actor, step.action, one.signature(), other.signature())
            if kind in kinds:
                continue
            kinds.add(kind)
            described = (_describe(one), _describe(other))
            if one.target is not None and other.target is not None and described[0] == described[1]:
                # the same state, other facts (say, the window chosen): show the facts
                described = (f"allows it: {one.target}", f"allows it: {other.target}")
            differences.append(Difference(path_to(situation), step, situation.state, *described))
    return DiffReport(a.label, b.label, tuple(differences), policy_changes(a, b))
