"""examples/testing_project, a host project tested with the toolkit, passes as its README says
to run it: pytest with the CI profile, in a subprocess, from a copy of the project."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from account_lifecycle.testing.plugin import CI_PROFILE

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "testing_project"
#: The example's own tests, and one of each contract suite's, that must have run and passed.
EXPECTED = {
    "test_the_policy_file_reads_back_from_its_own_toml",
    "TestAcmeMachine::runTest",
    "TestNotesPurger::test_a_second_purge_erases_nothing_more_and_does_not_fail",
    "TestNotesPurger::test_any_sequence_of_purges_erases_exactly_the_purged_accounts",
    "TestChangeLogStore::test_save_with_another_version_raises_concurrent_update_and_writes_nothing[1]",
    "test_only_the_exact_token_confirms",
    "test_the_owner_restores_until_the_last_microsecond",
    "test_backups_go_when_the_window_ends",
    "test_the_change_log_follows_every_committed_write",
}


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
            "-v",
            "-p",
            "no:cacheprovider",
            f"--hypothesis-profile={CI_PROFILE}",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    passed = set(re.findall(r"^test_policy\.py::(\S+) PASSED", result.stdout, flags=re.MULTILINE))
    assert passed >= EXPECTED, sorted(EXPECTED - passed)
    # everything collected passed: nothing failed, skipped or errored (the store contract
    # grows with the library, so its exact count is not pinned here)
    summary = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(rf"=+ {len(passed)} passed in [0-9.]+s =+", summary), summary
    # the project's own pytest configuration, and the library's plugin loaded by its entry point
    assert f"rootdir: {project}\nconfigfile: pyproject.toml" in result.stdout
    assert re.search(r"^plugins: .*account-lifecycle-", result.stdout, flags=re.MULTILINE)
