"""How Acme builds its lifecycle: its policy file, its purgers, its prerequisite check."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from account_lifecycle import AccountStore, Clock, Lifecycle, Policy
from acme.purgers import Database, TablePurger

POLICY = Policy.load(Path(__file__).resolve().parents[1] / "acme_policy.toml")


def purgers_for(db: Database) -> list[TablePurger]:
    return [TablePurger(category.name, db) for category in POLICY.purge.categories]


def build_lifecycle(
    store: AccountStore,
    db: Database,
    open_invoices: Callable[[str], Sequence[str]],
    clock: Clock | None = None,
) -> Lifecycle:
    """Acme's lifecycle; ``open_invoices(account_id)`` lists the invoices still unpaid."""
    return Lifecycle(
        POLICY,
        store=store,
        purgers=purgers_for(db),
        prerequisites={"open_invoices": open_invoices},
        clock=clock,
    )
