"""Every public name of the Django app, and every public method of its classes, has a docstring."""

from __future__ import annotations

import importlib
import inspect

import pytest

MODULES = [
    "account_lifecycle.contrib.django",
    "account_lifecycle.contrib.django.admin",
    "account_lifecycle.contrib.django.apps",
    "account_lifecycle.contrib.django.checks",
    "account_lifecycle.contrib.django.conf",
    "account_lifecycle.contrib.django.models",
    "account_lifecycle.contrib.django.signals",
    "account_lifecycle.contrib.django.store",
    *(
        f"account_lifecycle.contrib.django.management.commands.{name}"
        for name in ("lifecycle_sweep", "lifecycle_verify", "lifecycle_history", "lifecycle_receipt")
    ),
]


def public_names() -> list[str]:
    found = []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        assert module.__doc__, module_name
        for name in module.__all__:
            value = getattr(module, name)
            if not (inspect.isclass(value) or inspect.isfunction(value)):
                continue
            found.append(f"{module_name}:{name}")
            if inspect.isclass(value):
                for attribute, member in vars(value).items():
                    function = member.fget if isinstance(member, property) else member
                    # only what the app's source defines (Django's metaclasses add ``media``)
                    if (
                        not attribute.startswith("_")
                        and inspect.isfunction(function)
                        and function.__module__ == module_name
                    ):
                        found.append(f"{module_name}:{name}.{attribute}")
    return found


@pytest.mark.parametrize("name", public_names())
def test_every_public_name_has_a_docstring(name: str) -> None:
    module_name, _, path = name.partition(":")
    owner, _, attribute = path.partition(".")
    value = getattr(importlib.import_module(module_name), owner)
    if attribute:
        member = vars(value)[attribute]
        doc = (member.fget if isinstance(member, property) else member).__doc__
    else:
        doc = value.__dict__.get("__doc__") if inspect.isclass(value) else value.__doc__
    assert doc, f"{name} has no docstring"
    assert len(inspect.cleandoc(doc)) >= 10, f"{name}'s docstring says nothing"


def test_the_scan_sees_the_store_and_the_admin() -> None:
    names = public_names()
    assert "account_lifecycle.contrib.django.store:DjangoStore.claim_due" in names
    assert "account_lifecycle.contrib.django.admin:AccountAdmin.restore_accounts" in names
