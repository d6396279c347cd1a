"""``manage.py lifecycle_status [--stuck-after DURATION] [--json]``: the store's health, read
only (``DjangoStore.status``): the backlog, the oldest due moment, started erasures, failed steps
by category, live claims by owner, undecodable records and the app's migrations. Exit status 1
when something is stuck longer than ``--stuck-after``, a record cannot be decoded, or the
database needs ``manage.py migrate``: a health check for a probe or cron."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from account_lifecycle.audit import format_time
from account_lifecycle.contrib.django import conf
from account_lifecycle.contrib.django.store import DjangoStore
from account_lifecycle.duration import Duration
from account_lifecycle.errors import StoreError

__all__ = ["Command"]

#: How ``StoreStatus.stuck`` tells to migrate (the library's CLI); here it is Django's command.
_CLI_MIGRATE = "run account-lifecycle migrate"


def _length(text: str) -> timedelta:
    try:
        length = Duration.parse(text).fixed
    except ValueError as exc:
        raise CommandError(f"--stuck-after: {exc}") from None
    if length is None:
        raise CommandError(f"--stuck-after: expected minutes, hours, days or weeks, got {text!r}")
    return length


class Command(BaseCommand):
    """Prints the store's status at the lifecycle's clock; exits 1 when it is stuck."""

    help = "Show the account_lifecycle store's health (backlog, failures, claims); exit 1 when stuck."

    def add_arguments(self, parser: CommandParser) -> None:
        """``--stuck-after`` (default 1 hour) and ``--json``."""
        parser.add_argument(
            "--stuck-after",
            default="1 hour",
            metavar="DURATION",
            help="exit 1 when due work or a started erasure is older than this (default: 1 hour)",
        )
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        """One line per figure (or one JSON object), then ``healthy`` or the reasons."""
        threshold = _length(options["stuck_after"])
        lc = conf.lifecycle()
        store = lc.store
        if not isinstance(store, DjangoStore):
            raise CommandError(f"the configured lifecycle's store is {store!r}, not a DjangoStore")
        try:
            status = store.status(now=lc.clock.now())
        except StoreError as exc:
            raise CommandError(str(exc)) from None
        reasons = tuple(r.replace(_CLI_MIGRATE, "run manage.py migrate") for r in status.stuck(threshold))
        if options["json"]:
            data = {
                **status.to_dict(),
                "stuck": list(reasons),
                "stuck_after_seconds": threshold.total_seconds(),
            }
            self.stdout.write(json.dumps(data, sort_keys=True))
        else:
            oldest = "-" if status.oldest_due is None else format_time(status.oldest_due)
            lines = [
                f"at: {format_time(status.at)}",
                f"migrations: {status.schema_version} applied, {status.library_schema_version} shipped",
                f"due now (backlog): {status.due}, the oldest due {oldest}",
                f"erasures started, not recorded: {status.erasures}",
                f"failed steps: {', '.join(f'{k} {n}' for k, n in status.failed.items()) or '0'}",
                f"live claims: {', '.join(f'{k} {n}' for k, n in status.claims.items()) or '0'}",
                f"undecodable records: {', '.join(status.corrupt) or '0'}",
            ]
            self.stdout.write("\n".join(lines))
            self.stdout.write("healthy" if not reasons else "stuck:\n" + "\n".join(f"  {r}" for r in reasons))
        if reasons:
            more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
            raise CommandError(f"status: {reasons[0]}{more}")
