"""System checks: ``settings.ACCOUNT_LIFECYCLE`` is validated when Django starts (``manage.py
check``, ``runserver``, ``migrate``); each problem has an id (``account_lifecycle.E005``: a
category the policy purges has no purger)."""

from __future__ import annotations

from typing import Any

from django.core import checks

from account_lifecycle.contrib.django.conf import problems

__all__ = ["check_settings"]


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every problem of the settings as a Django check message (an ``Error``, or a ``Warning``)."""
    del app_configs, kwargs
    return [
        (checks.Warning if p.warning else checks.Error)(p.msg, hint=p.hint or None, id=p.id)
        for p in problems()
    ]
