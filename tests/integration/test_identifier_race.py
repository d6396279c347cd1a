"""Identity quarantine under real parallelism: spawned processes, each with its own store and
Lifecycle, open accounts with the same identifier at the same moment, on SQLite and
PostgreSQL. Once the quarantine of the identifier's former holder is over, exactly one of
them wins and every other gets AccountExists naming the kind; while it lasts, none wins.
The lifecycle reads nothing first: the store's unique key decides."""

from __future__ import annotations

import multiprocessing
import traceback
from datetime import UTC, datetime, timedelta
from typing import Any

from backends import Backend

from account_lifecycle import (
    AccountExists,
    AccountNotFound,
    AccountStore,
    Actor,
    Lifecycle,
    ManualClock,
    Policy,
    State,
)
from account_lifecycle.testing.fakes import fake_identity_keys

POLICY = Policy.from_toml(
    'name = "quarantine"\n[survey]\nmode = "off"\n[identity]\nemail = "after 30 days"\n'
)
OWNER = Actor.user("owner")
WORKERS = 4
ROUNDS = 6
SETUP_AT = datetime(2031, 1, 10, 9, 0, tzinfo=UTC)
RACE_AT = SETUP_AT + timedelta(days=31)
KEYS = fake_identity_keys()


def set_up(store: AccountStore) -> tuple[list[str], list[str]]:
    """Purged accounts holding ``free-<n>`` (quarantine over at RACE_AT) and ``held-<n>`` (purged
    ten days later: still quarantined at RACE_AT)."""
    clock = ManualClock(SETUP_AT)
    lc = Lifecycle(POLICY, store=store, clock=clock, identity_keys=KEYS)
    free, held = [], []
    for group, names, offset in (("free", free, timedelta(0)), ("held", held, timedelta(days=10))):
        clock.set(SETUP_AT + offset)
        for n in range(ROUNDS):
            email = f"{group}-{n}@example.com"
            lc.open(f"old-{group}-{n}", owner=OWNER.id, identifiers={"email": email})
            lc.request_cancellation(f"old-{group}-{n}", OWNER)
            assert lc.confirm(f"old-{group}-{n}", OWNER).state is State.PURGED
            names.append(email)
    return free, held


def process_main(backend: Backend, worker: int, emails: list[str], barrier: Any, results: Any) -> None:
    """Open one account per e-mail, all workers at once, and report each outcome."""
    try:
        store = backend.build()
        lc = Lifecycle(POLICY, store=store, clock=ManualClock(RACE_AT), identity_keys=KEYS)
        outcomes = []
        for email in emails:
            barrier.wait(timeout=60)
            try:
                lc.open(f"new-{worker}-{email}", owner=OWNER.id, identifiers={"email": email})
                outcomes.append((email, "won", None))
            except AccountExists as exc:
                outcomes.append((email, "refused", exc.kind))
        close = getattr(store, "close", None)
        if callable(close):
            close()
        results.put((worker, outcomes))
    except BaseException:
        results.put((worker, traceback.format_exc()))


def race(backend: Backend, emails: list[str]) -> dict[str, list[tuple[str, str | None]]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=process_main, args=(backend, n, emails, barrier, results)) for n in range(WORKERS)
    ]
    for process in processes:
        process.start()
    reports = [results.get(timeout=180) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    crashed = [report for _, report in reports if isinstance(report, str)]
    assert crashed == []
    by_email: dict[str, list[tuple[str, str | None]]] = {email: [] for email in emails}
    for _, outcomes in reports:
        for email, outcome, kind in outcomes:
            by_email[email].append((outcome, kind))
    return by_email


def test_processes_opening_one_identifier_get_exactly_one_winner(backend: Backend) -> None:
    """Four processes open an account with each freed e-mail at once: one wins each, the others
    get AccountExists naming the kind; for e-mails still quarantined, all are refused; the
    store holds each freed e-mail for its single winner."""
    store = backend.build()
    try:
        free, held = set_up(store)

        outcomes = race(backend, free + held)

        for email in free:
            assert sorted(outcomes[email]) == [("refused", "email")] * (WORKERS - 1) + [("won", None)], email
        for email in held:
            assert outcomes[email] == [("refused", "email")] * WORKERS, email
        lc = Lifecycle(POLICY, store=store, clock=ManualClock(RACE_AT), identity_keys=KEYS)
        winners = [
            f"new-{w}-{email}" for email in free for w in range(WORKERS) if _exists(lc, f"new-{w}-{email}")
        ]
        assert len(winners) == len(free)
        assert {lc.get(a).identifiers["email"].value for a in winners} == {
            KEYS.digest("email", email) for email in free
        }
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()


def _exists(lc: Lifecycle, account_id: str) -> bool:
    try:
        lc.get(account_id)
    except AccountNotFound:
        return False
    return True
