"""OpenTelemetry spans and metrics, collected with the SDK's in-memory exporter and reader; and
nothing at all without the ``otel`` extra."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from account_lifecycle import (
    Actor,
    InvalidTransition,
    Lifecycle,
    ManualClock,
    MemoryStore,
    policies,
    telemetry,
)
from account_lifecycle.testing import FakePurger

T0 = datetime(2026, 1, 31, 12, tzinfo=UTC)
OWNER = Actor.parse("user:u1")
AC = policies.ALLCLIENTS
SECRETS = ("ann@example.com", "too expensive for us")

_EXPORTER = InMemorySpanExporter()
_READER = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def _providers() -> None:
    """The global providers, set once for this process (the API allows it once)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))


@pytest.fixture
def spans() -> InMemorySpanExporter:
    _EXPORTER.clear()
    return _EXPORTER


def _points(name: str) -> list[Any]:
    data = _READER.get_metrics_data()
    found = []
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found += list(metric.data.data_points)
    return found


def _count(name: str, **attributes: str) -> float:
    return sum(p.value for p in _points(name) if all(p.attributes.get(k) == v for k, v in attributes.items()))


def _world(fail: bool = True) -> tuple[Lifecycle, ManualClock, MemoryStore]:
    clock = ManualClock(T0)
    store = MemoryStore()
    purgers = [FakePurger(c.name, fail_when=fail and c.name == "todos") for c in AC.purge.categories]
    lc = Lifecycle(AC, store=store, purgers=purgers, clock=clock)
    return lc, clock, store


def _cancel(lc: Lifecycle, account_id: str) -> None:
    lc.open(account_id, owner="u1", identity="ann@example.com")
    lc.request_cancellation(account_id, OWNER)
    lc.submit_survey(account_id, OWNER, "cancel", {"why": "too expensive for us"})
    lc.confirm(account_id, OWNER)


def test_a_span_per_command_with_action_and_result(spans: InMemorySpanExporter) -> None:
    lc, _, _ = _world()
    before_ok = _count(
        telemetry.COMMANDS, **{telemetry.ACTION: "request_cancellation", telemetry.RESULT: "ok"}
    )
    _cancel(lc, "acct-1")
    with pytest.raises(InvalidTransition):
        lc.withdraw("acct-1", OWNER)
    commands = [s for s in spans.get_finished_spans() if s.name == telemetry.SPAN_COMMAND]
    assert [(s.attributes[telemetry.ACTION], s.attributes[telemetry.RESULT]) for s in commands] == [
        ("open", "ok"),
        ("request_cancellation", "ok"),
        ("submit_survey", "ok"),
        ("confirm", "ok"),
        ("withdraw", "refused"),
    ]
    assert {s.attributes[telemetry.ACCOUNT] for s in commands} == {"acct-1"}
    assert commands[-1].attributes[telemetry.ERROR_TYPE] == "InvalidTransition"
    after_ok = _count(
        telemetry.COMMANDS, **{telemetry.ACTION: "request_cancellation", telemetry.RESULT: "ok"}
    )
    assert after_ok == before_ok + 1
    assert _count(telemetry.COMMANDS, **{telemetry.ACTION: "withdraw", telemetry.RESULT: "refused"}) >= 1


def test_a_span_per_purge_step_with_category_result_and_duration(spans: InMemorySpanExporter) -> None:
    lc, clock, _ = _world()
    failed_before = _count(telemetry.STEPS, **{telemetry.CATEGORY: "todos", telemetry.RESULT: "failed"})
    _cancel(lc, "acct-2")  # confirm runs the cancel-time steps: todos fails
    clock.advance(timedelta(days=1))
    lc.sweep()  # tried again, fails again
    steps = [s for s in spans.get_finished_spans() if s.name == telemetry.SPAN_PURGE_STEP]
    todos = [s for s in steps if s.attributes[telemetry.CATEGORY] == "todos"]
    assert [s.attributes[telemetry.ATTEMPT] for s in todos] == [1, 2]
    assert {s.attributes[telemetry.RESULT] for s in todos} == {"failed"}
    assert todos[0].attributes[telemetry.ERROR_TYPE] == "RuntimeError"
    assert {s.attributes[telemetry.RESULT] for s in steps if s not in todos} == {"done"}
    assert (
        _count(telemetry.STEPS, **{telemetry.CATEGORY: "todos", telemetry.RESULT: "failed"})
        == failed_before + 2
    )
    durations = [
        p for p in _points(telemetry.STEP_DURATION) if p.attributes[telemetry.CATEGORY] == "contacts"
    ]
    assert durations
    assert durations[0].count >= 1
    [sweep] = [s for s in spans.get_finished_spans() if s.name == telemetry.SPAN_SWEEP]
    assert sweep.attributes["account_lifecycle.failed"] == 1


def test_backlog_gauges_and_reminders(spans: InMemorySpanExporter) -> None:
    lc, clock, store = _world()
    telemetry.observe_store(store, clock=clock)
    _cancel(lc, "acct-3")
    clock.advance(timedelta(hours=5))
    backlog = _points(telemetry.BACKLOG)
    assert backlog[-1].value == 1
    assert _points(telemetry.OLDEST_DUE_AGE)[-1].value > 3600
    failed = {p.attributes[telemetry.CATEGORY]: p.value for p in _points(telemetry.FAILED_STEPS)}
    assert failed == {"todos": 1}


def test_reminders_are_counted(spans: InMemorySpanExporter) -> None:
    policy = AC.from_toml(
        AC.to_toml().replace('window = "3 months"', 'window = "3 months"\nreminders = ["7 days"]')
    )
    clock = ManualClock(T0)
    lc = Lifecycle(
        policy,
        store=MemoryStore(),
        purgers=[FakePurger(c.name) for c in policy.purge.categories],
        clock=clock,
    )
    before = _count(telemetry.REMINDERS)
    _cancel(lc, "acct-4")
    clock.set(lc.get("acct-4").restorable_until - timedelta(days=6))  # type: ignore[operator]
    lc.sweep()
    assert _count(telemetry.REMINDERS) == before + 1


def test_no_personal_data_in_any_attribute(spans: InMemorySpanExporter) -> None:
    lc, clock, _ = _world()
    _cancel(lc, "acct-5")
    with pytest.raises(Exception, match="identity is still held"):
        lc.open("acct-6", owner="u2", identity="ann@example.com")
    clock.advance(timedelta(days=1))
    lc.sweep()
    values = [str(v) for s in spans.get_finished_spans() for v in (s.attributes or {}).values()]
    values += [str(e.attributes) for s in spans.get_finished_spans() for e in s.events]
    assert values
    for secret in SECRETS:
        assert not any(secret in v for v in values)


def test_the_documented_names_are_the_recorded_ones() -> None:
    page = (Path(__file__).parents[2] / "docs" / "operations.md").read_text(encoding="utf-8")
    for name in (*telemetry.SPANS, *telemetry.METRICS):
        assert f"`{name}`" in page, f"{name} is not documented in docs/operations.md"


def test_nothing_is_recorded_without_the_extra(tmp_path: Path) -> None:
    """With opentelemetry unimportable, the decorators hand back the methods untouched and a full
    flow runs."""
    script = """
import sys
sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
from account_lifecycle import Lifecycle, MemoryStore, policies, telemetry, Actor
from account_lifecycle.purge import PurgeRunner
assert not telemetry.enabled()
assert not hasattr(Lifecycle._apply, "__wrapped__")
assert not hasattr(PurgeRunner._run_step, "__wrapped__")
telemetry.observe_store(MemoryStore())
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")
    assert telemetry.enabled()  # and here, with the extra, they are wrapped
    assert hasattr(Lifecycle._apply, "__wrapped__")
