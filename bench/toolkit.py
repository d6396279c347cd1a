"""Target 5: the testing toolkit runs at least 0.8x the examples per second of its hollow
baseline (the same rules with empty bodies), 20-step runs of ``LifecycleStateMachine`` on
``MemoryStore``; rates are examples per CPU second, examples drawn with a fixed seed.

Only the generate phase runs (no example database, no shrinking: nothing fails), with no
deadline. Two baselines show where the time goes:

* *hollow toolkit*: the same machine class with every rule, initializer and invariant
  replaced by a function that does nothing (a rule with a target returns a fresh id), so
  Hypothesis draws exactly the same rules and arguments: this is Hypothesis's own cost for
  this toolkit, the ceiling any library speed-up can reach;
* *Hypothesis, 5 empty rules*: the floor of a small rule-based machine.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    INITIALIZE_RULE_MARKER,
    INVARIANT_MARKER,
    RULE_MARKER,
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


def hollow(machine: type[RuleBasedStateMachine]) -> type[RuleBasedStateMachine]:
    """*machine* with the same rules, arguments and bundles, every body doing nothing."""
    namespace: dict[str, Any] = {}
    for name in dir(machine):
        value = getattr(machine, name, None)
        for marker in (RULE_MARKER, INITIALIZE_RULE_MARKER, INVARIANT_MARKER):
            spec = getattr(value, marker, None)
            if spec is None:
                continue

            def nothing(
                self: Any, _returns: bool = bool(getattr(spec, "targets", ())), **kwargs: Any
            ) -> str | None:
                self.counter += 1
                return f"acct-{self.counter}" if _returns else None

            # its own name: Hypothesis's swarm testing enables and disables rules by the name of
            # their function, so rules that all shared one name would all be on at once
            nothing.__name__ = nothing.__qualname__ = spec.function.__name__
            setattr(nothing, marker, dataclasses.replace(spec, function=nothing))
            namespace[name] = nothing

    def __init__(self: Any) -> None:
        RuleBasedStateMachine.__init__(self)
        self.counter = 0

    def teardown(self: Any) -> None:
        pass

    namespace.update(__init__=__init__, teardown=teardown)
    return type(f"Hollow{machine.__name__}", (machine,), namespace)


def rate(machine: Any, examples: int) -> float:
    """Examples per CPU second of one run of *machine* with 20-step examples."""
    config = settings(
        max_examples=examples,
        stateful_step_count=20,
        deadline=None,
        database=None,
        derandomize=True,  # the same examples in every run, on both sides and both trees
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    # CPU time, not wall time: on this shared machine a run waits for a core as long as it
    # runs, and the wait says nothing about the toolkit (both sides run on one thread).
    start = time.process_time()
    # A factory of one source line for every machine: Hypothesis seeds a derandomized run from
    # the digest of the factory, so ours and the hollow one draw from the same seed.
    run_state_machine_as_test(lambda: machine(), settings=config)
    return examples / (time.process_time() - start)


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
        shell: list[float] = []
        bare: list[float] = []
        empty_shell = hollow(machine)
        try:
            for _ in range(reps):  # interleaved with the baselines
                ours.append(rate(machine, examples))
                shell.append(rate(empty_shell, examples))
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
        figure, base, floor = statistics.median(ours), statistics.median(shell), statistics.median(bare)
        ms_ours, ms_shell = 1000 / figure, 1000 / base
        results.append(
            report(
                Result(
                    f"5 Hypothesis examples/s, 20 steps, {name} on MemoryStore",
                    figure,
                    "examples/s",
                    "hollow toolkit (same rules, no work)",
                    base,
                    figure / base,
                    ">= 0.8x hollow",
                    figure / base >= 0.8,
                    notes=[
                        f"{examples} examples per run, median of {reps} runs; per example: "
                        f"{ms_ours:.1f} ms, of which Hypothesis drawing the same steps {ms_shell:.1f} ms "
                        f"and the library with the toolkit's checks {ms_ours - ms_shell:.1f} ms",
                        f"Hypothesis with 5 empty rules: {floor:.0f} examples/s",
                    ],
                )
            )
        )
    return results


if __name__ == "__main__":
    run(quick_mode())
