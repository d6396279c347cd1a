"""Before any tracer or meter provider is set, the wrappers call the method alone (the API's
proxies would record nothing); a provider set later is followed from the next command on.
Run in a fresh interpreter: a provider, once set, stays for the process (``test_telemetry``
sets one)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("opentelemetry.sdk")

PROGRAM = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from account_lifecycle import Actor, Lifecycle, MemoryStore, policies, telemetry
from account_lifecycle.testing.fakes import fake_purgers

assert telemetry.enabled() and not telemetry._recording()
policy = policies.ALLCLIENTS
lc = Lifecycle(policy, store=MemoryStore(), purgers=fake_purgers(policy).values())
lc.open("acct-1", owner="owner")
assert lc.request_cancellation("acct-1", Actor.user("owner")).state.value == "surveyed"
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
assert telemetry._recording()
lc.withdraw("acct-1", Actor.user("owner"))
spans = [(s.name, dict(s.attributes)) for s in exporter.get_finished_spans()]
assert [name for name, _ in spans] == ["account_lifecycle.command"], spans
assert spans[0][1]["account_lifecycle.action"] == "withdraw", spans
print("ok")
"""


def test_commands_skip_telemetry_until_a_provider_is_set_and_follow_one_set_later() -> None:
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
