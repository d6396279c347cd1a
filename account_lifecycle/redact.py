"""Keeping a database password out of every message: errors, log lines, command-line output.

``dsn_secrets(dsn)`` finds the passwords a connection string holds, in every form a message may
quote them (as written, percent-decoded, percent-encoded), whether it is a URL
(``postgresql://app:secret@host/db``, also a pasted SQLAlchemy ``postgresql+asyncpg://`` URL), a
keyword string (``host=db password=secret``, quoted or not), or a URL or keywords nested in
``dbname``. ``redact(text, secrets)`` replaces each of them, and anything shaped like a password
(``password=...``, the password of ``scheme://user:password@``), by ``***``.

``REDACTOR`` is a ``logging.Filter`` on psycopg's loggers: a store registers its DSN's secrets
there while it is open, so a log line psycopg or its pool writes never carries them either.
Pure Python, no psycopg needed.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Final
from urllib.parse import parse_qsl, quote, unquote

__all__ = ["MASK", "MIN_SECRET", "REDACTOR", "dsn_secrets", "redact"]

MASK: Final = "***"
#: The shortest secret replaced wherever it occurs.
MIN_SECRET: Final = 4

_URL: Final = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<userinfo>[^@/?#\s]*)@")
_URL_PASSWORD: Final = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:@/?#\s]*:)(?P<secret>[^@/?#\s]*)@")
# password=value, password = 'quoted value', sslpassword=..., and ?password=... in a URL
_KEYWORD: Final = re.compile(
    r"(?P<head>\b(?:ssl)?password\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'?|\"[^\"]*\"?|[^\s&;,]+)",
    re.IGNORECASE,
)
_SECRET_KEYS: Final = ("password", "sslpassword")
_MAX_NESTING: Final = 3


def _forms(secret: str) -> set[str]:
    """*secret* as written, percent-decoded and percent-encoded (a message may quote any)."""
    forms = {secret, unquote(secret), quote(secret, safe=""), quote(unquote(secret), safe="")}
    return {form for form in forms if form}


def dsn_secrets(dsn: str, _depth: int = 0) -> frozenset[str]:
    """Every form of every password in *dsn* (URL or keywords, or one nested in ``dbname``)."""
    if not isinstance(dsn, str) or _depth > _MAX_NESTING:
        return frozenset()
    found: set[str] = set()
    for match in _URL.finditer(dsn):
        _user, sep, password = match.group("userinfo").partition(":")
        if sep and password:
            found |= _forms(password)
    if "://" in dsn and "?" in dsn:
        for key, value in parse_qsl(dsn.partition("?")[2], keep_blank_values=False):
            if key.lower() in _SECRET_KEYS:
                found |= _forms(value)
            elif key.lower() == "dbname":
                found |= dsn_secrets(value, _depth + 1)
    for match in _KEYWORD.finditer(dsn):
        raw = match.group("secret")
        found |= _forms(raw)
        inner = raw.strip("'\"")
        if inner:
            found |= _forms(inner)
            found |= _forms(inner.replace("\\'", "'").replace("\\\\", "\\"))
    for match in re.finditer(r"\bdbname\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", dsn):
        nested = match.group(1).strip("'")
        if "=" in nested or "://" in nested:
            found |= dsn_secrets(nested, _depth + 1)
    return frozenset(found)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """*text* with each of *secrets* (longest first) and anything shaped like a password
    replaced by ``***``. A secret shorter than ``MIN_SECRET`` characters is replaced only where
    it stands as a password (after ``password=``, in ``user:password@``): replacing every ``a``
    of a message would make it unreadable, and such a password is no secret anyway."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= MIN_SECRET:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", text)
    return _KEYWORD.sub(lambda m: f"{m.group('head')}{MASK}", text)


class _Redactor(logging.Filter):
    """Rewrites a log record whose message holds a registered secret (or looks like a DSN with
    a password). Secrets are counted: two stores with one password, one closed, still hide it."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: Counter[str] = Counter()

    def register(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self._secrets.update(set(secrets))

    def unregister(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self._secrets.subtract(set(secrets))
            self._secrets = Counter({s: n for s, n in self._secrets.items() if n > 0})

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is logging's business, not ours
            return True
        with self._lock:
            secrets = tuple(self._secrets)
        clean = redact(message, secrets)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        return True


#: The filter on psycopg's loggers (``psycopg``, ``psycopg.pool``): added once, at import.
REDACTOR: Final = _Redactor()
for _name in ("psycopg", "psycopg.pool", "psycopg.conninfo", "psycopg.pq"):
    logging.getLogger(_name).addFilter(REDACTOR)
