"""Target 2: a durable command on ``SQLiteStore`` against a hand-written ``sqlite3`` transaction.

The library runs ``request_cancellation`` / ``withdraw`` by the owner on ``ALLCLIENTS``
accounts (load, decide, hash-chained audit event, ``BEGIN IMMEDIATE``, compare-and-set
``UPDATE``, event ``INSERT``, ``COMMIT``). The baseline is what a careful hand-written
version does against its own database file of the same schema, with the same pragmas
(``journal_mode=WAL``, the same ``synchronous``): ``BEGIN IMMEDIATE``, read the row, the
same compare-and-set ``UPDATE ... WHERE account_id = ? AND version = ?`` with a body of the
same length, an ``INSERT`` of an event body of the same length, ``COMMIT``. It encodes
nothing and hashes nothing.

``synchronous=FULL`` (the store's default, durable against power loss) is the target;
``NORMAL`` (durable against a process crash) is shown too, since there the fsync no longer
hides the CPU cost.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

from account_lifecycle import Actor, Lifecycle, SQLiteStore, SystemClock, policies
from account_lifecycle.adapters.sqlite import _SCHEMA  # the store's own schema, for like-for-like rows
from account_lifecycle.testing.fakes import fake_identity_keys
from bench._common import Result, interleaved, median_ns_per_op, quick_mode, report
from bench.engine import noop_purgers

POLICY = policies.ALLCLIENTS


class HandWritten:
    """The baseline: one compare-and-set transaction per command in plain ``sqlite3``."""

    def __init__(self, path: Path, synchronous: str, bodies: dict[str, str], event_body: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={synchronous}")
        self.conn.execute("PRAGMA foreign_keys=ON")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                self.conn.execute(statement)
        self.bodies = bodies  # state -> a record body of the length the library writes
        self.event_body = event_body
        self.versions: dict[str, int] = {}
        self.seqs: dict[str, int] = {}

    def seed(self, account_id: str, identity: str) -> None:
        self.conn.execute(
            "INSERT INTO accounts (account_id, version, state, live_identity, due_at, body)"
            " VALUES (?, 1, 'active', ?, NULL, ?)",
            (account_id, identity, self.bodies["active"]),
        )
        self.conn.execute(
            "INSERT INTO events (account_id, seq, body) VALUES (?, 1, ?)", (account_id, self.event_body)
        )
        self.versions[account_id] = 1
        self.seqs[account_id] = 1

    def command(self, account_id: str, identity: str, to_state: str) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = conn.execute(
                "SELECT version FROM accounts WHERE account_id = ?", (account_id,)
            ).fetchone()
            cursor = conn.execute(
                "UPDATE accounts SET version = ?, state = ?, live_identity = ?, due_at = ?,"
                " claim_owner = ?, claim_until = ?, body = ?"
                " WHERE account_id = ? AND version = ?",
                (
                    version + 1,
                    to_state,
                    identity,
                    None,
                    None,
                    None,
                    self.bodies[to_state],
                    account_id,
                    version,
                ),
            )
            if cursor.rowcount != 1:
                raise RuntimeError("concurrent update")
            seq = self.seqs[account_id] + 1
            conn.execute(
                "INSERT INTO events (account_id, seq, body) VALUES (?, ?, ?)",
                (account_id, seq, self.event_body),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.seqs[account_id] = seq


def durable_command(synchronous: str, quick: bool, tmp: Path) -> Result:
    n = 20 if quick else 50
    rounds = 5 if quick else 15
    store = SQLiteStore(tmp / f"library-{synchronous}.db", synchronous=synchronous)
    lc = Lifecycle(
        POLICY,
        store=store,
        purgers=noop_purgers(POLICY),
        clock=SystemClock(),
        identity_keys=fake_identity_keys(),
    )
    ids = [f"acct-{i}" for i in range(n)]
    identities = [f"{a}@example.com" for a in ids]
    owners = [Actor.user(f"owner-{i}") for i in range(n)]
    for account_id, owner, identity in zip(ids, owners, identities, strict=True):
        lc.open(account_id, owner=owner.id, identity=identity)
    lc.request_cancellation(ids[0], owners[0])

    # Row sizes the library writes, measured on its own rows.
    conn = store._conn()
    bodies = {
        state: conn.execute("SELECT body FROM accounts WHERE state = ? LIMIT 1", (state,)).fetchone()[0]
        for state in ("active", "surveyed")
    }
    event_body = conn.execute(
        "SELECT body FROM events WHERE account_id = ? AND seq = 2", (ids[0],)
    ).fetchone()[0]
    lc.withdraw(ids[0], owners[0])
    baseline = HandWritten(tmp / f"hand-{synchronous}.db", synchronous, bodies, event_body)
    for account_id, identity in zip(ids, identities, strict=True):
        baseline.seed(account_id, identity)

    pairs = list(zip(ids, owners, strict=True))
    triples = list(zip(ids, identities, strict=True))

    def library() -> None:
        for account_id, owner in pairs:
            lc.request_cancellation(account_id, owner)
        for account_id, owner in pairs:
            lc.withdraw(account_id, owner)

    def hand() -> None:
        for account_id, identity in triples:
            baseline.command(account_id, identity, "surveyed")
        for account_id, identity in triples:
            baseline.command(account_id, identity, "active")

    medians = interleaved(
        {"library": median_ns_per_op(library, 2 * n), "hand": median_ns_per_op(hand, 2 * n)},
        rounds=rounds,
    )
    store.close()
    baseline.conn.close()
    lib, base = medians["library"] / 1000, medians["hand"] / 1000
    target = synchronous == "FULL"
    return Result(
        f"2 durable command on SQLiteStore, synchronous={synchronous}",
        lib,
        "us",
        "hand-written sqlite3 transaction",
        base,
        lib / base,
        "<= 1.3x" if target else "",
        (lib / base <= 1.3) if target else None,
        notes=[
            f"record body {len(bodies['active'])}-{len(bodies['surveyed'])} bytes, "
            f"event body {len(event_body)} bytes; files in {tmp} ({_fs(tmp)})"
        ],
    )


def _fs(path: Path) -> str:
    try:
        best = ""
        fstype = "?"
        with open("/proc/mounts", encoding="utf-8") as f:
            for line in f:
                _, mount, kind, *_ = line.split()
                if str(path).startswith(mount) and len(mount) > len(best):
                    best, fstype = mount, kind
        return f"{fstype} on {best}"
    except OSError:
        return "unknown filesystem"


def run(quick: bool = False) -> list[Result]:
    base = os.environ.get("BENCH_TMPDIR") or None
    with tempfile.TemporaryDirectory(prefix="al-bench-", dir=base) as tmp:
        results = [durable_command(sync, quick, Path(tmp)) for sync in ("FULL", "NORMAL")]
    for r in results:
        report(r)
    return results


if __name__ == "__main__":
    run(quick_mode())
