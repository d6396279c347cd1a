"""The state diagrams on the site are the ones ``account_lifecycle.diagram`` draws today."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from account_lifecycle import policies
from account_lifecycle.diagram import draw
from account_lifecycle.machine import PolicyMachine

ROOT = Path(__file__).resolve().parents[2]
CONCEPTS = ROOT / "docs" / "concepts.md"
_MERMAID = re.compile(r"^```mermaid[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_TITLE = re.compile(r'^title: "(?P<label>[^"]+)"$', re.MULTILINE)


def mermaid_blocks() -> dict[str, str]:
    """The concepts page's mermaid blocks, keyed by the policy label in their title."""
    blocks = _MERMAID.findall(CONCEPTS.read_text(encoding="utf-8"))
    keyed = {}
    for block in blocks:
        title = _TITLE.search(block)
        assert title is not None, f"a mermaid block without a policy title:\n{block}"
        keyed[title["label"]] = block
    return keyed


@pytest.mark.parametrize("name", sorted(policies.BUILTIN))
def test_concepts_page_shows_the_generated_diagram(name: str) -> None:
    """The page's block for each built-in policy is exactly ``diagram.draw(policy)``."""
    policy = policies.BUILTIN[name]
    expected = draw(policy, "mermaid")

    shown = mermaid_blocks().get(policy.label)

    assert shown == expected, (
        f"docs/concepts.md is out of date for {policy.label}; replace its block with the output of "
        f"`account-lifecycle diagram account_lifecycle/policies/{name}.toml --format mermaid`"
    )


@pytest.mark.parametrize("name", sorted(policies.BUILTIN))
def test_every_machine_transition_is_an_edge_on_the_page(name: str) -> None:
    """Each ``PolicyMachine.transitions()`` entry appears as ``source --> dest: trigger`` on the page."""
    policy = policies.BUILTIN[name]
    shown = mermaid_blocks()[policy.label]
    edges = [line.strip() for line in shown.splitlines() if "-->" in line and "[*]" not in line]

    transitions = PolicyMachine(policy).transitions()

    assert len(edges) == len(transitions)
    for (trigger, source, dest, _guards), edge in zip(transitions, edges, strict=True):
        assert edge.startswith(f"{source.value} --> {dest.value}: {trigger}")
