"""Target 5: the testing toolkit runs at least 200 Hypothesis examples per second for 20-step
runs of ``LifecycleStateMachine`` on ``MemoryStore``.

Only the generate phase runs (no example database, no shrinking: nothing fails), with no
deadline. The baseline is Hypothesis itself: a rule-based machine with the same number of
rules and one bundle whose rules do nothing, with the same settings, so the ratio shows how
much of the time is the library and its checks.
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from account_lifecycle import policies
from account_lifecycle.testing.stateful import LifecycleStateMachine
from bench._common import Result, quick_mode, report


class SmrtPhone(LifecycleStateMachine):
    policy = policies.SMRTPHONE


class AllClients(LifecycleStateMachine):
    policy = policies.ALLCLIENTS


class Empty(RuleBasedStateMachine):
    """Hypothesis alone: a bundle, a few rules drawing similar inputs, an invariant; no work."""

    things = Bundle("things")

    @initialize(target=things)
    def first(self) -> int:
        return 0

    @rule(target=things, n=st.integers(0, 2))
    def add(self, n: int) -> int:
        return n

    @rule(thing=things, relation=st.sampled_from(["owner", "member", "support"]))
    def act(self, thing: int, relation: str) -> None:
        pass

    @rule(thing=things, token=st.sampled_from(["exact", "lower"]), all_acks=st.booleans())
    def confirm(self, thing: int, token: str, all_acks: bool) -> None:
        pass

    @rule(days=st.sampled_from([1, 30, 90]))
    def advance(self, days: int) -> None:
        pass

    @invariant()
    def holds(self) -> None:
        pass


def rate(machine: Any, examples: int) -> float:
    """Examples per second of one run of *machine* with 20-step examples."""
    config = settings(
        max_examples=examples,
        stateful_step_count=20,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    start = time.perf_counter()
    run_state_machine_as_test(machine, settings=config)
    return examples / (time.perf_counter() - start)


def run(quick: bool = False) -> list[Result]:
    # The toolkit breaks purgers on purpose: keep their warnings (still built, as under pytest)
    # off the terminal.
    logger = logging.getLogger("account_lifecycle")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    examples = 100 if quick else 300
    reps = 3 if quick else 5
    results = []
    for name, machine in (("SMRTPHONE", SmrtPhone), ("ALLCLIENTS", AllClients)):
        ours: list[float] = []
        bare: list[float] = []
        try:
            for _ in range(reps):  # interleaved with the baseline
                ours.append(rate(machine, examples))
                bare.append(rate(Empty, examples))
        except Exception as exc:  # a failing run is no figure; say so instead of a number
            first = (str(exc).strip().splitlines() or [""])[0]
            last = f"{type(exc).__name__}: {first} (is the toolkit being edited?)"
            results.append(
                report(
                    Result(
                        f"5 Hypothesis examples/s, {name}", 0.0, "examples/s", notes=[f"not measured: {last}"]
                    )
                )
            )
            continue
        figure, base = statistics.median(ours), statistics.median(bare)
        results.append(
            report(
                Result(
                    f"5 Hypothesis examples/s, 20 steps, {name} on MemoryStore",
                    figure,
                    "examples/s",
                    "Hypothesis, rules doing nothing",
                    base,
                    figure / base,
                    ">= 200/s",
                    figure >= 200,
                    notes=[f"{examples} examples per run, median of {reps} runs"],
                )
            )
        )
    return results


if __name__ == "__main__":
    run(quick_mode())
