"""examples/testing_project, a host project tested with the toolkit, passes as its README says
to run it: pytest with the CI profile, in a subprocess, from a copy of the project."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "testing_project"


def test_the_example_projects_tests_pass(tmp_path: Path) -> None:
    """Every test of the example passes: policy file, state machine, both contract suites,
    the token strategy and the plugin's fixtures."""
    project = tmp_path / "testing_project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--hypothesis-profile=account_lifecycle-ci",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"=+ 58 passed in [0-9.]+s =+", summary), summary
    # the project's own pytest configuration, and the library's plugin loaded by its entry point
    assert f"rootdir: {project}\nconfigfile: pyproject.toml" in result.stdout
    assert re.search(r"^plugins: .*account-lifecycle-", result.stdout, flags=re.MULTILINE)
