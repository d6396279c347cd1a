"""ACCOUNT_LIFECYCLE is validated by Django's system checks, each problem with its id."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks
from django.test.utils import override_settings

from account_lifecycle.contrib.django import conf
from account_lifecycle.errors import ConfigurationError

GOOD: dict[str, Any] = {"POLICY": "allclients", "PURGERS": ["crm.purgers.PURGERS"]}


def ids(**settings: Any) -> list[str]:
    with override_settings(**settings):
        return sorted(m.id for m in checks.run_checks(tags=["account_lifecycle"]))


def test_the_example_settings_pass_every_check() -> None:
    """The example project's configuration raises no error and no warning."""
    assert ids(ACCOUNT_LIFECYCLE=GOOD) == []


def test_a_category_without_a_purger_is_error_e005_naming_it() -> None:
    """Dropping the purgers of ALLCLIENTS reports each of its seven categories."""
    with override_settings(ACCOUNT_LIFECYCLE={"POLICY": "allclients", "PURGERS": []}):
        found = checks.run_checks(tags=["account_lifecycle"])

    assert {m.id for m in found} == {"account_lifecycle.E005"}
    assert all(m.level == checks.ERROR for m in found)
    assert sorted(m.msg.split("'")[1] for m in found) == sorted(
        ["contacts", "appointments", "todos", "email_templates", "autoresponders", "history", "backups"]
    )


def test_missing_settings_unknown_keys_and_bad_values_have_their_ids() -> None:
    """No ACCOUNT_LIFECYCLE, an unknown key, an unknown policy, a purger that cannot be imported."""
    assert ids(ACCOUNT_LIFECYCLE=None) == ["account_lifecycle.E001"]
    assert ids(ACCOUNT_LIFECYCLE={**GOOD, "PURGER": []}) == ["account_lifecycle.E002"]
    assert ids(ACCOUNT_LIFECYCLE={**GOOD, "POLICY": "no.such.policy"}) == ["account_lifecycle.E003"]
    assert ids(ACCOUNT_LIFECYCLE={**GOOD, "POLICY": "missing.toml"}) == ["account_lifecycle.E003"]
    assert ids(ACCOUNT_LIFECYCLE={**GOOD, "PURGERS": ["crm.purgers.NOPE"]}) == ["account_lifecycle.E004"]
    assert ids(ACCOUNT_LIFECYCLE={**GOOD, "PURGERS": [object()]}) == ["account_lifecycle.E004"]
    assert ids(ACCOUNT_LIFECYCLE={**GOOD, "DATABASE": "elsewhere"}) == ["account_lifecycle.E008"]


def test_a_prerequisite_without_a_check_is_e006() -> None:
    """SMRTPHONE needs the port_outs check (and its own purgers, E005)."""
    assert "account_lifecycle.E006" in ids(ACCOUNT_LIFECYCLE={"POLICY": "smrtphone", "PURGERS": []})


def test_use_tz_false_is_e011_and_sqlite_without_immediate_is_w001(settings_databases: Any) -> None:
    """Aware moments need USE_TZ; a DEFERRED SQLite database is warned about."""
    assert ids(ACCOUNT_LIFECYCLE=GOOD, USE_TZ=False) == ["account_lifecycle.E011"]
    deferred = {**settings_databases, "default": {**settings_databases["default"], "OPTIONS": {}}}
    with (
        pytest.warns(UserWarning, match="Overriding setting DATABASES"),  # Django's own warning
        override_settings(ACCOUNT_LIFECYCLE=GOOD, DATABASES=deferred),
    ):
        [warning] = checks.run_checks(tags=["account_lifecycle"])
    assert (warning.id, warning.level) == ("account_lifecycle.W001", checks.WARNING)


def test_lifecycle_raises_configuration_error_with_the_id_when_settings_are_invalid() -> None:
    """Code that asks for the lifecycle despite a failing check gets the check's id."""
    conf.reset()
    try:
        with (
            override_settings(ACCOUNT_LIFECYCLE={"POLICY": "allclients", "PURGERS": "crm"}),
            pytest.raises(ConfigurationError, match=r"account_lifecycle\.E004"),
        ):
            conf.lifecycle()
    finally:
        conf.reset()


@pytest.fixture
def settings_databases() -> Any:
    from django.conf import settings

    return settings.DATABASES
