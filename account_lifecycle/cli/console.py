"""The operator console over a store: ``open``, ``request``, ``survey``, ``confirm``,
``withdraw``, ``restore``, ``sweep``, ``status``, ``history``, ``receipt``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from account_lifecycle.audit import format_time
from account_lifecycle.cli._common import MAX_LIMIT, REFUSED, USAGE, _error, _guarded, _json, _say, _Stop
from account_lifecycle.cli.console_setup import (
    _AS,
    NO_OP_PREFIX,
    _actor,
    _console,
    _lifecycle,
    _parse_time,
    _require_real_purgers,
    _same_policy,
    _split,
)
from account_lifecycle.cli.render import _emit_record, _show_events, _show_receipt, _timeline_lines
from account_lifecycle.decide import (
    Command,
    NeedsPrerequisites,
    Rules,
    apply,
    decide_command,
    remind,
    start_work,
)
from account_lifecycle.errors import LifecycleError
from account_lifecycle.lifecycle import Lifecycle
from account_lifecycle.model import AccountRecord, Action, Actor, SurveyOutcome
from account_lifecycle.purge import SweepReport
from account_lifecycle.schedule import EFFECT_PREFIX, due_at

_DRY_RUN = click.option(
    "--dry-run",
    "dry_run",
    is_flag=True,
    help="Change nothing: check the command and show what would be erased, and when.",
)


def _run(options: dict[str, Any], account_id: str, act: Callable[[Lifecycle], AccountRecord]) -> None:
    as_json = options.pop("as_json")
    settings = _split(options)
    with _lifecycle(settings) as lifecycle:
        _same_policy(lifecycle, account_id, settings)
        record = act(lifecycle)
        _emit_record(record, as_json)


@click.command("open")
@click.argument("account_id")
@click.option("--owner", required=True, metavar="USER_ID", help="The owner's user id.")
@click.option("--member", "members", multiple=True, metavar="USER_ID", help="A team member (repeatable).")
@click.option("--identity", metavar="TEXT", help="The identity (e.g. e-mail) the account holds.")
@_console
@_guarded
def open_(
    account_id: str, owner: str, members: tuple[str, ...], identity: str | None, **options: Any
) -> None:
    """Open an ACTIVE account."""
    as_json = options.pop("as_json")
    with _lifecycle(_split(options)) as lifecycle:
        record = lifecycle.open(account_id, owner=owner, members=members, identity=identity)
        _emit_record(record, as_json)


@click.command()
@click.argument("account_id")
@_AS
@_console
@_guarded
def request(account_id: str, actor: Actor, **options: Any) -> None:
    """Ask to cancel the account."""
    _run(options, account_id, lambda lc: lc.request_cancellation(account_id, actor))


def _answers(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    answers = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep:
            raise click.BadParameter(f"expected QUESTION=ANSWER, got {value!r}")
        answers[key] = text
    return answers


@click.command()
@click.argument("account_id")
@_AS
@click.option("--outcome", type=click.Choice([o.value for o in SurveyOutcome]), help="The survey's outcome.")
@click.option("--skip", is_flag=True, help="Skip an optional survey instead.")
@click.option(
    "--answer", "answers", multiple=True, callback=_answers, metavar="QUESTION=ANSWER", help="Repeatable."
)
@_console
@_guarded
def survey(
    account_id: str, actor: Actor, outcome: str | None, skip: bool, answers: dict[str, str], **options: Any
) -> None:
    """Answer the survey (--outcome), or skip an optional one (--skip)."""
    if skip == (outcome is not None):
        raise _Stop(USAGE, "error: give exactly one of --outcome or --skip")
    if skip:
        _run(options, account_id, lambda lc: lc.skip_survey(account_id, actor))
    else:
        assert outcome is not None
        _run(options, account_id, lambda lc: lc.submit_survey(account_id, actor, outcome, answers or None))


@click.command()
@click.argument("account_id")
@_AS
@click.option("--token", metavar="TEXT", help="The confirmation text, typed exactly.")
@click.option("--ack", "acks", multiple=True, metavar="ID", help="An acknowledgement id (repeatable).")
@click.option(
    "--request-id",
    metavar="ID",
    help="The cancellation request this confirm answers (the record's cancellation_id); "
    "a confirm for an earlier request is refused.",
)
@click.option("--window", metavar="DURATION", help="The recovery window picked, one of the policy's choices.")
@click.option(
    "--authenticated-at",
    "authenticated_at",
    metavar="TIME",
    help="When the actor last logged in (ISO time, UTC if no zone), for a policy asking for a fresh login.",
)
@_DRY_RUN
@_console
@_guarded
def confirm(
    account_id: str,
    actor: Actor,
    token: str | None,
    acks: tuple[str, ...],
    request_id: str | None,
    window: str | None,
    authenticated_at: str | None,
    dry_run: bool,
    **options: Any,
) -> None:
    """Confirm the cancellation; the cancel-time purge runs before this returns. Needs --app
    (the host's purgers), or --dry-run to only show what would be erased."""
    _require_real_purgers(options, "confirm", dry_run)
    logged_in = None if authenticated_at is None else _parse_time(authenticated_at, "--authenticated-at")
    if dry_run:
        as_json = options.pop("as_json")
        settings = {**_split(options), "dry_run": True}
        with _lifecycle(settings) as lifecycle:
            _same_policy(lifecycle, account_id, settings)
            command = Command(
                Action.CONFIRM,
                actor,
                token=token,
                acknowledgements=frozenset(acks),
                request_id=request_id,
                authenticated_at=logged_in,
                window=_pinned(lifecycle, lifecycle.get(account_id)).policy.recovery.choose(window),
            )
            _dry_confirm(lifecycle, account_id, command, window, as_json)
        return
    _run(
        options,
        account_id,
        lambda lc: lc.confirm(
            account_id,
            actor,
            token,
            acks,
            request_id=request_id,
            window=window,
            authenticated_at=logged_in,
        ),
    )


@click.command()
@click.argument("account_id")
@_AS
@_console
@_guarded
def withdraw(account_id: str, actor: Actor, **options: Any) -> None:
    """Withdraw a cancellation before confirming it."""
    _run(options, account_id, lambda lc: lc.withdraw(account_id, actor))


@click.command()
@click.argument("account_id")
@_AS
@_console
@_guarded
def restore(account_id: str, actor: Actor, **options: Any) -> None:
    """Restore a RESTORABLE account while its window is open."""
    _run(options, account_id, lambda lc: lc.restore(account_id, actor))


@click.command()
@click.option("--limit", type=click.IntRange(min=0, max=MAX_LIMIT), help="Handle at most this many accounts.")
@_DRY_RUN
@_console
@_guarded
def sweep(limit: int | None, dry_run: bool, **options: Any) -> int:
    """Finish unfinished purges and purge accounts whose window ended. Exits 1 if a purge failed.
    Needs --app (the host's purgers), or --dry-run to only show what would be erased."""
    _require_real_purgers(options, "sweep", dry_run)
    as_json = options.pop("as_json")
    with _lifecycle({**_split(options), "dry_run": dry_run}) as lifecycle:
        if dry_run:
            _dry_sweep(lifecycle, limit, as_json)
            return 0
        report: SweepReport = lifecycle.sweep(limit)
    if as_json:
        _json(
            {
                "purged": list(report.purged),
                "restorable": list(report.restorable),
                "failed": list(report.failed),
            }
        )
    else:
        for label, ids in (
            ("purged", report.purged),
            ("restorable", report.restorable),
            ("failed", report.failed),
        ):
            _say(f"{label}: {', '.join(ids) if ids else 'none'}")
    if report.failed:
        _error(f"sweep: purge failed for {', '.join(report.failed)}; a later sweep retries", as_json=as_json)
        return REFUSED
    return 0


@click.command()
@click.argument("account_id")
@click.option("--as", "actor", callback=_actor, metavar="ACTOR", help="Also list what this actor may do now.")
@click.option(
    "--preview", is_flag=True, help="Show the timeline instead: what is erased when, kept, and restorable."
)
@click.option("--window", metavar="DURATION", help="With --preview, before confirming: the window to assume.")
@_console
@_guarded
def status(account_id: str, actor: Actor | None, preview: bool, window: str | None, **options: Any) -> None:
    """Show an account (and, with --as, the actions allowed now), or with --preview its timeline."""
    as_json = options.pop("as_json")
    if window is not None and not preview:
        raise _Stop(USAGE, "error: --window goes with --preview")
    with _lifecycle(_split(options)) as lifecycle:
        if preview:
            timeline = lifecycle.preview(account_id, window=window)
            if as_json:
                click.echo(timeline.to_json())
            else:
                _say("\n".join(_timeline_lines(timeline)))
            return
        record = lifecycle.get(account_id)
        allowed = None if actor is None else lifecycle.allowed_actions(account_id, actor)
        _emit_record(record, as_json, allowed)


@click.command()
@click.argument("account_id")
@_console
@_guarded
def history(account_id: str, **options: Any) -> int:
    """Show the account's audit events and verify their hash chain (exits 1 if tampered)."""
    as_json = options.pop("as_json")
    with _lifecycle(_split(options)) as lifecycle:
        events = lifecycle.history(account_id)
        if not events:
            lifecycle.get(account_id)  # AccountNotFound for an unknown id
        if as_json:
            _json([event.to_dict() for event in events])
        else:
            _show_events(events)
        lifecycle.verify_history(account_id)
    if not as_json:
        _say(f"audit chain of {account_id} verifies ({len(events)} events)")
    return 0


@click.command()
@click.argument("account_id")
@_console
@_guarded
def receipt(account_id: str, **options: Any) -> None:
    """Show the erasure receipt of a PURGED account."""
    as_json = options.pop("as_json")
    with _lifecycle(_split(options)) as lifecycle:
        proof = lifecycle.receipt(account_id)
        pretended = sorted(
            name
            for name, progress in lifecycle.get(account_id).purge.items()
            if (progress.purger or "").startswith(NO_OP_PREFIX)
        )
    if pretended:  # written by an earlier console without --app: nothing was erased
        raise _Stop(
            REFUSED,
            f"refused: no receipt for {account_id}: {', '.join(pretended)} were marked done by the "
            "console's no-op purgers (run without --app), which erase nothing",
        )
    if as_json:
        click.echo(proof.to_json())
    else:
        _show_receipt(proof)


# -- dry runs: decide, never commit -----------------------------------------------------------


def _pinned(lifecycle: Lifecycle, record: AccountRecord) -> Rules:
    """The rules of the policy version *record* follows (``PolicyMismatch`` for another policy's)."""
    return lifecycle.versions[lifecycle.registry.resolve(record).label]


def _dry_confirm(
    lifecycle: Lifecycle, account_id: str, command: Command, window: str | None, as_json: bool
) -> None:
    """Decide *command* on the stored record (the same typed refusals as a real confirm) and
    print what the confirm would erase and when; nothing is written and no purger runs."""
    record = lifecycle.get(account_id)
    rules = _pinned(lifecycle, record)
    now = lifecycle.clock.now()
    try:
        decide_command(rules, record, command, now)
    except NeedsPrerequisites:
        pending = {name: check(account_id) for name, check in lifecycle.prerequisites.items()}
        decide_command(rules, record, command, now, pending)
    timeline = lifecycle.preview(account_id, window=window)
    erasures = [e for e in timeline.erasures if not e.done]
    if as_json:
        _json(
            {
                "dry_run": True,
                "account_id": account_id,
                "at": format_time(now),
                "would_erase": [
                    {"category": e.category, "at": format_time(e.at), "moment": e.moment} for e in erasures
                ],
                "kept": [k.to_dict() for k in timeline.kept],
                "restorable_until": None
                if timeline.restorable_until is None
                else format_time(timeline.restorable_until),
            }
        )
        return
    _say(f"dry run: confirm {account_id} would be accepted at {format_time(now)}; nothing was changed")
    for erasure in erasures:
        when = "at confirm" if erasure.moment == "cancel" else "when the window ends"
        _say(f"  would erase {erasure.category} at {format_time(erasure.at)} ({when})")
    for kept in timeline.kept:
        _say(f"  would keep {kept.category} ({kept.reason})")


def _dry_sweep(lifecycle: Lifecycle, limit: int | None, as_json: bool) -> None:
    """What a sweep at the lifecycle's now would do to each account, decided by the same pure
    core the sweep runs (``start_work``), without claiming, writing or running a purger."""
    now = lifecycle.clock.now()
    listed = getattr(lifecycle.store, "account_ids", None)
    ids: tuple[str, ...] = listed() if callable(listed) else ()
    plans: list[dict[str, Any]] = []
    for account_id in ids:
        if limit is not None and len(plans) >= limit:
            break
        try:
            record = lifecycle.get(account_id)
        except LifecycleError as exc:
            plans.append({"account_id": account_id, "unreadable": str(exc)})
            continue
        try:
            rules = _pinned(lifecycle, record)
        except LifecycleError:  # another policy's account: its own lifecycle sweeps it
            continue
        decision = start_work(rules, record, now, "dry-run")
        reminders = remind(record, now)
        if decision is None and reminders is None:
            continue
        plan: dict[str, Any] = {"account_id": account_id, "due_since": _time_or_none(due_at(record))}
        if decision is not None and decision.work is not None:
            steps = decision.work.steps
            plan["would_erase"] = [
                {"category": k, "at": format_time(now), "phase": decision.work.phase}
                for k in steps
                if not k.startswith(EFFECT_PREFIX)
            ]
            plan["would_run"] = [k.removeprefix(EFFECT_PREFIX) for k in steps if k.startswith(EFFECT_PREFIX)]
        elif decision is not None:
            plan["would_move_to"] = apply(record, decision).state.value
        if reminders is not None:
            plan["would_remind"] = [e.details["before"] for e in reminders.events]
        plans.append(plan)
    if as_json:
        _json({"dry_run": True, "at": format_time(now), "accounts": plans})
        return
    _say(f"dry run: sweep at {format_time(now)}; nothing was changed")
    if not plans:
        _say("  nothing is due")
    for plan in plans:
        name = plan["account_id"]
        if "unreadable" in plan:
            _say(f"  {name}: cannot be read ({plan['unreadable']})")
            continue
        for step in plan.get("would_erase", ()):
            _say(f"  {name}: would erase {step['category']} at {step['at']} ({step['phase']} phase)")
        for effect in plan.get("would_run", ()):
            _say(f"  {name}: would run {effect}")
        if "would_move_to" in plan:
            _say(f"  {name}: would move on to {plan['would_move_to']}")
        for before in plan.get("would_remind", ()):
            _say(f"  {name}: would send the reminder {before} before the window ends")


def _time_or_none(moment: Any) -> str | None:
    return None if moment is None else format_time(moment)
