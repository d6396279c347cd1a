"""The README's demo and the example scripts, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_demo_walks_both_policies() -> None:
    """`python -m account_lifecycle demo` tells both stories and exits 0."""
    result = run("-m", "account_lifecycle", "demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "types 'confirm'                              refused: WrongConfirmationToken" in out
    assert "types 'CONFIRM' after porting out            -> purged" in out
    assert "same e-mail opens a fresh account sp-2       -> active (version 1)" in out
    assert "owner-9 tries to restore alone               refused: NotPermitted" in out
    assert "support restores on the owner's request      -> active" in out
    assert "sweep: purged ['ac-1'], failed []" in out
    assert out.count("verifies") == 2


def test_demo_refuses_an_existing_database(tmp_path: Path) -> None:
    """--db must name a new file, so a demo never mixes with real data."""
    existing = tmp_path / "real.db"
    existing.write_bytes(b"")
    result = run("-m", "account_lifecycle", "demo", "--db", str(existing))
    assert result.returncode == 2
    assert "already exists" in result.stderr


SMRTPHONE_LINES = [
    "refused: type exactly 'CONFIRM'",
    "account is purged; allowed now: []",
    '"kept": [',
    "same e-mail, fresh account: acct-43 is active",
]
ALLCLIENTS_LINES = [
    "restorable until 28 Feb 2027",
    "support restores: active",
    "purged=('acct-7',)",
    "'backups'",
]


@pytest.mark.parametrize(
    ("script", "expected"),
    [("examples/smrtphone_flow.py", SMRTPHONE_LINES), ("examples/allclients_flow.py", ALLCLIENTS_LINES)],
)
def test_example_scripts_run(script: str, expected: list[str]) -> None:
    """Each example script runs to the end and shows its flow."""
    result = run(script)
    assert result.returncode == 0, result.stderr
    for line in expected:
        assert line in result.stdout
