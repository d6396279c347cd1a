"""The policy tools: ``check``, ``show``, ``diagram``, ``verify``, ``diff``."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import click

from account_lifecycle.cli._common import REFUSED, USAGE, _error, _guarded, _json, _load, _say, _Stop
from account_lifecycle.describe import describe_policy
from account_lifecycle.errors import LifecycleError

if TYPE_CHECKING:
    from account_lifecycle.verify.report import DiffReport


@click.command()
@click.argument("policies", nargs=-1, required=True, metavar="POLICY...")
def check(policies: tuple[str, ...]) -> int:
    """Validate policy files: every problem of each, one a line, with its key."""
    worst = 0
    for source in policies:
        try:
            policy = _load(source)
        except _Stop as stop:
            _error(stop.message)
            worst = max(worst, stop.code)
            continue
        _say(f"{source}: ok ({policy.label})")
    return worst


@click.command()
@click.argument("policy", metavar="POLICY")
@_guarded
def show(policy: str) -> None:
    """Explain a policy in plain words."""
    _say("\n".join(describe_policy(_load(policy))))


@click.command()
@click.argument("policy", metavar="POLICY")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
@_guarded
def diagram(policy: str, fmt: str) -> None:
    """Draw the policy's state machine (the one the engine runs) as Mermaid or DOT."""
    from account_lifecycle.diagram import draw

    click.echo(draw(_load(policy), fmt), nl=False)


@click.command()
@click.argument("policies", nargs=-1, required=True, metavar="POLICY...")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--allow",
    "allow",
    multiple=True,
    metavar="RULE",
    help="With several versions: a promise every migration between them may break "
    "(shorten-window, erase-earlier, erase-kept, drop-hold); repeatable.",
)
@_guarded
def verify(policies: tuple[str, ...], as_json: bool, allow: tuple[str, ...]) -> int:
    """Prove the invariants over every reachable situation; show a counterexample if one fails.

    Given several versions of a policy (a registry), prove each, and check that every migration
    from a version to a later one of the same name keeps the promises made to accounts."""
    if len(policies) > 1 or allow:
        return _verify_registry(policies, as_json, allow)
    return _verify_one(policies[0], as_json)


def _verify_registry(sources: tuple[str, ...], as_json: bool, allow: tuple[str, ...]) -> int:
    from account_lifecycle.migration import check_rules
    from account_lifecycle.registry import PolicyRegistry
    from account_lifecycle.verify.registry import verify_registry

    try:
        rules = check_rules(allow)
        registry = PolicyRegistry([_load(source) for source in sources])
    except (ValueError, LifecycleError) as exc:
        raise _Stop(USAGE, str(exc)) from None
    migrations = [
        (a.label, b.label, rules)
        for a in registry.policies
        for b in registry.versions_of(a.name)
        if b.version > a.version
    ]
    report = verify_registry(registry, migrations)
    if as_json:
        _json(report.to_dict())
    else:
        for label, proof in report.versions.items():
            failed = [r.id for r in proof.failures]
            _say(f"verify {label}: {'ok' if proof.ok else 'breaks ' + ', '.join(failed)}")
        for m in report.migrations:
            broken = ", ".join(m.broken) or "no promise"
            verdict = "ok" if m.ok else "REFUSED"
            allowed = f" (allowed: {', '.join(m.allowed)})" if m.allowed else ""
            _say(f"migration {m.source} -> {m.target}: breaks {broken}{allowed}: {verdict}")
    for label, proof in report.versions.items():
        for failure in proof.failures:
            click.echo(f"verify: {label} breaks {failure.id}: {failure.description}", err=True)
    for m in report.migrations:
        if not m.ok:
            unallowed = ", ".join(r for r in m.broken if r not in m.allowed)
            click.echo(f"verify: migration {m.source} -> {m.target} breaks {unallowed}", err=True)
    return 0 if report.ok else REFUSED


def _verify_one(policy: str, as_json: bool) -> int:
    from account_lifecycle.verify import verify_policy

    loaded = _load(policy)
    started = time.perf_counter()
    report = verify_policy(loaded)
    elapsed = time.perf_counter() - started
    if as_json:
        _json({**report.to_dict(), "seconds": round(elapsed, 4)})
    else:
        _say(
            f"verify {report.policy}: {report.situations} situations, {report.steps} steps "
            f"explored in {elapsed * 1000:.0f} ms"
        )
        for result in report.results:
            _say(f"  {result.status.upper():<6} {result.id:<24} {result.description}")
        for waiver in report.waivers_honoured:
            counterexample = report.result(waiver).counterexample
            why = f": {counterexample.conclusion}" if counterexample is not None else ""
            _say(f"waiver honoured: {waiver} (the policy waives it{why})")
        for waiver in report.waivers_unused:
            _say(f"waiver not needed: {waiver} holds anyway")
        for note in report.notes:
            _say(f"note: {note}")
    for failure in report.failures:
        click.echo(f"verify: {report.policy} breaks {failure.id}: {failure.description}", err=True)
        if failure.counterexample is not None and not as_json:
            click.echo("counterexample:", err=True)
            for line in failure.counterexample.lines():
                click.echo(f"  {line}", err=True)
    return 0 if report.ok else REFUSED


@click.command()
@click.argument("a", metavar="POLICY_A")
@click.argument("b", metavar="POLICY_B")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--fail-on",
    type=click.Choice(["any", "risky"]),
    default="any",
    show_default=True,
    help="Exit 1 on any difference, or only on a risky one (erases more or sooner, "
    "lets fewer people restore, drops a safeguard).",
)
@_guarded
def diff(a: str, b: str, as_json: bool, fail_on: str) -> int:
    """Everything that changes from POLICY_A to POLICY_B: what customers, support and auditors
    notice (risky changes marked), then paths on which the two behave differently.

    Exits 0 only when the two are the same; 1 on a difference (with --fail-on risky, on a
    risky one), like diff(1)."""
    from account_lifecycle.verify import diff_policies

    first, second = _load(a), _load(b)
    report = diff_policies(first, second)
    name_a, name_b = (report.a, report.b) if report.a != report.b else (a, b)
    if as_json:
        _json(report.to_dict())
    elif sys.stdout.isatty() and not report.same:
        _diff_tables(report, name_a, name_b)
    else:  # piped (a CI gate's log): the plain lines, stable for grep
        _say("\n".join(_diff_lines(report, name_a, name_b)))
    failing = report.risky if fail_on == "risky" else not report.same
    return REFUSED if failing else 0


def _diff_tables(report: DiffReport, name_a: str, name_b: str) -> None:
    """On a terminal: one table of changes per audience (risky ones marked), then the behaviour."""
    from account_lifecycle.cli.tables import print_table

    lines = _diff_lines(report, name_a, name_b)
    _say(lines[0])
    for audience, changes in report.by_audience().items():
        if changes:
            rows = [("RISKY" if c.risky else "", c.text, ", ".join(c.keys)) for c in changes]
            print_table(f"{audience} notices", ("risk", "change", "policy keys"), rows)
    behaviour = lines[lines.index("behaviour:") :] if "behaviour:" in lines else []
    if behaviour:
        _say("\n".join(["", *behaviour]))


def _diff_lines(report: DiffReport, name_a: str, name_b: str) -> list[str]:
    if report.same:
        return [f"{name_a} and {name_b} are the same: nothing anyone would notice, the same behaviour"]
    risky = len(report.risky)
    lines = [
        f"{name_a} -> {name_b}: {_count(len(report.changes), 'change')} ({risky} risky), "
        f"{_count(len(report.differences), 'behavioural difference')}"
    ]
    for audience, changes in report.by_audience().items():
        if changes:
            lines += ["", f"{audience} notices:"]
            lines += [
                f"  {'RISKY ' if c.risky else '      '}{c.text}  [{', '.join(c.keys)}]" for c in changes
            ]
    if report.differences:
        lines += ["", "behaviour:"]
    for number, difference in enumerate(report.differences, start=1):
        if difference.path:
            lines.append(f"{number}. after")
            lines += [f"     {move}" for move in difference.path]
            lines.append(f"   then {difference.step}")
        else:
            lines.append(f"{number}. from {difference.source.value}: {difference.step}")
        lines += [f"     {name_a} {difference.a}", f"     {name_b} {difference.b}"]
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
