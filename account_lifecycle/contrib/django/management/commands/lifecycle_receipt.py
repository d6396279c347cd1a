"""``manage.py lifecycle_receipt ACCOUNT``: the erasure receipt of a purged account, as JSON."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from account_lifecycle.contrib.django import conf
from account_lifecycle.errors import LifecycleError

__all__ = ["Command"]


class Command(BaseCommand):
    """Prints ``ErasureReceipt.to_json()``; exit 1 if the account is unknown or not purged."""

    help = "Print the erasure receipt of a purged account as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        """The account id."""
        parser.add_argument("account", metavar="ACCOUNT")

    def handle(self, *args: Any, **options: Any) -> None:
        """Print the receipt."""
        try:
            receipt = conf.lifecycle().receipt(options["account"])
        except LifecycleError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(receipt.to_json())
