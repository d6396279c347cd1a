"""Policy files: strict TOML in, canonical TOML out.

The file mirrors the attribute paths of ``Policy``. Reading is strict: an unknown
key, a value of the wrong type or a bad duration is a ``PolicyError`` naming the
key, never an exception from deep inside.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from typing import Any

from account_lifecycle.duration import Duration
from account_lifecycle.errors import PolicyError
from account_lifecycle.policy import (
    ACTIONS_WITH_PERMISSIONS,
    Acknowledgement,
    ConfirmationPolicy,
    Policy,
    PurgeCategory,
    PurgePolicy,
    RecoveryPolicy,
    SurveyPolicy,
)

__all__ = ["policy_from_toml", "policy_to_toml"]

_TOP = {
    "name",
    "version",
    "description",
    "prerequisites",
    "on_cancel",
    "identity_reuse",
    "services",
    "waivers",
    "survey",
    "confirmation",
    "permissions",
    "recovery",
    "purge",
}
_TABLES: dict[str, set[str]] = {
    "survey": {"mode", "outcomes"},
    "confirmation": {"token", "acknowledgements"},
    "recovery": {"window"},
    "purge": {"categories", "protected"},
}


def _type_name(value: object) -> str:
    return {
        str: "a string",
        int: "a whole number",
        bool: "true/false",
        float: "a number",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


class _Reader:
    """Typed access to one TOML table, naming the full key in every error."""

    def __init__(self, data: dict[str, Any], prefix: str, allowed: set[str]) -> None:
        self.data = data
        self.prefix = prefix
        for key in data:
            if key not in allowed:
                raise PolicyError(
                    key=self.key(key),
                    message=f"unknown key; expected one of {', '.join(sorted(allowed))}",
                )

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def get(self, name: str, kind: type, what: str, default: Any = None) -> Any:
        if name not in self.data:
            return default
        value = self.data[name]
        if type(value) is not kind:
            raise PolicyError(
                key=self.key(name), message=f"expected {what}, got {_type_name(value)} {value!r}"
            )
        return value

    def strings(self, name: str) -> tuple[str, ...] | None:
        values = self.get(name, list, "a list of strings")
        if values is None:
            return None
        for index, value in enumerate(values):
            if not isinstance(value, str):
                raise PolicyError(
                    key=f"{self.key(name)}[{index}]",
                    message=f"expected a string, got {_type_name(value)} {value!r}",
                )
        return tuple(values)

    def table(self, name: str) -> _Reader | None:
        value = self.get(name, dict, "a table")
        if value is None:
            return None
        return _Reader(value, f"{self.key(name)}.", _TABLES[name])


def _items(reader: _Reader, name: str, fields: set[str]) -> list[_Reader]:
    values = reader.get(name, list, "a list of tables", [])
    out = []
    for index, value in enumerate(values):
        key = f"{reader.key(name)}[{index}]"
        if not isinstance(value, dict):
            raise PolicyError(key=key, message=f"expected a table, got {_type_name(value)} {value!r}")
        item = _Reader(value, f"{key}.", fields)
        for field in sorted(fields):
            if field not in value:
                raise PolicyError(key=item.key(field), message="is required")
        out.append(item)
    return out


def _guard(key: str, build: Callable[[], Any]) -> Any:
    try:
        return build()
    except PolicyError:
        raise
    except (ValueError, TypeError) as exc:
        raise PolicyError(key=key, message=str(exc)) from None


def policy_from_toml(text: str) -> Policy:
    if not isinstance(text, str):
        raise TypeError(f"from_toml() takes the file's text, got {type(text).__name__}")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(key="", message=f"not valid TOML: {exc}") from None
    top = _Reader(data, "", _TOP)
    name = top.get("name", str, "a string")
    if name is None:
        raise PolicyError(key="name", message="is required")
    kwargs: dict[str, Any] = {"name": name}
    version = top.get("version", int, "a whole number")
    if version is not None:
        kwargs["version"] = version
    for field in ("description", "identity_reuse"):
        value = top.get(field, str, "a string")
        if value is not None:
            kwargs[field] = value
    for field in ("prerequisites", "on_cancel", "services", "waivers"):
        values = top.strings(field)
        if values is not None:
            kwargs[field] = values

    survey = top.table("survey")
    if survey is not None:
        mode = survey.get("mode", str, "a string", "required")
        outcomes = survey.strings("outcomes")
        kwargs["survey"] = SurveyPolicy(mode, outcomes) if outcomes is not None else SurveyPolicy(mode)

    confirmation = top.table("confirmation")
    if confirmation is not None:
        token = confirmation.get("token", str, "a string")
        acks = tuple(
            Acknowledgement(item.get("id", str, "a string"), item.get("text", str, "a string"))
            for item in _items(confirmation, "acknowledgements", {"id", "text"})
        )
        kwargs["confirmation"] = ConfirmationPolicy(token, acks)

    permissions = top.get("permissions", dict, "a table")
    if permissions is not None:
        for action, relations in permissions.items():
            if not isinstance(relations, list) or not all(isinstance(r, str) for r in relations):
                raise PolicyError(
                    key=f"permissions.{action}",
                    message=f"expected a list of relations, got {relations!r}",
                )
        kwargs["permissions"] = permissions

    recovery = top.table("recovery")
    if recovery is not None:
        window = recovery.get("window", str, "a duration string like '3 months'")
        parsed = None if window is None else _guard("recovery.window", lambda: Duration.parse(window))
        kwargs["recovery"] = RecoveryPolicy(parsed)

    purge = top.table("purge")
    if purge is not None:
        categories = tuple(
            PurgeCategory(item.get("name", str, "a string"), item.get("at", str, "a string"))
            for item in _items(purge, "categories", {"name", "at"})
        )
        kwargs["purge"] = PurgePolicy(categories, purge.strings("protected") or ())

    return Policy(**kwargs)


def _s(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, DEL aside)."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _list(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(_s(v) for v in values) + "]"


def policy_to_toml(policy: Policy) -> str:
    lines = [
        f"name = {_s(policy.name)}",
        f"version = {policy.version}",
    ]
    if policy.description:
        lines.append(f"description = {_s(policy.description)}")
    lines += [
        f"prerequisites = {_list(policy.prerequisites)}",
        f"on_cancel = {_list(policy.on_cancel)}",
        f"identity_reuse = {_s(policy.identity_reuse)}",
        f"services = {_list(policy.services)}",
        f"waivers = {_list(policy.waivers)}",
        "",
        "[survey]",
        f"mode = {_s(policy.survey.mode)}",
        f"outcomes = {_list([o.value for o in policy.survey.outcomes])}",
        "",
        "[confirmation]",
    ]
    if policy.confirmation.token is not None:
        lines.append(f"token = {_s(policy.confirmation.token)}")
    lines.append("acknowledgements = [")
    for ack in policy.confirmation.acknowledgements:
        lines.append(f"  {{ id = {_s(ack.id)}, text = {_s(ack.text)} }},")
    lines += ["]", "", "[permissions]"]
    for action in ACTIONS_WITH_PERMISSIONS:
        relations = sorted(r.value for r in policy.permissions.get(action, frozenset()))
        lines.append(f"{action.value} = {_list(relations)}")
    lines += ["", "[recovery]"]
    if policy.recovery.window is not None:
        lines.append(f"window = {_s(str(policy.recovery.window))}")
    lines += ["", "[purge]", f"protected = {_list(policy.purge.protected)}", "categories = ["]
    for category in policy.purge.categories:
        lines.append(f"  {{ name = {_s(category.name)}, at = {_s(category.at)} }},")
    lines.append("]")
    return "\n".join(lines) + "\n"
