"""The data step of the migration to schema 3, shared by the SQLite and PostgreSQL stores:
identities and identifier values stored in plain text by earlier releases become keyed digests
(``identity_keys``). The step needs the deployment's ``IdentityKeys``; a store holding plain
identities refuses to migrate without them, and nothing is changed."""

from __future__ import annotations

import json
from typing import Any, Final

from account_lifecycle.codec import dumps
from account_lifecycle.errors import ConfigurationError
from account_lifecycle.identity_keys import IDENTITY_KIND, IdentityKeys, is_digest

__all__ = ["DIGEST_STEP_NOTE", "digested", "digested_body", "need_keys"]

#: What ``migrate --sql`` prints in place of schema 3's data step.
DIGEST_STEP_NOTE: Final = (
    "-- schema 3 also turns identities stored in plain text into keyed digests, which SQL alone"
    " cannot do: run account-lifecycle migrate with ACCOUNT_LIFECYCLE_IDENTITY_KEYS set"
    " (or store.migrate(identity_keys=...)); it records version 3"
)


def need_keys(where: str) -> ConfigurationError:
    return ConfigurationError(
        f"{where} holds identities in plain text, written by a release before schema 3; the "
        "migration turns them into keyed digests and needs the deployment's keys: pass "
        "identity_keys=IdentityKeys(...) (the same keys the Lifecycle uses) to the store's migrate()"
    )


def digested(keys: IdentityKeys | None, kind: str, value: str, where: str) -> str:
    """*value* of *kind* as its digest (a value that already is one is kept)."""
    if is_digest(value):
        return value
    if keys is None:
        raise need_keys(where)
    return keys.digest(kind, value)


def digested_body(body: str | bytes, keys: IdentityKeys | None, where: str) -> str | None:
    """The record body with its identity and identifier values as digests; None when it holds
    none in plain text, or cannot be decoded (it reads as a corrupt record either way)."""
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    changed = False
    identity = data.get("identity")
    if isinstance(identity, str) and not is_digest(identity):
        data["identity"] = digested(keys, IDENTITY_KIND, identity, where)
        changed = True
    identifiers = data.get("identifiers")
    if isinstance(identifiers, dict):
        for kind, held in identifiers.items():
            value = held.get("value") if isinstance(held, dict) else None
            if isinstance(value, str) and not is_digest(value):
                held["value"] = digested(keys, kind, value, where)
                changed = True
    return dumps(data) if changed else None
