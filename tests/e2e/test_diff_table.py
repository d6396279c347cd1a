"""``diff`` on a terminal draws a table per audience; piped, it prints the plain lines (issue 20)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys


def _run(*, terminal: bool) -> str:
    command = [sys.executable, "-m", "account_lifecycle", "diff", "allclients", "smrtphone"]
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    if not terminal:
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120).stdout
    main, child = pty.openpty()
    with subprocess.Popen(command, stdout=child, stderr=child, env=env) as process:
        os.close(child)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=120)
    os.close(main)
    return b"".join(chunks).decode()


def test_on_a_terminal_each_audience_is_a_table_with_risky_rows_marked() -> None:
    out = _run(terminal=True)
    assert "customer notices" in out
    header = next(line for line in out.splitlines() if "policy keys" in line)
    assert "risk" in header
    assert "change" in header
    risky = [line for line in out.splitlines() if line.startswith("RISKY")]
    assert any("recovery.window" in line for line in risky)
    assert "behaviour:" in out


def test_piped_the_lines_stay_plain() -> None:
    out = _run(terminal=False)
    assert "━" not in out
    assert "│" not in out
    assert "customer notices:" in out
    assert any(line.startswith("  RISKY ") and "recovery.window" in line for line in out.splitlines())
