"""The console never migrates a store on its own: a store whose schema is older than the
library's is refused, with the ``account-lifecycle migrate`` command to run."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from account_lifecycle.cli._common import USAGE, _Stop
from account_lifecycle.errors import StoreError

if TYPE_CHECKING:
    from account_lifecycle.adapters.postgres import PostgresStore


def refuse_outdated_sqlite(path: str) -> None:
    """Refuse an existing SQLite file at an older schema version (read read-only). A file that
    does not exist yet, or has none of the library's tables, is created as usual; a file that
    cannot be read is left to ``SQLiteStore`` to report."""
    from account_lifecycle.adapters.sqlite import SCHEMA_VERSION, SQLiteStore

    if not os.path.isfile(path):
        return
    try:
        reader = SQLiteStore.open_read_only(path)
    except StoreError:
        return
    try:
        found = reader.schema_version()
    except StoreError:
        return
    finally:
        reader.close()
    if 0 < found < SCHEMA_VERSION:
        raise _Stop(
            USAGE,
            f"error: SQLite database {path!r} has schema version {found}, older than the library's "
            f"{SCHEMA_VERSION}; run: account-lifecycle migrate --db {path}",
        )


def refuse_outdated_postgres(store: PostgresStore) -> None:
    """Refuse a PostgreSQL schema that was never migrated or is at an older version (the
    message names the schema, never the DSN: it may hold a password)."""
    from account_lifecycle.adapters.postgres import SCHEMA_VERSION

    found = store.schema_version()
    if found < SCHEMA_VERSION:
        store.close()
        state = (
            "was never migrated"
            if found == 0
            else f"has schema version {found}, older than the library's {SCHEMA_VERSION}"
        )
        raise _Stop(
            USAGE,
            f"error: PostgreSQL schema {store.schema!r} {state}; "
            f"run: account-lifecycle migrate --dsn URL --schema {store.schema}",
        )
