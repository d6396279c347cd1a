"""The policy's machine as an SVG drawing, made on the server: no JavaScript renderer, no CDN.

The edges are ``diagram``'s (the machine's own transitions, with their guards); the states
sit on one row in the lifecycle's order, moves forward arc above it and moves back arc
below, a move that stays in its state loops over it. Each state says what happens there:
what is erased on entering it, how long it can be restored and by whom (each phase), and
whether legal holds stop the purge. Guards are in each edge's tooltip.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Final

from account_lifecycle.diagram import _edges, _states
from account_lifecycle.machine import PolicyMachine
from account_lifecycle.model import Action, Relation, State
from account_lifecycle.policy import HOLD_PERMISSIONS, Policy

__all__ = ["render_svg", "state_notes"]

_STEP: Final = 200  # horizontal distance between states
_WIDTH: Final = 160
_MARGIN: Final = 40  # room above the highest label, for the title
_LOOP_LABEL: Final = 74  # how far above the row a loop's lowest label sits
_LINE: Final = 14
_STYLE: Final = (
    "text{font:12px system-ui,sans-serif;fill:#222}.title{font-weight:600;font-size:14px}"
    ".state rect{fill:#eef3f8;stroke:#3a5f85;stroke-width:1.5}.state.terminal rect{stroke-width:3}"
    ".name{font-weight:600;font-size:13px}.note{fill:#555;font-size:11px}"
    ".edge path{fill:none;stroke:#3a5f85;stroke-width:1.3}.edge.system path{stroke-dasharray:5 4}"
    ".label{fill:#1d3d5c}marker path{fill:#3a5f85}.start{fill:#222}"
)


def _who(relations: Iterable[Relation]) -> str:
    given = set(relations)
    names = [relation.value for relation in Relation if relation in given]  # a stable order
    return "/".join(names) if names else "nobody"


def state_notes(policy: Policy) -> dict[State, list[str]]:
    """The lines written under each state: erasures, the window, phases and holds."""
    notes: dict[State, list[str]] = {state: [] for state in State}
    at_cancel, at_expiry = policy.purge.at("cancel"), policy.purge.at("expiry")
    if at_cancel:
        notes[State.CANCELLED].append(f"erases {len(at_cancel)}: {', '.join(at_cancel)}")
    recovery = policy.recovery
    restorers = _who(policy.permissions.get(Action.RESTORE, frozenset()))
    if recovery.phases:
        for number, phase in enumerate(recovery.phases, start=1):
            notes[State.RESTORABLE].append(f"phase {number}: {phase.length} by {_who(phase.restore)}")
    elif recovery.choices:
        choices = ", ".join(str(c) for c in recovery.choices)
        notes[State.RESTORABLE].append(f"window chosen at confirm: {choices}")
        notes[State.RESTORABLE].append(f"restore by {restorers}")
    elif recovery.window is not None:
        notes[State.RESTORABLE].append(f"window {recovery.window}, restore by {restorers}")
    if recovery.reminders:
        notes[State.RESTORABLE].append("reminders " + ", ".join(f"{r} before" for r in recovery.reminders))
    if at_expiry:
        notes[State.PURGED].append(f"erases {len(at_expiry)} at expiry: {', '.join(at_expiry)}")
    if policy.purge.protected:
        notes[State.PURGED].append(f"never erased: {', '.join(policy.purge.protected)}")
    if policy.purge.on_hold is not None:
        placers = _who(policy.permissions.get(Action.PLACE_HOLD, HOLD_PERMISSIONS))
        what = "the account waits" if policy.purge.on_hold == "wait" else "the category is kept"
        for state in (State.CANCELLED, State.RESTORABLE):
            notes[state].append(f"hold by {placers}: {what}")
    return notes


def _text(x: float, y: float, text: str, cls: str, anchor: str = "middle") -> str:
    return f'<text x="{x:.0f}" y="{y:.0f}" class="{cls}" text-anchor="{anchor}">{escape(text)}</text>'


def _wrap(lines: list[str], width: int = 25) -> list[str]:
    out: list[str] = []
    for line in lines:
        current = ""
        for word in line.split(" "):
            if current and len(current) + 1 + len(word) > width:
                out.append(current)
                current = "  " + word
            else:
                current = f"{current} {word}" if current else word
        out.append(current)
    return out


def render_svg(policy: Policy) -> str:
    """An ``<svg>`` element drawing *policy*'s machine; the same policy gives the same text."""
    machine = PolicyMachine(policy)
    edges = _edges(machine)
    states = _states(machine, edges)
    x_of = {state: 40 + _WIDTH / 2 + index * _STEP for index, state in enumerate(states)}
    width = 80 + _WIDTH + _STEP * (len(states) - 1)
    full = state_notes(policy)
    notes = {state: _wrap(lines) for state, lines in full.items()}
    box = 34 + _LINE * max((len(notes[s]) for s in states), default=0)

    grouped: dict[tuple[State, State], list[str]] = {}
    for source, dest, label in edges:
        grouped.setdefault((source, dest), []).append(label)
    # the row sits low enough for the highest stack of labels, under the title
    top = _MARGIN + max((_above(pair, len(labels), x_of) for pair, labels in grouped.items()), default=0)
    height = top + box + 160

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="machine" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" '
        f'aria-label="state machine of {escape(policy.label)}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>',
        f"<style>{_STYLE}</style>",
        _text(10, 20, policy.label, "title", "start"),
    ]
    for pair, labels in grouped.items():
        parts.append(_edge(pair, labels, x_of, top, box))
    for state in states:
        x = x_of[state]
        kind = " terminal" if state is State.PURGED else ""
        lines = "".join(_text(x, top + 40 + _LINE * n, line, "note") for n, line in enumerate(notes[state]))
        parts.append(
            f'<g class="state{kind}" data-state="{state.value}">'
            f"<title>{escape(chr(10).join([state.value, *full[state]]))}</title>"
            f'<rect x="{x - _WIDTH / 2:.0f}" y="{top:.0f}" width="{_WIDTH}" height="{box}" rx="12"/>'
            + _text(x, top + 21, state.value, "name")
            + lines
            + "</g>"
        )
    start = x_of[State.ACTIVE] - _WIDTH / 2
    parts.append(f'<circle cx="{start - 18:.0f}" cy="{top + 17:.0f}" r="6" class="start"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _rise(x1: float, x2: float) -> float:
    """How far an arc between two states rises above (or falls below) the row."""
    return 30 + 24 * abs(x2 - x1) / _STEP


def _above(pair: tuple[State, State], count: int, x_of: dict[State, float]) -> float:
    """How far above the row the first of an edge's *count* labels is (0 for arcs below it)."""
    source, dest = pair
    if source is dest:
        return _LOOP_LABEL + _LINE * count
    if x_of[dest] > x_of[source]:
        return _rise(x_of[source], x_of[dest]) + 6 + _LINE * count
    return 0


def _edge(
    pair: tuple[State, State], labels: list[str], x_of: dict[State, float], top: float, box: float
) -> str:
    source, dest = pair
    system = all(" (system, " in label for label in labels)
    cls = "edge system" if system else "edge"
    shown = [label.split(" ", 1)[0] for label in labels]
    tooltip = escape("\n".join(labels))
    x1, x2 = x_of[source], x_of[dest]
    if source is dest:
        path = (
            f"M{x1 - 30:.0f},{top:.0f} C{x1 - 50:.0f},{top - 90:.0f} "
            f"{x1 + 50:.0f},{top - 90:.0f} {x1 + 30:.0f},{top:.0f}"
        )
        label_y = top - _LOOP_LABEL - _LINE * (len(shown) - 1)
    else:
        rise = _rise(x1, x2)
        forward = x2 > x1
        y = top if forward else top + box
        control = y - 2 * rise if forward else y + 2 * rise
        path = f"M{x1:.0f},{y:.0f} Q{(x1 + x2) / 2:.0f},{control:.0f} {x2:.0f},{y:.0f}"
        label_y = y - rise - 6 - _LINE * (len(shown) - 1) if forward else y + rise + 14
    lines = [_text((x1 + x2) / 2, label_y + _LINE * n, text, "label") for n, text in enumerate(shown)]
    return (
        f'<g class="{cls}" data-from="{source.value}" data-to="{dest.value}"><title>{tooltip}</title>'
        f'<path d="{path}" marker-end="url(#arrow)"/>' + "".join(lines) + "</g>"
    )
