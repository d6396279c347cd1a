"""Start-up: target 4a, ``verify_policy`` of each built-in policy under 1 s; target 6 (issue
14), ``import account_lifecycle`` under 100 ms with no optional dependency imported; and what a
program pays before its first command and the command line before its help.

Everything is measured in fresh interpreters, since it is what a command-line run or a cold
service start pays, next to ``import transitions, attrs`` (the two required dependencies) in a
fresh interpreter, the two interleaved, each process's CPU time beside its wall time (CPU time
is what load from other processes inflates least). The package's bytecode is compiled first, as
``pip install`` does: a checkout run with ``PYTHONDONTWRITEBYTECODE=1`` and no ``__pycache__``
compiles every module from source at every start (about 2x the import). Figures:

* the bare ``import account_lifecycle`` (every public name is imported on first use);
* a first command: ``from account_lifecycle import Lifecycle, policies, ...``, a ``Lifecycle``
  on ``ALLCLIENTS`` built on ``MemoryStore`` and on ``SQLiteStore``, ``open`` and one
  ``request_cancellation``, timed from before the import to after the command;
* ``account-lifecycle --help``, the whole process (its CPU from the operating system's
  accounting of the finished child), next to a whole ``python -c "import transitions, attrs"``;
* memory per stored account (``bench.engine.memory_benchmark``, in a process of its own).

``python -X importtime -c 'import account_lifecycle'`` gives the breakdown.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import Result, quick_mode, report

OPTIONAL = (
    "celery",
    "click",
    "django",
    "greenlet",
    "hypothesis",
    "opentelemetry",
    "psycopg",
    "psycopg_pool",
    "pyinstrument",
    "rich",
    "sqlalchemy",
    "statemachine",
)
BASELINE = "import transitions, attrs"

_TIMED = """
import json, sys, time
w, c = time.perf_counter(), time.process_time()
{code}
w, c = time.perf_counter() - w, time.process_time() - c
optional = sorted({{m.split(".")[0] for m in sys.modules}} & set({optional!r}) - {{"opentelemetry"}})
if "opentelemetry.trace" in sys.modules:  # the bare namespace package is found, not imported
    optional.append("opentelemetry")
print(json.dumps({{"wall": w, "cpu": c, "optional": optional}}))
"""

_FIRST_COMMAND = """
from account_lifecycle import Actor, IdentityKey, IdentityKeys, Lifecycle, PurgeResult, policies
from account_lifecycle import {store} as Store

class Rows:
    def __init__(self, category):
        self.category = category

    def purge(self, account_id, context):
        return PurgeResult(items=0)

policy = policies.ALLCLIENTS
lc = Lifecycle(policy, store=Store({args}), purgers=[Rows(c.name) for c in policy.purge.categories],
               identity_keys=IdentityKeys(IdentityKey("k1", b"s" * 32)))
lc.open("acct-1", owner="u-1")
lc.request_cancellation("acct-1", Actor.user("u-1"))
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


def _timed(code: str) -> dict[str, Any]:
    """*code* run in a fresh interpreter: its wall and CPU seconds, and the extras it imported."""
    found: dict[str, Any] = _python(_TIMED.format(code=code, optional=OPTIONAL))
    return found


def _whole_process(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, the finished child's accounting) of a whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def compile_bytecode() -> str:
    """Compile the package's bytecode as ``pip install`` would (``PYTHONDONTWRITEBYTECODE``
    would otherwise leave a checkout compiling every module at every start)."""
    import account_lifecycle

    package = Path(account_lifecycle.__file__).parent
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], env=env, check=True)
    return str(package)


def _pairs(candidate: Any, baseline: Any, reps: int) -> tuple[list[Any], list[Any]]:
    """*reps* runs of each, interleaved, the order flipped every pair."""
    a, b = [], []
    for n in range(reps):
        if n % 2:
            b.append(baseline())
            a.append(candidate())
        else:
            a.append(candidate())
            b.append(baseline())
    return a, b


def _ms(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs) * 1000


def import_time(quick: bool) -> list[Result]:
    reps = 5 if quick else 15
    library, deps = _pairs(lambda: _timed("import account_lifecycle"), lambda: _timed(BASELINE), reps)
    optional = sorted({m for r in library for m in r["optional"]})
    lib_ms, deps_ms = _ms(library, "wall"), _ms(deps, "wall")
    lib_cpu, deps_cpu = _ms(library, "cpu"), _ms(deps, "cpu")
    return [
        Result(
            "6 import account_lifecycle (fresh process, wall)",
            lib_ms,
            "ms",
            BASELINE,
            deps_ms,
            lib_ms / deps_ms,
            "< 100 ms, no optional deps",
            lib_ms < 100 and not optional,
            notes=[
                f"CPU: {lib_cpu:.1f} ms vs {deps_cpu:.1f} ms ({lib_cpu / deps_cpu:.2f}x); median of {reps} "
                "fresh interpreters each, interleaved",
                f"optional modules imported: {optional or 'none'} (checked: {', '.join(OPTIONAL)})",
                "breakdown: python -X importtime -c 'import account_lifecycle' 2>&1 | sort -t'|' -k2 -n",
            ],
        )
    ]


def first_command(quick: bool) -> list[Result]:
    reps = 5 if quick else 11
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        files = itertools.count()  # a new SQLite file for each run
        for store in ("MemoryStore", "SQLiteStore"):

            def run(store: str = store) -> dict[str, Any]:
                args = repr(str(Path(tmp) / f"a{next(files)}.db")) if store == "SQLiteStore" else ""
                return _timed(_FIRST_COMMAND.format(store=store, args=args))

            library, deps = _pairs(run, lambda: _timed(BASELINE), reps)
            optional = sorted({m for r in library for m in r["optional"]})
            lib_ms, deps_ms = _ms(library, "wall"), _ms(deps, "wall")
            lib_cpu, deps_cpu = _ms(library, "cpu"), _ms(deps, "cpu")
            results.append(
                Result(
                    f"6 import + Lifecycle + open + one command, {store} (fresh process, wall)",
                    lib_ms,
                    "ms",
                    BASELINE,
                    deps_ms,
                    lib_ms / deps_ms,
                    notes=[
                        f"CPU: {lib_cpu:.1f} ms vs {deps_cpu:.1f} ms ({lib_cpu / deps_cpu:.2f}x); "
                        f"median of {reps}, interleaved; optional modules imported: {optional or 'none'}",
                    ],
                )
            )
    return results


def cli_startup(quick: bool) -> list[Result]:
    reps = 5 if quick else 11
    script = shutil.which("account-lifecycle", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "account_lifecycle"]
    try:
        _whole_process([*command, "--help"])
    except (subprocess.CalledProcessError, OSError) as exc:
        return [Result("6 account-lifecycle --help", 0.0, "ms", notes=[f"not measured: {exc}"])]
    cli, deps = _pairs(
        lambda: _whole_process([*command, "--help"]),
        lambda: _whole_process([sys.executable, "-c", BASELINE]),
        reps,
    )
    cli_ms, deps_ms = (
        statistics.median(w for w, _ in cli) * 1000,
        statistics.median(w for w, _ in deps) * 1000,
    )
    cli_cpu, deps_cpu = (
        statistics.median(c for _, c in cli) * 1000,
        statistics.median(c for _, c in deps) * 1000,
    )
    return [
        Result(
            "6 account-lifecycle --help (whole process, wall)",
            cli_ms,
            "ms",
            f'python -c "{BASELINE}" (whole process)',
            deps_ms,
            cli_ms / deps_ms,
            notes=[
                f"CPU: {cli_cpu:.1f} ms vs {deps_cpu:.1f} ms ({cli_cpu / deps_cpu:.2f}x); median of {reps}, "
                f"interleaved; {' '.join(Path(c).name for c in command)}",
            ],
        )
    ]


_MEMORY = """
import json
from bench.engine import memory_benchmark
print(json.dumps([[r.name, r.figure, r.met] for r in memory_benchmark({quick})]))
"""


def memory_per_account(quick: bool) -> list[Result]:
    try:
        rows = _python(_MEMORY.format(quick=quick))
    except subprocess.CalledProcessError as exc:
        return [
            Result(
                "1c memory per account", 0.0, "bytes", notes=[f"not measured: {exc.stderr.strip()[-300:]}"]
            )
        ]
    return [Result(name, figure, "bytes", target="< 2048 bytes", met=met) for name, figure, met in rows]


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
    package = compile_bytecode()
    print(f"bytecode compiled for {package}; load average {os.getloadavg()[0]:.2f}", flush=True)
    results = []
    for part in (verify_time, import_time, first_command, cli_startup, memory_per_account):
        for result in part(quick):
            results.append(report(result))
    print(f"load average at the end {os.getloadavg()[0]:.2f}", flush=True)
    return results


if __name__ == "__main__":
    run(quick_mode())
