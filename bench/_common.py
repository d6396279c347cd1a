"""Shared helpers for the benchmarks: interleaved timing, results, the machine's description.

Every timed figure here is a median over many blocks. Candidate and baseline run in the
same process, one block of each in turn (the order flipped every round), so that a burst
of load from another process on this shared machine hits both sides alike.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

__all__ = ["Result", "interleaved", "machine_info", "median_ns_per_op", "print_results", "quick_mode"]


@dataclass
class Result:
    """One benchmark's outcome: its figure, the baseline's, their ratio and the target."""

    name: str
    figure: float
    unit: str
    baseline_name: str = ""
    baseline: float | None = None
    ratio: float | None = None  # figure / baseline
    target: str = ""
    met: bool | None = None  # None: informative row, no target
    notes: list[str] = field(default_factory=list)

    def row(self) -> tuple[str, ...]:
        base = "" if self.baseline is None else f"{_fmt(self.baseline)} {self.unit}"
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}x"
        verdict = {True: "MET", False: "MISSED", None: "-"}[self.met]
        return (
            self.name,
            f"{_fmt(self.figure)} {self.unit}",
            self.baseline_name,
            base,
            ratio,
            self.target,
            verdict,
        )


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def print_results(results: Iterable[Result], *, file: TextIO | None = None) -> None:
    out = file if file is not None else sys.stdout
    header = ("benchmark", "figure", "baseline", "baseline figure", "ratio", "target", "verdict")
    rows = [header, *(r.row() for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)


def report(result: Result) -> Result:
    """Print one result the moment it is known, with its notes."""
    _, figure, base_name, base, ratio, target, verdict = result.row()
    line = f"{result.name}: {figure}"
    if base_name:
        line += f" | {base_name}: {base} | ratio {ratio}"
    if target:
        line += f" | target {target}: {verdict}"
    print(line, flush=True)
    for note in result.notes:
        print(f"    {note}", flush=True)
    return result


def interleaved(blocks: dict[str, Callable[[], float]], *, rounds: int, warmup: int = 2) -> dict[str, float]:
    """Run each block *rounds* times, interleaved, and return each one's median.

    A block returns its own figure (say, nanoseconds per operation over its run). The
    garbage collector stays on (users pay for it) but starts every block from a clean slate.
    """
    names = list(blocks)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for n in range(warmup + rounds):
        order = names if n % 2 == 0 else names[::-1]
        for name in order:
            gc.collect()
            value = blocks[name]()
            if n >= warmup:
                samples[name].append(value)
    return {name: statistics.median(values) for name, values in samples.items()}


def median_ns_per_op(run: Callable[[], object], ops: int) -> Callable[[], float]:
    """Wrap *run* (which performs *ops* operations) into a block returning ns per op."""

    def block() -> float:
        start = time.perf_counter_ns()
        run()
        return (time.perf_counter_ns() - start) / ops

    return block


def quick_mode() -> bool:
    return os.environ.get("BENCH_QUICK") == "1"


def machine_info() -> dict[str, str]:
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        load = "unknown"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": sys.version.split()[0] + " " + platform.python_implementation(),
        "platform": platform.platform(),
        "load average at start": load,
    }
