"""``account-lifecycle studio POLICY.toml [--against BASELINE.toml] [--port N]``: the policy
studio, a local web page to edit, draw, prove, simulate and compare a policy file.

The command is a click command object; the CLI group registers it. It is also runnable
alone: ``python -m account_lifecycle.studio POLICY.toml``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import click

from account_lifecycle.errors import PolicyError
from account_lifecycle.files import UnreadableFile, read_capped, shown
from account_lifecycle.policies import BUILTIN
from account_lifecycle.policy import Policy
from account_lifecycle.policy_toml import policy_from_bytes

__all__ = ["default_baseline", "load_baseline", "studio"]


def load_baseline(source: str) -> Policy:
    """The baseline named by ``--against``: a policy file, or a built-in policy's name."""
    if source in BUILTIN and not Path(source).exists():
        return BUILTIN[source]
    try:
        return policy_from_bytes(read_capped(source))  # never a device, a pipe or a huge file
    except PolicyError as exc:
        raise click.BadParameter(f"{shown(source)}: {exc}", param_hint="--against") from None
    except UnreadableFile as exc:
        builtins = " or ".join(sorted(BUILTIN))
        hint = f"{exc} (a policy file, or a built-in: {builtins})"
        raise click.BadParameter(hint, param_hint="--against") from None


def default_baseline(text: str) -> Policy | None:
    """The built-in policy the file started from: the one whose ``name`` it keeps, if any.
    The file may not be valid yet, so only its ``name`` is read."""
    try:
        name = tomllib.loads(text).get("name")
    except tomllib.TOMLDecodeError:
        return None
    return BUILTIN.get(name) if isinstance(name, str) else None


@click.command("studio")
@click.argument("source", metavar="POLICY.toml")
@click.option(
    "--against",
    "baseline",
    metavar="BASELINE.toml",
    help="Compare with this policy file or built-in name (default: the built-in of the file's name).",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8750, show_default=True, help="0 picks a free port."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Where to listen; loopback only...")
@click.option("--allow-remote", is_flag=True, help="...unless this flag allows another address.")
def studio(source: str, baseline: str | None, port: int, host: str, allow_remote: bool) -> int:
    """Open the policy studio: edit, draw, prove, simulate and compare POLICY.toml in a local web page."""
    try:
        text = read_capped(source).decode("utf-8")  # never a device, a pipe or a huge file
    except (UnreadableFile, UnicodeDecodeError) as exc:
        raise click.BadParameter(str(exc), param_hint="POLICY.toml") from None
    policy = Path(source)
    against = load_baseline(baseline) if baseline is not None else default_baseline(text)
    # the server (http.server, the page and its analysis) only when the studio runs: not for --help
    from account_lifecycle.studio.server import RemoteRefused, make_server

    try:
        server = make_server(policy, against, host=host, port=port, allow_remote=allow_remote)
    except RemoteRefused as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:
        raise click.UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    with server:
        compared = f", compared with {against.label}" if against is not None else ""
        click.echo(f"policy studio for {policy.name}{compared}: {server.url} (Ctrl-C stops it)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            click.echo("studio stopped")
    return 0
