"""The command line survives hostile input (issue 15): every path, number and time argument is
checked, and each refusal is exit 1 or 2 with one line on stderr, no traceback, nothing written,
and no unbounded read (``/dev/zero`` is refused before it is opened)."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from account_lifecycle.__main__ import main

LONG = "p" * 5000
NUL = "pol\x00icy.toml"
POLICY_TOOLS = [["check"], ["show"], ["diagram"], ["verify"], ["diff", "smrtphone"], ["studio"]]


@pytest.fixture(autouse=True)
def here(tmp_path: Path) -> Iterator[Path]:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(cwd)


def refused(*args: str, code: int = 2) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        result = main(list(args))
    assert (result, out.getvalue()) == (code, ""), err.getvalue()
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in err.getvalue()
    return lines[0]


@pytest.mark.parametrize("tool", POLICY_TOOLS, ids=lambda t: t[0])
@pytest.mark.parametrize(
    ("path", "says"),
    [
        (LONG, "a path has at most 4096 characters"),
        (NUL, "a path cannot hold a NUL character"),
        ("/dev/zero", "not a regular file"),
        (".", "Is a directory"),
        ("missing.toml", "No such file or directory"),
    ],
    ids=["5000 characters", "NUL", "/dev/zero", "directory", "missing"],
)
def test_policy_tools_refuse_bad_paths_in_one_line(tool: list[str], path: str, says: str) -> None:
    name, *rest = tool
    line = refused(name, path, *rest)
    assert says in line
    assert LONG not in line  # a long path is cut short
    assert len(line) < 400


def test_a_policy_file_larger_than_a_megabyte_is_not_read(here: Path) -> None:
    big = here / "big.toml"
    big.write_bytes(b"# " + b"x" * (1 << 20) + b"\n")
    assert "larger than 1048576 bytes" in refused("check", "big.toml")
    assert "larger than 1048576 bytes" in refused("status", "a-1", "--policy", "big.toml")


def test_diff_and_studio_check_their_second_path() -> None:
    assert "a path has at most 4096 characters" in refused("diff", "smrtphone", LONG)
    (Path("p.toml")).write_text('name = "p"\n', encoding="utf-8")
    assert "not a regular file" in refused("studio", "p.toml", "--against", "/dev/zero")
    assert "a path cannot hold a NUL character" in refused("studio", "p.toml", "--against", NUL)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["status", "a-1", "--policy", "/dev/zero"], "not a regular file"),
        (["status", "a-1", "--policy", LONG], "a path has at most 4096 characters"),
        (["status", "a-1", "--policy", NUL], "a path cannot hold a NUL character"),
        (["status", "a-1", "--policy", "smrtphone", "--db", LONG], "a path has at most 4096 characters"),
        (["status", "a-1", "--policy", "smrtphone", "--db", NUL], "a path cannot hold a NUL character"),
        (["sweep", "--policy", "smrtphone", "--now", "9999-12-31T23:59:59Z", "--dry-run"], "before 9000"),
        (["sweep", "--policy", "smrtphone", "--now", "0001-01-01T00:00:00+23:59", "--dry-run"], "from 1970"),
        (["sweep", "--policy", "smrtphone", "--now", "2026-13-40", "--dry-run"], "expects an ISO time"),
        (["sweep", "--policy", "smrtphone", "--now", "1" * 5000, "--dry-run"], "5000 characters"),
        (["sweep", "--policy", "smrtphone", "--limit", "-1", "--dry-run"], "-1 is not in the range"),
        (["sweep", "--policy", "smrtphone", "--limit", "9" * 30, "--dry-run"], "is not in the range"),
        (["sweep", "--policy", "smrtphone", "--limit", "many", "--dry-run"], "'many' is not a valid integer"),
        (
            ["confirm", "a-1", "--as", "user:u", "--policy", "smrtphone", "--dry-run",
             "--authenticated-at", "x"],
            "--authenticated-at expects an ISO time",
        ),
        (["request", "a-1", "--policy", "smrtphone"], "Missing option '--as'"),
    ],
    ids=[
        "policy /dev/zero", "policy long", "policy NUL", "db long", "db NUL", "now 9999", "now year 0",
        "now not a time", "now 5000 characters", "limit -1", "limit huge", "limit word",
        "authenticated-at", "missing --as",
    ],
)  # fmt: skip
def test_console_arguments_are_checked_before_anything_is_opened(
    here: Path, args: list[str], says: str
) -> None:
    assert says in refused(*args)
    assert list(here.iterdir()) == []  # no database was created
