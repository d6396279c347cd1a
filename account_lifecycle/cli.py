"""The ``account-lifecycle`` command line (extra ``cli``): argument parsing and rendering only.

Policy tools: ``check``, ``show``, ``diagram``, ``verify``, ``diff``. The operator console
over a store: ``open``, ``request``, ``survey``, ``confirm``, ``withdraw``, ``restore``,
``sweep``, ``status``, ``history``, ``receipt``. And ``demo``. The rules live in the
library (``Policy``, ``Lifecycle``, ``verify``, ``diagram``); this module only turns
arguments into calls and results into text or JSON.

Exit codes: 0 success; 1 a check, a proof or a command was refused (the reason on
stderr); 2 a usage error or an unreadable file. Every command returns its exit code
(``__main__`` calls ``cli.main(..., standalone_mode=False)``).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from account_lifecycle.audit import AuditEvent, format_time
from account_lifecycle.clock import ManualClock
from account_lifecycle.codec import record_to_dict
from account_lifecycle.errors import ConfigurationError, LifecycleError, PolicyError, StoreError
from account_lifecycle.lifecycle import Lifecycle
from account_lifecycle.model import AccountRecord, Action, Actor, Relation, SurveyOutcome
from account_lifecycle.policies import BUILTIN
from account_lifecycle.policy import Policy
from account_lifecycle.ports import AccountStore, PurgeContext, PurgeResult
from account_lifecycle.purge import ErasureReceipt, SweepReport
from account_lifecycle.timeline import Timeline

__all__ = ["cli"]

F = TypeVar("F", bound=Callable[..., Any])

USAGE, REFUSED = 2, 1


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
        return 0 if result is None else int(result)

    return cast(F, run)


# -- policies: files or built-in names -----------------------------------------------------


def _load(source: str) -> Policy:
    """The policy in file *source*, or the built-in policy of that name."""
    path = Path(source)
    if not path.exists() and source in BUILTIN:
        return BUILTIN[source]
    try:
        return Policy.load(path)
    except PolicyError as exc:
        raise _Stop(REFUSED, f"{source}: {exc}") from None
    except OSError as exc:
        builtins = " or ".join(sorted(BUILTIN))
        raise _Stop(
            USAGE, f"cannot read {source}: {exc.strerror or exc} (a policy file, or a built-in: {builtins})"
        ) from None


_WHO = {
    Relation.OWNER: "the owner",
    Relation.MEMBER: "team members",
    Relation.SUPPORT: "support staff",
    Relation.SYSTEM: "the system",
}


def _who(policy: Policy, action: Action) -> str:
    relations = policy.permissions.get(action, frozenset())
    if not relations:
        return "nobody"
    return _join([_WHO[r] for r in Relation if r in relations])


def _join(words: Sequence[str], last: str = "and") -> str:
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {last} {words[-1]}"


_OUTCOME_WORDS = {
    SurveyOutcome.KEEP_ACCOUNT: "keep the account",
    SurveyOutcome.BOOK_MEETING: "book a meeting",
    SurveyOutcome.CANCEL: "cancel",
}


def _explain(policy: Policy) -> list[str]:
    """The policy in plain words, for the people who own the flow."""
    lines = [f"{policy.name}, version {policy.version}"]
    if policy.description:
        lines += [f"  {line}" for line in policy.description.splitlines()]
    lines += ["", "Asking to cancel"]
    lines.append(f"  Who may ask: {_who(policy, Action.REQUEST_CANCELLATION)}.")
    survey = policy.survey
    if survey.mode == "off":
        lines.append("  There is no survey: asking to cancel goes straight to confirmation.")
    else:
        offered = _join([_OUTCOME_WORDS[o] for o in survey.outcomes], "or")
        lines.append(f"  A survey is {survey.mode}; its answers: {offered}.")
        returns = [o for o in survey.outcomes if o is not SurveyOutcome.CANCEL]
        if returns:
            answers = _join([f'"{_OUTCOME_WORDS[o]}"' for o in returns], "or")
            lines.append(f"  Answering {answers} keeps the account active.")
        lines.append(f"  Who may answer: {_who(policy, Action.SUBMIT_SURVEY)}.")
        if survey.mode == "optional":
            lines.append(f"  Who may skip it: {_who(policy, Action.SKIP_SURVEY)}.")
    lines.append(f"  Who may withdraw before confirming: {_who(policy, Action.WITHDRAW)}.")

    lines += ["", "Confirming"]
    lines.append(f"  Who may confirm: {_who(policy, Action.CONFIRM)}.")
    token = policy.confirmation.token
    if token is None:
        lines.append("  A plain confirmation: nothing to type.")
    else:
        typed = json.dumps(token, ensure_ascii=False)
        lines.append(f"  They type exactly {typed}: letters, case and spaces must match.")
        if "{account_id}" in token:
            lines.append("  ({account_id} stands for the account's own id, e.g. DELETE acc-1042.)")
    if policy.confirmation.fresh_login is not None:
        lines.append(f"  They must have logged in within the last {policy.confirmation.fresh_login}.")
    acks = policy.confirmation.acknowledgements
    if acks:
        lines.append("  They acknowledge:")
        lines += [f"    - {ack.id}: {ack.text}" for ack in acks]
    if policy.prerequisites:
        names = ", ".join(policy.prerequisites)
        lines.append(f"  Confirming waits until these checks report nothing pending: {names}.")

    lines += ["", "At cancellation"]
    effects = ["Access to the account ends."]
    if "revoke_team_access" in policy.on_cancel:
        effects.append("Team members lose access.")
    if "forfeit_credit" in policy.on_cancel:
        effects.append("Remaining credit is forfeited.")
    lines.append("  " + " ".join(effects))
    at_cancel = policy.purge.at("cancel")
    lines.append(f"  Erased at once: {', '.join(at_cancel) if at_cancel else 'nothing'}.")
    if policy.purge.protected:
        lines.append(f"  Never erased (protected): {', '.join(policy.purge.protected)}.")

    lines += ["", "Recovery"]
    window = policy.recovery.window
    if not policy.recovery.has_window:
        lines.append(
            "  None: a cancelled account can never be restored; it is purged once its data is erased."
        )
    elif policy.recovery.phases:
        lines.append("  Restorable after cancellation in phases, one after the other:")
        for number, phase in enumerate(policy.recovery.phases, start=1):
            who = _join([_WHO[r] for r in phase.restore], "or")
            lines.append(f"    {number}. for {phase.length}, by {who}")
    elif policy.recovery.choices:
        choices = _join([str(c) for c in policy.recovery.choices], "or")
        lines.append(
            f"  Restorable for {choices} after cancellation, as the owner chooses when confirming "
            f"({policy.recovery.choices[0]} if they do not), by {_who(policy, Action.RESTORE)}."
        )
    else:
        lines.append(f"  Restorable for {window} after cancellation, by {_who(policy, Action.RESTORE)}.")
    if policy.recovery.has_window:
        at_expiry = policy.purge.at("expiry")
        erased = f"the rest is erased ({', '.join(at_expiry)}) and " if at_expiry else ""
        lines.append(f"  When the window ends, {erased}the account is purged.")
    lines += _explain_closure(policy)

    lines += ["", "Afterwards"]
    reuse = {
        "after_cancel": "may open a fresh account as soon as this one is cancelled",
        "after_purge": "may open a fresh account once this one is purged",
        "never": "can never open another account",
    }[policy.identity_reuse]
    lines.append(f"  The same identity (e.g. e-mail) {reuse}.")
    for kind, rule in policy.identity.items():
        lines.append(f"  {_IDENTIFIER_WORDS[rule.when].format(kind=kind, delay=rule.delay)}")
    if policy.services:
        who = _who(policy, Action.CANCEL_SERVICE)
        lines.append(f"  Services that can be cancelled alone, by {who}: {', '.join(policy.services)}.")
    lines.append(f"  Ownership may be handed to a member by {_who(policy, Action.TRANSFER_OWNERSHIP)}.")
    if policy.waivers:
        lines.append(f"  Knowingly departs from: {', '.join(policy.waivers)} (see verify).")
    return lines


_IDENTIFIER_WORDS = {
    "never": "The same {kind} can never open another account.",
    "at_once": "The same {kind} may open a fresh account as soon as this one is cancelled.",
    "after_purge": "The same {kind} may open a fresh account once this one is purged.",
    "after": "The same {kind} may open a fresh account {delay} after this one is purged.",
}


def _explain_closure(policy: Policy) -> list[str]:
    """Reminders and legal holds, in plain words (nothing for a policy without them)."""
    lines = []
    if policy.recovery.reminders:
        when = _join([str(r) for r in policy.recovery.reminders])
        lines.append(f"  Reminders go out {when} before the window ends.")
    if policy.purge.on_hold is not None:
        lines += ["", "Legal holds"]
        placed = _who(policy, Action.PLACE_HOLD)
        released = _who(policy, Action.RELEASE_HOLD)
        lines.append(f"  Placed on a data category by {placed}, released by {released}.")
        if policy.purge.on_hold == "wait":
            lines.append("  A held category is not erased: the account waits until the hold is released.")
        else:
            lines.append(
                "  A held category is not erased: the account moves on, and the receipt lists it as retained."
            )
    return lines


# -- the group -------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="account-lifecycle", prog_name="account-lifecycle")
def cli() -> None:
    """Account cancellation, recovery and purging as an auditable state machine.

    Exit codes: 0 success, 1 refused (a check, a proof or a command), 2 usage error
    or unreadable file. POLICY arguments are TOML files or a built-in name
    (smrtphone, allclients).
    """


@cli.command()
@click.argument("policies", nargs=-1, required=True, metavar="POLICY...")
def check(policies: tuple[str, ...]) -> int:
    """Validate policy files; name the key of each problem."""
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


@cli.command()
@click.argument("policy", metavar="POLICY")
@_guarded
def show(policy: str) -> None:
    """Explain a policy in plain words."""
    _say("\n".join(_explain(_load(policy))))


@cli.command()
@click.argument("policy", metavar="POLICY")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
@_guarded
def diagram(policy: str, fmt: str) -> None:
    """Draw the policy's state machine (the one the engine runs) as Mermaid or DOT."""
    from account_lifecycle.diagram import draw

    click.echo(draw(_load(policy), fmt), nl=False)


@cli.command()
@click.argument("policy", metavar="POLICY")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_guarded
def verify(policy: str, as_json: bool) -> int:
    """Prove the invariants over every reachable situation; show a counterexample if one fails."""
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


@cli.command()
@click.argument("a", metavar="POLICY_A")
@click.argument("b", metavar="POLICY_B")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@_guarded
def diff(a: str, b: str, as_json: bool) -> int:
    """List behavioural differences: paths one policy allows and the other refuses.

    Exits 1 when there are differences, like diff(1)."""
    from account_lifecycle.verify import diff_policies

    first, second = _load(a), _load(b)
    report = diff_policies(first, second)
    name_a, name_b = (report.a, report.b) if report.a != report.b else (a, b)
    if as_json:
        _json(report.to_dict())
    elif not report.differences:
        _say(f"{name_a} and {name_b} behave the same")
    else:
        count = len(report.differences)
        _say(f"{name_a} and {name_b}: {count} behavioural difference{'s' if count != 1 else ''}")
        for number, difference in enumerate(report.differences, start=1):
            _say("")
            if difference.path:
                _say(f"{number}. after")
                for move in difference.path:
                    _say(f"     {move}")
                _say(f"   then {difference.step}")
            else:
                _say(f"{number}. from {difference.source.value}: {difference.step}")
            _say(f"     {name_a} {difference.a}")
            _say(f"     {name_b} {difference.b}")
    return REFUSED if report.differences else 0


@cli.command()
@click.option(
    "--db", type=click.Path(dir_okay=False), help="SQLite file to create (a temporary one by default)."
)
def demo(db: str | None) -> int:
    """Walk both built-in policies through their flows on SQLite."""
    from account_lifecycle.demo import run_demo

    return run_demo(db)


# -- the operator console ---------------------------------------------------------------------


class RecordingPurger:
    """A no-op purger for trying policies out: erases nothing, and says so in the audit trail."""

    def __init__(self, category: str) -> None:
        self.category = category
        self.name = f"no-op:{category}"

    def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:
        return PurgeResult(items=0, detail="no-op purger (console without --app): nothing erased")


def _nothing_pending(account_id: str) -> Sequence[str]:
    return ()


def _open_store(db: str | None, dsn: str | None, schema: str | None) -> AccountStore:
    if db is not None and dsn is not None:
        raise _Stop(USAGE, "error: give --db FILE or --dsn URL, not both")
    if schema is not None and dsn is None:
        raise _Stop(USAGE, "error: --schema applies to --dsn (PostgreSQL) only")
    if dsn is not None:
        try:
            from account_lifecycle.adapters.postgres import PostgresStore
        except ImportError as exc:
            raise _Stop(
                USAGE,
                f"error: --dsn needs the 'postgres' extra (pip install 'account-lifecycle[postgres]'): {exc}",
            ) from None
        # The pool logs each failed connection attempt; the one error below says it all.
        logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
        try:
            store = PostgresStore(dsn, schema=schema or "account_lifecycle", max_connections=2, timeout=10)
            store.migrate()
        except StoreError as exc:
            raise _Stop(USAGE, f"error: cannot use the PostgreSQL database: {exc}") from None
        return store
    from account_lifecycle.adapters.sqlite import SQLiteStore

    path = db if db is not None else "accounts.db"
    try:
        return SQLiteStore(path)
    except StoreError as exc:
        raise _Stop(USAGE, f"error: {exc}") from None
    except Exception as exc:  # sqlite3.DatabaseError for a file that is not a database
        if type(exc).__module__ == "sqlite3":
            raise _Stop(USAGE, f"error: cannot open SQLite database {path!r}: {exc}") from None
        raise


def _from_app(spec: str, store: AccountStore) -> Lifecycle:
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise _Stop(USAGE, f"error: --app expects module:factory, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: the host's modules are found from here
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise _Stop(USAGE, f"error: --app {spec}: cannot import {module_name!r}: {exc}") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise _Stop(USAGE, f"error: --app {spec}: {module_name} has no callable {attribute!r}")
    try:
        takes_store = bool(inspect.signature(factory).parameters)
        lifecycle = factory(store) if takes_store else factory()
    except ConfigurationError as exc:
        raise _Stop(USAGE, f"error: --app {spec}: {exc}") from None
    if not isinstance(lifecycle, Lifecycle):
        raise _Stop(USAGE, f"error: --app {spec} returned {type(lifecycle).__name__}, not a Lifecycle")
    return lifecycle


def _parse_now(text: str) -> datetime:
    return _parse_time(text, "--now")


def _parse_time(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _Stop(
            USAGE, f"error: {option} expects an ISO time like 2026-01-31T12:00:00Z, got {text!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@contextmanager
def _lifecycle(options: dict[str, Any]) -> Iterator[Lifecycle]:
    app, policy_name, now = options["app"], options["policy"], options["now"]
    if app is not None and (policy_name is not None or now is not None):
        raise _Stop(USAGE, "error: --app builds its own lifecycle; drop --policy and --now")
    if app is None and policy_name is None:
        names = ", ".join(sorted(BUILTIN))
        raise _Stop(USAGE, f"error: give --policy ({names} or a policy file), or --app module:factory")
    store = _open_store(options["db"], options["dsn"], options["schema"])
    try:
        if app is not None:
            lifecycle = _from_app(app, store)
        else:
            policy = _load(policy_name)
            lifecycle = Lifecycle(
                policy,
                store=store,
                purgers=[RecordingPurger(c.name) for c in policy.purge.categories],
                prerequisites=dict.fromkeys(policy.prerequisites, _nothing_pending),
                clock=None if now is None else ManualClock(_parse_now(now)),
            )
        yield lifecycle
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()


def _same_policy(lifecycle: Lifecycle, account_id: str, options: dict[str, Any]) -> None:
    """With --policy, refuse to drive an account that was opened under another policy."""
    if options["app"] is not None:
        return
    events = lifecycle.history(account_id)
    if events:
        recorded = events[-1].policy
        if recorded.rpartition("@")[0] != lifecycle.policy.name:
            raise _Stop(
                USAGE,
                f"error: account {account_id!r} is governed by policy {recorded}, not "
                f"{lifecycle.policy.label}; pass --policy {recorded.rpartition('@')[0]}",
            )


def _console(command: F) -> F:
    """The store and lifecycle options every console command takes."""
    options = [
        click.option(
            "--db", metavar="FILE", envvar="ACCOUNT_LIFECYCLE_DB", help="SQLite file [default: accounts.db]."
        ),
        click.option(
            "--dsn", metavar="URL", envvar="ACCOUNT_LIFECYCLE_DSN", help="PostgreSQL connection string."
        ),
        click.option(
            "--schema",
            metavar="NAME",
            envvar="ACCOUNT_LIFECYCLE_SCHEMA",
            help="With --dsn: the schema [default: account_lifecycle].",
        ),
        click.option(
            "--app",
            metavar="MODULE:FACTORY",
            envvar="ACCOUNT_LIFECYCLE_APP",
            help="Host function returning a configured Lifecycle (given the store if it takes an argument).",
        ),
        click.option(
            "--policy",
            metavar="NAME|FILE",
            envvar="ACCOUNT_LIFECYCLE_POLICY",
            help="Without --app: a built-in policy or a policy file, with no-op purgers.",
        ),
        click.option(
            "--now", metavar="TIME", help="Without --app: pretend it is this ISO time (UTC if no zone)."
        ),
        click.option("--json", "as_json", is_flag=True, help="Print JSON."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _actor(ctx: click.Context, param: click.Parameter, value: str | None) -> Actor | None:
    if value is None:
        return None
    try:
        return Actor.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


_AS = click.option(
    "--as", "actor", required=True, callback=_actor, metavar="ACTOR", help="user:ID, support:ID or system."
)


def _split(options: dict[str, Any]) -> dict[str, Any]:
    keys = ("db", "dsn", "schema", "app", "policy", "now")
    return {key: options.pop(key) for key in keys}


def _time(moment: datetime | None) -> str:
    return "-" if moment is None else format_time(moment)


def _show_record(record: AccountRecord, allowed: frozenset[Action] | None = None) -> None:
    _say(f"{record.account_id}: {record.state.value} (version {record.version})")
    members = ", ".join(sorted(record.members)) or "none"
    _say(f"  owner {record.owner}; members {members}")
    if record.cancelled_at is not None:
        _say(
            f"  cancelled at {_time(record.cancelled_at)}; restorable until {_time(record.restorable_until)}"
        )
    for category, progress in record.purge.items():
        detail = f"{progress.items} items" if progress.error is None else progress.error
        _say(f"  purge {category}: {progress.status.value} after {progress.attempts} attempt(s), {detail}")
    for service, state in record.services.items():
        _say(f"  service {service}: {state.value}")
    if allowed is not None:
        _say(f"  allowed now: {', '.join(sorted(a.value for a in allowed)) or 'nothing'}")


def _emit_record(record: AccountRecord, as_json: bool, allowed: frozenset[Action] | None = None) -> None:
    if as_json:
        data = record_to_dict(record)
        if allowed is not None:
            data["allowed_actions"] = sorted(a.value for a in allowed)
        _json(data)
    else:
        _show_record(record, allowed)


def _run(options: dict[str, Any], account_id: str, act: Callable[[Lifecycle], AccountRecord]) -> None:
    as_json = options.pop("as_json")
    settings = _split(options)
    with _lifecycle(settings) as lifecycle:
        _same_policy(lifecycle, account_id, settings)
        record = act(lifecycle)
        _emit_record(record, as_json)


@cli.command("open")
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


@cli.command()
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


@cli.command()
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


@cli.command()
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
    **options: Any,
) -> None:
    """Confirm the cancellation; the cancel-time purge runs before this returns."""
    logged_in = None if authenticated_at is None else _parse_time(authenticated_at, "--authenticated-at")
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


@cli.command()
@click.argument("account_id")
@_AS
@_console
@_guarded
def withdraw(account_id: str, actor: Actor, **options: Any) -> None:
    """Withdraw a cancellation before confirming it."""
    _run(options, account_id, lambda lc: lc.withdraw(account_id, actor))


@cli.command()
@click.argument("account_id")
@_AS
@_console
@_guarded
def restore(account_id: str, actor: Actor, **options: Any) -> None:
    """Restore a RESTORABLE account while its window is open."""
    _run(options, account_id, lambda lc: lc.restore(account_id, actor))


@cli.command()
@click.option("--limit", type=click.IntRange(min=0), help="Handle at most this many accounts.")
@_console
@_guarded
def sweep(limit: int | None, **options: Any) -> int:
    """Finish unfinished purges and purge accounts whose window ended. Exits 1 if a purge failed."""
    as_json = options.pop("as_json")
    with _lifecycle(_split(options)) as lifecycle:
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


@cli.command()
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


_EFFECT_WORDS = {
    "revoke_team_access": "team members lose access",
    "forfeit_credit": "remaining credit is forfeited",
}


def _timeline_lines(timeline: Timeline) -> list[str]:
    """The timeline in plain words: what a confirm page and the notification e-mails say."""
    if timeline.hypothetical:
        head = f"{timeline.account_id}: {timeline.state.value}; if confirmed at {_time(timeline.at)}:"
    else:
        head = f"{timeline.account_id}: {timeline.state.value}, cancelled at {_time(timeline.cancelled_at)}:"
    lines = [head]
    if timeline.hypothetical and timeline.token is not None:
        lines.append(f"  type exactly {json.dumps(timeline.token, ensure_ascii=False)} to confirm")
    if timeline.hypothetical and timeline.fresh_login is not None:
        lines.append(f"  a login within the last {timeline.fresh_login} is needed to confirm")
    effects = ["access ends", *(_EFFECT_WORDS.get(e, e) for e in timeline.on_cancel)]
    lines.append(f"  at cancellation: {', '.join(effects)}")
    for erasure in timeline.erasures:
        when = "at confirm" if erasure.moment == "cancel" else "when the window ends"
        verb = "erased" if erasure.done else "to be erased"
        lines.append(f"  {erasure.category}: {verb} {_time(erasure.at)} ({when})")
    for kept in timeline.kept:
        lines.append(f"  {kept.category}: kept ({kept.reason})")
    if timeline.window_choices:
        choices = ", ".join(str(c) for c in timeline.window_choices)
        lines.append(f"  window: {timeline.window} (choices: {choices})")
    for phase in timeline.phases:
        who = ", ".join(r.value for r in phase.restore) or "nobody"
        now = " (now)" if phase.number == timeline.current_phase else ""
        name = f"restore phase {phase.number}" if len(timeline.phases) > 1 else "restore"
        lines.append(f"  {name}{now}: {_time(phase.starts)} until {_time(phase.ends)}, by {who}")
    if timeline.restorable_until is None:
        lines.append("  restore: never (no recovery window)")
    else:
        lines.append(f"  last moment to restore: before {_time(timeline.restorable_until)}")
    return lines


def _show_event(event: AuditEvent) -> None:
    data = event.to_dict()
    source = data["from_state"] or "-"
    details = json.dumps(data["details"], ensure_ascii=False, sort_keys=True)
    _say(
        f"#{event.seq:<3} {data['at']}  {data['actor']:<18} {data['action']:<22} "
        f"{source} -> {data['to_state']}  {details}"
    )


@cli.command()
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
            for event in events:
                _show_event(event)
        lifecycle.verify_history(account_id)
    if not as_json:
        _say(f"audit chain of {account_id} verifies ({len(events)} events)")
    return 0


def _show_receipt(receipt: ErasureReceipt) -> None:
    _say(f"erasure receipt for {receipt.account_id} ({receipt.policy})")
    for erased in receipt.erased:
        _say(f"  erased {erased.category}: {erased.items} items at {format_time(erased.at)}")
    _say(f"  kept (protected): {', '.join(receipt.kept) if receipt.kept else 'nothing'}")
    _say(f"  chain head {receipt.chain_head}")


@cli.command()
@click.argument("account_id")
@_console
@_guarded
def receipt(account_id: str, **options: Any) -> None:
    """Show the erasure receipt of a PURGED account."""
    as_json = options.pop("as_json")
    with _lifecycle(_split(options)) as lifecycle:
        proof = lifecycle.receipt(account_id)
    if as_json:
        click.echo(proof.to_json())
    else:
        _show_receipt(proof)
