"""What the page shows of a text: errors at their keys (``check``'s words), the diagram, the
proofs and the difference from the baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner

from account_lifecycle import Policy, policies
from account_lifecycle.cli import cli
from account_lifecycle.files import shown
from account_lifecycle.studio import difference
from account_lifecycle.studio.analysis import analyse, check_text
from account_lifecycle.studio.svg import render_svg

ALLCLIENTS = policies.path("allclients").read_text(encoding="utf-8")


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "key", "needle"),
    [
        ('window = "3 months"', 'window = "-3"', "recovery.window", "window ="),
        ('{ name = "todos", at = "cancel" }', '{ name = "todos", at = "later" }', "", "todos"),
        ('confirm = ["owner"]', 'confirm = ["owner", "landlord"]', "permissions.confirm", "confirm ="),
        ('mode = "optional"', 'mode = "optional', "survey.mode", "mode ="),
    ],
)
def test_each_error_is_checks_message_at_its_line(
    tmp_path: Path, old: str, new: str, key: str, needle: str
) -> None:
    """The same words as ``account-lifecycle check``, and the line of the key they name."""
    text = ALLCLIENTS.replace(old, new)
    assert text != ALLCLIENTS
    policy, errors = check_text(text)
    assert policy is None
    [error] = errors
    if key:
        assert error["key"] == key
    assert error["line"] == line_of(text, needle)
    path = tmp_path / "edited.toml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["check", str(path)])
    # the CLI shows a long path cut short (files.shown): pytest-xdist's paths are longer
    assert result.stderr.strip() == f"{shown(str(path))}: {error['text']}"


def test_a_syntax_error_takes_tomls_own_line_and_column() -> None:
    _, [error] = check_text('name = "x"\nversion = = 1\n')
    assert (error["line"], error["column"]) == (2, 11)


def test_a_valid_text_has_no_errors_and_its_policy() -> None:
    policy, errors = check_text(ALLCLIENTS)
    assert errors == []
    assert policy == policies.ALLCLIENTS


def test_the_diagram_shows_the_window_and_changes_with_it() -> None:
    """The restorable state names its window; a new window is a new drawing."""
    before = render_svg(policies.ALLCLIENTS)
    after = render_svg(Policy.from_toml(ALLCLIENTS.replace('"3 months"', '"6 months"')))
    assert "window 3 months, restore by support" in before
    assert "window 6 months, restore by support" in after
    assert 'data-from="pending_confirm" data-to="cancelled"' in before


def test_the_diagram_leaves_out_states_the_policy_never_reaches() -> None:
    """SMRTPHONE has no window: no restorable state, cancelled leads straight to purged."""
    svg = render_svg(policies.SMRTPHONE)
    assert 'data-state="restorable"' not in svg
    assert 'data-from="cancelled" data-to="purged"' in svg
    assert "never erased: crm_contacts, crm_logs" in svg


def test_the_diagram_shows_phases_and_holds() -> None:
    text = (
        ALLCLIENTS.replace(
            'window = "3 months"',
            'phases = [{ length = "30 days", restore = ["owner", "support"] }, '
            '{ length = "60 days", restore = ["support"] }]',
        )
        .replace('restore = ["support"]', 'restore = ["owner", "support"]', 1)
        .replace("protected = []", 'protected = []\non_hold = "wait"')
    )
    svg = render_svg(Policy.from_toml(text))
    assert "phase 1: 30 days by owner/support" in svg
    assert "phase 2: 60 days by support" in svg
    assert "hold by support/system: the account waits" in svg


def test_text_in_the_drawing_is_escaped() -> None:
    """A description cannot inject markup: only escaped text reaches the SVG."""
    svg = render_svg(policies.ALLCLIENTS)
    assert "<script" not in svg
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')


def test_analyse_a_valid_text_gives_diagram_proofs_and_the_difference() -> None:
    member_confirms = ALLCLIENTS.replace('confirm = ["owner"]', 'confirm = ["owner", "member"]')
    result = analyse(member_confirms, policies.ALLCLIENTS)
    assert result["valid"] is True
    statuses = {r["id"]: r["status"] for r in result["proofs"]["invariants"]}
    assert statuses["owner_confirms"] == "fails"
    assert result["diff"]["baseline"] == "allclients@1"
    # the behavioural difference: a path both allow, then a step only this file allows
    [only] = [d for d in result["diff"]["differences"] if d["kind"] == "behavioural"]
    assert "member: confirm" in only["text"]
    assert "the baseline refuses it: NotPermitted" in only["text"]
    assert "this file allows it: cancelled" in only["text"]
    assert result["facts"]["services"] == ["messages"]


def test_analyse_an_invalid_text_gives_only_its_errors() -> None:
    result = analyse(ALLCLIENTS.replace('"3 months"', '"soon"'), policies.ALLCLIENTS)
    assert result["valid"] is False
    assert set(result) == {"valid", "errors"}


def test_the_difference_adapter_reads_a_semantic_report_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """When ``diff_policies`` reports semantic changes with words, keys, audience and risk,
    they pass through unchanged, risky ones first, beside the behavioural differences."""

    @attrs.frozen
    class Change:
        text: str
        keys: tuple[str, ...]
        audience: str
        risky: bool

    @attrs.frozen
    class Report:
        a: str
        b: str
        differences: tuple[Any, ...]
        changes: tuple[Any, ...]

    real = difference.diff_policies(policies.ALLCLIENTS, policies.SMRTPHONE).differences[:1]
    calm = Change("the description changed", ("description",), "auditor", False)
    risky = Change("members may now confirm", ("permissions.confirm",), "customer", True)
    monkeypatch.setattr(difference, "diff_policies", lambda a, b: Report("a", "b", real, (calm, risky)))
    entries = difference.differences(policies.ALLCLIENTS, policies.SMRTPHONE)
    assert entries[:2] == [
        {
            "text": "members may now confirm",
            "keys": ["permissions.confirm"],
            "audience": "customer",
            "risky": True,
            "kind": "semantic",
        },
        {
            "text": "the description changed",
            "keys": ["description"],
            "audience": "auditor",
            "risky": False,
            "kind": "semantic",
        },
    ]
    assert entries[2]["kind"] == "behavioural"
    assert len(entries) == 3


def test_every_error_the_reader_lists_is_placed_at_its_own_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``PolicyError`` listing several problems (``errors``) gives one entry each."""
    from account_lifecycle import PolicyError
    from account_lifecycle.studio import analysis

    first = PolicyError(key="recovery.window", message="expected a duration")
    second = PolicyError(key="permissions.confirm", message="unknown relation")
    both = PolicyError(key=first.key, message=first.message)
    both.errors = (first, second)  # type: ignore[attr-defined]

    def refuse(text: str) -> Policy:
        raise both

    monkeypatch.setattr(analysis.Policy, "from_toml", staticmethod(refuse))
    _, errors = analysis.check_text(ALLCLIENTS)
    assert [(e["key"], e["line"]) for e in errors] == [
        ("recovery.window", line_of(ALLCLIENTS, "window =")),
        ("permissions.confirm", line_of(ALLCLIENTS, "confirm =")),
    ]


def test_the_difference_adapter_defaults_what_todays_report_lacks() -> None:
    entries = difference.differences(policies.ALLCLIENTS, policies.SMRTPHONE)
    behavioural = [e for e in entries if e["kind"] == "behavioural"]
    assert behavioural
    for entry in behavioural:
        assert entry["keys"] == []
        assert entry["audience"] == difference.DEFAULT_AUDIENCE
        assert entry["risky"] is False
        assert "the baseline" in entry["text"]
        assert "this file" in entry["text"]


def test_stacked_labels_stay_below_the_title() -> None:
    """With holds, every state loops with two or more labels: the row moves down to fit them."""
    import re

    text = ALLCLIENTS.replace("protected = []", 'protected = []\non_hold = "retain"')
    svg = render_svg(Policy.from_toml(text))
    label_ys = [float(y) for y in re.findall(r'<text x="[\d.]+" y="(-?[\d.]+)" class="label"', svg)]
    assert label_ys
    assert min(label_ys) >= 40  # the title's line is at 20
    assert "hold by support/system: the category is kept" in svg
