"""``migrate-accounts``: move the accounts pinned to one policy version to another, plan first.

The host's lifecycle (``--app module:factory``) holds the versions (a ``PolicyRegistry``).
The plan is printed in the words of the semantic diff; nothing is written without ``--apply``,
and a plan that breaks a promise is refused unless each rule is allowed (``--allow RULE``).
"""

from __future__ import annotations

from typing import Any

import click

from account_lifecycle.cli._common import REFUSED, USAGE, _error, _guarded, _json, _say, _Stop
from account_lifecycle.cli.console_setup import _console, _lifecycle, _split
from account_lifecycle.migration import MigrationPlan, MigrationRule


def _plan_data(plan: MigrationPlan) -> dict[str, Any]:
    return {
        "from": plan.source,
        "to": plan.target,
        "accounts": plan.accounts,
        "changes": [c.to_dict() for c in plan.changes],
        "states": [
            {
                "state": s.state.value,
                "accounts": s.accounts,
                "changes": [c.text for c in s.changes],
                "broken": {r.value: n for r, n in s.broken.items()},
                "blocked": dict(s.blocked),
                "busy": s.busy,
                "window_later": s.later,
                "window_sooner": s.sooner,
            }
            for s in plan.states
        ],
        "allowed": sorted(r.value for r in plan.allowed),
        "refused": plan.refused,
    }


@click.command("migrate-accounts")
@click.option("--from", "source", required=True, metavar="NAME@VERSION", help="The version to move from.")
@click.option("--to", "target", required=True, metavar="NAME@VERSION", help="The version to move to.")
@click.option("--dry-run", "dry_run", is_flag=True, help="Print the plan only (the default).")
@click.option("--apply", "apply", is_flag=True, help="Migrate the accounts after printing the plan.")
@click.option(
    "--allow",
    "allow",
    multiple=True,
    type=click.Choice([r.value for r in MigrationRule]),
    help="Go ahead although the migration breaks this promise (repeatable).",
)
@click.option("--batch", type=click.IntRange(min=1, max=10_000), default=100, show_default=True)
@_console
@_guarded
def migrate_accounts(
    source: str,
    target: str,
    dry_run: bool,
    apply: bool,
    allow: tuple[str, ...],
    batch: int,
    **options: Any,
) -> int:
    """Move the accounts pinned to policy version --from to version --to. Prints the plan per
    state (how many accounts, what changes for them); --apply migrates, each account one
    audited write. Refused (exit 1) while the plan shortens a promised window, erases a
    category earlier or one that was kept, or drops a hold, unless --allow names each rule.
    Needs --app (the host's lifecycle, whose registry holds both versions)."""
    if dry_run and apply:
        raise _Stop(USAGE, "error: --dry-run and --apply exclude each other (the default is --dry-run)")
    if options["app"] is None:
        raise _Stop(USAGE, "error: migrate-accounts needs --app module:factory: the host's versions")
    as_json = options.pop("as_json")
    with _lifecycle(_split(options)) as lifecycle:
        plan = lifecycle.plan_migration(source, target, allow=allow)
        if as_json:
            data: dict[str, Any] = {"plan": _plan_data(plan), "applied": False}
        else:
            _say(plan.to_text())
        if not apply or plan.refused:
            if as_json:
                _json(data)
            if plan.refused:
                flags = " ".join(f"--allow {rule}" for rule in plan.refused)
                _error(
                    f"refused: the migration breaks promises made to accounts; nothing was written "
                    f"(to go ahead anyway: {flags})",
                    as_json=as_json,
                    kind="MigrationRefused",
                )
                return REFUSED
            if not as_json:
                _say("dry run: nothing was written (pass --apply to migrate)")
            return 0
        report = lifecycle.migrate_accounts(source, target, allow=allow, dry_run=False, batch=batch)
    if as_json:
        data.update(
            applied=True,
            migrated=list(report.migrated),
            busy=list(report.busy),
            refused={k: list(v) for k, v in report.refused.items()},
            failed=dict(report.failed),
        )
        _json(data)
    else:
        _say(f"migrated: {len(report.migrated)}")
        for label, ids in (("busy, run again", report.busy), ("refused", tuple(report.refused))):
            if ids:
                _say(f"{label}: {', '.join(ids)}")
        for account_id, reason in report.failed.items():
            _say(f"failed: {account_id}: {reason}")
    return REFUSED if report.failed else 0
