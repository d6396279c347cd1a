"""Soak: many threads and processes send random commands to one store, a fixed number each,
for at least the scaled time in which a recovery window ends; afterwards every invariant is
checked over every account.

Bounded: a few seconds per store on a quiet machine; no assertion depends on the machine's
speed. Figures are printed (run with -s to see them).
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hardening import soak_worker
from pg import throwaway_schema

from account_lifecycle import ManualClock, PurgeStatus, State, policies

COMMANDS = 300  # per thread and per process
THREADS = 3
PROCESSES = 2


def _soak(spec: dict[str, Any], tmp_path: Path) -> tuple[Counter[str], Any]:
    store = soak_worker.make_store(spec)
    if spec["kind"] == "postgres":
        store.migrate()
    t0 = time.time()
    log = tmp_path / "purges.log"
    log.write_text("")
    totals: Counter[str] = Counter()
    lock = threading.Lock()

    def thread_body(seed: int) -> None:
        counts = soak_worker.run(spec, t0, COMMANDS, seed, str(log), store=store)
        with lock:
            totals.update(counts)

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as pool:
        pending = [
            pool.apply_async(soak_worker.run, (spec, t0, COMMANDS, 100 + i, str(log)))
            for i in range(PROCESSES)
        ]
        threads = [threading.Thread(target=thread_body, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for result in pending:
            totals.update(result.get(timeout=120))
    # let every window end and every retry come due, then finish all work with healthy purgers
    clock = ManualClock(soak_worker.ScaledClock(t0).now() + timedelta(days=120))
    lc = soak_worker.make_lifecycle(store, clock, log, seed=999, failure_rate=0.0)
    for _ in range(3):
        lc.sweep()
        clock.advance(timedelta(days=7))
    return totals, (store, lc, log)


def _check_everything(totals: Counter[str], world: Any) -> None:
    _store, lc, log = world
    accepted = sum(v for k, v in totals.items() if k.endswith(":ok"))
    refused = sum(v for k, v in totals.items() if not k.endswith(":ok"))
    print(f"\nsoak: {accepted} accepted, {refused} refused commands: {dict(sorted(totals.items()))}")
    assert accepted > 150, totals
    assert totals["confirm:ok"] > 5, totals
    unexpected = {k for k in totals if k.split(":")[1] not in {
        "ok", "AccountExists", "AccountNotFound", "InvalidTransition", "NotPermitted", "ConcurrentUpdate",
        "RecoveryWindowExpired", "ErasureInProgress",
    }}  # fmt: skip
    assert not unexpected, unexpected
    policy = policies.ALLCLIENTS
    window = policy.recovery.window
    assert window is not None
    calls = [line.split("\t") for line in log.read_text().splitlines()]
    for account_id, category, now, cancelled in calls:
        assert cancelled != "None", f"{category} of {account_id} purged without a cancellation"
        if category in policy.purge.at("expiry"):
            assert datetime.fromisoformat(now) >= window.add_to(datetime.fromisoformat(cancelled))
    opened = 0
    for n in range(soak_worker.ACCOUNTS):
        account_id = f"acct-{n}"
        try:
            record = lc.get(account_id)
        except Exception:
            continue
        opened += 1
        lc.verify_history(account_id)
        history = lc.history(account_id)
        versions = [e.version for e in history]
        assert versions[0] == 1
        assert versions[-1] == record.version
        assert all(b - a in (0, 1) for a, b in itertools.pairwise(versions))
        assert record.state in (State.ACTIVE, State.SURVEYED, State.PENDING_CONFIRM, State.PURGED), (
            f"{account_id} left {record.state} after the final sweeps"
        )
        if record.state is State.PURGED:
            done = {c for c, p in record.purge.items() if p.status is PurgeStatus.DONE}
            assert done == {c.name for c in policy.purge.categories}
            erased = {c for a, c, _, _ in calls if a == account_id}
            assert erased >= done
    assert opened == soak_worker.ACCOUNTS
    purged = sum(1 for n in range(soak_worker.ACCOUNTS) if lc.get(f"acct-{n}").state is State.PURGED)
    print(f"soak: {len(calls)} purger calls, {purged} of {opened} accounts purged, every chain verified")
    assert purged > 0


def test_soak_sqlite(tmp_path: Path) -> None:
    """Threads and processes on one SQLite file: nothing lost, every chain verifies."""
    totals, world = _soak({"kind": "sqlite", "path": str(tmp_path / "soak.db")}, tmp_path)
    _check_everything(totals, world)


@pytest.mark.postgres
def test_soak_postgres(tmp_path: Path) -> None:
    """Threads and processes on one PostgreSQL schema: nothing lost, every chain verifies."""
    with throwaway_schema() as (dsn, schema):
        totals, world = _soak({"kind": "postgres", "dsn": dsn, "schema": schema}, tmp_path)
        try:
            _check_everything(totals, world)
        finally:
            world[0].close()
