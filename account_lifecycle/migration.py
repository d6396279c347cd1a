"""Moving accounts from one policy version to another, with a plan first.

``plan_account`` is the pure decision for one account: what migrating it from version *source*
to version *target* writes (the pin, the recovery window and the erasure ledger as *target*
has them for the account's state), which promise it would break (``MigrationRule``), or why
it cannot move at all. ``MigrationPlan`` counts it per state, in the words of the semantic
diff (``verify.changes``). ``Lifecycle.plan_migration`` and ``Lifecycle.migrate_accounts``
gather the records and write through the journal, fenced like any other command.

The promises are made at confirm: a cancelled or restorable account keeps its recovery window
and each restore phase (no end moves earlier), its categories are not erased earlier than
*source* said, nor erased at all when *source* kept them, and its legal holds stand. A
migration that would break one is refused unless that rule is allowed explicitly.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import attrs

from account_lifecycle.closure import reminder_schedule
from account_lifecycle.decide import Decision, Event
from account_lifecycle.duration import Duration
from account_lifecycle.model import AccountRecord, PurgeProgress, PurgeStatus, Relation, ServiceState, State
from account_lifecycle.policy import Policy, RecoveryPhase, phase_bounds
from account_lifecycle.schedule import EFFECT_PREFIX
from account_lifecycle.verify.changes import Change, policy_changes

__all__ = [
    "AccountMove",
    "MigrationPlan",
    "MigrationReport",
    "MigrationRule",
    "StatePlan",
    "check_rules",
    "plan_account",
    "policy_rules_broken",
]


class MigrationRule(enum.StrEnum):
    """A promise a migration may break, refused unless allowed by name (``--allow NAME``).

    ``SHORTEN_WINDOW``: a cancelled or restorable account's recovery window, or a phase in which
    some relation may restore, would end earlier. ``ERASE_EARLIER``: a category erased when the
    window ends would be erased at cancellation (at once, for a restorable account).
    ``ERASE_KEPT``: a category kept (protected or not listed) would be erased. ``DROP_HOLD``: a
    legal hold on a category the target version does not erase would be dropped."""

    SHORTEN_WINDOW = "shorten-window"
    ERASE_EARLIER = "erase-earlier"
    ERASE_KEPT = "erase-kept"
    DROP_HOLD = "drop-hold"


#: What each rule protects, in the plan's words.
RULE_WORDS: Final[Mapping[MigrationRule, str]] = {
    MigrationRule.SHORTEN_WINDOW: "a recovery window or restore phase already promised would end sooner",
    MigrationRule.ERASE_EARLIER: "a category would be erased earlier than promised",
    MigrationRule.ERASE_KEPT: "a category promised to be kept would be erased",
    MigrationRule.DROP_HOLD: "a legal hold would be dropped",
}

_CONFIRMED: Final = (State.CANCELLED, State.RESTORABLE)
#: The policy keys whose change matters to an account already confirmed.
_CONFIRMED_KEYS: Final = ("recovery.", "purge.", "permissions.restore", "permissions.place_hold", "identity")


def check_rules(allow: Iterable[str | MigrationRule]) -> frozenset[MigrationRule]:
    """The rules named in *allow*; a ``ValueError`` naming the known ones for any other."""
    if isinstance(allow, str):
        allow = (allow,)
    out = set()
    for name in allow:
        try:
            out.add(MigrationRule(name))
        except ValueError:
            known = ", ".join(r.value for r in MigrationRule)
            raise ValueError(f"no migration rule {name!r}; the rules are {known}") from None
    return frozenset(out)


@attrs.frozen
class AccountMove:
    """What migrating one account would do: the ``decision`` to write (None when it cannot
    move), the promises it breaks, ``blocked`` (why it cannot move at all) or ``busy`` (purge
    steps are running on it: a later run moves it)."""

    account_id: str
    state: State
    broken: tuple[MigrationRule, ...] = ()
    blocked: str | None = None
    busy: bool = False
    decision: Decision | None = None

    @property
    def window_moves(self) -> int:
        """+1 if the move ends the account's recovery window later, -1 sooner, 0 if not at all."""
        if self.decision is None or "restorable_until" not in self.decision.changes:
            return 0
        moved = self.decision.events[0].details["restorable_until"]
        before, after = moved["from"], moved["to"]
        return 1 if before is not None and after is not None and after > before else -1


def _fates(policy: Policy) -> dict[str, str]:
    fates = {c.name: c.at for c in policy.purge.categories}
    fates.update(dict.fromkeys(policy.purge.protected, "protected"))
    return fates


def _chosen(policy: Policy, record: AccountRecord) -> Duration | None:
    """The window the owner picked at confirm (found from the promised end), for a policy with
    choices; None otherwise."""
    choices = policy.recovery.choices
    if not choices or record.cancelled_at is None:
        return None
    for choice in choices:
        bounds = phase_bounds(policy.recovery_phases(choice), record.cancelled_at)
        if bounds and bounds[-1][1] == record.restorable_until:
            return choice
    return choices[0]


def _spans(
    phases: Sequence[RecoveryPhase], start: datetime
) -> dict[Relation, list[tuple[datetime, datetime]]]:
    spans: dict[Relation, list[tuple[datetime, datetime]]] = {r: [] for r in Relation}
    for phase, (begin, end) in zip(phases, phase_bounds(phases, start), strict=True):
        for relation in phase.restore:
            spans[relation].append((begin, end))
    return spans


def _covered(inner: list[tuple[datetime, datetime]], outer: list[tuple[datetime, datetime]]) -> bool:
    merged: list[list[datetime]] = []
    for begin, end in sorted(outer):
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    return all(any(m[0] <= s and e <= m[1] for m in merged) for s, e in inner)


def _window_shortened(source: Policy, target: Policy, start: datetime, window: Duration | None) -> bool:
    """Whether some relation may restore under *source* (window *window*) at a moment it may
    not under *target*, for a window opened at *start*."""
    pick = window if window is not None and window in target.recovery.choices else None
    spans_a = _spans(source.recovery_phases(window), start)
    spans_b = _spans(target.recovery_phases(pick), start)
    ends_a = phase_bounds(source.recovery_phases(window), start)
    ends_b = phase_bounds(target.recovery_phases(pick), start)
    if ends_a and (not ends_b or ends_b[-1][1] < ends_a[-1][1]):
        return True
    return any(not _covered(spans_a[r], spans_b[r]) for r in Relation)


def policy_rules_broken(source: Policy, target: Policy) -> tuple[MigrationRule, ...]:
    """The rules migrating *some* confirmed account from *source* to *target* would break, for
    any window choice and for windows opened on a month's 31st as on its 1st (``verify``
    checks each allowed migration of a registry with it)."""
    broken: list[MigrationRule] = []
    starts = (datetime(2025, 1, 31, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))
    windows: tuple[Duration | None, ...] = source.recovery.choices or (None,)
    if any(_window_shortened(source, target, s, w) for s in starts for w in windows):
        broken.append(MigrationRule.SHORTEN_WINDOW)
    fates_a, fates_b = _fates(source), _fates(target)
    erased_b = {c.name: c.at for c in target.purge.categories}
    if any(at == "cancel" and fates_a.get(name) == "expiry" for name, at in erased_b.items()):
        broken.append(MigrationRule.ERASE_EARLIER)
    if any(fates_a.get(name) in (None, "protected") for name in erased_b):
        broken.append(MigrationRule.ERASE_KEPT)
    if any(fates_b.get(c.name) not in ("cancel", "expiry") for c in source.purge.categories):
        broken.append(MigrationRule.DROP_HOLD)  # a hold on it could not be released any more
    return tuple(broken)


def plan_account(record: AccountRecord, source: Policy, target: Policy, now: datetime) -> AccountMove:
    """What migrating *record* from *source* to *target* at *now* writes, and the promises it
    breaks (the caller writes it only when each is allowed). Pure."""
    state = record.state
    move = AccountMove(record.account_id, state)
    if state is State.PURGED:
        return attrs.evolve(move, blocked="purged accounts keep the version they were purged under")
    if record.erasure is not None:
        return attrs.evolve(move, busy=True)  # the fence: steps in flight depend on the plan
    if state is State.SURVEYED and target.survey.mode == "none":
        return attrs.evolve(move, blocked=f"{target.label} has no survey to answer")
    if state is State.RESTORABLE and not target.recovery.has_window:
        return attrs.evolve(move, blocked=f"{target.label} has no recovery window to be restorable in")
    broken: list[MigrationRule] = []
    changes: dict[str, Any] = {"policy": target.name, "policy_version": target.version}
    details: dict[str, Any] = {"from": record.policy_label, "to": target.label}
    missing = [s for s in target.services if s not in record.services]
    if missing:
        changes["services"] = {**record.services, **dict.fromkeys(missing, ServiceState.ACTIVE)}
    erased_b = {c.name for c in target.purge.categories}
    dropped = sorted(c for c in record.holds if c not in erased_b)
    if dropped:
        broken.append(MigrationRule.DROP_HOLD)
        changes["holds"] = {k: v for k, v in record.holds.items() if k not in dropped}
        details["holds_dropped"] = dropped
    if state in _CONFIRMED:
        _confirmed_changes(record, source, target, now, changes, details, broken)
    if broken:
        details["rules_allowed"] = [r.value for r in dict.fromkeys(broken)]
    event = Event("policy_migrated", state, state, details)
    return attrs.evolve(move, broken=tuple(dict.fromkeys(broken)), decision=Decision(changes, (event,)))


def _confirmed_changes(
    record: AccountRecord,
    source: Policy,
    target: Policy,
    now: datetime,
    changes: dict[str, Any],
    details: dict[str, Any],
    broken: list[MigrationRule],
) -> None:
    """The window and the ledger of a cancelled or restorable account under *target*."""
    assert record.cancelled_at is not None
    state = record.state
    window = _chosen(source, record)
    pick = window if window is not None and window in target.recovery.choices else None
    bounds = phase_bounds(target.recovery_phases(pick), record.cancelled_at)
    until = bounds[-1][1] if bounds else None
    if _window_shortened(source, target, record.cancelled_at, window) or (
        record.restorable_until is not None and (until is None or until < record.restorable_until)
    ):
        broken.append(MigrationRule.SHORTEN_WINDOW)
    if until != record.restorable_until:
        changes["restorable_until"] = until
        details["restorable_until"] = {"from": record.restorable_until, "to": until}
        if state is State.RESTORABLE and until is not None:
            sent = {r.before: r.sent_at for r in record.reminders if r.sent_at is not None}
            changes["reminders"] = tuple(
                attrs.evolve(r, sent_at=sent.get(r.before))
                for r in reminder_schedule(target.recovery.reminders, until)
            )
    fates_a = _fates(source)
    at_b = target.purge.at("cancel") if state is State.CANCELLED else target.purge.at("expiry")
    ledger: dict[str, PurgeProgress] = {}
    for key, progress in record.purge.items():
        if (
            key.startswith(EFFECT_PREFIX)
            or progress.status is PurgeStatus.DONE
            or key in at_b
            or (key in record.holds and key in target.purge.at("cancel"))
        ):
            ledger[key] = progress  # else: the target erases it later, or keeps it
    for category in target.purge.categories:
        name = category.name
        if name in ledger and ledger[name].status is PurgeStatus.DONE:
            continue
        before = fates_a.get(name)
        if before in (None, "protected"):
            broken.append(MigrationRule.ERASE_KEPT)
        elif category.at == "cancel" and before == "expiry":
            broken.append(MigrationRule.ERASE_EARLIER)
        if category.at == "cancel" and state is State.RESTORABLE and name not in ledger:
            ledger[name] = PurgeProgress(retry_at=now)  # its phase is over: due at once
        elif name in at_b:
            ledger.setdefault(name, PurgeProgress())
    if ledger != dict(record.purge):
        changes["purge"] = ledger


@attrs.frozen
class StatePlan:
    """One state's part of a plan: how many accounts, the changes that matter to them (in the
    semantic diff's words), how many break each rule, and how many cannot move (and why) or
    are busy now."""

    state: State
    accounts: int
    changes: tuple[Change, ...]
    broken: Mapping[MigrationRule, int] = attrs.field(factory=dict)
    blocked: Mapping[str, int] = attrs.field(factory=dict)
    busy: int = 0
    #: How many accounts' recovery window would end later, and how many sooner.
    later: int = 0
    sooner: int = 0


def _relevant(state: State, changes: Sequence[Change]) -> tuple[Change, ...]:
    if state is State.PURGED:
        return ()
    if state in _CONFIRMED:
        return tuple(c for c in changes if any(k.startswith(_CONFIRMED_KEYS) for k in c.keys))
    return tuple(changes)


@attrs.frozen
class MigrationPlan:
    """What migrating every account pinned to ``source`` to ``target`` would do, per state, and
    which broken rules are not ``allowed`` (``refused``: the migration is refused while any)."""

    source: str
    target: str
    changes: tuple[Change, ...]
    states: tuple[StatePlan, ...]
    allowed: frozenset[MigrationRule] = frozenset()

    @classmethod
    def of(
        cls,
        source: Policy,
        target: Policy,
        moves: Iterable[AccountMove],
        allowed: frozenset[MigrationRule] = frozenset(),
    ) -> MigrationPlan:
        """The plan of *moves* (one per account)."""
        changes = policy_changes(source, target)
        by_state: dict[State, list[AccountMove]] = {}
        for move in moves:
            by_state.setdefault(move.state, []).append(move)
        states = []
        for state in State:
            found = by_state.get(state, [])
            if not found:
                continue
            broken: dict[MigrationRule, int] = {}
            blocked: dict[str, int] = {}
            for move in found:
                for rule in move.broken:
                    broken[rule] = broken.get(rule, 0) + 1
                if move.blocked is not None:
                    blocked[move.blocked] = blocked.get(move.blocked, 0) + 1
            states.append(
                StatePlan(
                    state,
                    len(found),
                    _relevant(state, changes),
                    broken,
                    blocked,
                    sum(1 for m in found if m.busy),
                    sum(1 for m in found if m.window_moves > 0),
                    sum(1 for m in found if m.window_moves < 0),
                )
            )
        return cls(source.label, target.label, changes, tuple(states), allowed)

    @property
    def accounts(self) -> int:
        """How many accounts are pinned to ``source``."""
        return sum(s.accounts for s in self.states)

    @property
    def refused(self) -> dict[str, int]:
        """Each broken rule that is not allowed, with how many accounts break it."""
        out: dict[str, int] = {}
        for rule in MigrationRule:
            count = sum(s.broken.get(rule, 0) for s in self.states)
            if count and rule not in self.allowed:
                out[rule.value] = count
        return out

    def to_text(self) -> str:
        """The plan as the ``migrate-accounts`` command prints it."""
        lines = [f"migrate {self.source} -> {self.target}: {_count(self.accounts)}"]
        for plan in self.states:
            lines.append(f"{plan.state.value}: {_count(plan.accounts)}")
            for change in plan.changes:
                lines.append(f"  {change}")
            if plan.state is not State.PURGED and not plan.changes:
                lines.append("  nothing changes for them but the version they follow")
            if plan.later:
                lines.append(f"  their recovery window ends later: {_count(plan.later)}")
            if plan.sooner:
                lines.append(f"  their recovery window ends sooner: {_count(plan.sooner)}")
            for rule, count in plan.broken.items():
                verdict = "allowed" if rule in self.allowed else f"REFUSED (--allow {rule.value})"
                lines.append(f"  {verdict}: {RULE_WORDS[rule]}: {_count(count)} [{rule.value}]")
            for reason, count in plan.blocked.items():
                lines.append(f"  not migrated: {reason}: {_count(count)}")
            if plan.busy:
                lines.append(f"  busy (erasure in flight, a later run moves them): {_count(plan.busy)}")
        refused = self.refused
        if refused:
            lines.append("refused: " + ", ".join(f"{rule} ({_count(n)})" for rule, n in refused.items()))
        return "\n".join(lines)


def _count(n: int) -> str:
    return f"{n} account{'' if n == 1 else 's'}"


@attrs.frozen
class MigrationReport:
    """What ``Lifecycle.migrate_accounts`` did: its ``plan``, and with ``dry_run`` False the
    accounts ``migrated``, ``busy`` (purge steps in flight or a command racing it: run again),
    ``refused`` (an account that came to break a rule not allowed since the plan, with the
    rules) and ``failed`` (by account id, why)."""

    plan: MigrationPlan
    dry_run: bool
    migrated: tuple[str, ...] = ()
    busy: tuple[str, ...] = ()
    refused: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    failed: Mapping[str, str] = attrs.field(factory=dict)
