"""Diagrams of a policy's machine, drawn from the machine the engine runs.

The edges come from ``PolicyMachine.transitions()``: the very transitions, with the very
guards, that ``decide`` fires. Each edge is labelled with its trigger and the names of
its guards (``confirm [may_confirm, token_matches, ...]``); the system's own moves after a
purge (``settle``, ``expire``) are marked as such. A phased recovery window labels the
restore edge with its phases, and a window chosen at confirm with its choices. Mermaid and
Graphviz DOT text need no extra dependency; render them with any Mermaid viewer or
``dot -Tsvg``.
"""

from __future__ import annotations

import json
from typing import Final

from account_lifecycle.machine import EXPIRE, SETTLE, PolicyMachine
from account_lifecycle.model import Action, State
from account_lifecycle.policy import Policy

__all__ = ["FORMATS", "draw", "to_dot", "to_mermaid"]

FORMATS: Final = ("mermaid", "dot")
_SYSTEM_EVENTS: Final = {
    SETTLE: "once the cancel-time purge is done",
    EXPIRE: "once the window ends and the rest is purged",
}


def _edges(machine: PolicyMachine) -> list[tuple[State, State, str]]:
    """``(source, dest, label)`` for every transition, in the machine's order."""
    edges = []
    for trigger, source, dest, guards in machine.transitions():
        label = trigger
        if guards:
            label += f" [{', '.join(guards)}]"
        if trigger in _SYSTEM_EVENTS:
            label += f" (system, {_SYSTEM_EVENTS[trigger]})"
        if trigger == Action.RESTORE:
            label += _recovery_note(machine.policy)
        edges.append((source, dest, label))
    return edges


def _recovery_note(policy: Policy) -> str:
    """`` (phases 30 days by owner/support, then 30 days by support)``, or the window choices."""
    recovery = policy.recovery
    if recovery.phases:
        parts = [f"{phase.length} by {'/'.join(r.value for r in phase.restore)}" for phase in recovery.phases]
        return f" (phases {', then '.join(parts)})"
    if recovery.choices:
        return f" (window chosen at confirm from {', '.join(str(c) for c in recovery.choices)})"
    return ""


def _states(machine: PolicyMachine, edges: list[tuple[State, State, str]]) -> list[State]:
    used = {State.ACTIVE} | {s for edge in edges for s in edge[:2]}
    return [state for state in State if state in used]


def to_mermaid(machine: PolicyMachine) -> str:
    """A Mermaid ``stateDiagram-v2`` of *machine*."""
    edges = _edges(machine)
    lines = [
        "---",
        f"title: {json.dumps(machine.policy.label, ensure_ascii=False)}",
        "---",
        "stateDiagram-v2",
        "    direction LR",
        f"    [*] --> {State.ACTIVE.value}",
    ]
    for source, dest, label in edges:
        lines.append(f"    {source.value} --> {dest.value}: {label}")
    if State.PURGED in _states(machine, edges):
        lines.append(f"    {State.PURGED.value} --> [*]")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(machine: PolicyMachine) -> str:
    """A Graphviz ``digraph`` of *machine*; system moves are dashed, ``purged`` is doubled."""
    edges = _edges(machine)
    lines = [
        f"digraph {_quote(machine.policy.label)} {{",
        "    rankdir=LR;",
        f"    label={_quote(machine.policy.label)};",
        "    node [shape=box, style=rounded];",
        '    __start [shape=point, label=""];',
    ]
    for state in _states(machine, edges):
        extra = ", peripheries=2" if state is State.PURGED else ""
        lines.append(f"    {state.value} [label={_quote(state.value)}{extra}];")
    lines.append(f"    __start -> {State.ACTIVE.value};")
    for source, dest, label in edges:
        style = ", style=dashed" if label.split(" ", 1)[0] in _SYSTEM_EVENTS else ""
        lines.append(f"    {source.value} -> {dest.value} [label={_quote(label)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw(policy: Policy, fmt: str = "mermaid") -> str:
    """The diagram of *policy*'s machine in *fmt*, ``"mermaid"`` or ``"dot"``."""
    machine = PolicyMachine(policy)
    if fmt == "mermaid":
        return to_mermaid(machine)
    if fmt == "dot":
        return to_dot(machine)
    raise ValueError(f"unknown diagram format {fmt!r}; expected one of {', '.join(FORMATS)}")
