"""Issue 14, target 3: concurrent purging with I/O-bound purgers.

Every purger call waits 20 ms (a remote API), five categories per account (``POLICY5``), so
one account costs 100 ms of waiting whatever the store does. Each figure is printed next to
its baseline measured in the same run, the rounds interleaved (baseline, then the levels, then
the other way round):

* threads: ``Lifecycle(sweep_concurrency=K)`` on SQLite ``NORMAL``, K = 2..32, against K = 1;
* asyncio: ``AsyncLifecycle(sweep_concurrency=K)`` on ``ThreadedStore(SQLiteStore)``, async
  purgers awaiting ``asyncio.sleep(0.02)``, K = 2..32, against K = 1;
* processes: N sweeper processes (spawned, each a serial ``sweep()``) on one PostgreSQL
  schema, N = 2, 4, 8, against one;
* Celery: one prefork worker of N processes (``account_lifecycle.contrib.celery``, the
  ``dispatch`` fan-out: one ``purge_account`` task per account, then ``dispatch(chunk=5)``:
  one ``purge_accounts`` task per 5 accounts; ``$BENCH_CELERY_CHUNKS``, default ``1,5``) on
  Redis and on RabbitMQ, the store on PostgreSQL, N = 2, 4, 8, against a worker of one
  process.

Target: >= 0.8 x K (or N) times the baseline's accounts per second. After every round the
histories of the round's accounts are read back: each account PURGED, its chain verified,
``erasure_started`` naming the five steps in order, then each category purged once, in that
order, at attempt 1, then the move to PURGED; and every purger call is counted (in the process,
or from the log the purgers of other processes append to): each (account, category) once.
Beside each rate, the CPU time per account (the sweeping process, every thread; for processes
and workers, the sum over them) and the machine's load.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from account_lifecycle import (
    AccountStore,
    Actor,
    Lifecycle,
    ManualClock,
    Policy,
    PurgeCategory,
    PurgeContext,
    PurgePolicy,
    PurgeResult,
    SQLiteStore,
    State,
    policies,
)
from bench._common import Result, quick_mode, report

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LATER = START + timedelta(days=200)
PG_DSN = os.environ.get("ACCOUNT_LIFECYCLE_PG_DSN") or "postgresql://postgres@127.0.0.1:5432/test"
NO_FSYNC_WAIT = "options=-csynchronous_commit%3Doff"  # set-up only: commits do not wait for fsync

#: Five categories erased at the window's end, as slow as a remote API each.
POLICY5: Policy = attrs.evolve(
    policies.ALLCLIENTS,
    name="allclients-five-remote",
    purge=PurgePolicy(categories=tuple(PurgeCategory(f"remote{i}", "expiry") for i in range(5))),
    on_cancel=(),
)
CATEGORIES = tuple(c.name for c in POLICY5.purge.categories)
LATENCY = 0.020  # seconds per purger call


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


# -- purgers ----------------------------------------------------------------------------------


class SlowPurger:
    """Waits LATENCY (a remote call), then reports one item erased; counts its calls (thread-safe),
    and appends ``account category`` to *log* when given (one ``write`` on an ``O_APPEND`` file:
    whole lines from many processes)."""

    def __init__(self, category: str, calls: Counter[tuple[str, str]], log: Path | None = None) -> None:
        self.category = category
        self.name = f"slow:{category}"
        self._calls = calls
        self._lock = threading.Lock()
        self._log = log
        self._fd: int | None = None

    def _count(self, account_id: str) -> None:
        with self._lock:
            self._calls[account_id, self.category] += 1
        if self._log is not None:
            if self._fd is None:
                self._fd = os.open(self._log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.write(self._fd, f"{account_id} {self.category}\n".encode())

    def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:
        time.sleep(LATENCY)
        self._count(account_id)
        return PurgeResult(items=1, detail=f"erased {self.category}")


class AsyncSlowPurger(SlowPurger):
    """``SlowPurger`` awaiting ``asyncio.sleep`` instead of sleeping."""

    async def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:  # type: ignore[override]
        await asyncio.sleep(LATENCY)
        self._count(account_id)
        return PurgeResult(items=1, detail=f"erased {self.category}")


def slow_purgers(calls: Counter[tuple[str, str]], log: Path | None = None) -> list[SlowPurger]:
    return [SlowPurger(c, calls, log) for c in CATEGORIES]


def read_calls(log: Path) -> Counter[tuple[str, str]]:
    calls: Counter[tuple[str, str]] = Counter()
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            account_id, category = line.split()
            calls[account_id, category] += 1
    return calls


# -- the accounts -------------------------------------------------------------------------------


def account_ids(n: int, prefix: str = "acct") -> list[str]:
    return [f"{prefix}-{i:06d}" for i in range(n)]


def populate(store: AccountStore, n: int) -> None:
    """Open *n* accounts and take each to RESTORABLE at START: all due at LATER."""
    lc = Lifecycle(POLICY5, store=store, clock=ManualClock(START), purgers=slow_purgers(Counter()))
    for account_id in account_ids(n):
        owner = Actor.user(f"owner-{account_id}")
        lc.open(account_id, owner=owner.id)
        lc.request_cancellation(account_id, owner)
        lc.skip_survey(account_id, owner)
        assert lc.confirm(account_id, owner).state is State.RESTORABLE


def check_round(store: AccountStore, accounts: Iterable[str], calls: Counter[tuple[str, str]]) -> int:
    """Read back every account of a round; AssertionError naming the first one out of order.
    Returns the number of accounts checked."""
    lc = Lifecycle(POLICY5, store=store, clock=ManualClock(LATER), purgers=slow_purgers(Counter()))
    checked = 0
    expected_calls: Counter[tuple[str, str]] = Counter()
    for account_id in accounts:
        assert lc.get(account_id).state is State.PURGED, account_id
        lc.verify_history(account_id)
        events = lc.history(account_id)
        actions = [e.action for e in events]
        start = actions.index("erasure_started")
        after = events[start:]
        assert tuple(after[0].details["steps"]) == CATEGORIES, (account_id, after[0].details)
        assert [e.action for e in after[1:]] == ["category_purged"] * len(CATEGORIES) + ["purge"], (
            account_id,
            actions,
        )
        assert [(e.details["category"], e.details["attempt"]) for e in after[1:-1]] == [
            (c, 1) for c in CATEGORIES
        ], account_id
        assert [e.seq for e in events] == list(range(1, len(events) + 1)), account_id
        expected_calls.update((account_id, c) for c in CATEGORIES)
        checked += 1
    assert calls == expected_calls, sorted((calls - expected_calls) + (expected_calls - calls))[:5]
    return checked


# -- threads and asyncio, one process, SQLite -------------------------------------------------


@attrs.frozen
class Round:
    accounts: int
    seconds: float
    cpu: float  # seconds of CPU of the measured processes
    checked: int
    waited: float = 0.0  # seconds the measured processes were runnable but waited for a CPU

    @property
    def rate(self) -> float:
        return self.accounts / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.cpu / self.accounts * 1000

    @property
    def busy(self) -> float:
        """The share of one core the measured processes used while the round ran."""
        return self.cpu / self.seconds

    @property
    def waited_ms(self) -> float:
        return self.waited / self.accounts * 1000


def _thread_round(setup: Path, path: Path, k: int, n: int) -> Round:
    shutil.copyfile(setup, path)
    store = SQLiteStore(path, synchronous="NORMAL")
    calls: Counter[tuple[str, str]] = Counter()
    sweeper = Lifecycle(
        POLICY5, store=store, purgers=slow_purgers(calls), clock=ManualClock(LATER), sweep_concurrency=k
    )
    sweeper.get("acct-000000")  # the connection is open before the clock starts
    _, waited = _schedstat("thread-self")
    cpu, start = time.process_time(), time.perf_counter()
    done = sweeper.sweep(limit=n)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    waited = _schedstat("thread-self")[1] - waited
    assert len(done.purged) == n, done
    assert not done.failed, done
    checked = check_round(store, done.purged, calls)
    store.close()
    return Round(n, elapsed, cpu, checked, waited)


def _async_round(setup: Path, path: Path, k: int, n: int) -> Round:
    from account_lifecycle import AsyncLifecycle, ThreadedStore

    shutil.copyfile(setup, path)
    calls: Counter[tuple[str, str]] = Counter()

    async def sweep() -> tuple[Sequence[str], float, float, float]:
        store = ThreadedStore(SQLiteStore(path, synchronous="NORMAL"))
        sweeper = AsyncLifecycle(
            POLICY5,
            store=store,
            purgers=[AsyncSlowPurger(c, calls) for c in CATEGORIES],
            clock=ManualClock(LATER),
            sweep_concurrency=k,
        )
        await sweeper.get("acct-000000")
        _, waited = _schedstat("thread-self")
        cpu, start = time.process_time(), time.perf_counter()
        done = await sweeper.sweep(limit=n)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        waited = _schedstat("thread-self")[1] - waited
        assert len(done.purged) == n, done
        assert not done.failed, done
        await store.close()
        return done.purged, elapsed, cpu, waited

    purged, elapsed, cpu, waited = asyncio.run(sweep())
    store = SQLiteStore(path)
    checked = check_round(store, purged, calls)
    store.close()
    return Round(n, elapsed, cpu, checked, waited)


def in_process(
    label: str,
    run_round: Callable[[Path, Path, int, int], Round],
    quick: bool,
    tmp: Path,
) -> list[Result]:
    """One sweeping process with concurrency K against K = 1, interleaved."""
    levels = (1, 2, 4, 8) if quick else (1, 2, 4, 8, 16, 32)
    per_level = {k: max(12, 8 * k) for k in levels}  # about 1 s of ideal sweeping each
    setup = tmp / f"{label}-setup.db"
    store = SQLiteStore(setup, synchronous="NORMAL")
    populate(store, max(per_level.values()))
    store.close()
    reps = 1 if quick else 3
    rounds: dict[int, list[Round]] = {k: [] for k in levels}
    loads = [load()]
    for rep in range(reps):
        for k in levels if rep % 2 == 0 else levels[::-1]:
            # every account of the set-up is due; the sweep stops after per_level[k] of them
            path = tmp / f"{label}-{k}-{rep}.db"
            rounds[k].append(run_round(setup, path, k, per_level[k]))
            path.unlink()
        loads.append(load())
    serial = statistics.median(r.rate for r in rounds[1])
    serial_cpu = statistics.median(r.cpu_ms for r in rounds[1])
    results = []
    for k in levels[1:]:
        rate = statistics.median(r.rate for r in rounds[k])
        results.append(
            Result(
                f"3c {label}: sweep_concurrency={k}, purgers 20 ms x 5",
                rate,
                "accounts/s",
                "sweep_concurrency=1, same run",
                serial,
                rate / serial,
                f">= {0.8 * k:.1f}x",
                rate / serial >= 0.8 * k,
                notes=[
                    f"{per_level[k]} due accounts (serial {per_level[1]}), median of {reps}: "
                    f"{[round(r.rate, 1) for r in rounds[k]]} vs serial "
                    f"{[round(r.rate, 1) for r in rounds[1]]}/s; ideal {k / (5 * LATENCY):.0f}/s",
                    f"CPU {statistics.median(r.cpu_ms for r in rounds[k]):.2f} ms/account "
                    f"(serial {serial_cpu:.2f}), the process busy "
                    f"{statistics.median(r.busy for r in rounds[k]):.0%} of a core; the sweep's own "
                    f"thread runnable but waiting for a CPU "
                    f"{statistics.median(r.waited_ms for r in rounds[k]):.2f} ms/account "
                    f"(serial {statistics.median(r.waited_ms for r in rounds[1]):.2f})",
                    f"{sum(r.checked for r in rounds[k])} accounts checked: steps in order, each "
                    f"category purged once; load {', '.join(loads)}",
                ],
            )
        )
    return results


# -- PostgreSQL: processes ----------------------------------------------------------------------


def _pg_store(schema: str, options: str = "") -> Any:
    from account_lifecycle import PostgresStore

    dsn = PG_DSN + ("&" if "?" in PG_DSN else "?") + options if options else PG_DSN
    return PostgresStore(dsn, schema=schema, max_connections=2)


def _pg_copy(source: str, target: str, accounts: int) -> None:
    """A copy of *source*'s tables in a new schema *target*, with the rows of the first
    *accounts* accounts only (set-up, not timed)."""
    import psycopg

    last = f"acct-{accounts:06d}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{target}"')
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (source,)
            )
        ]
        for table in tables:
            columns = {
                row[0]
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = %s AND table_name = %s",
                    (source, table),
                )
            }
            conn.execute(f'CREATE TABLE "{target}".{table} (LIKE "{source}".{table} INCLUDING ALL)')
            where = " WHERE account_id < %s" if "account_id" in columns else ""
            conn.execute(
                f'INSERT INTO "{target}".{table} SELECT * FROM "{source}".{table}{where}',
                (last,) if where else (),
            )
        conn.execute(f'ANALYZE "{target}".accounts')


def _pg_drop(*schemas: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _pg_base(n: int) -> str:
    """A schema holding *n* due accounts (the set-up, once per run)."""
    schema = f"al_bench_c_{uuid.uuid4().hex[:10]}"
    store = _pg_store(schema, NO_FSYNC_WAIT)
    store.migrate()
    try:
        populate(store, n)
    finally:
        store.close()
    return schema


def _pg_sweeper(schema: str, batch: int, log: str, barrier: Any, out: Any) -> None:
    """A sweeper process: one serial ``sweep()`` of everything due."""
    store = _pg_store(schema)
    lc = Lifecycle(
        POLICY5,
        store=store,
        purgers=slow_purgers(Counter(), Path(log)),
        clock=ManualClock(LATER),
        sweep_batch=batch,
    )
    lc.get("acct-000000")  # opens the pool and checks the schema before the clock starts
    barrier.wait(timeout=120)
    cpu, waited = _schedstat()
    start = time.perf_counter()
    done = lc.sweep()
    end = time.perf_counter()
    cpu_end, waited_end = _schedstat()
    out.put((list(done.purged), list(done.failed), start, end, cpu_end - cpu, waited_end - waited))
    store.close()


def _pg_round(base: str, sweepers: int, n: int, batch: int, tmp: Path) -> tuple[Round, list[int]]:
    schema = f"{base}_{uuid.uuid4().hex[:6]}"
    _pg_copy(base, schema, n)
    log = tmp / f"{schema}.calls"
    try:
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(sweepers)
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_pg_sweeper, args=(schema, batch, str(log), barrier, out))
            for _ in range(sweepers)
        ]
        for p in procs:
            p.start()
        results: list[tuple[list[str], list[str], float, float, float, float]] = []
        try:
            while len(results) < len(procs):
                try:
                    results.append(out.get(timeout=1))
                except queue.Empty:
                    failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                    if failed:
                        raise RuntimeError(f"a sweeper process failed (exit code {failed[0]})") from None
        finally:
            for p in procs:
                p.join(timeout=10)
                if p.is_alive():
                    p.terminate()
        purged = [a for r in results for a in r[0]]
        assert not any(r[1] for r in results), [r[1] for r in results]
        assert sorted(purged) == account_ids(n), (len(purged), n)
        store = _pg_store(schema)
        try:
            checked = check_round(store, purged, read_calls(log))
        finally:
            store.close()
        elapsed = max(r[3] for r in results) - min(r[2] for r in results)
        cpu, waited = sum(r[4] for r in results), sum(r[5] for r in results)
        return Round(n, elapsed, cpu, checked, waited), [len(r[0]) for r in results]
    finally:
        _pg_drop(schema)


def pg_processes(quick: bool, tmp: Path) -> list[Result]:
    """N sweeper processes on one PostgreSQL schema against one, each sweeping serially."""
    levels = (1, 2, 4) if quick else (1, 2, 4, 8)
    per_process = 24 if quick else 40  # about 4 s of ideal sweeping per round
    batch = int(os.environ.get("BENCH_SWEEP_BATCH", "5"))
    reps = 1 if quick else 2
    base = _pg_base(per_process * max(levels))
    rounds: dict[int, list[Round]] = {n: [] for n in levels}
    shares: dict[int, list[list[int]]] = {n: [] for n in levels}
    loads = [load()]
    default: tuple[Round, list[int], Round] | None = None
    try:
        for rep in range(reps):
            for n in levels if rep % 2 == 0 else levels[::-1]:
                result, share = _pg_round(base, n, per_process * n, batch, tmp)
                rounds[n].append(result)
                shares[n].append(sorted(share))
            loads.append(load())
        if not quick:  # the default sweep_batch (100): what one sweeper claims, the others cannot
            many, share = _pg_round(base, max(levels), per_process * max(levels), 100, tmp)
            alone, _ = _pg_round(base, 1, per_process, 100, tmp)
            default = (many, sorted(share), alone)
            loads.append(load())
    finally:
        _pg_drop(base)
    one = statistics.median(r.rate for r in rounds[1])
    results = []
    for n in levels[1:]:
        rate = statistics.median(r.rate for r in rounds[n])
        results.append(
            Result(
                f"3d {n} sweeper processes on PostgreSQL, purgers 20 ms x 5",
                rate,
                "accounts/s",
                "1 sweeper process, same run",
                one,
                rate / one,
                f">= {0.8 * n:.1f}x",
                rate / one >= 0.8 * n,
                notes=[
                    f"{per_process * n} due accounts (one: {per_process}), sweep_batch {batch}, "
                    f"median of {reps}: {[round(r.rate, 1) for r in rounds[n]]} vs one "
                    f"{[round(r.rate, 1) for r in rounds[1]]}/s; accounts per process {shares[n]}",
                    f"CPU of the sweepers {statistics.median(r.cpu_ms for r in rounds[n]):.2f} ms/account "
                    f"(one: {statistics.median(r.cpu_ms for r in rounds[1]):.2f}), waiting for a CPU "
                    f"{statistics.median(r.waited_ms for r in rounds[n]):.2f} ms/account "
                    f"(one: {statistics.median(r.waited_ms for r in rounds[1]):.2f}); "
                    f"{sum(r.checked for r in rounds[n])} accounts checked; load {', '.join(loads)}",
                ],
            )
        )
    if default is not None:
        many, share, alone = default
        top = max(levels)
        results.append(
            Result(
                f"3d {top} sweeper processes on PostgreSQL, sweep_batch 100 (the default), information",
                many.rate,
                "accounts/s",
                "1 sweeper process, sweep_batch 100, same run",
                alone.rate,
                many.rate / alone.rate,
                notes=[
                    f"{per_process * top} due accounts; accounts per process {share}: a serial sweeper "
                    f"holds its whole claimed batch while it works through it ({100 * 5 * LATENCY:.0f} s "
                    "of purger calls), so sweepers beyond due/sweep_batch find nothing to claim",
                ],
            )
        )
    return results


# -- Celery ---------------------------------------------------------------------------------------

BROKERS = {
    "redis": "redis://127.0.0.1:6379/0",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}
RESULTS = "redis://127.0.0.1:6379/1"  # the driver waits on each purge task's result


class Worker:
    """A real ``celery worker`` (prefork, *processes* children) running ``bench._celery_app`` on
    a queue of its own, its lifecycle on *schema*."""

    def __init__(self, broker: str, processes: int, schema: str, tmp: Path) -> None:
        self.queue = f"al-bench-{uuid.uuid4().hex[:12]}"
        self.schema = schema
        self.processes = processes
        self.calls = tmp / f"{self.queue}.calls"
        self.log_path = tmp / f"{self.queue}.log"
        self.hostname = f"{self.queue}@bench"
        env = {
            **os.environ,
            "AL_BENCH_BROKER": broker,
            "AL_BENCH_RESULTS": RESULTS,
            "AL_BENCH_QUEUE": self.queue,
            "AL_BENCH_SCHEMA": schema,
            "AL_BENCH_CALLS": str(self.calls),
            "ACCOUNT_LIFECYCLE_PG_DSN": PG_DSN,
        }
        command = [
            sys.executable, "-m", "celery", "-A", "bench._celery_app", "worker",
            "--pool=prefork", f"--concurrency={processes}", "--queues", self.queue,
            "--hostname", self.hostname, "--without-gossip", "--without-mingle",
            "--without-heartbeat", "--loglevel=WARNING",
        ]  # fmt: skip
        self._log = self.log_path.open("w")
        root = Path(__file__).resolve().parent.parent
        self.process = subprocess.Popen(
            command, cwd=root, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        import celery

        self.client = celery.Celery("al-bench-client", broker=broker, backend=RESULTS)
        self.client.conf.update(
            task_default_queue=self.queue, result_expires=600, broker_connection_retry_on_startup=True
        )
        self.used = 0  # accounts dispatched so far (each round takes the next due ones)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not self.client.control.ping(destination=[self.hostname], timeout=1.0):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start: {self.log_path.read_text()[-2000:]}")
        # each child builds its lifecycle on its first task: a task per child, at once
        warm = [
            self.client.send_task("account_lifecycle.relay", kwargs={"limit": 0})
            for _ in range(self.processes)
        ]
        for result in warm:
            result.get(timeout=timeout)

    def round(self, n: int, chunk: int) -> tuple[Round, list[str]]:
        """Dispatch *n* due accounts (*chunk* per task) and wait for every purge task's result."""
        cpu, waited = _tree_stats(self.process.pid)
        start = time.perf_counter()
        dispatched = self.client.send_task(
            "account_lifecycle.dispatch", kwargs={"limit": n, "chunk": chunk}
        ).get(timeout=120)
        outcomes = []
        for task in dispatched["tasks"]:
            outcome = self.client.AsyncResult(task).get(timeout=600)
            outcomes += outcome if isinstance(outcome, list) else [outcome]
        elapsed = time.perf_counter() - start
        cpu_end, waited_end = _tree_stats(self.process.pid)
        assert len(dispatched["dispatched"]) == n, dispatched
        assert all(o["state"] == "purged" and not o["failed"] and not o["skipped"] for o in outcomes), (
            outcomes
        )
        self.used += n
        return Round(n, elapsed, cpu_end - cpu, 0, waited_end - waited), list(dispatched["dispatched"])

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)  # warm shutdown: tasks in flight finish
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
        self.client.close()


def _schedstat(pid: int | str = "self") -> tuple[float, float]:
    """(CPU seconds, seconds spent runnable but waiting for a CPU) of *pid*'s main thread so
    far (Linux ``/proc/<pid>/schedstat``); zeros when it has gone."""
    try:
        cpu, waited, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
    except (OSError, ValueError):
        return 0.0, 0.0
    return int(cpu) / 1e9, int(waited) / 1e9


def _tree_stats(pid: int) -> tuple[float, float]:
    """``_schedstat`` summed over process *pid* and its live children (a prefork worker)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    stats = [_schedstat(p) for p in (pid, *children)]
    return sum(s[0] for s in stats), sum(s[1] for s in stats)


def celery_workers(broker_name: str, quick: bool, tmp: Path, chunk: int) -> list[Result]:
    """A worker of N processes against a worker of one, on *broker_name*, interleaved; ``dispatch``
    hands *chunk* accounts to each task (1: ``purge_account``, more: ``purge_accounts``)."""
    from kombu import Connection

    broker = BROKERS[broker_name]
    try:
        with Connection(broker, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:
        return [Result(f"3e Celery on {broker_name}", 0.0, "accounts/s", notes=[f"skipped: {exc}"])]
    task = "purge_account" if chunk == 1 else f"purge_accounts, {chunk} accounts"
    levels = (1, 2, 4) if quick else (1, 2, 4, 8)
    per_process = 16 if quick else 30
    reps = 1 if quick else 2
    base = _pg_base(per_process * max(levels) * reps)
    workers: dict[int, Worker] = {}
    schemas: list[str] = []
    rounds: dict[int, list[Round]] = {n: [] for n in levels}
    loads = [load()]
    try:
        for n in levels:  # every worker started and idle before the first round
            schema = f"{base}_w{n}"
            _pg_copy(base, schema, per_process * n * reps)
            schemas.append(schema)
            workers[n] = Worker(broker, n, schema, tmp)
        for worker in workers.values():
            worker.wait_ready()
        dispatched: dict[int, list[str]] = {n: [] for n in levels}
        for rep in range(reps):
            for n in levels if rep % 2 == 0 else levels[::-1]:
                result, accounts = workers[n].round(per_process * n, chunk)
                rounds[n].append(result)
                dispatched[n] += accounts
            loads.append(load())
        for n, worker in workers.items():
            store = _pg_store(worker.schema)
            try:
                checked = check_round(store, dispatched[n], read_calls(worker.calls))
            finally:
                store.close()
            rounds[n] = [attrs.evolve(r, checked=checked) for r in rounds[n]]
    finally:
        for worker in workers.values():
            worker.stop()
        _pg_drop(base, *schemas)
    one = statistics.median(r.rate for r in rounds[1])
    results = []
    for n in levels[1:]:
        rate = statistics.median(r.rate for r in rounds[n])
        results.append(
            Result(
                f"3e Celery on {broker_name}: worker of {n} processes ({task} a task), purgers 20 ms x 5",
                rate,
                "accounts/s",
                "worker of 1 process, same run",
                one,
                rate / one,
                f">= {0.8 * n:.1f}x",
                rate / one >= 0.8 * n,
                notes=[
                    f"dispatch of {per_process * n} due accounts (one: {per_process}), {task} a task, "
                    f"store PostgreSQL, median of {reps}: {[round(r.rate, 1) for r in rounds[n]]} "
                    f"vs one {[round(r.rate, 1) for r in rounds[1]]}/s",
                    f"CPU of the worker's processes {statistics.median(r.cpu_ms for r in rounds[n]):.2f} "
                    f"ms/account (one: {statistics.median(r.cpu_ms for r in rounds[1]):.2f}), waiting for "
                    f"a CPU {statistics.median(r.waited_ms for r in rounds[n]):.2f} ms/account "
                    f"(one: {statistics.median(r.waited_ms for r in rounds[1]):.2f}); "
                    f"{rounds[n][0].checked} accounts checked; load {', '.join(loads)}",
                ],
            )
        )
    return results


def _postgres_up() -> str | None:
    try:
        import psycopg

        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


PARTS = ("threads", "asyncio", "processes", "celery")


def run(quick: bool = False, *, postgres: bool = True, parts: Sequence[str] = PARTS) -> list[Result]:
    base = os.environ.get("BENCH_TMPDIR") or None
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="al-bench-", dir=base) as name:
        tmp = Path(name)
        if "threads" in parts:
            results += [report(r) for r in in_process("threads", _thread_round, quick, tmp)]
        if "asyncio" in parts:
            results += [report(r) for r in in_process("asyncio", _async_round, quick, tmp)]
        problem = _postgres_up() if postgres else "skipped (--no-postgres)"
        if problem is not None:
            results.append(report(Result("3d/3e on PostgreSQL", 0.0, "accounts/s", notes=[problem])))
            return results
        if "processes" in parts:
            results += [report(r) for r in pg_processes(quick, tmp)]
        if "celery" in parts:
            chunks = [int(c) for c in os.environ.get("BENCH_CELERY_CHUNKS", "1,5").split(",")]
            for chunk in chunks:
                for broker in BROKERS:
                    results += [report(r) for r in celery_workers(broker, quick, tmp, chunk)]
    return results


if __name__ == "__main__":
    chosen = [p for p in sys.argv[1:] if p in PARTS] or list(PARTS)
    run(quick_mode(), parts=chosen)
