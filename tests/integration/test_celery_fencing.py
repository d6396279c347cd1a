"""Fenced erasure across Celery worker processes (issue 14, target 3: the race tests run with
concurrency on): a real prefork worker of 2 processes runs two accounts' window-end erasures,
held inside the ``backups`` purger (``celery_fenced_app.py``), while this process tries to
restore both a microsecond before their windows end. Both restores are refused with
``ErasureInProgress`` and change nothing; once released, both erasures finish, each category
erased once per account, and no restore is recorded. With ``dispatch(chunk=1)`` the two
accounts are erased at once in two worker processes (one ``purge_account`` task each); with
``chunk=2`` one ``purge_accounts`` task runs both as a sweep runs a batch (both starts
committed before the first purger runs, so both are fenced while the first is held).

The interleaving is built, not hoped for: the test waits (bounded) until both purgers are
inside their calls in two different worker processes before it restores, and the purgers wait
(bounded) for the test. On the brokers of ``test_celery.py`` (Redis, RabbitMQ; never skipped
under ``CI=true``), a queue of its own per run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_celery import broker as broker  # the fixture: each reachable broker, never skipped in CI

from account_lifecycle import Actor, ErasureInProgress, Lifecycle, ManualClock, SQLiteStore, State, policies
from account_lifecycle.testing.fakes import fake_purgers

celery = pytest.importorskip("celery", reason="the celery extra is not installed")

HERE = Path(__file__).resolve().parent
POLICY = policies.ALLCLIENTS
OWNER = Actor.user("owner")
SUPPORT = Actor.support("agent-1")
ACCOUNTS = ("acct-1", "acct-2")
BOUND = 30.0


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.001)  # polling files another process writes


@pytest.fixture
def world(broker: tuple[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Two accounts whose recovery window ended a month ago, and a worker of 2 processes."""
    db = tmp_path / "accounts.db"
    store = SQLiteStore(db)
    clock = ManualClock(datetime.now(UTC) - timedelta(days=125))
    lc = Lifecycle(POLICY, store=store, clock=clock, purgers=fake_purgers(POLICY).values())
    for account_id in ACCOUNTS:
        lc.open(account_id, owner="owner")
        lc.request_cancellation(account_id, OWNER)
        lc.skip_survey(account_id, OWNER)
        assert lc.confirm(account_id, OWNER).state is State.RESTORABLE
    store.close()
    queue = f"al-fenced-{uuid.uuid4().hex[:12]}"
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {
        **os.environ,
        "ACCOUNT_LIFECYCLE_DB": str(db),
        "ACCOUNT_LIFECYCLE_LEDGER": str(tmp_path / "ledger"),
        "ACCOUNT_LIFECYCLE_GATE": str(gate),
        "CELERY_BROKER_URL": broker[0],
        "CELERY_RESULT_BACKEND": broker[1],
        "ACCOUNT_LIFECYCLE_QUEUE": queue,
    }
    log = (tmp_path / "worker.log").open("w")
    command = [
        sys.executable, "-m", "celery", "-A", "celery_fenced_app", "worker",
        "--pool=prefork", "--concurrency=2", "--queues", queue, "--hostname", f"{queue}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT)
    client = celery.Celery("fenced-client", broker=broker[0], backend=broker[1])
    client.conf.update(task_default_queue=queue, result_expires=600, broker_connection_retry_on_startup=True)
    try:
        yield {
            "client": client,
            "db": db,
            "gate": gate,
            "ledger": tmp_path / "ledger",
            "log": tmp_path / "worker.log",
        }
    finally:
        (gate / "go").touch()  # a failed test never leaves a purger waiting
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        consumer = getattr(client.backend, "result_consumer", None)
        if getattr(consumer, "_connection", None) is not None:  # rpc:// keeps a consumer open
            consumer.stop()
        client.close()


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [1, 2])
def test_restores_racing_worker_processes_erasing_are_refused(world: dict[str, Any], chunk: int) -> None:
    client, gate = world["client"], world["gate"]
    try:
        dispatched = client.send_task("account_lifecycle.dispatch", kwargs={"limit": 10, "chunk": chunk}).get(
            timeout=BOUND
        )
    except Exception:
        print(Path(world["log"]).read_text()[-5000:])
        raise
    assert dispatched["dispatched"] == list(ACCOUNTS)
    assert len(dispatched["tasks"]) == len(ACCOUNTS) // chunk
    held = ACCOUNTS if chunk == 1 else ACCOUNTS[:1]  # a chunk runs its accounts' steps in turn
    wait_until(
        lambda: all((gate / f"arrived-{a}").exists() for a in held), f"{held} backups purgers are inside"
    )

    store = SQLiteStore(world["db"])
    try:
        for account_id in ACCOUNTS:  # decided a microsecond before the window ends: only the fence refuses
            record = store.get(account_id)
            assert record.restorable_until is not None
            user = Lifecycle(
                POLICY,
                store=store,
                clock=ManualClock(record.restorable_until - timedelta(microseconds=1)),
                purgers=fake_purgers(POLICY).values(),
            )
            before = (store.get(account_id), store.history(account_id))
            with pytest.raises(ErasureInProgress):
                user.restore(account_id, SUPPORT)
            assert (store.get(account_id), store.history(account_id)) == before
        (gate / "go").touch()

        if world["client"].backend.__class__.__name__ != "RPCBackend":  # rpc:// results go to the sender
            outcomes = [client.AsyncResult(t).get(timeout=BOUND) for t in dispatched["tasks"]]
            if chunk > 1:
                outcomes = [o for part in outcomes for o in part]
            assert outcomes == [
                {"account_id": a, "state": "purged", "failed": [], "skipped": False} for a in ACCOUNTS
            ]
        wait_until(
            lambda: all(store.get(a).state is State.PURGED for a in ACCOUNTS), "both accounts are purged"
        )

        ledger = [line.split() for line in world["ledger"].read_text().splitlines()]
        backups = {account: pid for account, category, pid in ledger if category == "backups"}
        assert len(set(backups.values())) == (2 if chunk == 1 else 1), (
            ledger
        )  # 2 processes at once, or 1 task
        assert Counter((account, category) for account, category, _ in ledger) == Counter(
            (a, "backups") for a in ACCOUNTS
        )
        for account_id in ACCOUNTS:
            user.verify_history(account_id)
            actions = [e.action for e in store.history(account_id)]
            assert "restore" not in actions
            erased = Counter(
                e.details["category"] for e in store.history(account_id) if e.action == "category_purged"
            )
            assert erased == Counter(c.name for c in POLICY.purge.categories), account_id
    finally:
        store.close()


def test_purge_accounts_runs_a_chunk_and_skips_a_lapsed_claim(tmp_path: Path) -> None:
    """Eagerly (no broker: the tasks' own logic): dispatch(chunk=3) hands 4 claimed accounts to
    two purge_accounts tasks that purge them all; a bad chunk is refused before anything is
    claimed; a chunk whose claim lapsed does nothing."""
    from account_lifecycle.contrib.celery import register_tasks

    store = SQLiteStore(tmp_path / "eager.db")
    now = datetime.now(UTC)
    ids = [f"acct-{n}" for n in range(4)]
    lc = Lifecycle(
        POLICY,
        store=store,
        clock=ManualClock(now - timedelta(days=125)),
        purgers=fake_purgers(POLICY).values(),
    )
    for account_id in ids:
        lc.open(account_id, owner="owner")
        lc.request_cancellation(account_id, OWNER)
        lc.skip_survey(account_id, OWNER)
        lc.confirm(account_id, OWNER)
    purgers = fake_purgers(POLICY)
    worker = Lifecycle(POLICY, store=store, purgers=purgers.values())
    app = celery.Celery("eager-chunks")
    app.conf.update(task_always_eager=True, task_store_eager_result=False)
    tasks = register_tasks(app, lambda: worker, prefix="chunks")
    try:
        for bad in (0, -1, True, "2"):
            with pytest.raises(ValueError, match="chunk must be a whole number >= 1"):
                tasks.dispatch.apply(kwargs={"chunk": bad}).get()
        assert worker.claim_due(10, owner="probe").account_ids == tuple(ids)  # nothing was claimed
        for account_id in ids:
            store.release(account_id, "probe")

        lapsed = (now - timedelta(seconds=1)).isoformat()
        assert tasks.purge_accounts.apply(
            kwargs={"account_ids": ids[:2], "lease_owner": "celery:gone", "lease_until": lapsed}
        ).get() == [{"account_id": a, "state": None, "failed": [], "skipped": True} for a in ids[:2]]
        assert all(not p.calls for p in purgers.values())

        dispatched = tasks.dispatch.apply(kwargs={"chunk": 3}).get()
        assert dispatched["dispatched"] == ids
        assert len(dispatched["tasks"]) == 2
        assert {worker.get(a).state for a in ids} == {State.PURGED}
        # the window-end erasure: backups, once per account, in due order (a chunk's steps in turn)
        assert {name: p.accounts() for name, p in purgers.items() if p.calls} == {"backups": ids}
        for account_id in ids:
            worker.verify_history(account_id)
            assert Counter(
                e.details["category"] for e in worker.history(account_id) if e.action == "category_purged"
            ) == Counter(c.name for c in POLICY.purge.categories)
    finally:
        store.close()


def test_beat_schedule_passes_the_chunk_to_dispatch() -> None:
    """beat_schedule(fan_out=True, chunk=n) schedules dispatch with chunk=n; a chunk without
    fan-out, or a bad one, is refused; chunk=1 leaves the entry as it was."""
    from account_lifecycle.contrib.celery import beat_schedule

    entry = beat_schedule(every=60, fan_out=True, chunk=5)["account_lifecycle.periodic-sweep"]
    assert (entry["task"], entry["kwargs"]) == ("account_lifecycle.dispatch", {"limit": None, "chunk": 5})
    assert beat_schedule(every=60, fan_out=True) == beat_schedule(every=60, fan_out=True, chunk=1)
    assert beat_schedule(every=60, fan_out=True)["account_lifecycle.periodic-sweep"]["kwargs"] == {
        "limit": None
    }
    with pytest.raises(ValueError, match="chunk applies to dispatch"):
        beat_schedule(every=60, chunk=5)
    with pytest.raises(ValueError, match="chunk must be a whole number >= 1"):
        beat_schedule(every=60, fan_out=True, chunk=0)
