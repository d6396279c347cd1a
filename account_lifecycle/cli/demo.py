"""``demo``: both built-in policies through their flows on SQLite."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--db", type=click.Path(dir_okay=False), help="SQLite file to create (a temporary one by default)."
)
def demo(db: str | None) -> int:
    """Walk both built-in policies through their flows on SQLite."""
    from account_lifecycle.demo import run_demo

    return run_demo(db)
