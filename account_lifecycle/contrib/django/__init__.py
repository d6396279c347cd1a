"""account_lifecycle as a Django app (extra ``django``): models and migrations for the library's
tables, ``DjangoStore`` on the ORM inside the caller's ``transaction.atomic()``, settings checked
at startup, management commands, the admin for support staff, and signals fed from the outbox.

::

    INSTALLED_APPS = [..., "account_lifecycle.contrib.django"]
    ACCOUNT_LIFECYCLE = {"POLICY": "allclients", "PURGERS": ["crm.purgers.PURGERS"]}

    from account_lifecycle.contrib.django import lifecycle
    lifecycle().confirm(account_id, Actor.user(str(request.user.pk)))

See ``docs/django.md``. Importing this package needs no configured settings; ``lifecycle()`` and
``DjangoStore`` need the app registry ready.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["DjangoStore", "lifecycle", "support_actor"]

if TYPE_CHECKING:
    from account_lifecycle.contrib.django.store import DjangoStore
    from account_lifecycle.lifecycle import Lifecycle
    from account_lifecycle.model import Actor


def lifecycle() -> Lifecycle:
    """The ``Lifecycle`` ``settings.ACCOUNT_LIFECYCLE`` describes, built once per process."""
    from account_lifecycle.contrib.django.conf import lifecycle as configured

    return configured()


def support_actor(user: Any) -> Actor:
    """The ``Actor`` a staff user acts as: ``Actor.support`` with the user's primary key (never a
    name or an e-mail address: actor ids are written into the audit trail)."""
    from account_lifecycle.model import Actor as _Actor

    return _Actor.support(f"staff-{user.pk}")


def __getattr__(name: str) -> Any:
    """``DjangoStore`` is imported on first use (it needs the app registry ready)."""
    if name == "DjangoStore":
        from account_lifecycle.contrib.django.store import DjangoStore

        return DjangoStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
