"""The studio's server: its JSON API, and bad input getting a 4xx that changes nothing."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from account_lifecycle.studio import MAX_BODY, RemoteRefused, StudioServer, make_server
from account_lifecycle.studio.command import studio

Reply = tuple[int, dict[str, Any]]


def request(
    server: StudioServer,
    method: str,
    route: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    port = server.server_address[1]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        sent = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json"}
        sent.update(headers or {})
        connection.request(method, route, body=body, headers=sent)
        response = connection.getresponse()
        raw = response.read()
        kind = response.getheader("Content-Type", "")
        return response.status, json.loads(raw) if kind == "application/json" else {"raw": raw}
    finally:
        connection.close()


def post(server: StudioServer, route: str, data: Any, headers: dict[str, str] | None = None) -> Reply:
    return request(server, "POST", route, json.dumps(data).encode("utf-8"), headers)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_the_page_and_its_assets_are_served_from_the_package(server: StudioServer) -> None:
    for route, needle in (
        ("/", b"Policy studio"),
        ("/studio.js", b"api/analyse"),
        ("/studio.css", b"#editor"),
    ):
        status, body = request(server, "GET", route)
        assert status == 200
        assert needle in body["raw"]


def test_the_session_names_the_file_but_not_its_folder(server: StudioServer, policy_file: Path) -> None:
    status, session = request(server, "GET", "/api/session")
    assert status == 200
    assert session["file"] == "allclients.toml"
    assert str(policy_file.parent) not in json.dumps(session)
    assert session["text"] == policy_file.read_text(encoding="utf-8")
    assert session["baseline"] == "allclients@1"


def test_analyse_reports_an_error_with_its_line(server: StudioServer, policy_file: Path) -> None:
    text = policy_file.read_text(encoding="utf-8").replace('"3 months"', '"-3"')
    status, result = post(server, "/api/analyse", {"text": text})
    assert status == 200
    assert result["valid"] is False
    [error] = result["errors"]
    assert error["key"] == "recovery.window"
    assert text.splitlines()[error["line"] - 1].startswith("window =")


def test_save_writes_atomically_and_keeps_a_backup(server: StudioServer, policy_file: Path) -> None:
    original = policy_file.read_text(encoding="utf-8")
    edited = original.replace('"3 months"', '"6 months"')
    status, result = post(server, "/api/save", {"text": edited})
    assert (status, result["saved"], result["backup"]) == (200, "allclients.toml", "allclients.toml.bak")
    assert policy_file.read_text(encoding="utf-8") == edited
    assert (policy_file.parent / "allclients.toml.bak").read_text(encoding="utf-8") == original
    assert sorted(p.name for p in policy_file.parent.iterdir()) == ["allclients.toml", "allclients.toml.bak"]
    status, session = request(server, "GET", "/api/session")
    assert session["text"] == edited


def test_an_invalid_text_is_not_saved(server: StudioServer, policy_file: Path) -> None:
    before = snapshot(policy_file.parent)
    text = policy_file.read_text(encoding="utf-8").replace('"3 months"', '"soon"')
    status, result = post(server, "/api/save", {"text": text})
    assert status == 422
    assert "recovery.window" in result["message"]
    assert snapshot(policy_file.parent) == before


def test_a_file_changed_on_disk_is_not_overwritten_unless_asked(
    server: StudioServer, policy_file: Path
) -> None:
    policy_file.write_text(policy_file.read_text(encoding="utf-8") + "# edited elsewhere\n", encoding="utf-8")
    before = snapshot(policy_file.parent)
    text = policy_file.read_text(encoding="utf-8")
    status, _ = post(server, "/api/save", {"text": text.replace('"3 months"', '"4 months"')})
    assert status == 409
    assert snapshot(policy_file.parent) == before
    status, _ = post(server, "/api/save", {"text": text, "overwrite": True})
    assert status == 200


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{not json", {}, 400),
        (b"\xff\xfe", {}, 400),
        (b"[1, 2]", {}, 400),
        (b'{"text": 5}', {}, 400),
        (b'{"text": "x", "path": "../../etc/passwd"}', {}, 400),
        (b'{"text": "x", "file": "/tmp/elsewhere.toml"}', {}, 400),
        (b"{}", {}, 400),
        (b'{"text": "x"}', {"Content-Type": "text/plain"}, 415),
        (b'{"text": "x"}', {"Origin": "http://evil.example"}, 403),
        (b'{"text": "x"}', {"Host": "evil.example:80"}, 403),
    ],
)
def test_bad_saves_get_a_4xx_and_change_nothing(
    server: StudioServer, policy_file: Path, body: bytes, headers: dict[str, str], status: int
) -> None:
    before = snapshot(policy_file.parent)
    got, reply = request(server, "POST", "/api/save", body, headers)
    assert got == status
    assert reply["message"]
    assert snapshot(policy_file.parent) == before


def test_an_oversized_body_is_refused_unread(server: StudioServer, policy_file: Path) -> None:
    before = snapshot(policy_file.parent)
    text = "#" * (MAX_BODY + 1)
    status, reply = post(server, "/api/save", {"text": text})
    assert status == 413
    assert str(MAX_BODY) in reply["message"]
    assert snapshot(policy_file.parent) == before


@pytest.mark.parametrize(
    "route",
    [
        "/api/save/../../../etc/passwd",
        "/../pyproject.toml",
        "/assets/../server.py",
        "/%2e%2e/LICENSE",
        "/etc/passwd",
    ],
)
def test_path_tricks_find_nothing(server: StudioServer, policy_file: Path, route: str) -> None:
    before = snapshot(policy_file.parent)
    status, _ = request(server, "GET", route)
    assert status == 404
    status, _ = post(server, route, {"text": "name = 'x'"})
    assert status == 404
    assert snapshot(policy_file.parent) == before


def test_other_methods_are_refused(server: StudioServer) -> None:
    status, _ = request(server, "DELETE", "/api/save")
    assert status == 405


def test_simulator_requests_are_checked(server: StudioServer) -> None:
    for route, data in (
        ("/api/sim/act", {"actor": "landlord", "action": "withdraw"}),
        ("/api/sim/act", {"actor": "owner", "action": "withdraw", "extra": 1}),
        ("/api/sim/clock", {"amount": "3", "unit": "months"}),
        ("/api/sim/clock", {"amount": 10**9, "unit": "months"}),
        ("/api/sim/reset", {"state": "gone"}),
        ("/api/sim/replay", {"invariant": "owner_confirms"}),
        ("/api/sim/options", {"purgers_fail": "yes", "prerequisites_pending": False}),
    ):
        status, reply = post(server, route, data)
        assert status == 400, (route, data, reply)
    # nothing moved: the sample account is as it was opened, on the clock it started with
    status, result = post(server, "/api/sim/options", {"purgers_fail": False, "prerequisites_pending": False})
    assert status == 200
    assert [e["action"] for e in result["simulator"]["history"]] == ["open"]
    assert result["simulator"]["now"] == "2026-01-15T09:00:00.000000Z"


def test_the_simulator_runs_through_the_api(server: StudioServer) -> None:
    status, result = post(server, "/api/sim/reset", {"state": "restorable"})
    assert status == 200
    assert result["simulator"]["state"] == "restorable"
    status, result = post(server, "/api/sim/act", {"actor": "owner", "action": "restore"})
    assert status == 200
    assert result["refused"].startswith("NotPermitted")
    status, result = post(server, "/api/sim/clock", {"amount": 3, "unit": "months"})
    assert result["simulator"]["state"] == "purged"


def test_it_refuses_to_listen_beyond_loopback_unless_allowed(policy_file: Path) -> None:
    with pytest.raises(RemoteRefused, match="--allow-remote"):
        make_server(policy_file, None, host="0.0.0.0", port=0)
    result = CliRunner().invoke(studio, [str(policy_file), "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in result.output


def test_the_command_refuses_a_baseline_it_cannot_read(policy_file: Path) -> None:
    result = CliRunner().invoke(studio, [str(policy_file), "--against", "nowhere.toml", "--port", "0"])
    assert result.exit_code == 2
    assert "cannot read nowhere.toml" in result.output


def test_the_default_baseline_is_the_builtin_the_file_is_named_after() -> None:
    from account_lifecycle.studio.command import default_baseline

    assert default_baseline('name = "smrtphone"\n') is not None
    assert default_baseline('name = "ours"\n') is None
    assert default_baseline("name = = broken") is None
