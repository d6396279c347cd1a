"""Policy: one variant of the cancellation flow, as frozen, validated data.

A policy is built in Python or read from a TOML file whose layout mirrors the
attribute paths (``[survey] mode = "required"``). Every problem is a
``PolicyError`` naming the key, raised when the policy is built.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from os import PathLike
from types import MappingProxyType
from typing import Any, Final, cast

import attrs

from account_lifecycle.closure import DEFAULT_IDENTITY_KIND, HOLD_MODES, IdentityReuse, longest, shortest
from account_lifecycle.duration import Duration
from account_lifecycle.errors import PolicyError
from account_lifecycle.identity import DEFAULT_EMAIL_LOCAL_PART, EMAIL_LOCAL_PART
from account_lifecycle.model import Action, Relation, SurveyOutcome

__all__ = [
    "ACCOUNT_ID_PLACEHOLDER",
    "ACTIONS_WITH_PERMISSIONS",
    "CANCEL_WORK_MODES",
    "HOLD_ACTIONS",
    "INVARIANTS",
    "ON_CANCEL_EFFECTS",
    "TEAM_ACTIONS",
    "Acknowledgement",
    "ConfirmationPolicy",
    "Policy",
    "PurgeCategory",
    "PurgePolicy",
    "RecoveryPhase",
    "RecoveryPolicy",
    "SurveyPolicy",
    "phase_bounds",
]

SURVEY_MODES: Final = ("required", "optional", "off")
PURGE_TIMES: Final = ("cancel", "expiry")
IDENTITY_REUSE: Final = ("after_cancel", "after_purge", "never")
ON_CANCEL_EFFECTS: Final = ("revoke_team_access", "forfeit_credit")
INVARIANTS: Final = (
    "owner_confirms",
    "no_restore_after_window",
    "purged_terminal",
    "all_states_reachable",
    "no_dead_end",
)
#: Changes of the team and of the identity after ``open``. A written ``[permissions]`` table
#: that leaves one out grants it to nobody (files from before these commands keep their
#: meaning: team and identity frozen at ``open``); a policy built in Python without
#: ``permissions`` grants them to the owner.
TEAM_ACTIONS: Final = (Action.ADD_MEMBER, Action.REMOVE_MEMBER, Action.CHANGE_IDENTITY)
#: Actions a policy grants to relations; ``open`` is the host's and ``purge`` the system's.
ACTIONS_WITH_PERMISSIONS: Final = (
    Action.REQUEST_CANCELLATION,
    Action.SUBMIT_SURVEY,
    Action.SKIP_SURVEY,
    Action.WITHDRAW,
    Action.CONFIRM,
    Action.RESTORE,
    Action.TRANSFER_OWNERSHIP,
    Action.CANCEL_SERVICE,
    *TEAM_ACTIONS,
)
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}", re.ASCII)
_MAX_TEXT = 2000
#: The one placeholder a confirmation token may hold, replaced by the account's id.
ACCOUNT_ID_PLACEHOLDER: Final = "{account_id}"
# What reads as a placeholder: a name in braces. Other braces ("{}", "{!}") are literal text.
_PLACEHOLDER = re.compile(r"\{ *[A-Za-z_][A-Za-z0-9_ .-]*\}", re.ASCII)
#: The longest ``confirmation.fresh_login``: a login older than a day is no step-up.
MAX_FRESH_LOGIN: Final = timedelta(hours=24)
_WINDOW_UNITS: Final = ("days", "weeks", "months", "years")


def _tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    """Lists become tuples; anything else is left as it is for validation to name the key."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return cast(tuple[Any, ...], value)
    return tuple(value)


@attrs.frozen
class Acknowledgement:
    """A statement the actor must acknowledge before confirming."""

    id: str
    text: str


def _convert_outcomes(value: Iterable[Any]) -> tuple[SurveyOutcome, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise PolicyError(key="survey.outcomes", message=f"expected a list, got {value!r}")
    out = []
    for index, raw in enumerate(value):
        if raw not in {o.value for o in SurveyOutcome}:
            raise PolicyError(
                key=f"survey.outcomes[{index}]",
                message=f"expected keep_account, book_meeting or cancel, got {raw!r}",
            )
        out.append(SurveyOutcome(raw))
    return tuple(out)


@attrs.frozen
class SurveyPolicy:
    """``[survey]``: ``mode`` (required, optional, off) and the ``outcomes`` offered."""

    mode: str = "required"
    outcomes: tuple[SurveyOutcome, ...] = attrs.field(
        default=tuple(SurveyOutcome), converter=_convert_outcomes
    )


@attrs.frozen
class ConfirmationPolicy:
    """``[confirmation]``: the ``token`` to type (may name ``{account_id}``), the
    ``acknowledgements``, and ``fresh_login`` (step-up)."""

    token: str | None = None
    acknowledgements: tuple[Acknowledgement, ...] = attrs.field(default=(), converter=_tuple)
    #: How recent the actor's last login must be to confirm (step-up), or None.
    fresh_login: Duration | None = None

    def token_for(self, account_id: str) -> str | None:
        """The exact text to type for *account_id*: the token with ``{account_id}`` replaced by
        the id (``"DELETE {account_id}"`` -> ``"DELETE acc-1"``), or None for a plain confirm."""
        if self.token is None:
            return None
        return self.token.replace(ACCOUNT_ID_PLACEHOLDER, account_id)


def _convert_relations(value: Iterable[Any]) -> tuple[Any, ...]:
    """Relation names become ``Relation``s; anything else is left for validation to name."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return cast(tuple[Any, ...], value)
    known = {r.value for r in Relation}
    return tuple(Relation(v) if isinstance(v, str) and v in known else v for v in value)


@attrs.frozen
class RecoveryPhase:
    """One stretch of a phased recovery window, and the relations that may restore during it."""

    length: Duration
    restore: tuple[Relation, ...] = attrs.field(converter=_convert_relations)


@attrs.frozen
class RecoveryPolicy:
    """How a cancelled account can be restored: no window, a ``window`` (restored by
    ``permissions.restore``), ``phases`` (each with who may restore in it), or ``choices``
    (the owner picks the window's length when confirming; the first when none is picked)."""

    window: Duration | None = None
    phases: tuple[RecoveryPhase, ...] = attrs.field(default=(), converter=_tuple)
    choices: tuple[Duration, ...] = attrs.field(default=(), converter=_tuple)
    #: How long before the window ends a reminder goes out (``"7 days"``, ``"1 day"``).
    reminders: tuple[Duration, ...] = attrs.field(default=(), converter=_tuple, kw_only=True)

    @property
    def has_window(self) -> bool:
        """Whether a cancelled account can be restored for a while (any of the three forms)."""
        return self.window is not None or bool(self.phases) or bool(self.choices)

    def choose(self, window: Duration | str | None) -> Duration | None:
        """The window picked at confirm time: *window* if it is one of ``choices`` (a
        ``Duration`` or its text, ``"60 days"``), the first choice if None. Without choices only
        None is accepted (and None returned). Anything else is a ``ValueError``."""
        if window is None:
            return self.choices[0] if self.choices else None
        if not self.choices:
            raise ValueError(
                f"this policy offers no choice of recovery window, got window={str(window)!r}; "
                "leave it out (recovery.choices lists the lengths an owner may pick)"
            )
        picked = Duration.parse(window) if isinstance(window, str) else window
        if not isinstance(picked, Duration):
            raise TypeError(f"window must be a duration text like '30 days', got {type(window).__name__}")
        if picked not in self.choices:
            offered = ", ".join(f"'{c}'" for c in self.choices)
            raise ValueError(f"window '{picked}' is not offered; choose one of {offered}")
        return picked


def phase_bounds(phases: Iterable[RecoveryPhase], start: datetime) -> tuple[tuple[datetime, datetime], ...]:
    """``(starts, ends)`` of each phase of a window opened at *start*: each phase starts when the
    previous one ends (calendar months clamped at each step); the last end is ``restorable_until``."""
    bounds = []
    for phase in phases:
        end = phase.length.add_to(start)
        bounds.append((start, end))
        start = end
    return tuple(bounds)


@attrs.frozen
class PurgeCategory:
    """A data category the host erases, at cancellation or when the recovery window ends."""

    name: str
    at: str = "cancel"


@attrs.frozen
class PurgePolicy:
    """``[purge]``: the ``categories`` erased at cancel or at window expiry, the ``protected``
    ones never handed to a purger, and ``on_hold``."""

    categories: tuple[PurgeCategory, ...] = attrs.field(default=(), converter=_tuple)
    protected: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    #: What a legal hold does to its category's purge: ``"wait"``, ``"retain"``, or None when
    #: the policy takes no legal holds.
    on_hold: str | None = attrs.field(default=None, kw_only=True)
    #: Where ``confirm`` leaves the cancel-time steps: ``"inline"`` (run before it returns, the
    #: default) or ``"deferred"`` (one commit; ``sweep`` or a worker runs them).
    cancel_work: str = attrs.field(default="inline", kw_only=True)

    def at(self, moment: str) -> tuple[str, ...]:
        """Names of the categories erased at ``"cancel"`` or at ``"expiry"``."""
        return tuple(c.name for c in self.categories if c.at == moment)


#: Legal holds: granted to ``permissions.place_hold`` and ``permissions.release_hold``,
#: support and the system by default (also when a written ``[permissions]`` table leaves
#: them out, so files from before holds keep their meaning).
HOLD_ACTIONS: Final = (Action.PLACE_HOLD, Action.RELEASE_HOLD)
HOLD_PERMISSIONS: Final = frozenset({Relation.SUPPORT, Relation.SYSTEM})


def _default_permissions() -> Mapping[Action, frozenset[Relation]]:
    return {
        **{action: frozenset({Relation.OWNER}) for action in ACTIONS_WITH_PERMISSIONS},
        **dict.fromkeys(HOLD_ACTIONS, HOLD_PERMISSIONS),
    }


def _convert_permissions(
    value: Mapping[Any, Iterable[Any]],
) -> Mapping[Action, frozenset[Relation]]:
    if not isinstance(value, Mapping):
        raise PolicyError(key="permissions", message=f"expected a table, got {value!r}")
    out: dict[Action, frozenset[Relation]] = {}
    allowed = {a.value for a in (*ACTIONS_WITH_PERMISSIONS, *HOLD_ACTIONS)}
    for raw_action, raw_relations in value.items():
        if raw_action not in allowed:
            raise PolicyError(
                key=f"permissions.{raw_action}",
                message=f"not an action a policy grants; expected one of {', '.join(sorted(allowed))}",
            )
        if isinstance(raw_relations, str) or not isinstance(raw_relations, Iterable):
            raise PolicyError(
                key=f"permissions.{raw_action}",
                message=f"expected a list of relations, got {raw_relations!r}",
            )
        relations: set[Relation] = set()
        for raw in raw_relations:
            if raw not in {r.value for r in Relation}:
                raise PolicyError(
                    key=f"permissions.{raw_action}",
                    message=f"unknown relation {raw!r}; expected owner, member, support or system",
                )
            if Relation(raw) in relations:
                raise PolicyError(key=f"permissions.{raw_action}", message=f"{raw!r} is listed twice")
            relations.add(Relation(raw))
        out[Action(raw_action)] = frozenset(relations)
    for action in ACTIONS_WITH_PERMISSIONS:
        out.setdefault(action, frozenset())
    for action in HOLD_ACTIONS:
        out.setdefault(action, HOLD_PERMISSIONS)
    return MappingProxyType(out)


def _convert_identity(value: Mapping[Any, Any]) -> Mapping[str, IdentityReuse]:
    """Kind -> rule; a rule may be given as its text (``"after 30 days"``)."""
    if not isinstance(value, Mapping):
        raise PolicyError(key="identity", message=f"expected a table, got {value!r}")
    out: dict[str, IdentityReuse] = {}
    for kind, rule in value.items():
        if isinstance(rule, str):
            try:
                rule = IdentityReuse.parse(rule)
            except ValueError as exc:
                raise PolicyError(key=f"identity.{kind}", message=str(exc)) from None
        out[kind] = rule
    return MappingProxyType(out)


@attrs.frozen(unsafe_hash=False)
class Policy:
    """One variant of the cancellation flow. Validated when built; see ``docs/policy-files.md``."""

    name: str
    version: int = 1
    survey: SurveyPolicy = attrs.Factory(SurveyPolicy)
    confirmation: ConfirmationPolicy = attrs.Factory(ConfirmationPolicy)
    prerequisites: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    permissions: Mapping[Action, frozenset[Relation]] = attrs.field(
        factory=_default_permissions, converter=_convert_permissions
    )
    recovery: RecoveryPolicy = attrs.Factory(RecoveryPolicy)
    purge: PurgePolicy = attrs.Factory(PurgePolicy)
    on_cancel: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    identity_reuse: str = "after_purge"
    services: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    waivers: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    description: str = ""
    #: When each kind of identifier (``email``, ``phone``, ...) may open another account.
    identity: Mapping[str, IdentityReuse] = attrs.field(factory=dict, converter=_convert_identity)
    #: Whether ``email`` identifiers that differ only in the case of their local part are one
    #: address (``"case_insensitive"``, the default) or two (``"case_sensitive"``); see
    #: ``account_lifecycle.identity``. TOML: ``[identity] email_local_part``.
    email_local_part: str = DEFAULT_EMAIL_LOCAL_PART

    def __attrs_post_init__(self) -> None:
        _validate(self)

    @property
    def label(self) -> str:
        """``name@version``, recorded in every audit event."""
        return f"{self.name}@{self.version}"

    def may(self, action: Action, relation: Relation | None) -> bool:
        """Whether *relation* may take *action* under ``permissions``."""
        return relation is not None and relation in self.permissions.get(action, frozenset())

    def identity_rule(self, kind: str) -> IdentityReuse:
        """The reuse rule of identifiers of *kind*; the single ``identity`` follows
        ``identity_reuse`` (``"after_cancel"`` is ``"at_once"``). ``KeyError`` for a kind the
        policy does not list."""
        if kind == DEFAULT_IDENTITY_KIND:
            when = self.identity_reuse
            return IdentityReuse("at_once" if when == "after_cancel" else when)
        return self.identity[kind]

    def recovery_phases(self, window: Duration | None = None) -> tuple[RecoveryPhase, ...]:
        """The phases of the recovery window: ``recovery.phases``, or for the simple forms one
        phase of ``recovery.window`` (or of the chosen *window*, by default the first of
        ``recovery.choices``) in which ``permissions.restore`` may restore. Empty without one."""
        recovery = self.recovery
        if recovery.phases:
            return recovery.phases
        length = recovery.window
        if recovery.choices:
            length = window if window is not None else recovery.choices[0]
        if length is None:
            return ()
        granted = self.permissions.get(Action.RESTORE, frozenset())
        return (RecoveryPhase(length, tuple(r for r in Relation if r in granted)),)

    # -- TOML ---------------------------------------------------------------------------

    @classmethod
    def from_toml(cls, text: str) -> Policy:
        """Build a policy from TOML text; any problem is a ``PolicyError`` naming the key."""
        from account_lifecycle.policy_toml import policy_from_toml

        return policy_from_toml(text)

    @classmethod
    def load(cls, path: str | PathLike[str]) -> Policy:
        """Read a policy file. An unreadable file is an ``OSError``; bad content a ``PolicyError``."""
        from pathlib import Path  # here, not at import: pathlib imports urllib and ipaddress

        from account_lifecycle.policy_toml import policy_from_bytes

        return policy_from_bytes(Path(path).read_bytes())

    def to_toml(self) -> str:
        """The policy as TOML; ``Policy.from_toml(p.to_toml()) == p``."""
        from account_lifecycle.policy_toml import policy_to_toml

        return policy_to_toml(self)


# -- validation -----------------------------------------------------------------------------


def _fail(key: str, message: str) -> PolicyError:
    return PolicyError(key=key, message=message)


def _check_text(key: str, value: object, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _fail(key, f"expected a string, got {value!r}")
    if not allow_empty and not value.strip():
        raise _fail(key, "must not be empty")
    if len(value) > _MAX_TEXT:
        raise _fail(key, f"must be at most {_MAX_TEXT} characters, got {len(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(key, f"must be valid Unicode text, got {value!r}") from None
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in value):
        raise _fail(key, f"must not contain control characters, got {value!r}")
    return value


def _check_name(where: str, value: object, seen: set[str]) -> None:
    """*value* is a lower-case name not in *seen*; then it is added to *seen*."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise _fail(
            where,
            "expected a lower-case name like 'port_outs' (a letter, then letters, digits or _, "
            f"at most 64), got {value!r}",
        )
    if value in seen:
        raise _fail(where, f"{value!r} is listed twice")
    seen.add(value)


def _check_names(key: str, values: tuple[Any, ...]) -> None:
    seen: set[str] = set()
    for index, value in enumerate(values):
        _check_name(f"{key}[{index}]", value, seen)


def _check_list(key: str, value: object) -> None:
    if not isinstance(value, tuple):
        raise _fail(key, f"expected a list, got {value!r}")


def _check_window_length(key: str, value: object) -> Duration:
    if not isinstance(value, Duration):
        raise _fail(key, f"expected a Duration, got {value!r}")
    if value.unit not in _WINDOW_UNITS:
        raise _fail(key, f"expected a duration in days, weeks, months or years like '90 days', got '{value}'")
    return value


def _check_recovery(policy: Policy, recovery: RecoveryPolicy) -> None:
    """The three forms of a window (``window``, ``phases``, ``choices``) exclude each other."""
    if recovery.window is not None:
        _check_window_length("recovery.window", recovery.window)
    _check_list("recovery.phases", recovery.phases)
    _check_list("recovery.choices", recovery.choices)
    if recovery.phases and recovery.window is not None:
        raise _fail(
            "recovery.phases",
            "give recovery.window or recovery.phases, not both: a window is one phase in which "
            "permissions.restore may restore",
        )
    if recovery.choices and (recovery.window is not None or recovery.phases):
        other = "recovery.window" if recovery.window is not None else "recovery.phases"
        raise _fail(
            "recovery.choices",
            f"the window is chosen from recovery.choices at confirm time; drop {other}",
        )
    granted = policy.permissions.get(Action.RESTORE, frozenset())
    total = 0.0
    for index, phase in enumerate(recovery.phases):
        key = f"recovery.phases[{index}]"
        if not isinstance(phase, RecoveryPhase):
            raise _fail(key, f"expected a RecoveryPhase, got {phase!r}")
        total += _check_window_length(f"{key}.length", phase.length).approx_days
        if not isinstance(phase.restore, tuple):
            raise _fail(f"{key}.restore", f"expected a list of relations, got {phase.restore!r}")
        if not phase.restore:
            raise _fail(
                f"{key}.restore",
                "must name at least one relation; a phase in which nobody may restore is no recovery",
            )
        seen: set[Relation] = set()
        for relation in phase.restore:
            if not isinstance(relation, Relation):
                raise _fail(
                    f"{key}.restore",
                    f"unknown relation {relation!r}; expected owner, member, support or system",
                )
            if relation in seen:
                raise _fail(f"{key}.restore", f"{relation.value!r} is listed twice")
            seen.add(relation)
            if relation not in granted:
                raise _fail(
                    f"{key}.restore",
                    f"{relation.value!r} may restore in this phase, but permissions.restore does not "
                    f"grant it; add {relation.value!r} to permissions.restore (who may ever restore)",
                )
    if total > 36_600:
        raise _fail("recovery.phases", "the phases may last at most 100 years together")
    lengths: set[Duration] = set()
    for index, choice in enumerate(recovery.choices):
        key = f"recovery.choices[{index}]"
        _check_window_length(key, choice)
        if choice in lengths:
            raise _fail(key, f"'{choice}' is listed twice")
        lengths.add(choice)


def _validate(policy: Policy) -> None:
    """Every problem of *policy*, each check on its own: raise one ``PolicyError`` for the
    first, listing them all (``PolicyError.errors``)."""
    errors: list[PolicyError] = []
    for check in _CHECKS:
        try:
            errors += check(policy) or ()
        except PolicyError as exc:
            errors.append(exc)
    if errors:
        raise PolicyError.of(errors)


def _has_window(policy: Policy) -> bool:
    recovery = policy.recovery
    return isinstance(recovery, RecoveryPolicy) and recovery.has_window


def _check_header(policy: Policy) -> None:
    _check_text("name", policy.name)
    if policy.name != policy.name.strip() or not policy.name.isprintable() or len(policy.name) > 100:
        raise _fail(
            "name",
            f"expected one line of at most 100 characters with no surrounding spaces, got {policy.name!r}",
        )


def _check_version(policy: Policy) -> None:
    if isinstance(policy.version, bool) or not isinstance(policy.version, int) or policy.version < 1:
        raise _fail("version", f"expected a whole number >= 1, got {policy.version!r}")


def _check_description(policy: Policy) -> None:
    _check_text("description", policy.description, allow_empty=True)


def _check_lists(policy: Policy) -> list[PolicyError]:
    errors = []
    for key, value in (
        ("prerequisites", policy.prerequisites),
        ("on_cancel", policy.on_cancel),
        ("services", policy.services),
        ("waivers", policy.waivers),
    ):
        try:
            _check_list(key, value)
            _check_names(key, value)
        except PolicyError as exc:
            errors.append(exc)
    return errors


def _check_survey(policy: Policy) -> None:
    survey = policy.survey
    if not isinstance(survey, SurveyPolicy):
        raise _fail("survey", f"expected a SurveyPolicy, got {survey!r}")
    if survey.mode not in SURVEY_MODES:
        raise _fail("survey.mode", f"expected one of {', '.join(SURVEY_MODES)}, got {survey.mode!r}")
    for index, outcome in enumerate(survey.outcomes):
        if outcome in survey.outcomes[:index]:
            raise _fail(f"survey.outcomes[{index}]", f"{outcome.value!r} is listed twice")
    if survey.mode != "off" and SurveyOutcome.CANCEL not in survey.outcomes:
        raise _fail("survey.outcomes", "must offer 'cancel', or nobody could ever cancel")


def _check_token(policy: Policy) -> None:
    confirmation = policy.confirmation
    if not isinstance(confirmation, ConfirmationPolicy):
        raise _fail("confirmation", f"expected a ConfirmationPolicy, got {confirmation!r}")
    token = confirmation.token
    if token is not None:
        _check_text("confirmation.token", token)
        if token != token.strip() or not token.isprintable():
            raise _fail(
                "confirmation.token",
                "must be visible text to type: no surrounding spaces, no line breaks, tabs or "
                f"invisible characters, got {token!r}",
            )
        if len(token) > 200:
            raise _fail("confirmation.token", "must be at most 200 characters")
        for placeholder in _PLACEHOLDER.findall(token):
            if placeholder != ACCOUNT_ID_PLACEHOLDER:
                raise _fail(
                    "confirmation.token",
                    f"unknown placeholder {placeholder!r} in {token!r}; the only placeholder is "
                    f"{ACCOUNT_ID_PLACEHOLDER!r}, replaced by the account's id",
                )


def _check_fresh_login(policy: Policy) -> None:
    fresh_login = getattr(policy.confirmation, "fresh_login", None)
    if fresh_login is not None:
        if not isinstance(fresh_login, Duration):
            raise _fail("confirmation.fresh_login", f"expected a Duration or none, got {fresh_login!r}")
        fixed = fresh_login.fixed
        if fixed is None or fixed > MAX_FRESH_LOGIN:
            raise _fail(
                "confirmation.fresh_login",
                f"expected at most 24 hours, like '15 minutes' or '2 hours', got '{fresh_login}'",
            )


def _check_acknowledgements(policy: Policy) -> list[PolicyError]:
    if not isinstance(policy.confirmation, ConfirmationPolicy):
        return []  # _check_token names it
    acknowledgements = policy.confirmation.acknowledgements
    _check_list("confirmation.acknowledgements", acknowledgements)
    errors = []
    ack_ids: set[str] = set()
    for index, ack in enumerate(acknowledgements):
        key = f"confirmation.acknowledgements[{index}]"
        try:
            if not isinstance(ack, Acknowledgement):
                raise _fail(key, f"expected an Acknowledgement, got {ack!r}")
            _check_name(f"{key}.id", ack.id, ack_ids)
            _check_text(f"{key}.text", ack.text)
        except PolicyError as exc:
            errors.append(exc)
    return errors


def _check_recovery_of(policy: Policy) -> None:
    recovery = policy.recovery
    if not isinstance(recovery, RecoveryPolicy):
        raise _fail("recovery", f"expected a RecoveryPolicy, got {recovery!r}")
    if recovery.window is not None and not isinstance(recovery.window, Duration):
        raise _fail("recovery.window", f"expected a Duration or none, got {recovery.window!r}")
    _check_recovery(policy, recovery)


def _check_purge(policy: Policy) -> list[PolicyError]:
    purge = policy.purge
    if not isinstance(purge, PurgePolicy):
        raise _fail("purge", f"expected a PurgePolicy, got {purge!r}")
    _check_list("purge.categories", purge.categories)
    _check_list("purge.protected", purge.protected)
    has_window = _has_window(policy)
    errors = []
    names: set[str] = set()
    for index, category in enumerate(purge.categories):
        key = f"purge.categories[{index}]"
        try:
            if not isinstance(category, PurgeCategory):
                raise _fail(key, f"expected a PurgeCategory, got {category!r}")
            _check_name(f"{key}.name", category.name, names)
            if category.at not in PURGE_TIMES:
                raise _fail(f"{key}.at", f"expected 'cancel' or 'expiry', got {category.at!r}")
            if category.at == "expiry" and not has_window:
                raise _fail(
                    f"{key}.at",
                    f"{category.name!r} is erased at window expiry, but the policy has no "
                    "recovery.window; use at = 'cancel' or add a window",
                )
        except PolicyError as exc:
            errors.append(exc)
    try:
        _check_names("purge.protected", purge.protected)
    except PolicyError as exc:
        errors.append(exc)
    for index, name in enumerate(purge.protected):
        if name in names:
            errors.append(
                _fail(
                    f"purge.protected[{index}]",
                    f"{name!r} is both purged and protected; a category is one or the other",
                )
            )
    return errors


def _check_on_cancel(policy: Policy) -> list[PolicyError]:
    return [
        _fail(
            f"on_cancel[{index}]",
            f"unknown effect {effect!r}; expected one of {', '.join(ON_CANCEL_EFFECTS)}",
        )
        for index, effect in enumerate(policy.on_cancel)
        if effect not in ON_CANCEL_EFFECTS
    ]


def _check_identity_reuse(policy: Policy) -> None:
    if policy.identity_reuse not in IDENTITY_REUSE:
        raise _fail(
            "identity_reuse",
            f"expected one of {', '.join(IDENTITY_REUSE)}, got {policy.identity_reuse!r}",
        )
    if policy.identity_reuse == "after_cancel" and _has_window(policy):
        raise _fail(
            "identity_reuse",
            "'after_cancel' would let another account take the identity of an account that "
            "can still be restored; use 'after_purge' with a recovery window",
        )


def _check_waivers(policy: Policy) -> list[PolicyError]:
    return [
        _fail(
            f"waivers[{index}]",
            f"unknown invariant {waiver!r}; expected one of {', '.join(INVARIANTS)}",
        )
        for index, waiver in enumerate(policy.waivers)
        if waiver not in INVARIANTS
    ]


# -- legal holds, reminders, identity quarantine (docs/closure-features.md) -----------------

_IDENTITY_WHEN: Final = ("never", "at_once", "after_purge", "after")
_MAX_KINDS: Final = 32


def _window_ends(recovery: RecoveryPolicy) -> list[Callable[[datetime], datetime]]:
    """Each way the recovery window can end, as a function of the moment it opens."""
    if recovery.window is not None:
        return [recovery.window.add_to]
    if recovery.phases:
        lengths = [phase.length for phase in recovery.phases]

        def end(start: datetime) -> datetime:
            for length in lengths:
                start = length.add_to(start)
            return start

        return [end]
    return [choice.add_to for choice in recovery.choices]


def _check_reminders(recovery: RecoveryPolicy, has_window: bool) -> list[PolicyError]:
    reminders = recovery.reminders
    _check_list("recovery.reminders", reminders)
    if not has_window:
        return [
            _fail(
                f"recovery.reminders[{index}]",
                "reminders go out before the recovery window ends, but the policy has no recovery window",
            )
            for index in range(len(reminders))
        ]
    if not reminders:
        return []
    try:
        window = min(shortest(end) for end in _window_ends(recovery))
    except (PolicyError, TypeError, AttributeError):
        return []  # the window itself is wrong: _check_recovery names it
    errors = []
    seen: set[Duration] = set()
    for index, reminder in enumerate(reminders):
        key = f"recovery.reminders[{index}]"
        if not isinstance(reminder, Duration):
            errors.append(_fail(key, f"expected a Duration, got {reminder!r}"))
        elif reminder in seen:
            errors.append(_fail(key, f"'{reminder}' is listed twice"))
        elif longest(reminder) >= window:
            errors.append(
                _fail(
                    key,
                    f"'{reminder}' before the end is not shorter than the recovery window, which can "
                    f"be as short as {window.days} days; a reminder must fall inside the window",
                )
            )
        if isinstance(reminder, Duration):
            seen.add(reminder)
    return errors


def _check_identity(policy: Policy, has_window: bool) -> None:
    if len(policy.identity) > _MAX_KINDS:
        raise _fail("identity", f"at most {_MAX_KINDS} kinds of identifier, got {len(policy.identity)}")
    for kind, rule in policy.identity.items():
        key = f"identity.{kind}"
        if not isinstance(kind, str) or not _NAME.fullmatch(kind):
            raise _fail(
                key, f"expected a lower-case kind of identifier like 'email' or 'phone', got {kind!r}"
            )
        if kind == DEFAULT_IDENTITY_KIND:
            raise _fail(
                key,
                "the single identity of open(identity=...) follows the top-level identity_reuse; "
                "name this kind of identifier otherwise, e.g. 'email'",
            )
        if (
            not isinstance(rule, IdentityReuse)
            or rule.when not in _IDENTITY_WHEN
            or (rule.when == "after") != isinstance(rule.delay, Duration)
        ):
            raise _fail(
                key,
                f"expected 'never', 'at_once', 'after_purge' or 'after <duration>', got {rule!r}",
            )
        if rule.when == "at_once" and has_window:
            raise _fail(
                key,
                "'at_once' would let another account take the identifier of an account that can "
                "still be restored; use 'after_purge' or 'after <duration>' with a recovery window",
            )


#: The values of ``[purge] cancel_work``.
CANCEL_WORK_MODES: Final = ("inline", "deferred")


def _check_cancel_work(policy: Policy) -> None:
    cancel_work = getattr(policy.purge, "cancel_work", "inline")
    if cancel_work not in CANCEL_WORK_MODES:
        raise _fail("purge.cancel_work", f"expected 'inline' or 'deferred', got {cancel_work!r}")


def _check_on_hold(policy: Policy) -> None:
    on_hold = getattr(policy.purge, "on_hold", None)
    if on_hold is not None and on_hold not in HOLD_MODES:
        raise _fail("purge.on_hold", f"expected 'wait' or 'retain', got {on_hold!r}")


def _check_reminders_of(policy: Policy) -> list[PolicyError]:
    if not isinstance(policy.recovery, RecoveryPolicy):
        return []  # _check_recovery_of names it
    return _check_reminders(policy.recovery, _has_window(policy))


def _check_identity_of(policy: Policy) -> None:
    _check_identity(policy, _has_window(policy))


def _check_email_local_part(policy: Policy) -> None:
    if policy.email_local_part not in EMAIL_LOCAL_PART:
        raise _fail(
            "identity.email_local_part",
            f"expected {' or '.join(repr(v) for v in EMAIL_LOCAL_PART)}, got {policy.email_local_part!r}",
        )


_CHECKS: Final[tuple[Callable[[Policy], list[PolicyError] | None], ...]] = (
    _check_header,
    _check_version,
    _check_description,
    _check_lists,
    _check_survey,
    _check_token,
    _check_fresh_login,
    _check_acknowledgements,
    _check_recovery_of,
    _check_purge,
    _check_on_cancel,
    _check_identity_reuse,
    _check_waivers,
    _check_on_hold,
    _check_cancel_work,
    _check_reminders_of,
    _check_identity_of,
    _check_email_local_part,
)
