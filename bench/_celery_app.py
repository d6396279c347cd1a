"""The Celery app of ``bench/concurrency.py``'s workers: ``celery -A bench._celery_app worker``.

Configured by the benchmark through the environment: ``AL_BENCH_BROKER``, ``AL_BENCH_RESULTS``,
``AL_BENCH_QUEUE`` (a queue of the run's own), ``AL_BENCH_SCHEMA`` (the PostgreSQL schema of
the accounts) and ``AL_BENCH_CALLS`` (the file every purger call is logged to). The lifecycle
sweeps ``POLICY5`` on a clock at ``LATER``, its five purgers waiting 20 ms per call.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from celery import Celery

from account_lifecycle import Lifecycle, ManualClock
from account_lifecycle.contrib.celery import register_tasks
from bench.concurrency import LATER, POLICY5, _pg_store, slow_purgers

app = Celery(
    "al-bench",
    broker=os.environ.get("AL_BENCH_BROKER", "redis://127.0.0.1:6379/0"),
    backend=os.environ.get("AL_BENCH_RESULTS", "redis://127.0.0.1:6379/1"),
)
app.conf.update(
    task_default_queue=os.environ.get("AL_BENCH_QUEUE", "al-bench"),
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=600,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)


def make_lifecycle() -> Lifecycle:
    return Lifecycle(
        POLICY5,
        store=_pg_store(os.environ["AL_BENCH_SCHEMA"]),
        purgers=slow_purgers(Counter(), Path(os.environ["AL_BENCH_CALLS"])),
        clock=ManualClock(LATER),
    )


tasks = register_tasks(app, make_lifecycle)
