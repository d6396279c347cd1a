"""Tables for what people read in a terminal (status, history, diff), drawn with ``rich``.

Colour and styles only on a terminal (``rich`` checks, and honours ``NO_COLOR``); piped output
is plain text, wide enough that rows are not wrapped. ``--json`` output never comes here.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when a table is drawn: not for --help, --json or a refusal
    from rich.console import Console
    from rich.table import Table

__all__ = ["console", "print_table", "table"]

#: Columns used when the output is not a terminal (a pipe, a file, a test).
PIPE_WIDTH = 160


def console(*, err: bool = False) -> Console:
    """A console on stdout (or stderr): a terminal's own width, else ``PIPE_WIDTH``."""
    from rich.console import Console

    stream = sys.stderr if err else sys.stdout  # as they are now: a test runner may swap them
    out = Console(file=stream, highlight=False, soft_wrap=False)
    if not out.is_terminal:
        out = Console(file=stream, highlight=False, soft_wrap=False, width=PIPE_WIDTH, no_color=True)
    return out


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    """A table with a bold header (on a terminal) and one row per entry of *rows*."""
    from rich.table import Table

    grid = Table(title=title, title_justify="left", header_style="bold", show_edge=False, pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*row)
    return grid


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print *title* on a line of its own (never wrapped to the table's width), then the table."""
    out = console()
    if title is not None:
        out.print(title, style="bold", markup=False)
    out.print(table(None, columns, rows))
