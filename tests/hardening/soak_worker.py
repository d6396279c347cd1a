"""The soak test's worker: random commands from random actors against a shared store.

Importable by spawned processes. Every process reads one shared, fast clock (wall time
scaled, so three months pass in a few seconds) so that windows really end during a run.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from account_lifecycle import (
    Actor,
    Lifecycle,
    LifecycleError,
    PurgeContext,
    SQLiteStore,
    policies,
)
from account_lifecycle.testing.fakes import fake_identity_keys, fake_purgers

START = datetime(2026, 11, 30, tzinfo=UTC)
SPEED = 30 * 24 * 3600  # one real second is thirty days
ACCOUNTS = 24
THROUGH = timedelta(days=100)  # past the 3-month window: some restorable accounts expire


class ScaledClock:
    def __init__(self, t0: float) -> None:
        self.t0 = t0

    def now(self) -> datetime:
        return START + timedelta(seconds=(time.time() - self.t0) * SPEED)


def log_call(log: Path) -> Callable[[str, PurgeContext], None]:
    """Appends one line per purge call: account, category, now, cancelled_at (for the checks)."""

    def write(account_id: str, context: PurgeContext) -> None:
        with log.open("a") as out:
            out.write(
                f"{account_id}\t{context.category}\t{context.now.isoformat()}\t{context.cancelled_at}\n"
            )

    return write


def make_store(spec: dict[str, Any]) -> Any:
    if spec["kind"] == "sqlite":
        return SQLiteStore(spec["path"], timeout=60)
    from account_lifecycle import PostgresStore

    return PostgresStore(spec["dsn"], schema=spec["schema"], max_connections=4)


def make_lifecycle(store: Any, clock: Any, log: Path, seed: int, failure_rate: float = 0.1) -> Lifecycle:
    policy = policies.ALLCLIENTS
    flaky = random.Random(seed)
    return Lifecycle(
        policy,
        store=store,
        clock=clock,
        identity_keys=fake_identity_keys(),
        purgers=fake_purgers(
            policy,
            before=log_call(log),
            fail_when=lambda account_id, context: flaky.random() < failure_rate,
            fail_with=lambda: ConnectionError("backend hiccup"),
        ).values(),
        lease=timedelta(days=20),
        retry_backoff=timedelta(days=1),
        max_retry_backoff=timedelta(days=4),
    )


def run(
    spec: dict[str, Any], t0: float, commands: int, seed: int, log: str, store: Any = None
) -> dict[str, int]:
    """Send at least *commands* random commands, and go on until the shared clock has passed
    ``THROUGH`` (so recovery windows end during the run, however fast the machine); return
    counts by outcome. Nothing here depends on how many commands a second the machine runs."""
    rng = random.Random(seed)
    own_store = store is None
    if own_store:  # a worker process of its own, whose failed purges are expected: no warnings
        logging.getLogger("account_lifecycle").setLevel(logging.ERROR)
    store = make_store(spec) if own_store else store
    lc = make_lifecycle(store, ScaledClock(t0), Path(log), seed)
    counts: Counter[str] = Counter()
    clock = ScaledClock(t0)
    sent = 0
    while sent < commands or clock.now() < START + THROUGH:
        sent += 1
        n = rng.randrange(ACCOUNTS)
        account = f"acct-{n}"
        owner, member = Actor.user(f"owner-{n}"), Actor.user(f"member-{n}")
        actor = rng.choice([owner, owner, owner, member, Actor.support("desk"), Actor.user("stranger")])
        command = rng.choice(
            [
                "open",
                "request",
                "survey",
                "skip",
                "withdraw",
                "confirm",
                "confirm",
                "restore",
                "sweep",
                "service",
            ]
        )
        try:
            if command == "open":
                lc.open(account, owner=f"owner-{n}", members=[f"member-{n}"], identity=f"id-{n}@example.com")
            elif command == "request":
                lc.request_cancellation(account, actor)
            elif command == "survey":
                lc.submit_survey(account, actor, rng.choice(["keep_account", "book_meeting", "cancel"]))
            elif command == "skip":
                lc.skip_survey(account, actor)
            elif command == "withdraw":
                lc.withdraw(account, actor)
            elif command == "confirm":
                lc.confirm(account, actor)
            elif command == "restore":
                lc.restore(account, rng.choice([owner, Actor.support("desk")]))
            elif command == "service":
                lc.cancel_service(account, actor, "messages")
            else:
                lc.sweep(limit=10)
            counts[f"{command}:ok"] += 1
        except LifecycleError as exc:
            counts[f"{command}:{type(exc).__name__}"] += 1
    if own_store:
        store.close()
    return dict(counts)
