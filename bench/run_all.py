"""Run every benchmark and print one table: ``python -m bench`` or ``python bench/run_all.py``.

``--quick`` (or ``BENCH_QUICK=1``) shrinks every run for a smoke test; its figures are not the
ones to quote. ``--only engine,sqlite`` picks benchmarks; ``--no-postgres`` skips PostgreSQL.
``--json FILE`` also writes the results and the machine's description as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (
    async_command,
    concurrency,
    engine,
    outbox,
    scale,
    size,
    sqlite_command,
    startup,
    sweep,
    toolkit,
)
from bench._common import Result, machine_info, print_results, quick_mode

BENCHMARKS = (
    "engine",
    "sqlite",
    "sweep",
    "concurrency",
    "scale",
    "size",
    "startup",
    "toolkit",
    "outbox",
    "async",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small runs, for a smoke test")
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help="comma-separated: " + ", ".join(BENCHMARKS)
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL sweepers")
    parser.add_argument("--json", type=Path, help="write the results to this file as JSON")
    args = parser.parse_args(argv)
    quick = args.quick or quick_mode()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; expected some of {', '.join(BENCHMARKS)}")

    info = machine_info()
    for key, value in info.items():
        print(f"{key}: {value}")
    print(f"mode: {'quick (smoke test, not for quoting)' if quick else 'full'}\n", flush=True)

    runners: dict[str, Callable[[], list[Result]]] = {
        "engine": lambda: engine.run(quick),
        "sqlite": lambda: sqlite_command.run(quick),
        "sweep": lambda: sweep.run(quick, postgres=not args.no_postgres),
        "concurrency": lambda: concurrency.run(quick, postgres=not args.no_postgres),
        "scale": lambda: scale.run(quick),
        "size": lambda: size.run(quick, postgres=not args.no_postgres),
        "startup": lambda: startup.run(quick),
        "toolkit": lambda: toolkit.run(quick),
        "outbox": lambda: outbox.run(quick, postgres=not args.no_postgres),
        "async": lambda: async_command.run(quick, postgres=not args.no_postgres),
    }
    results: list[Result] = []
    for name in chosen:
        print(f"== {name}", flush=True)
        try:
            results += runners[name]()
        except Exception as exc:  # one broken benchmark must not lose the others' figures
            traceback.print_exc()
            results.append(Result(f"{name}: not measured", 0.0, "", notes=[f"{type(exc).__name__}: {exc}"]))
        print(flush=True)

    print_results(results)
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"machine": info, "quick": quick, "results": [dataclasses.asdict(r) for r in results]},
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
