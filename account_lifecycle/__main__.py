"""``python -m account_lifecycle`` and the ``account-lifecycle`` console script.

The full command line needs the ``cli`` extra (click). ``demo`` works without it, so the
README's first command needs nothing but the core.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _demo_only(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="account-lifecycle")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="walk both built-in policies through their flows on SQLite")
    demo.add_argument("--db", help="SQLite file to use (must not exist yet); a temporary one by default")
    args = parser.parse_args(argv)
    from account_lifecycle.demo import run_demo

    return run_demo(args.db)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        from account_lifecycle.cli import cli
    except ImportError:
        if args[:1] != ["demo"]:
            print(
                "the account-lifecycle command line needs the 'cli' extra: "
                "pip install 'account-lifecycle[cli]' (only 'demo' works without it)",
                file=sys.stderr,
            )
            return 2
        return _demo_only(args)
    import click
    from click.exceptions import NoArgsIsHelpError

    try:
        result = cli.main(args=args, prog_name="account-lifecycle", standalone_mode=False)
    except NoArgsIsHelpError as exc:  # no command at all: the help, exit 2
        exc.show()
        return exc.exit_code
    except click.ClickException as exc:  # a usage error: one line with click's message, exit 2
        message = " ".join(exc.format_message().split())
        ctx = exc.ctx if isinstance(exc, click.UsageError) else None
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        print(f"Error: {message}{hint}", file=sys.stderr)
        return exc.exit_code
    except click.Abort:  # Ctrl-C, or end of input at a prompt
        print("aborted", file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
