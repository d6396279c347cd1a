"""Every situation reachable from a fresh account, with every step tried from each."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence

import attrs

from account_lifecycle.model import State
from account_lifecycle.verify.model import _Model, _Outcome
from account_lifecycle.verify.probes import _Probe
from account_lifecycle.verify.report import Counterexample, Move
from account_lifecycle.verify.situation import Situation, Step

# -- exploration ----------------------------------------------------------------------------


@attrs.frozen
class _Edge:
    source: Situation
    step: Step
    outcome: _Outcome


class _Graph:
    """Every situation reachable from a fresh account, with every step tried from each."""

    def __init__(self, model: _Model, probes: Sequence[_Probe]) -> None:
        start = Situation(State.ACTIVE)
        self.order: list[Situation] = [start]
        self.parent: dict[Situation, tuple[Situation, Step] | None] = {start: None}
        self.edges: dict[Situation, list[_Edge]] = {}
        queue = deque([start])
        while queue:
            situation = queue.popleft()
            edges = [_Edge(situation, p.step, model.command(situation, p)) for p in probes]
            edges += [_Edge(situation, step, outcome) for step, outcome in model.system_steps(situation)]
            self.edges[situation] = edges
            for edge in edges:
                target = edge.outcome.target
                if target is not None and target not in self.parent:
                    self.parent[target] = (situation, edge.step)
                    self.order.append(target)
                    queue.append(target)

    def path_to(self, situation: Situation) -> list[Move]:
        moves: list[Move] = []
        link = self.parent[situation]
        current = situation
        while link is not None:
            previous, step = link
            moves.append(Move(step, previous.state, current.state))
            current = previous
            link = self.parent[previous]
        return moves[::-1]

    def counterexample(self, edge: _Edge, conclusion: str) -> Counterexample:
        target = edge.outcome.target
        last = Move(
            edge.step, edge.source.state, None if target is None else target.state, edge.outcome.refusal
        )
        return Counterexample((*self.path_to(edge.source), last), conclusion)

    def all_edges(self) -> Iterator[_Edge]:
        for situation in self.order:
            yield from self.edges[situation]


def _refusals(edges: Iterable[_Edge], limit: int = 3) -> str:
    """The distinct reasons among refused *edges*, for a conclusion."""
    reasons: list[str] = []
    for edge in edges:
        refusal = edge.outcome.refusal
        if refusal is not None and refusal not in reasons:
            reasons.append(refusal)
    shown = "; ".join(reasons[:limit])
    more = f" (and {len(reasons) - limit} more)" if len(reasons) > limit else ""
    return shown + more


def _first(graph: _Graph, broken: Callable[[_Edge], str | None]) -> Counterexample | None:
    """The counterexample of the first edge (in breadth-first order) that *broken* objects to."""
    for edge in graph.all_edges():
        conclusion = broken(edge)
        if conclusion is not None:
            return graph.counterexample(edge, conclusion)
    return None
