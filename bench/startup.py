"""Target 4: ``verify_policy`` of each built-in policy under 1 s, and ``import account_lifecycle``
under 100 ms with no optional dependency imported.

Both are measured in fresh subprocesses, since both are what a command-line run or a cold
service start pays. The import baseline is ``import transitions, attrs`` (the two required
dependencies) in a fresh interpreter; ``python -X importtime`` gives the breakdown.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from typing import Any

from bench._common import Result, quick_mode, report

OPTIONAL = ("psycopg", "psycopg_pool", "celery", "click", "hypothesis", "statemachine", "pyinstrument")

_IMPORT = """
import json, sys, time
t = time.perf_counter()
import {module}
elapsed = time.perf_counter() - t
print(json.dumps({{"s": elapsed, "optional": sorted(m for m in {optional!r} if m in sys.modules)}}))
"""

_VERIFY = """
import json, time
t0 = time.perf_counter()
from account_lifecycle import policies
from account_lifecycle.verify import verify_policy
t1 = time.perf_counter()
out = {}
for name, policy in (('smrtphone', policies.SMRTPHONE), ('allclients', policies.ALLCLIENTS)):
    t = time.perf_counter()
    report = verify_policy(policy)
    out[name] = [time.perf_counter() - t, report.situations, report.steps]
print(json.dumps({"import": t1 - t0, "verify": out}))
"""


def _python(code: str) -> Any:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def import_time(quick: bool) -> list[Result]:
    reps = 5 if quick else 15
    library: list[float] = []
    deps: list[float] = []
    optional: set[str] = set()
    for _ in range(reps):  # interleaved
        lib = _python(_IMPORT.format(module="account_lifecycle", optional=OPTIONAL))
        library.append(lib["s"] * 1000)
        optional.update(lib["optional"])
        deps.append(_python(_IMPORT.format(module="transitions, attrs", optional=OPTIONAL))["s"] * 1000)
    lib_ms, deps_ms = statistics.median(library), statistics.median(deps)
    return [
        Result(
            "4b import account_lifecycle (fresh process)",
            lib_ms,
            "ms",
            "import transitions, attrs",
            deps_ms,
            lib_ms / deps_ms,
            "< 100 ms, no optional deps",
            lib_ms < 100 and not optional,
            notes=[
                f"optional modules imported: {sorted(optional) or 'none'} (checked: {', '.join(OPTIONAL)})",
                "breakdown: python -X importtime -c 'import account_lifecycle' 2>&1 | sort -t'|' -k2 -n",
            ],
        )
    ]


def verify_time(quick: bool) -> list[Result]:
    reps = 3 if quick else 7
    try:
        runs = [_python(_VERIFY) for _ in range(reps)]
    except subprocess.CalledProcessError as exc:
        return [
            Result(
                "4a verify_policy",
                0.0,
                "ms",
                notes=[f"not measured: account_lifecycle.verify failed: {exc.stderr.strip()[-300:]}"],
            )
        ]
    results = []
    for name in runs[0]["verify"]:
        ms = statistics.median(r["verify"][name][0] for r in runs) * 1000
        situations, steps = runs[0]["verify"][name][1:]
        results.append(
            Result(
                f"4a verify_policy({name.upper()}) (fresh process)",
                ms,
                "ms",
                target="< 1000 ms",
                met=ms < 1000,
                notes=[
                    f"{situations} situations, {steps} steps explored; median of {reps} fresh processes, "
                    "after importing the library"
                ],
            )
        )
    return results


def run(quick: bool = False) -> list[Result]:
    results = verify_time(quick) + import_time(quick)
    for r in results:
        report(r)
    return results


if __name__ == "__main__":
    run(quick_mode())
