"""The Celery app of ``test_celery_fencing.py``'s worker: ``celery -A celery_fenced_app worker``.

Its lifecycle sweeps ``ALLCLIENTS`` accounts in the SQLite file ``ACCOUNT_LIFECYCLE_DB``.
Every purger call appends ``account category pid`` to ``ACCOUNT_LIFECYCLE_LEDGER``; the
``backups`` purger then marks its account as arrived in ``ACCOUNT_LIFECYCLE_GATE`` and waits
there (at most 30 s) until the test has created ``go``: the window-end erasure is held inside
the purger, in a worker process, while the test races a restore against it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery import Celery

from account_lifecycle import Lifecycle, PurgeContext, SQLiteStore, policies
from account_lifecycle.contrib.celery import register_tasks
from account_lifecycle.testing.fakes import fake_purgers

POLICY = policies.ALLCLIENTS
BOUND = 30.0  # seconds a held purger waits at most: a broken test fails, it does not hang

app = Celery("fenced", broker=os.environ["CELERY_BROKER_URL"], backend=os.environ["CELERY_RESULT_BACKEND"])
app.conf.update(
    task_default_queue=os.environ["ACCOUNT_LIFECYCLE_QUEUE"],
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=600,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)


def held(account_id: str, context: PurgeContext) -> None:
    with open(os.environ["ACCOUNT_LIFECYCLE_LEDGER"], "a", encoding="utf-8") as ledger:
        ledger.write(f"{account_id} {context.category} {os.getpid()}\n")
    if context.category != "backups":
        return
    gate = Path(os.environ["ACCOUNT_LIFECYCLE_GATE"])
    (gate / f"arrived-{account_id}").touch()
    deadline = time.monotonic() + BOUND
    while not (gate / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.001)  # polling a file: an event between unrelated processes


def make_lifecycle() -> Lifecycle:
    return Lifecycle(
        POLICY,
        store=SQLiteStore(os.environ["ACCOUNT_LIFECYCLE_DB"]),
        purgers=fake_purgers(POLICY, before=held).values(),
    )


tasks = register_tasks(app, make_lifecycle)
