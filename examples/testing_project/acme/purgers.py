"""Acme's purgers: each erases one data category of one account from Acme's database."""

from __future__ import annotations

from account_lifecycle import PurgeContext, PurgeResult


class Database:
    """A stand-in for Acme's database: table -> account id -> rows."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, list[str]]] = {}

    def insert(self, table: str, account_id: str, row: str) -> None:
        self.tables.setdefault(table, {}).setdefault(account_id, []).append(row)

    def count(self, table: str, account_id: str) -> int:
        return len(self.tables.get(table, {}).get(account_id, []))

    def delete_account(self, table: str, account_id: str) -> int:
        """Delete the account's rows; how many there were (0 if none: safe to run twice)."""
        return len(self.tables.get(table, {}).pop(account_id, []))


class TablePurger:
    """Erases one category, kept in the table of the same name."""

    def __init__(self, category: str, db: Database) -> None:
        self.category = category
        self.db = db

    @property
    def name(self) -> str:
        return f"acme.table:{self.category}"

    def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:
        erased = self.db.delete_account(self.category, account_id)
        return PurgeResult(items=erased, detail=f"deleted {erased} row(s) from {self.category}")
