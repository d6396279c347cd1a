"""The Django app of account_lifecycle: add ``"account_lifecycle.contrib.django"`` to
``INSTALLED_APPS``."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks

__all__ = ["AccountLifecycleConfig"]


class AccountLifecycleConfig(AppConfig):
    """Registers the models (tables ``account_lifecycle_*``) and the settings' system checks."""

    name = "account_lifecycle.contrib.django"
    label = "account_lifecycle"
    verbose_name = "Account lifecycle"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the system checks of ``ACCOUNT_LIFECYCLE``."""
        from account_lifecycle.contrib.django.checks import check_settings

        checks.register(check_settings, "account_lifecycle")
