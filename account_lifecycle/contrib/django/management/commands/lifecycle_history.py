"""``manage.py lifecycle_history ACCOUNT [--json]``: the account's audit trail, verified."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from account_lifecycle.contrib.django import conf
from account_lifecycle.errors import HistoryTampered, LifecycleError

__all__ = ["Command"]


class Command(BaseCommand):
    """Prints one line per audit event (or JSON), then whether the chain verifies."""

    help = "Show an account's audit trail and verify its hash chain."

    def add_arguments(self, parser: CommandParser) -> None:
        """The account id, and ``--json`` for one JSON object per line."""
        parser.add_argument("account", metavar="ACCOUNT")
        parser.add_argument("--json", action="store_true", help="one JSON object per event")

    def handle(self, *args: Any, **options: Any) -> None:
        """Print the events; exit 1 if the account is unknown or its chain does not verify."""
        lc = conf.lifecycle()
        account_id = options["account"]
        try:
            events = lc.history(account_id)
        except LifecycleError as exc:
            raise CommandError(str(exc)) from None
        for e in events:
            if options["json"]:
                self.stdout.write(json.dumps(e.to_dict(), sort_keys=True))
            else:
                self.stdout.write(
                    f"{e.seq:>4}  {e.at.isoformat()}  {e.actor}  {e.action}  "
                    f"{e.from_state or '-'} -> {e.to_state}"
                )
        try:
            lc.verify_history(account_id)
        except HistoryTampered as exc:
            raise CommandError(f"chain broken at event {exc.seq}: {exc.reason}") from None
        self.stdout.write(f"chain verified: {len(events)} events")
