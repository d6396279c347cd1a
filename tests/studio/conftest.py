"""Fixtures of the studio's tests: a copy of a built-in policy file and a server on port 0."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from account_lifecycle import policies
from account_lifecycle.studio import StudioServer, make_server
from account_lifecycle.studio.command import default_baseline


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    """An editable copy of the shipped AllClients file."""
    path = tmp_path / "allclients.toml"
    path.write_text(policies.path("allclients").read_text(encoding="utf-8"), encoding="utf-8")
    return path


@pytest.fixture
def server(policy_file: Path) -> Iterator[StudioServer]:
    """The studio for *policy_file* on 127.0.0.1 at a free port, served from a thread."""
    studio = make_server(
        policy_file, default_baseline(policy_file.read_text(encoding="utf-8")), port=0, quiet=True
    )
    thread = threading.Thread(target=studio.serve_forever, args=(0.05,), name="studio", daemon=True)
    thread.start()
    try:
        yield studio
    finally:
        studio.shutdown()
        thread.join(timeout=10)
        studio.server_close()
