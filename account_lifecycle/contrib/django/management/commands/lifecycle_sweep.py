"""``manage.py lifecycle_sweep [--limit N] [--loop [--interval S]]``: ``Lifecycle.sweep`` and
then ``Lifecycle.relay`` (the outbox: ``lifecycle_event`` signals and the host's durable
listeners) once, or as a worker that does both every *interval* seconds until stopped (SIGINT
or SIGTERM)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from account_lifecycle.contrib.django import conf
from account_lifecycle.errors import LifecycleError

__all__ = ["Command"]


class Command(BaseCommand):
    """Sweeps (recovery windows that ended, unfinished and retried purges, reminders), then
    relays the outbox to its durable listeners."""

    help = "Run the lifecycle's sweep once, or every --interval seconds with --loop."

    def add_arguments(self, parser: CommandParser) -> None:
        """``--limit``, ``--loop``, ``--interval`` and ``--runs`` (a bounded loop, for tests)."""
        parser.add_argument("--limit", type=int, default=None, help="accounts per sweep (default: all due)")
        parser.add_argument("--loop", action="store_true", help="keep sweeping until stopped")
        parser.add_argument("--interval", type=float, default=60.0, help="seconds between sweeps with --loop")
        parser.add_argument("--runs", type=int, default=None, help="with --loop: stop after this many sweeps")

    def handle(self, *args: Any, **options: Any) -> None:
        """Sweep once, or loop; each sweep prints one line of what it did."""
        limit, interval, runs = options["limit"], options["interval"], options["runs"]
        if limit is not None and limit < 0:
            raise CommandError(f"--limit must be >= 0, got {limit}")
        if interval <= 0:
            raise CommandError(f"--interval must be > 0, got {interval}")
        stop = threading.Event()
        previous: dict[signal.Signals, Any] = {}
        if options["loop"] and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, lambda *_: stop.set())
        try:
            done = 0
            while True:
                self._sweep_once(limit)
                done += 1
                if not options["loop"] or (runs is not None and done >= runs):
                    return
                if stop.wait(interval):  # woken early by a signal: the worker stops
                    return
        finally:
            for signum, handler in previous.items():  # the caller's handlers, as they were
                signal.signal(signum, handler)

    def _sweep_once(self, limit: int | None) -> None:
        try:
            lc = conf.lifecycle()
            report = lc.sweep(limit)  # relays the outbox after the sweep (report.relayed)
            cursors = lc.store.outbox_cursors()  # type: ignore[attr-defined]
            dead = len(lc.store.outbox_dead_letters())  # type: ignore[attr-defined]
        except LifecycleError as exc:
            raise CommandError(str(exc)) from None
        failing = [c for c in cursors if c.error]
        self.stdout.write(
            f"swept: {len(report.purged)} purged, {len(report.restorable)} restorable, "
            f"{len(report.failed)} failed"
        )
        self.stdout.write(
            f"relayed: {report.relayed} events; {len(failing)} listeners retrying, {dead} dead letters"
        )
        for account_id in report.failed:
            self.stderr.write(f"failed: {account_id}")
        for cursor in failing:
            self.stderr.write(f"retrying: {cursor.listener}: {cursor.error}")
