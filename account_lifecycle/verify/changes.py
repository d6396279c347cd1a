"""What changes between two policies, in plain words: the semantic half of ``diff_policies``.

Each ``Change`` is one line a product person can read ("the recovery window: 3 months ->
30 days"), with the policy keys involved, who notices it first (``"customer"``,
``"support"`` or ``"auditor"``) and a ``risky`` mark. A change is risky when the second
policy erases more or sooner, lets fewer people restore (or for less time), or drops a
safeguard that stands before an erasure (a token, an acknowledgement, a fresh login, a
prerequisite, a reminder, legal holds) or an invariant (a new waiver).

Every field of ``Policy`` is compared; a field that differs in a way no rule below words
still yields a change (``_leftovers``), so "no change" means the two policies are equal.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final

import attrs

from account_lifecycle.describe import RELATION_WORDS, join_words
from account_lifecycle.duration import Duration
from account_lifecycle.model import Action, Relation
from account_lifecycle.policy import ACTIONS_WITH_PERMISSIONS, HOLD_ACTIONS, Policy

__all__ = ["AUDIENCES", "Change", "policy_changes"]

#: Who notices a change first, in the order ``diff`` prints them.
AUDIENCES: Final = ("customer", "support", "auditor")


@attrs.frozen
class Change:
    """One difference between two policies that someone would notice.

    ``text`` is one line in plain words, reading from the first policy to the second
    (``"X -> Y"``); ``keys`` are the policy-file keys involved (``recovery.window``);
    ``audience`` is ``"customer"``, ``"support"`` or ``"auditor"``; ``risky`` marks a change
    that erases more or sooner, lets fewer people restore, or drops a safeguard."""

    text: str
    keys: tuple[str, ...]
    audience: str
    risky: bool = False

    def __str__(self) -> str:
        return f"{'RISKY ' if self.risky else ''}{self.text} [{', '.join(self.keys)}]"

    def to_dict(self) -> dict[str, Any]:
        """As plain JSON data: text, keys, audience, risky."""
        return {"text": self.text, "keys": list(self.keys), "audience": self.audience, "risky": self.risky}


def policy_changes(a: Policy, b: Policy) -> tuple[Change, ...]:
    """Every difference between *a* and *b* someone would notice, customers' first."""
    changes: list[Change] = []
    for rule in _RULES:
        changes += rule(a, b)
    changes += _leftovers(a, b, changes)
    return tuple(sorted(changes, key=lambda c: AUDIENCES.index(c.audience)))


# -- words ----------------------------------------------------------------------------------


def _arrow(before: str, after: str) -> str:
    return f"{before} -> {after}"


def _quoted(text: str | None) -> str:
    return "none" if text is None else f'"{text}"'


def _listed(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "none"


def _who(relations: frozenset[Relation] | tuple[Relation, ...]) -> str:
    words = [RELATION_WORDS[r] for r in Relation if r in relations]
    return join_words(words, "or") if words else "nobody"


def _days(days: float) -> str:
    return f"day {days:g}"


# -- identity of the policy ------------------------------------------------------------------


def _label(a: Policy, b: Policy) -> Iterator[Change]:
    if a.name != b.name:
        yield Change(f"the policy's name: {_arrow(a.name, b.name)}", ("name",), "auditor")
    if a.version != b.version:
        yield Change(
            f"the version recorded in every audit event: {_arrow(str(a.version), str(b.version))}",
            ("version",),
            "auditor",
        )
    if a.description != b.description:
        yield Change("the description changes", ("description",), "auditor")


# -- asking and confirming -------------------------------------------------------------------


def _survey(a: Policy, b: Policy) -> Iterator[Change]:
    if a.survey.mode != b.survey.mode:
        yield Change(
            f"the survey before cancelling: {_arrow(a.survey.mode, b.survey.mode)}",
            ("survey.mode",),
            "customer",
        )
    before = [o.value for o in a.survey.outcomes]
    after = [o.value for o in b.survey.outcomes]
    if before != after:
        yield Change(
            f"the survey's answers: {_arrow(_listed(before), _listed(after))}",
            ("survey.outcomes",),
            "customer",
        )


def _confirmation(a: Policy, b: Policy) -> Iterator[Change]:
    one, other = a.confirmation, b.confirmation
    if one.token != other.token:
        yield Change(
            f"the text typed to confirm: {_arrow(_quoted(one.token), _quoted(other.token))}",
            ("confirmation.token",),
            "customer",
            risky=other.token is None,
        )
    texts = {ack.id: ack.text for ack in one.acknowledgements}
    new_texts = {ack.id: ack.text for ack in other.acknowledgements}
    for ack_id in [i for i in texts if i not in new_texts]:
        yield Change(
            f"acknowledgement {ack_id!r} is no longer asked before confirming",
            ("confirmation.acknowledgements",),
            "customer",
            risky=True,
        )
    for ack_id in [i for i in new_texts if i not in texts]:
        yield Change(
            f"acknowledgement {ack_id!r} is asked before confirming",
            ("confirmation.acknowledgements",),
            "customer",
        )
    for ack_id in [i for i in texts if i in new_texts]:
        if texts[ack_id] != new_texts[ack_id]:
            yield Change(
                f"the text of acknowledgement {ack_id!r} changes",
                ("confirmation.acknowledgements",),
                "customer",
            )
    if one.fresh_login != other.fresh_login:
        words = [
            f"a login within {d}" if d is not None else "no fresh login"
            for d in (one.fresh_login, other.fresh_login)
        ]
        looser = other.fresh_login is None or (
            one.fresh_login is not None and other.fresh_login.approx_days > one.fresh_login.approx_days
        )
        yield Change(
            f"confirming needs {_arrow(*words)}", ("confirmation.fresh_login",), "customer", risky=looser
        )
    gone = [p for p in a.prerequisites if p not in b.prerequisites]
    added = [p for p in b.prerequisites if p not in a.prerequisites]
    if gone or added:
        yield Change(
            f"confirming waits for the checks: {_arrow(_listed(a.prerequisites), _listed(b.prerequisites))}",
            ("prerequisites",),
            "customer",
            risky=bool(gone),
        )


# -- who may do what ----------------------------------------------------------------------------

#: Granting these to more relations erases more; to fewer, restores less (see _risky_grant).
_MORE_IS_RISKY: Final = frozenset(
    {
        Action.REQUEST_CANCELLATION,
        Action.CONFIRM,
        Action.RELEASE_HOLD,
        Action.ADD_MEMBER,  # a new member gains whatever members may do
        Action.CHANGE_IDENTITY,  # who holds the sign-in identity holds the account
    }
)
_FEWER_IS_RISKY: Final = frozenset({Action.RESTORE, Action.PLACE_HOLD, Action.WITHDRAW})


def _permissions(a: Policy, b: Policy) -> Iterator[Change]:
    for action in (*ACTIONS_WITH_PERMISSIONS, *HOLD_ACTIONS):
        before = a.permissions.get(action, frozenset())
        after = b.permissions.get(action, frozenset())
        if before == after:
            continue
        gained, lost = after - before, before - after
        risky = bool(gained and action in _MORE_IS_RISKY) or bool(lost and action in _FEWER_IS_RISKY)
        users = {Relation.OWNER, Relation.MEMBER}
        audience = "customer" if (gained | lost) & users else "support"
        yield Change(
            f"who may {action.value.replace('_', ' ')}: {_arrow(_who(before), _who(after))}",
            (f"permissions.{action.value}",),
            audience,
            risky,
        )


# -- recovery ----------------------------------------------------------------------------------


def _window_words(policy: Policy) -> str:
    recovery = policy.recovery
    if recovery.phases:
        lengths = join_words([str(p.length) for p in recovery.phases], "then")
        return f"{len(recovery.phases)} phases: {lengths}"
    if recovery.choices:
        offered = join_words([str(c) for c in recovery.choices], "or")
        return f"the owner's choice of {offered} ({recovery.choices[0]} unless chosen)"
    return "none" if recovery.window is None else str(recovery.window)


def _recovery_keys(a: Policy, b: Policy) -> tuple[str, ...]:
    keys = ("window", "phases", "choices")
    return tuple(f"recovery.{k}" for k in keys if getattr(a.recovery, k) != getattr(b.recovery, k))


def _spans(policy: Policy, window: Duration | None) -> dict[Relation, list[tuple[float, float]]]:
    """For each relation, the stretches (in days after cancellation, months counted long) in
    which it may restore, for the *window* picked (None: the default)."""
    spans: dict[Relation, list[tuple[float, float]]] = {r: [] for r in Relation}
    start = 0.0
    for phase in policy.recovery_phases(window):
        end = start + phase.length.approx_days
        for relation in phase.restore:
            spans[relation].append((start, end))
        start = end
    return spans


def _covered(inner: list[tuple[float, float]], outer: list[tuple[float, float]]) -> bool:
    """Whether every stretch of *inner* lies within the stretches of *outer*."""
    merged: list[list[float]] = []
    for start, end in sorted(outer):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return all(any(m[0] <= s and e <= m[1] for m in merged) for s, e in inner)


def _windows(policy: Policy) -> tuple[Duration | None, ...]:
    return policy.recovery.choices or (None,)


def _restores_less(a: Policy, b: Policy, relations: Sequence[Relation] = tuple(Relation)) -> bool:
    """Whether one of *relations* may restore under *a* at a moment (for the default window,
    or for the longest one offered) when it may not under *b*."""
    picks: list[tuple[Duration | None, Duration | None]] = [(None, None)]
    longest_a = max(_windows(a), key=lambda d: 0.0 if d is None else d.approx_days)
    longest_b = max(_windows(b), key=lambda d: 0.0 if d is None else d.approx_days)
    picks.append((longest_a, longest_b))
    for pick_a, pick_b in picks:
        spans_a, spans_b = _spans(a, pick_a), _spans(b, pick_b)
        if any(not _covered(spans_a[r], spans_b[r]) for r in relations):
            return True
    return False


def _stretch_words(spans: list[tuple[float, float]]) -> str:
    if not spans:
        return "never"
    return join_words([f"from {_days(s)} until {_days(e)}" for s, e in spans])


def _length(policy: Policy, window: Duration | None) -> float:
    return sum(phase.length.approx_days for phase in policy.recovery_phases(window))


def _ends_sooner(a: Policy, b: Policy) -> bool:
    """Whether *b*'s window (the default one, or the longest offered) ends before *a*'s."""
    if _length(b, None) < _length(a, None):
        return True
    return max(_length(b, w) for w in _windows(b)) < max(_length(a, w) for w in _windows(a))


def _recovery(a: Policy, b: Policy) -> Iterator[Change]:
    keys = _recovery_keys(a, b)
    window_a, window_b = _window_words(a), _window_words(b)
    if window_a != window_b:
        yield Change(
            f"the recovery window: {_arrow(window_a, window_b)}", keys, "customer", risky=_ends_sooner(a, b)
        )
    if a.recovery.phases or b.recovery.phases:  # who may restore when (else permissions.restore says it)
        spans_a, spans_b = _spans(a, None), _spans(b, None)
        if a.permissions.get(Action.RESTORE) != b.permissions.get(Action.RESTORE):
            keys = (*keys, "permissions.restore")
        for relation in Relation:
            if spans_a[relation] == spans_b[relation]:
                continue
            audience = "customer" if relation in (Relation.OWNER, Relation.MEMBER) else "support"
            yield Change(
                f"{RELATION_WORDS[relation]} may restore (counted from cancellation, a month as 31 days): "
                f"{_arrow(_stretch_words(spans_a[relation]), _stretch_words(spans_b[relation]))}",
                keys or ("recovery.phases",),
                audience,
                risky=_restores_less(a, b, (relation,)),
            )
    before, after = a.recovery.reminders, b.recovery.reminders
    if before != after:
        yield Change(
            "reminders before the window ends: "
            f"{_arrow(_listed([str(r) for r in before]), _listed([str(r) for r in after]))}",
            ("recovery.reminders",),
            "customer",
            risky=any(r not in after for r in before),
        )


# -- erasure -------------------------------------------------------------------------------------

_FATE_WORDS: Final = {
    "cancel": "erased at cancellation",
    "expiry": "erased when the recovery window ends",
    "protected": "never erased (protected)",
    None: "not mentioned (never erased)",
}
#: How soon a category is erased: more is sooner.
_FATE_RANK: Final = {None: 0, "protected": 0, "expiry": 1, "cancel": 2}


def _fates(policy: Policy) -> dict[str, str]:
    fates = {c.name: c.at for c in policy.purge.categories}
    fates.update(dict.fromkeys(policy.purge.protected, "protected"))
    return fates


def _erasure(a: Policy, b: Policy) -> Iterator[Change]:
    fates_a, fates_b = _fates(a), _fates(b)
    for category in dict.fromkeys([*fates_a, *fates_b]):
        before, after = fates_a.get(category), fates_b.get(category)
        if before == after:
            continue
        keys = tuple(
            dict.fromkeys(
                "purge.protected" if fate == "protected" else "purge.categories"
                for fate in (before, after)
                if fate is not None
            )
        )
        never = {None, "protected"}
        yield Change(
            f"{category}: {_arrow(_FATE_WORDS[before], _FATE_WORDS[after])}",
            keys,
            "auditor" if before in never and after in never else "customer",
            risky=_FATE_RANK[after] > _FATE_RANK[before],
        )
    order_a = [c.name for c in a.purge.categories if fates_b.get(c.name) == c.at]
    order_b = [c.name for c in b.purge.categories if fates_a.get(c.name) == c.at]
    if order_a != order_b:
        yield Change(
            f"the order categories are erased in: {_arrow(_listed(order_a), _listed(order_b))}",
            ("purge.categories",),
            "auditor",
        )
    if a.purge.on_hold != b.purge.on_hold:
        words = {
            None: "no legal holds",
            "wait": "a held category waits, and so does the account",
            "retain": "a held category is retained, the account moves on",
        }
        yield Change(
            f"legal holds: {_arrow(words[a.purge.on_hold], words[b.purge.on_hold])}",
            ("purge.on_hold",),
            "auditor",
            risky=b.purge.on_hold is None,
        )
    if a.purge.cancel_work != b.purge.cancel_work:
        words = {
            "inline": "confirm runs the cancel-time erasure before it returns",
            "deferred": "confirm returns at once; the next sweep runs the cancel-time erasure",
        }
        yield Change(
            f"cancel-time erasure: {_arrow(words[a.purge.cancel_work], words[b.purge.cancel_work])}",
            ("purge.cancel_work",),
            "support",
        )


# -- at cancellation and afterwards ------------------------------------------------------------


def _afterwards(a: Policy, b: Policy) -> Iterator[Change]:
    if set(a.on_cancel) != set(b.on_cancel):
        yield Change(
            f"at cancellation: {_arrow(_listed(a.on_cancel), _listed(b.on_cancel))}",
            ("on_cancel",),
            "customer",
            risky=bool(set(b.on_cancel) - set(a.on_cancel)),
        )
    if a.identity_reuse != b.identity_reuse:
        yield Change(
            f"the same identity may open another account: {_arrow(a.identity_reuse, b.identity_reuse)}",
            ("identity_reuse",),
            "customer",
        )
    for kind in dict.fromkeys([*a.identity, *b.identity]):
        before, after = a.identity.get(kind), b.identity.get(kind)
        if before != after:
            words = [str(rule) if rule is not None else "not held" for rule in (before, after)]
            yield Change(
                f"the same {kind} may open another account: {_arrow(*words)}",
                (f"identity.{kind}",),
                "customer",
            )
    if set(a.services) != set(b.services):
        yield Change(
            f"services cancelled alone: {_arrow(_listed(a.services), _listed(b.services))}",
            ("services",),
            "support",
        )
    if set(a.waivers) != set(b.waivers):
        yield Change(
            f"invariants waived: {_arrow(_listed(a.waivers), _listed(b.waivers))}",
            ("waivers",),
            "auditor",
            risky=bool(set(b.waivers) - set(a.waivers)),
        )


_RULES: Final = (_label, _survey, _confirmation, _permissions, _recovery, _erasure, _afterwards)


def _leftovers(a: Policy, b: Policy, found: Sequence[Change]) -> Iterator[Change]:
    """A change for each field that differs but no rule worded (the order of a list, say)."""
    worded = {key.partition("[")[0] for change in found for key in change.keys}
    for field in attrs.fields(Policy):
        before, after = getattr(a, field.name), getattr(b, field.name)
        if before == after:
            continue
        if field.name in ("survey", "confirmation", "recovery", "purge"):
            for inner in attrs.fields(type(before)):
                key = f"{field.name}.{inner.name}"
                if key not in worded and getattr(before, inner.name) != getattr(after, inner.name):
                    yield Change(f"{key} differs (in order or form only)", (key,), "auditor")
        elif not any(key == field.name or key.startswith(f"{field.name}.") for key in worded):
            yield Change(f"{field.name} differs (in order or form only)", (field.name,), "auditor")
