"""What fencing erasure costs (issue 13): a sweep of due accounts, before and after.

The fenced runner commits the start of a phase's steps before it calls a purger; the runner
before it did not. This benchmark times the same sweep (accounts at the end of their window,
one ``backups`` category, no-op purgers, SQLite ``synchronous=NORMAL``) with the library in
this tree and, as the baseline of the same run, with the library of another tree (say, a
checkout of the last commit before fencing), in alternating child processes:

    git worktree add /tmp/before-fence f747afb
    python -m bench.fence_cost --baseline-tree /tmp/before-fence

It prints accounts per second, write transactions per account and events per account for
both, and their ratio. Without ``--baseline-tree`` it measures this tree only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ACCOUNTS = 2_000
ROUNDS = 5


def _measure(accounts: int) -> dict[str, float]:
    """One round in this process: set up *accounts* due accounts, time one sweep."""
    from account_lifecycle import Actor, Lifecycle, ManualClock, SQLiteStore, State, policies
    from account_lifecycle.ports import PurgeContext, PurgeResult

    class Noop:
        def __init__(self, category: str) -> None:
            self.category = category

        def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:
            return PurgeResult()

    class Counting(SQLiteStore):
        saves = 0
        events = 0

        def save(self, record: Any, **kwargs: Any) -> None:
            Counting.saves += 1
            Counting.events += len(kwargs["events"])
            super().save(record, **kwargs)

        def release(self, account_id: str, owner: str) -> None:
            Counting.saves += 1
            super().release(account_id, owner)

    policy = policies.ALLCLIENTS
    with tempfile.TemporaryDirectory() as folder:
        store = Counting(Path(folder) / "bench.db", synchronous="NORMAL")
        clock = ManualClock(datetime(2026, 1, 10, 9, 0, tzinfo=UTC))
        purgers = [Noop(c.name) for c in policy.purge.categories]
        lc = Lifecycle(policy, store=store, clock=clock, purgers=purgers, sweep_batch=200)
        owner = Actor.user("owner")
        for n in range(accounts):
            account_id = f"acct-{n:06}"
            lc.open(account_id, owner="owner")
            lc.request_cancellation(account_id, owner)
            lc.skip_survey(account_id, owner)
            assert lc.confirm(account_id, owner).state is State.RESTORABLE
        clock.advance(timedelta(days=100))
        Counting.saves = Counting.events = 0
        started = time.perf_counter()
        report = lc.sweep()
        seconds = time.perf_counter() - started
        assert len(report.purged) == accounts, report
        store.close()
    return {
        "per_second": accounts / seconds,
        "writes_per_account": Counting.saves / accounts,
        "events_per_account": Counting.events / accounts,
    }


def _child(tree: Path, accounts: int) -> dict[str, float]:
    """One round in a fresh interpreter whose ``account_lifecycle`` is *tree*'s."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('fence_cost', {str(Path(__file__).resolve())!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        f"print(json.dumps(module._measure({accounts})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-tree", type=Path, help="a checkout whose library is the baseline")
    parser.add_argument("--accounts", type=int, default=ACCOUNTS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    fenced: list[dict[str, float]] = []
    before: list[dict[str, float]] = []
    for round_ in range(args.rounds):
        order = [(here, fenced), (args.baseline_tree, before)]
        if round_ % 2:
            order.reverse()
        for tree, into in order:
            if tree is not None:
                into.append(_child(tree, args.accounts))
    print(f"sweep of {args.accounts} due accounts, SQLite NORMAL, median of {args.rounds} rounds")
    for label, results in (("fenced (this tree)", fenced), ("baseline", before)):
        if not results:
            continue
        rate = statistics.median(r["per_second"] for r in results)
        writes = statistics.median(r["writes_per_account"] for r in results)
        events = statistics.median(r["events_per_account"] for r in results)
        print(
            f"  {label:20} {rate:8.0f} accounts/s  {writes:.2f} writes/account  {events:.2f} events/account"
        )
    if fenced and before:
        ratio = statistics.median(
            f["per_second"] / b["per_second"] for f, b in zip(fenced, before, strict=True)
        )
        print(f"  ratio fenced/baseline: {ratio:.2f}x")


if __name__ == "__main__":
    main()
