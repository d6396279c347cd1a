"""``manage.py lifecycle_verify [ACCOUNT ...]``: verify the audit chain of the given accounts, or
of every account; exit status 1 naming each account whose chain does not verify."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from account_lifecycle.contrib.django import conf
from account_lifecycle.errors import AccountNotFound, HistoryTampered, StoreError

__all__ = ["Command"]


class Command(BaseCommand):
    """Verifies hash chains: every event chains to the one before, the record names the last."""

    help = "Verify the audit chain of the given accounts (default: every account)."

    def add_arguments(self, parser: CommandParser) -> None:
        """The account ids (none: every account)."""
        parser.add_argument("accounts", nargs="*", metavar="ACCOUNT")

    def handle(self, *args: Any, **options: Any) -> None:
        """Verify each chain; one line per broken chain, a summary, exit 1 if any is broken."""
        lc = conf.lifecycle()
        try:
            accounts = options["accounts"] or list(lc.store.account_ids())
        except StoreError as exc:
            raise CommandError(str(exc)) from None
        broken = 0
        for account_id in accounts:
            try:
                lc.verify_history(account_id)
            except HistoryTampered as exc:
                broken += 1
                self.stderr.write(f"{account_id}: chain broken at event {exc.seq}: {exc.reason}")
            except (AccountNotFound, StoreError) as exc:
                broken += 1
                self.stderr.write(f"{account_id}: {exc}")
        if broken:
            raise CommandError(f"{broken} of {len(accounts)} account(s) do not verify")
        self.stdout.write(f"verified {len(accounts)} account(s): every chain is intact")
