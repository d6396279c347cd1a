"""Records, timelines, audit events and receipts as text (or JSON) for the console."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from account_lifecycle.audit import AuditEvent, format_time
from account_lifecycle.cli._common import _json, _say
from account_lifecycle.cli.tables import print_table
from account_lifecycle.codec import record_to_dict
from account_lifecycle.model import AccountRecord, Action
from account_lifecycle.receipts import ErasureReceipt
from account_lifecycle.timeline import Timeline


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
        held = ", waits for the legal hold to be released" if erasure.waits_for_hold else ""
        lines.append(f"  {erasure.category}: {verb} {_time(erasure.at)} ({when}{held})")
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


def _show_events(events: Sequence[AuditEvent]) -> None:
    """The audit events as a table: one row per event, oldest first."""
    rows = []
    for event in events:
        data = event.to_dict()
        details = json.dumps(data["details"], ensure_ascii=False, sort_keys=True)
        rows.append(
            (
                str(event.seq),
                data["at"],
                data["actor"],
                data["action"],
                f"{data['from_state'] or '-'} -> {data['to_state']}",
                details,
            )
        )
    print_table(None, ("#", "at", "actor", "action", "state", "details"), rows)


def _show_receipt(receipt: ErasureReceipt) -> None:
    _say(f"erasure receipt for {receipt.account_id} ({receipt.policy})")
    for erased in receipt.erased:
        _say(f"  erased {erased.category}: {erased.items} items at {format_time(erased.at)}")
    _say(f"  kept (protected): {', '.join(receipt.kept) if receipt.kept else 'nothing'}")
    _say(f"  chain head {receipt.chain_head}")
