"""Django for these tests: the example project's settings (examples/django_site), with a SQLite
file in a temporary directory as ``default`` and the PostgreSQL test server as ``pg`` (in a
schema of its own, created and migrated when a test first needs it). The lifecycle's clock is
a ``ManualClock`` the tests move.

Settings are process-wide, so they are configured once, when pytest imports this file."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("django", reason="Django is not installed: pip install -e '.[django]'")

import django
from django.conf import settings

from account_lifecycle import ManualClock

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "examples" / "django_site"
#: Where the lifecycle's clock starts in every test.
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
#: The lifecycle's clock in every Django test (set back to START by the ``clock`` fixture).
CLOCK = ManualClock(START)
_TMP = Path(tempfile.mkdtemp(prefix="al-django-"))
PG_SCHEMA = f"al_django_{os.getpid()}_{os.urandom(4).hex()}"


def _pg_database() -> dict[str, Any]:
    import pg

    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:  # the postgres extra is missing: the pg tests skip with pg's reason
        return {"ENGINE": "django.db.backends.postgresql", "NAME": "test"}
    params = conninfo_to_dict(pg.dsn())
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": params.get("dbname", "test"),
        "USER": params.get("user", "postgres"),
        "PASSWORD": params.get("password", ""),
        "HOST": params.get("host", "127.0.0.1"),
        "PORT": params.get("port", "5432"),
        "OPTIONS": {"options": f"-c search_path={PG_SCHEMA}"},
    }


def _configure() -> None:
    if settings.configured:
        return
    sys.path.insert(0, str(SITE))
    base = importlib.import_module("allclients_site.settings")
    values = {name: getattr(base, name) for name in dir(base) if name.isupper()}
    values["DATABASES"] = {
        "default": {
            **base.DATABASES["default"],
            "NAME": str(_TMP / "django.sqlite3"),
        },
        "pg": _pg_database(),
        # a PostgreSQL server nobody listens for (storage failures), with a password to hide
        "unreachable": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "test",
            "USER": "postgres",
            "PASSWORD": "hunter2-secret",
            "HOST": "127.0.0.1",
            "PORT": "1",
            "OPTIONS": {"connect_timeout": 3},
        },
        # the same file with SQLite's default DEFERRED transactions (the fallback without the
        # recommended "transaction_mode": "IMMEDIATE")
        "deferred": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(_TMP / "django.sqlite3"),
            "OPTIONS": {"timeout": 30},
        },
    }
    values["ACCOUNT_LIFECYCLE"] = {**base.ACCOUNT_LIFECYCLE, "CLOCK": CLOCK}
    values["ALLOWED_HOSTS"] = [*base.ALLOWED_HOSTS, "testserver"]  # django.test.Client's host
    values["PASSWORD_HASHERS"] = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
    settings.configure(**values)
    django.setup()
    from django.core.management import call_command

    call_command("migrate", database="default", verbosity=0)


_configure()


def pytest_sessionfinish(session: pytest.Session) -> None:
    from django.db import connections

    connections.close_all()
    if PG_SCHEMA in _pg_ready:
        import pg

        pg.drop_schema(pg.dsn(), PG_SCHEMA)
    shutil.rmtree(_TMP, ignore_errors=True)


_pg_ready: set[str] = set()


def migrate_pg() -> None:
    """Create the test schema on the PostgreSQL server and migrate it, once per session (skip,
    or fail under CI=true, when the server is unreachable)."""
    import pg

    target = pg.require_server()
    if PG_SCHEMA in _pg_ready:
        return
    import psycopg
    from django.core.management import call_command
    from psycopg import sql

    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(PG_SCHEMA)))
    _pg_ready.add(PG_SCHEMA)
    call_command("migrate", database="pg", verbosity=0)


def empty_tables(using: str) -> None:
    """Delete every row of the library's tables and of the example's (a fresh store)."""
    from django.apps import apps
    from django.db import transaction

    from account_lifecycle.contrib.django import models as m

    order = [
        m.DeadLetterRow,
        m.OutboxCursorRow,
        m.OutboxEntryRow,
        m.SealedValueRow,
        m.IdentifierRow,
        m.EventRow,
        m.AccountRow,
    ]
    with transaction.atomic(using=using):
        for model in order:
            model.objects.using(using).all().delete()
        for model in apps.get_app_config("crm").get_models():
            model.objects.using(using).all().delete()


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    """The lifecycle's clock, back at its start before each test."""
    CLOCK.set(START)
    return CLOCK


@pytest.fixture
def sqlite_db() -> str:
    """The SQLite alias, its tables empty."""
    from django.contrib.auth.models import User

    empty_tables("default")
    User.objects.all().delete()
    return "default"


@pytest.fixture
def pg_db() -> str:
    """The PostgreSQL alias, its schema migrated and its tables empty."""
    migrate_pg()
    empty_tables("pg")
    return "pg"


@pytest.fixture(autouse=True)
def _threads_close_their_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread a test starts closes its Django connections when it ends, as Django asks of any
    thread a host starts (the contract suite's threads are the library's, so it is done here)."""
    import threading

    from django.db import connections

    run = threading.Thread.run

    def run_then_close(self: threading.Thread) -> None:
        try:
            run(self)
        finally:
            connections.close_all()

    monkeypatch.setattr(threading.Thread, "run", run_then_close)


@pytest.fixture
def lc(sqlite_db: str, clock: ManualClock) -> Iterator[Any]:
    """The lifecycle the settings configure (ALLCLIENTS, the example's ORM purgers), on the
    SQLite database, built afresh for the test."""
    from account_lifecycle.contrib.django import conf

    conf.reset()
    yield conf.lifecycle()
    conf.reset()


def open_customer(lc: Any, username: str = "ann") -> tuple[Any, str]:
    """A customer user with an open account and a row of each of the example's categories."""
    from crm.models import Appointment, Contact, Item
    from django.contrib.auth.models import User

    user = User.objects.create_user(username, password="pw")
    account_id = f"acct-{user.pk}"
    lc.open(account_id, owner=str(user.pk))
    Contact.objects.create(account_id=account_id, name="Bob")
    Appointment.objects.create(account_id=account_id, title="Kick-off")
    for kind in ("todos", "email_templates", "autoresponders", "history", "backups"):
        Item.objects.create(account_id=account_id, kind=kind, text="x")
    return user, account_id
