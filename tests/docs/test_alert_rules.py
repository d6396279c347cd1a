"""examples/ops/alerts.yml is a valid Prometheus rule file over the metrics the library records,
and each alert's runbook is a section of docs/operations.md."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from account_lifecycle import telemetry

ROOT = Path(__file__).resolve().parents[2]
RULES = yaml.safe_load((ROOT / "examples" / "ops" / "alerts.yml").read_text(encoding="utf-8"))


def _exported() -> set[str]:
    """The Prometheus names of the library's metrics: dots to underscores, a unit suffix for
    seconds, ``_total`` for counters, the histogram's series."""
    names = set()
    for name, (kind, unit) in telemetry.METRICS.items():
        base = name.replace(".", "_") + ("_seconds" if unit == "s" else "")
        if kind == "counter":
            names.add(base + "_total")
        elif kind == "histogram":
            names |= {base + "_bucket", base + "_sum", base + "_count"}
        else:
            names.add(base)
    return names


def _anchors() -> set[str]:
    page = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    return {
        re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", page, re.M)
    }


def test_the_rule_file_has_the_prometheus_shape() -> None:
    [group] = RULES["groups"]
    assert group["name"] == "account_lifecycle"
    assert len(group["rules"]) >= 4
    for rule in group["rules"]:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"[A-Z][A-Za-z]+", rule["alert"])
        assert re.fullmatch(r"\d+[smh]", rule["for"])
        assert rule["labels"]["severity"] in {"page", "ticket"}
        assert rule["expr"].count("(") == rule["expr"].count(")")
        assert rule["annotations"]["summary"]


def test_every_rule_uses_exported_metrics_and_a_documented_runbook() -> None:
    exported, anchors = _exported(), _anchors()
    for rule in RULES["groups"][0]["rules"]:
        used = set(re.findall(r"\baccount_lifecycle_[a-z_]+\b", rule["expr"]))
        metrics = {
            u for u in used if not u.startswith(("account_lifecycle_result", "account_lifecycle_category"))
        }
        assert metrics, rule["alert"]
        assert metrics <= exported, f"{rule['alert']} uses {metrics - exported}"
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/operations.md"
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor}"


def test_the_checks_can_fail() -> None:
    assert "account_lifecycle_backlog" in _exported()
    assert "account_lifecycle_backlogs" not in _exported()
    assert "a-stuck-purge" in _anchors()
    assert "a-lost-lease" in _anchors()
