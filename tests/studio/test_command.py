"""``python -m account_lifecycle.studio``: the command starts a loopback server and says where."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

STARTUP_TIMEOUT_S = 60  # bounded: a server that does not say where it listens is a failure


@pytest.mark.slow
def test_the_command_serves_the_file_on_loopback(policy_file: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "account_lifecycle.studio", str(policy_file), "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], STARTUP_TIMEOUT_S)
        assert ready, "the studio did not print its address in time"
        line = process.stdout.readline()
        assert line.startswith(
            "policy studio for allclients.toml, compared with allclients@1: http://127.0.0.1:"
        )
        url = line.split(": ", 1)[1].split(" ", 1)[0]
        with urllib.request.urlopen(url + "api/session", timeout=30) as response:
            session = json.load(response)
        assert session["file"] == "allclients.toml"
        assert session["baseline"] == "allclients@1"
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()
