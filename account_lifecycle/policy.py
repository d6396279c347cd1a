"""Policy: one variant of the cancellation flow, as frozen, validated data.

A policy is built in Python or read from a TOML file whose layout mirrors the
attribute paths (``[survey] mode = "required"``). Every problem is a
``PolicyError`` naming the key, raised when the policy is built.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, cast

import attrs

from account_lifecycle.duration import Duration
from account_lifecycle.errors import PolicyError
from account_lifecycle.model import Action, Relation, SurveyOutcome

__all__ = [
    "ACTIONS_WITH_PERMISSIONS",
    "INVARIANTS",
    "ON_CANCEL_EFFECTS",
    "Acknowledgement",
    "ConfirmationPolicy",
    "Policy",
    "PurgeCategory",
    "PurgePolicy",
    "RecoveryPolicy",
    "SurveyPolicy",
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
)
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}", re.ASCII)
_MAX_TEXT = 2000


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
    mode: str = "required"
    outcomes: tuple[SurveyOutcome, ...] = attrs.field(
        default=tuple(SurveyOutcome), converter=_convert_outcomes
    )


@attrs.frozen
class ConfirmationPolicy:
    token: str | None = None
    acknowledgements: tuple[Acknowledgement, ...] = attrs.field(default=(), converter=_tuple)


@attrs.frozen
class RecoveryPolicy:
    window: Duration | None = None


@attrs.frozen
class PurgeCategory:
    """A data category the host erases, at cancellation or when the recovery window ends."""

    name: str
    at: str = "cancel"


@attrs.frozen
class PurgePolicy:
    categories: tuple[PurgeCategory, ...] = attrs.field(default=(), converter=_tuple)
    protected: tuple[str, ...] = attrs.field(default=(), converter=_tuple)

    def at(self, moment: str) -> tuple[str, ...]:
        """Names of the categories erased at ``"cancel"`` or at ``"expiry"``."""
        return tuple(c.name for c in self.categories if c.at == moment)


def _default_permissions() -> Mapping[Action, frozenset[Relation]]:
    return {action: frozenset({Relation.OWNER}) for action in ACTIONS_WITH_PERMISSIONS}


def _convert_permissions(
    value: Mapping[Any, Iterable[Any]],
) -> Mapping[Action, frozenset[Relation]]:
    if not isinstance(value, Mapping):
        raise PolicyError(key="permissions", message=f"expected a table, got {value!r}")
    out: dict[Action, frozenset[Relation]] = {}
    allowed = {a.value for a in ACTIONS_WITH_PERMISSIONS}
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

    def __attrs_post_init__(self) -> None:
        _validate(self)

    @property
    def label(self) -> str:
        """``name@version``, recorded in every audit event."""
        return f"{self.name}@{self.version}"

    def may(self, action: Action, relation: Relation | None) -> bool:
        return relation is not None and relation in self.permissions.get(action, frozenset())

    # -- TOML ---------------------------------------------------------------------------

    @classmethod
    def from_toml(cls, text: str) -> Policy:
        """Build a policy from TOML text; any problem is a ``PolicyError`` naming the key."""
        from account_lifecycle.policy_toml import policy_from_toml

        return policy_from_toml(text)

    @classmethod
    def load(cls, path: str | PathLike[str]) -> Policy:
        """Read a policy file. An unreadable file is an ``OSError``; bad content a ``PolicyError``."""
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


def _validate(policy: Policy) -> None:
    _check_text("name", policy.name)
    if policy.name != policy.name.strip() or not policy.name.isprintable() or len(policy.name) > 100:
        raise _fail(
            "name",
            f"expected one line of at most 100 characters with no surrounding spaces, got {policy.name!r}",
        )
    if isinstance(policy.version, bool) or not isinstance(policy.version, int) or policy.version < 1:
        raise _fail("version", f"expected a whole number >= 1, got {policy.version!r}")
    _check_text("description", policy.description, allow_empty=True)
    for key, value in (
        ("prerequisites", policy.prerequisites),
        ("on_cancel", policy.on_cancel),
        ("services", policy.services),
        ("waivers", policy.waivers),
    ):
        _check_list(key, value)

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
    _check_list("confirmation.acknowledgements", confirmation.acknowledgements)
    ack_ids: set[str] = set()
    for index, ack in enumerate(confirmation.acknowledgements):
        key = f"confirmation.acknowledgements[{index}]"
        if not isinstance(ack, Acknowledgement):
            raise _fail(key, f"expected an Acknowledgement, got {ack!r}")
        _check_name(f"{key}.id", ack.id, ack_ids)
        _check_text(f"{key}.text", ack.text)

    _check_names("prerequisites", policy.prerequisites)

    recovery = policy.recovery
    if not isinstance(recovery, RecoveryPolicy):
        raise _fail("recovery", f"expected a RecoveryPolicy, got {recovery!r}")
    if recovery.window is not None and not isinstance(recovery.window, Duration):
        raise _fail("recovery.window", f"expected a Duration or none, got {recovery.window!r}")
    has_window = recovery.window is not None

    purge = policy.purge
    if not isinstance(purge, PurgePolicy):
        raise _fail("purge", f"expected a PurgePolicy, got {purge!r}")
    _check_list("purge.categories", purge.categories)
    _check_list("purge.protected", purge.protected)
    names: set[str] = set()
    for index, category in enumerate(purge.categories):
        key = f"purge.categories[{index}]"
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
    _check_names("purge.protected", purge.protected)
    for index, name in enumerate(purge.protected):
        if name in names:
            raise _fail(
                f"purge.protected[{index}]",
                f"{name!r} is both purged and protected; a category is one or the other",
            )

    _check_names("on_cancel", policy.on_cancel)
    for index, effect in enumerate(policy.on_cancel):
        if effect not in ON_CANCEL_EFFECTS:
            raise _fail(
                f"on_cancel[{index}]",
                f"unknown effect {effect!r}; expected one of {', '.join(ON_CANCEL_EFFECTS)}",
            )

    if policy.identity_reuse not in IDENTITY_REUSE:
        raise _fail(
            "identity_reuse",
            f"expected one of {', '.join(IDENTITY_REUSE)}, got {policy.identity_reuse!r}",
        )
    if policy.identity_reuse == "after_cancel" and has_window:
        raise _fail(
            "identity_reuse",
            "'after_cancel' would let another account take the identity of an account that "
            "can still be restored; use 'after_purge' with a recovery window",
        )

    _check_names("services", policy.services)
    _check_names("waivers", policy.waivers)
    for index, waiver in enumerate(policy.waivers):
        if waiver not in INVARIANTS:
            raise _fail(
                f"waivers[{index}]",
                f"unknown invariant {waiver!r}; expected one of {', '.join(INVARIANTS)}",
            )
