"""The outbox survives the death of its process: a child process commits commands with durable
listeners configured and is SIGKILLed at a chosen point, deterministically (it prints a line
there and blocks; this test kills it on that line); a fresh child then relays.

- Killed after the commit, before any delivery: after the restart each listener receives each
  event exactly once (once per cursor), and a further relay delivers nothing.
- Killed after the listener ran, before its cursor advanced: that event is delivered exactly
  once more (at least once: listeners dedupe by ``(account_id, seq)``), the others once.

Listeners append ``listener account_id seq`` to a ledger file (flushed and synced), so the test
sees what was really delivered. On SQLite and PostgreSQL (the ``backend`` fixture).

This file is also the child's program: ``python test_outbox_kill.py '<json args>'``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from backends import Backend

from account_lifecycle import Actor, AuditEvent, Lifecycle, ManualClock, policies
from account_lifecycle.testing.fakes import fake_purgers

POLICY = policies.ALLCLIENTS
OWNER = Actor.user("owner")
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
LISTENERS = ("mailer", "mirror")
_WAIT = 120  # seconds: a bound on each wait for the child, never a measure of anything


# -- the child ---------------------------------------------------------------------------------


def _child(args: dict[str, Any]) -> None:
    backend = Backend(**args["backend"])
    ledger = Path(args["ledger"])
    block_in = args.get("block_in")  # "mailer": block inside its first delivery
    blocked: list[bool] = []

    def listener(name: str) -> Any:
        def deliver(event: AuditEvent) -> None:
            with ledger.open("a") as out:
                out.write(f"{name} {event.account_id} {event.seq}\n")
                out.flush()
                os.fsync(out.fileno())
            if name == block_in and not blocked:
                blocked.append(True)
                print("delivered", flush=True)  # the listener ran; its cursor has not moved
                sys.stdin.readline()  # blocks until killed

        return deliver

    store = backend.build()
    clock = ManualClock(datetime.fromisoformat(args["now"]))
    lc = Lifecycle(
        POLICY,
        store=store,
        clock=clock,
        purgers=fake_purgers(POLICY).values(),
        outbox_listeners={name: listener(name) for name in LISTENERS},
    )
    if args["step"] == "commit":
        for account_id in ("k-1", "k-2"):
            lc.open(account_id, owner="owner")
            lc.request_cancellation(account_id, OWNER)
        print("committed", flush=True)  # committed; nothing relayed
        sys.stdin.readline()  # blocks until killed
    else:
        report = lc.relay()
        print(json.dumps({"delivered": dict(report.delivered), "busy": list(report.busy)}), flush=True)
    store.close()


# -- the test ------------------------------------------------------------------------------------


def _spawn(args: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, json.dumps(args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])},
    )


def _kill_on(child: subprocess.Popen[str], line: str) -> None:
    """Wait for *line* from the child, then SIGKILL it (it is blocked there)."""
    assert child.stdout is not None
    got = child.stdout.readline().strip()
    if got != line:
        child.kill()
        _, err = child.communicate(timeout=_WAIT)
        raise AssertionError(f"the child said {got!r}, not {line!r}: {err}")
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=_WAIT)  # reaps it and closes the pipes
    assert child.returncode == -signal.SIGKILL


def _relay(args: dict[str, Any], now: datetime) -> dict[str, Any]:
    child = _spawn({**args, "step": "relay", "now": now.isoformat()})
    out, err = child.communicate(timeout=_WAIT)
    assert child.returncode == 0, err
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _ledger(path: Path) -> Counter[tuple[str, str, int]]:
    if not path.exists():
        return Counter()
    lines = [line.split() for line in path.read_text().splitlines()]
    return Counter((name, account_id, int(seq)) for name, account_id, seq in lines)


def _events() -> set[tuple[str, int]]:
    return {(a, seq) for a in ("k-1", "k-2") for seq in (1, 2)}


def _commit_then_kill(args: dict[str, Any]) -> None:
    _kill_on(_spawn({**args, "step": "commit", "now": T0.isoformat()}), "committed")


def test_killed_after_the_commit_each_listener_gets_each_event_once(backend: Backend, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    args = {"backend": {"kind": backend.kind, "location": backend.location, "schema": backend.schema}}
    args["ledger"] = str(ledger)
    _commit_then_kill(args)
    assert _ledger(ledger) == Counter()  # killed before any delivery

    first = _relay(args, T0)
    again = _relay(args, T0 + timedelta(minutes=1))

    assert first == {"delivered": {"mailer": 4, "mirror": 4}, "busy": []}
    assert again == {"delivered": {}, "busy": []}
    assert _ledger(ledger) == Counter({(name, a, seq): 1 for name in LISTENERS for a, seq in _events()})


def test_killed_after_the_listener_ran_the_event_is_delivered_once_more(
    backend: Backend, tmp_path: Path
) -> None:
    """The relay is killed inside the mailer's first delivery, after it wrote its ledger line:
    the cursor did not move. The restarted relay (on a clock past the dead relay's lease)
    delivers that event again, once, and every other event once; the mirror, which the dead
    relay never reached, gets each event once."""
    ledger = tmp_path / "ledger.txt"
    args: dict[str, Any] = {
        "backend": {"kind": backend.kind, "location": backend.location, "schema": backend.schema},
        "ledger": str(ledger),
    }
    _commit_then_kill(args)
    _kill_on(_spawn({**args, "step": "relay", "now": T0.isoformat(), "block_in": "mailer"}), "delivered")
    assert _ledger(ledger) == Counter({("mailer", "k-1", 1): 1})

    during_lease = _relay(args, T0 + timedelta(minutes=1))
    assert during_lease == {"delivered": {"mirror": 4}, "busy": ["mailer"]}  # the dead relay's claim
    after = _relay(args, T0 + timedelta(minutes=6))
    again = _relay(args, T0 + timedelta(minutes=7))

    assert after == {"delivered": {"mailer": 4}, "busy": []}
    assert again == {"delivered": {}, "busy": []}
    expected = Counter({(name, a, seq): 1 for name in LISTENERS for a, seq in _events()})
    expected[("mailer", "k-1", 1)] = 2
    assert _ledger(ledger) == expected


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
