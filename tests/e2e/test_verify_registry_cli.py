"""``account-lifecycle verify A B ...``: several versions of a policy are verified as a registry:
each version proves its invariants, and each migration to a later version of the same name keeps
the promises made to accounts unless ``--allow`` names the promise it may break."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli import cli, ok, policy_file

from account_lifecycle import policies

V1 = policies.ALLCLIENTS.to_toml()


def _version(number: int, window: str) -> str:
    text = V1.replace("version = 1", f"version = {number}", 1).replace(
        'window = "3 months"', f'window = "{window}"'
    )
    assert f"version = {number}" in text
    assert f'window = "{window}"' in text
    return text


def test_a_longer_window_keeps_every_promise(tmp_path: Path) -> None:
    a = policy_file(tmp_path, V1, "v1.toml")
    b = policy_file(tmp_path, _version(2, "4 months"), "v2.toml")
    assert ok(cli("verify", a, b, cwd=tmp_path)).splitlines() == [
        "verify allclients@1: ok",
        "verify allclients@2: ok",
        "migration allclients@1 -> allclients@2: breaks no promise: ok",
    ]


def test_a_shorter_window_is_refused_unless_allowed(tmp_path: Path) -> None:
    a = policy_file(tmp_path, V1, "v1.toml")
    b = policy_file(tmp_path, _version(2, "1 month"), "v2.toml")

    result = cli("verify", a, b, cwd=tmp_path)
    assert result.returncode == 1
    assert "migration allclients@1 -> allclients@2: breaks shorten-window: REFUSED" in result.stdout
    assert result.stderr == "verify: migration allclients@1 -> allclients@2 breaks shorten-window\n"

    allowed = ok(cli("verify", a, b, "--allow", "shorten-window", cwd=tmp_path))
    assert "breaks shorten-window (allowed: shorten-window): ok" in allowed

    data = json.loads(cli("verify", a, b, "--json", cwd=tmp_path).stdout)
    assert data["ok"] is False
    assert data["migrations"] == [
        {
            "from": "allclients@1",
            "to": "allclients@2",
            "ok": False,
            "broken": ["shorten-window"],
            "allowed": [],
        }
    ]
    assert set(data["versions"]) == {"allclients@1", "allclients@2"}


def test_an_unknown_rule_is_a_usage_error(tmp_path: Path) -> None:
    a = policy_file(tmp_path, V1, "v1.toml")
    result = cli("verify", a, "--allow", "shorten-everything", cwd=tmp_path)
    assert result.returncode == 2
    assert "no migration rule 'shorten-everything'" in result.stderr
    assert "Traceback" not in result.stderr
