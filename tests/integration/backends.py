"""Where the integration tests' stores live: a SQLite file or a PostgreSQL schema. A
``Backend`` is plain data, so spawned processes receive it and build their own store."""

from __future__ import annotations

from typing import Any

import attrs

from account_lifecycle import SQLiteStore


@attrs.frozen
class Backend:
    kind: str  # "sqlite" or "postgres"
    location: str  # a file path or a DSN
    schema: str = ""

    def build(self, connections: int = 2) -> Any:
        if self.kind == "sqlite":
            return SQLiteStore(self.location)
        from account_lifecycle import PostgresStore

        return PostgresStore(self.location, schema=self.schema, max_connections=connections)
