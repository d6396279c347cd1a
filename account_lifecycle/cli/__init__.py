"""The ``account-lifecycle`` command line (extra ``cli``): argument parsing and rendering only.

Policy tools: ``check``, ``show``, ``diagram``, ``verify``, ``diff``, ``studio``. The operator console
over a store: ``open``, ``request``, ``survey``, ``confirm``, ``withdraw``, ``restore``,
``sweep``, ``status``, ``history``, ``receipt``. Operations: ``status`` without an account
(the store's health, read-only) and ``migrate`` (``cli/ops.py``); ``outbox``, ``redeliver`` and
``dismiss`` (the transactional outbox, ``cli/outbox_commands.py``). And ``demo``. The rules live in the
library (``Policy``, ``Lifecycle``, ``verify``, ``diagram``, ``describe``); this package only turns
arguments into calls and results into text or JSON.

Exit codes: 0 success; 1 a check, a proof or a command was refused (the reason on
stderr); 2 a usage error or an unreadable file. Every command returns its exit code
(``__main__`` calls ``cli.main(..., standalone_mode=False)``).

Operators' queries: ``accounts`` lists accounts by state, due time, holds and failed steps, a
page at a time, read-only (``cli/queries.py``).
"""

from __future__ import annotations

import click

from account_lifecycle.cli.console import (
    confirm,
    history,
    open_,
    receipt,
    request,
    restore,
    survey,
    sweep,
    withdraw,
)
from account_lifecycle.cli.demo import demo
from account_lifecycle.cli.ops import migrate, status
from account_lifecycle.cli.outbox_commands import dismiss, outbox, redeliver
from account_lifecycle.cli.policy_commands import check, diagram, diff, show, verify
from account_lifecycle.cli.queries import accounts
from account_lifecycle.cli.versions import migrate_accounts
from account_lifecycle.studio.command import studio

__all__ = ["cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="account-lifecycle", prog_name="account-lifecycle")
def cli() -> None:
    """Account cancellation, recovery and purging as an auditable state machine.

    Exit codes: 0 success, 1 refused (a check, a proof or a command), 2 usage error
    or unreadable file. POLICY arguments are TOML files or a built-in name
    (smrtphone, allclients).
    """


for _command in (check, show, diagram, verify, diff, demo, studio, migrate, accounts):
    cli.add_command(_command)
for _command in (outbox, redeliver, dismiss):
    cli.add_command(_command)
for _command in (
    open_,
    request,
    survey,
    confirm,
    withdraw,
    restore,
    sweep,
    status,
    history,
    receipt,
    migrate_accounts,
):
    cli.add_command(_command)
