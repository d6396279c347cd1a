"""A host's Celery app that finishes purges in the background (extra ``celery``).

A worker with an embedded beat sweeps every five minutes; purge work that confirm could not
finish (a purger failed) and recovery windows that ended are handled there, spread over the
workers with ``dispatch``. Configure it with environment variables:

    ACCOUNT_LIFECYCLE_DB      SQLite file of the accounts          (accounts.db)
    CELERY_BROKER_URL         redis://127.0.0.1:6379/0 or amqp://guest:guest@127.0.0.1:5672//
    CELERY_RESULT_BACKEND     where task results go                 (redis://127.0.0.1:6379/1)
    ACCOUNT_LIFECYCLE_QUEUE   the queue its tasks use               (account_lifecycle)

Run a worker and the beat from this directory:

    celery -A celery_app worker --beat --loglevel=INFO

or try the tasks without a broker, run eagerly in this process on a temporary database:

    python examples/celery_app.py
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from celery import Celery

from account_lifecycle import (
    Actor,
    AuditEvent,
    EffectContext,
    Lifecycle,
    ManualClock,
    PurgeContext,
    PurgeResult,
    SQLiteStore,
    policies,
)
from account_lifecycle.contrib.celery import beat_schedule, register_tasks

log = logging.getLogger("accounts")
POLICY = policies.ALLCLIENTS

app = Celery(
    "accounts",
    broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
    backend=os.environ.get("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/1"),
)
app.conf.update(
    task_default_queue=os.environ.get("ACCOUNT_LIFECYCLE_QUEUE", "account_lifecycle"),
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    worker_prefetch_multiplier=1,  # long purges: take one task at a time
    broker_connection_retry_on_startup=True,
)


class DeleteRows:
    """Stands in for the host's real erasure of one data category (idempotent: deleting
    what is already gone deletes nothing)."""

    def __init__(self, category: str) -> None:
        self.category = category

    def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:
        log.info("erasing %s of %s (attempt %d)", self.category, account_id, context.attempt)
        return PurgeResult(items=0, detail=f"deleted {self.category} rows")


def revoke_team_access(account_id: str, context: EffectContext) -> None:
    """Ends the sessions of the account's team; run once, durably, by the purge runner."""
    log.info("revoking the sessions of %s on %s", ", ".join(sorted(context.members)), account_id)


def send_mail(event: AuditEvent) -> None:
    """A durable (outbox) listener: mails the owner about their cancellation. Delivered at
    least once, so it remembers what it sent by ``(account_id, seq)``; here it appends a line to
    ``ACCOUNT_LIFECYCLE_OUTBOX_LOG`` when that is set (the tests read it), else logs."""
    line = f"{event.account_id} {event.seq} {event.action}"
    path = os.environ.get("ACCOUNT_LIFECYCLE_OUTBOX_LOG")
    if path is None:
        log.info("mail about %s", line)
        return
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")


def make_lifecycle() -> Lifecycle:
    """The factory each worker process calls once, on its first task."""
    return Lifecycle(
        POLICY,
        store=SQLiteStore(os.environ.get("ACCOUNT_LIFECYCLE_DB", "accounts.db")),
        purgers=[DeleteRows(c.name) for c in POLICY.purge.categories],
        effects={"revoke_team_access": revoke_team_access},
        outbox_listeners={"mailer": send_mail},
    )


tasks = register_tasks(app, make_lifecycle)
app.conf.beat_schedule = beat_schedule(every=timedelta(minutes=5), fan_out=True, relay_every=30)


def try_it_eagerly() -> None:
    """Without a broker: one account whose window has ended, purged by the tasks run inline."""
    app.conf.update(task_always_eager=True, task_store_eager_result=False, result_backend="cache+memory://")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ACCOUNT_LIFECYCLE_DB"] = str(Path(tmp) / "accounts.db")
        # Cancel an account four months ago, on a clock of our own.
        now = datetime.now(UTC)
        then = Lifecycle(
            POLICY,
            store=SQLiteStore(os.environ["ACCOUNT_LIFECYCLE_DB"]),
            clock=ManualClock(now - timedelta(days=122)),
            purgers=[DeleteRows(c.name) for c in POLICY.purge.categories],
        )
        owner = Actor.user("u-1")
        then.open("acct-1", owner="u-1", members=["u-2"])
        then.request_cancellation("acct-1", owner)
        then.skip_survey("acct-1", owner)
        print("cancelled 4 months ago:", then.confirm("acct-1", owner).state.value)
        print("dispatch:", tasks.dispatch.delay().get())
        print("sweep:", tasks.sweep.delay().get())
        print("relay:", tasks.relay.delay().get())
        lc = make_lifecycle()
        print("now:", lc.get("acct-1").state.value)
        print("receipt:", [e.category for e in lc.receipt("acct-1").erased])
        lc.store.close()
        then.store.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
    try_it_eagerly()
