"""The Celery tasks against a real broker and a real ``celery worker`` (prefork, 2 processes)
running ``examples/celery_app.py`` on a SQLite file.

The broker is Redis at 127.0.0.1:6379, else RabbitMQ at 127.0.0.1:5672 (guest/guest). Without
either the test is skipped with the reason, except under ``CI=true``, where it fails. Each run
uses a queue of its own, so other workers on the same broker never take its tasks.
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

from account_lifecycle import (
    Actor,
    EffectContext,
    Lifecycle,
    ManualClock,
    SQLiteStore,
    State,
    policies,
)
from account_lifecycle.testing.fakes import FakePurger, fake_purgers

ROOT = Path(__file__).resolve().parents[2]
POLICY = policies.ALLCLIENTS
OWNER = Actor.user("owner")
REDIS = ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1")
RABBITMQ = ("amqp://guest:guest@127.0.0.1:5672//", "rpc://")
TIMEOUT = 20.0

celery = pytest.importorskip("celery", reason="the celery extra is not installed")


def reachable(url: str) -> str | None:
    """None if a broker answers at *url*, else why not."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # any failure to connect means: not usable here
        return f"{type(exc).__name__}: {exc}"
    return None


BROKERS = {"redis": REDIS, "rabbitmq": RABBITMQ}
_reachability: dict[str, str | None] = {}


def problem_with(name: str) -> str | None:
    if name not in _reachability:
        _reachability[name] = reachable(BROKERS[name][0])
    return _reachability[name]


@pytest.fixture(params=sorted(BROKERS))
def broker(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(broker URL, result backend URL): the test runs on each reachable broker. On a laptop an
    unreachable broker is skipped with the reason; under CI=true it is a failure."""
    name: str = request.param
    problem = problem_with(name)
    if problem is None:
        return BROKERS[name]
    if os.environ.get("CI") == "true":  # CI starts both brokers (.ci/services): none may be skipped
        pytest.fail(
            f"{name} is not reachable ({problem}) (CI=true: the Celery tests must run)", pytrace=False
        )
    others = [other for other in BROKERS if other != name and problem_with(other) is None]
    if others:
        pytest.skip(f"{name} is not reachable ({problem}); the test runs on {others[0]}")
    reason = (
        "no Celery broker reachable (" + "; ".join(f"{n}: {problem_with(n)}" for n in sorted(BROKERS)) + ")"
    )
    pytest.skip(f"{reason}; start Redis on 127.0.0.1:6379 or RabbitMQ on 127.0.0.1:5672")


def populate(db: Path, now: datetime) -> None:
    """exp-1..4: window ended a month ago; ret-1, ret-2: cancel purge (contacts, and the team
    access hook) failed yesterday, due again; in-1: cancelled yesterday, restorable for three
    more months."""
    store = SQLiteStore(db)
    clock = ManualClock(now - timedelta(days=125))
    good = Lifecycle(POLICY, store=store, clock=clock, purgers=fake_purgers(POLICY).values())

    def unreachable_sso(account_id: str, context: EffectContext) -> None:
        raise ConnectionError("SSO unreachable")

    failing = Lifecycle(
        POLICY,
        store=store,
        clock=clock,
        purgers=[
            FakePurger(
                c.name, fail_when=c.name == "contacts", fail_with=RuntimeError("contacts service down")
            )
            for c in POLICY.purge.categories
        ],
        effects={"revoke_team_access": unreachable_sso},  # the worker's own hook finishes it
    )

    def cancel(lc: Lifecycle, account_id: str) -> State:
        lc.open(account_id, owner="owner", members=["member"])
        lc.request_cancellation(account_id, OWNER)
        lc.skip_survey(account_id, OWNER)
        return lc.confirm(account_id, OWNER).state

    for n in range(1, 5):
        clock.advance(timedelta(minutes=1))
        assert cancel(good, f"exp-{n}") is State.RESTORABLE
    clock.set(now - timedelta(days=1))
    assert [cancel(failing, "ret-1"), cancel(failing, "ret-2"), cancel(good, "in-1")] == [
        State.CANCELLED,
        State.CANCELLED,
        State.RESTORABLE,
    ]
    store.close()


@pytest.fixture
def worker(broker: tuple[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A real prefork worker (2 processes) on the example app, a queue of its own."""
    queue = f"al-test-{uuid.uuid4().hex[:12]}"
    db = tmp_path / "accounts.db"
    populate(db, datetime.now(UTC))
    env = {
        **os.environ,
        "ACCOUNT_LIFECYCLE_DB": str(db),
        "CELERY_BROKER_URL": broker[0],
        "CELERY_RESULT_BACKEND": broker[1],
        "ACCOUNT_LIFECYCLE_QUEUE": queue,
        "ACCOUNT_LIFECYCLE_OUTBOX_LOG": str(tmp_path / "outbox.log"),
    }
    log = (tmp_path / "worker.log").open("w")
    command = [
        sys.executable, "-m", "celery", "-A", "celery_app", "worker",
        "--pool=prefork", "--concurrency=2", "--queues", queue, "--hostname", f"{queue}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT / "examples", env=env, stdout=log, stderr=subprocess.STDOUT)
    client = celery.Celery("test-client", broker=broker[0], backend=broker[1])
    client.conf.update(task_default_queue=queue, result_expires=600, broker_connection_retry_on_startup=True)
    try:
        yield {
            "client": client,
            "queue": queue,
            "db": db,
            "backend": broker[1],
            "log": tmp_path / "worker.log",
            "outbox_log": tmp_path / "outbox.log",
        }
    finally:
        process.send_signal(signal.SIGQUIT)  # cold shutdown: every task sent has been waited for
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


def call(worker: dict[str, Any], task: str, **kwargs: Any) -> Any:
    """Send a task by name to the worker's queue and wait for its result."""
    result = worker["client"].send_task(f"account_lifecycle.{task}", kwargs=kwargs, queue=worker["queue"])
    try:
        return result.get(timeout=TIMEOUT)
    except Exception:
        print(Path(worker["log"]).read_text()[-5000:])
        raise


def wait_for(db: Path, accounts: list[str], state: State) -> None:
    store = SQLiteStore(db)
    try:
        deadline = time.monotonic() + TIMEOUT
        while {store.get(a).state for a in accounts} != {state}:
            assert time.monotonic() < deadline, {a: store.get(a).state for a in accounts}
            time.sleep(0.1)
    finally:
        store.close()


@pytest.mark.slow
def test_worker_purges_dispatched_and_swept_accounts(worker: dict[str, Any]) -> None:
    """dispatch hands three claimed accounts to the workers; sweep does the rest; a purge task
    whose claim has lapsed does nothing; every chain verifies and each category is erased once."""
    dispatched = call(worker, "dispatch", limit=3)
    assert dispatched["dispatched"] == ["exp-1", "exp-2", "exp-3"]
    assert len(dispatched["tasks"]) == 3
    if worker["backend"].startswith("redis"):  # rpc:// results go to the sender: the worker here
        results = [worker["client"].AsyncResult(t).get(timeout=TIMEOUT) for t in dispatched["tasks"]]
        assert results == [
            {"account_id": f"exp-{n}", "state": "purged", "failed": [], "skipped": False} for n in (1, 2, 3)
        ]
    wait_for(worker["db"], ["exp-1", "exp-2", "exp-3"], State.PURGED)

    swept = call(worker, "sweep")
    relayed = swept.pop("relayed")  # the example app's mailer: every event so far, once
    assert swept == {
        "purged": ["exp-4"],
        "failed": [],
        "restorable": ["ret-1", "ret-2"],
        "errors": {},
    }
    assert relayed == len(Path(worker["outbox_log"]).read_text().splitlines()) > 0
    assert call(worker, "sweep", limit=10) == {
        "purged": [],
        "failed": [],
        "restorable": [],
        "errors": {},
        "relayed": 0,
    }

    lapsed = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    assert call(
        worker, "purge_account", account_id="in-1", lease_owner="celery:gone", lease_until=lapsed
    ) == {
        "account_id": "in-1",
        "state": None,
        "failed": [],
        "skipped": True,
    }

    store = SQLiteStore(worker["db"])
    lc = Lifecycle(POLICY, store=store, purgers=fake_purgers(POLICY).values())
    try:
        expected = {
            **{f"exp-{n}": State.PURGED for n in range(1, 5)},
            "ret-1": State.RESTORABLE,
            "ret-2": State.RESTORABLE,
            "in-1": State.RESTORABLE,
        }
        assert {a: lc.get(a).state for a in expected} == expected
        for account_id in expected:
            lc.verify_history(account_id)
            erased = Counter(
                e.details["category"] for e in lc.history(account_id) if e.action == "category_purged"
            )
            categories = [c.name for c in POLICY.purge.categories]
            if expected[account_id] is not State.PURGED:
                categories.remove("backups")
            assert erased == Counter(categories), account_id
        assert [e.category for e in lc.receipt("exp-4").erased] == [c.name for c in POLICY.purge.categories]
        for account_id in ("ret-1", "ret-2"):  # the hook failed here, then ran once in the worker
            effects = [(e.action, e.details["hook"]) for e in lc.history(account_id) if "effect" in e.details]
            assert effects == [
                ("effect_failed", "populate.<locals>.unreachable_sso"),
                ("team_access_revoked", "revoke_team_access"),
            ]
        assert lc.get("in-1").purge["backups"].attempts == 0
    finally:
        store.close()


@pytest.mark.slow
def test_worker_relays_the_outbox_once_per_event_in_order(worker: dict[str, Any]) -> None:
    """The relay task feeds the example app's durable mailer every committed event, each once
    and each account's in seq order; a second relay delivers nothing."""
    store = SQLiteStore(worker["db"])
    try:
        histories = {a: [(e.seq, e.action) for e in store.history(a)] for a in store.account_ids()}
    finally:
        store.close()
    total = sum(len(h) for h in histories.values())

    assert call(worker, "relay") == {
        "delivered": {"mailer": total},
        "dead_lettered": {},
        "retrying": {},
        "busy": [],
    }
    assert call(worker, "relay", limit=5) == {
        "delivered": {},
        "dead_lettered": {},
        "retrying": {},
        "busy": [],
    }

    lines = [line.split() for line in Path(worker["outbox_log"]).read_text().splitlines()]
    assert len(lines) == total
    for account_id, history in histories.items():
        assert [(int(seq), action) for a, seq, action in lines if a == account_id] == history


def test_beat_schedule_names_the_tasks() -> None:
    """The beat entry runs sweep (or dispatch with fan_out) every interval; stale runs expire."""
    from account_lifecycle.contrib.celery import beat_schedule

    assert beat_schedule(every=timedelta(minutes=5)) == {
        "account_lifecycle.periodic-sweep": {
            "task": "account_lifecycle.sweep",
            "schedule": 300.0,
            "kwargs": {"limit": None},
            "options": {"expires": 300.0},
        }
    }
    entry = beat_schedule(every=60, prefix="smrtphone", fan_out=True, limit=50)["smrtphone.periodic-sweep"]
    assert (entry["task"], entry["kwargs"]) == ("smrtphone.dispatch", {"limit": 50})
    with pytest.raises(ValueError, match="every must be a positive interval"):
        beat_schedule(every=0)
    both = beat_schedule(every=300, relay_every=timedelta(seconds=30))
    assert both["account_lifecycle.periodic-relay"] == {
        "task": "account_lifecycle.relay",
        "schedule": 30.0,
        "kwargs": {},
        "options": {"expires": 30.0},
    }
    with pytest.raises(ValueError, match="relay_every must be a positive interval"):
        beat_schedule(every=300, relay_every=0)


def test_register_tasks_resolves_a_factory_path() -> None:
    """A 'module:function' factory is imported; a bad path is refused when registering."""
    from account_lifecycle.contrib.celery import register_tasks, resolve_factory

    app = celery.Celery("registry-only")
    tasks = register_tasks(app, "account_lifecycle.demo:run_demo", prefix="probe")
    assert {tasks.sweep.name, tasks.dispatch.name, tasks.purge_account.name, tasks.relay.name} == {
        "probe.sweep",
        "probe.dispatch",
        "probe.purge_account",
        "probe.relay",
    }
    assert resolve_factory("account_lifecycle.demo:run_demo").__name__ == "run_demo"
    with pytest.raises(ValueError, match=r"must look like 'package\.module:function'"):
        resolve_factory("account_lifecycle.demo.run_demo")
    with pytest.raises(AttributeError):
        resolve_factory("account_lifecycle.demo:no_such_factory")
    with pytest.raises(TypeError, match="not a callable returning a Lifecycle"):
        resolve_factory("account_lifecycle.demo:__all__")


def test_a_factory_returning_something_else_is_refused_when_a_task_runs() -> None:
    """The factory's result is checked on first use, with a message naming what it returned."""
    from account_lifecycle.contrib.celery import register_tasks

    app = celery.Celery("eager")
    app.conf.update(task_always_eager=True, task_store_eager_result=False)
    tasks = register_tasks(app, lambda: "not a lifecycle", prefix="wrong")
    with pytest.raises(TypeError, match="the lifecycle factory returned str, not a Lifecycle"):
        tasks.sweep.apply().get()
