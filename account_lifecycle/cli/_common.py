"""What every command shares: exit codes, output, errors as exit codes, loading a policy."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar, cast

import click

from account_lifecycle import files
from account_lifecycle.errors import LifecycleError, PolicyError
from account_lifecycle.policies import BUILTIN
from account_lifecycle.policy import Policy

F = TypeVar("F", bound=Callable[..., Any])

USAGE, REFUSED = 2, 1

#: The largest --limit taken.
MAX_LIMIT: Final = 1_000_000


class _Stop(Exception):
    """Ends a command with *code*, printing *message* on stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _say(text: str = "") -> None:
    click.echo(text)


def _error(message: str, *, as_json: bool = False, kind: str = "error") -> None:
    if as_json:
        click.echo(json.dumps({"error": kind, "message": message}, ensure_ascii=False), err=True)
    else:
        click.echo(message, err=True)


def _json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True))


def _guarded(command: F) -> F:
    """Turn the library's errors into an exit code and a message on stderr, never a traceback."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> int:
        as_json = bool(kwargs.get("as_json"))
        try:
            result = command(*args, **kwargs)
        except _Stop as stop:
            _error(stop.message, as_json=as_json)
            return stop.code
        except LifecycleError as exc:
            _error(f"refused: {exc}", as_json=as_json, kind=type(exc).__name__)
            return REFUSED
        except ValueError as exc:  # the library's answer to input it cannot take
            _error(f"error: {exc}", as_json=as_json, kind="ValueError")
            return USAGE
        except OverflowError:  # a moment so far out that a date computed from it does not exist
            _error(
                "error: a date is out of range (a time near year 9999 leaves no room for the "
                "policy's windows); give a realistic time",
                as_json=as_json,
                kind="OverflowError",
            )
            return USAGE
        return 0 if result is None else int(result)

    return cast(F, run)


# -- policies: files or built-in names -----------------------------------------------------


def checked_path(source: str, what: str = "") -> Path:
    """*source* as a path, if it can be one (``_Stop``, exit 2, if not)."""
    try:
        return files.checked_path(source)
    except files.UnreadableFile as exc:
        raise _Stop(USAGE, f"error: {what}: {exc}" if what else str(exc)) from None


def _load(source: str) -> Policy:
    """The policy in file *source*, or the built-in policy of that name."""
    from account_lifecycle.policy_toml import policy_from_bytes

    if source in BUILTIN and not Path(source).exists():
        return BUILTIN[source]
    builtins = " or ".join(sorted(BUILTIN))
    try:
        data = files.read_capped(source)
    except files.UnreadableFile as exc:
        raise _Stop(USAGE, f"{exc} (a policy file, or a built-in: {builtins})") from None
    try:
        return policy_from_bytes(data)
    except PolicyError as exc:  # every problem of the file, one a line
        name = files.shown(source)
        raise _Stop(REFUSED, "\n".join(f"{name}: {error}" for error in exc.errors)) from None
