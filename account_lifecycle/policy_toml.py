"""Policy files: strict TOML in, canonical TOML out.

The file mirrors the attribute paths of ``Policy`` (``docs/policy-files.md`` is the
reference). Reading is strict: bytes that are not UTF-8, text that is not TOML, an
unknown key, a value of the wrong type or a bad duration is a ``PolicyError`` naming
the key and what was expected, never an exception from deep inside.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from typing import Any, Final

from account_lifecycle.duration import Duration
from account_lifecycle.errors import PolicyError
from account_lifecycle.identity import DEFAULT_EMAIL_LOCAL_PART
from account_lifecycle.policy import (
    ACTIONS_WITH_PERMISSIONS,
    HOLD_ACTIONS,
    HOLD_PERMISSIONS,
    Acknowledgement,
    ConfirmationPolicy,
    Policy,
    PurgeCategory,
    PurgePolicy,
    RecoveryPhase,
    RecoveryPolicy,
    SurveyPolicy,
)

__all__ = ["KEYS", "policy_from_bytes", "policy_from_toml", "policy_to_toml"]

_TOP: Final = (
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
    "identity",
)
_TABLES: Final[dict[str, tuple[str, ...]]] = {
    "survey": ("mode", "outcomes"),
    "confirmation": ("token", "acknowledgements", "fresh_login"),
    "recovery": ("window", "phases", "choices", "reminders"),
    "purge": ("protected", "categories", "on_hold", "cancel_work"),
}
_ACKNOWLEDGEMENT: Final = ("id", "text")
_CATEGORY: Final = ("name", "at")
_PHASE: Final = ("length", "restore")

#: Every key a policy file may hold, as dotted paths (``[]`` marks an item of a list of
#: tables). ``docs/policy-files.md`` documents each one; a test keeps the two in step.
KEYS: Final[tuple[str, ...]] = (
    *(key for key in _TOP if key not in _TABLES and key not in ("permissions", "identity")),
    *(f"{table}.{key}" for table, keys in _TABLES.items() for key in keys),
    *(f"confirmation.acknowledgements[].{key}" for key in _ACKNOWLEDGEMENT),
    *(f"purge.categories[].{key}" for key in _CATEGORY),
    *(f"recovery.phases[].{key}" for key in _PHASE),
    *(f"permissions.{action.value}" for action in ACTIONS_WITH_PERMISSIONS),
    *(f"permissions.{action.value}" for action in HOLD_ACTIONS),
    "identity.<kind>",
    "identity.email_local_part",
)

_TYPE_NAMES: Final[dict[type, str]] = {
    str: "a string",
    int: "a whole number",
    bool: "true/false",
    float: "a number",
    list: "a list",
    dict: "a table",
}


def _type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), "a date or time")


def _unknown(key: str, allowed: tuple[str, ...]) -> PolicyError:
    import difflib  # only for a bad file's message

    name = key.rpartition(".")[2]
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return PolicyError(key=key, message=f"unknown key; expected one of {', '.join(allowed)}{hint}")


class _Table:
    """Typed access to one TOML table, naming the full key in every error."""

    def __init__(
        self,
        data: dict[str, Any],
        prefix: str,
        allowed: tuple[str, ...],
        errors: list[PolicyError] | None = None,
    ) -> None:
        """An unknown key is a ``PolicyError``; with *errors*, each is added there and its
        value left out, so the rest can still be read."""
        self.data = data
        self.prefix = prefix
        for key in list(data):
            if key not in allowed:
                if errors is None:
                    raise _unknown(self.key(key), allowed)
                errors.append(_unknown(self.key(key), allowed))
                self.data = {k: v for k, v in self.data.items() if k != key}

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def get(self, name: str, kind: type, what: str) -> Any:
        """The value of *name* if present (else None), which must be of exactly *kind*."""
        if name not in self.data:
            return None
        value = self.data[name]
        if type(value) is not kind:
            raise PolicyError(
                key=self.key(name), message=f"expected {what}, got {_type_name(value)} {value!r}"
            )
        return value

    def strings(self, name: str, what: str = "a list of strings") -> tuple[str, ...] | None:
        values = self.get(name, list, what)
        if values is None:
            return None
        for index, value in enumerate(values):
            if type(value) is not str:
                raise PolicyError(
                    key=f"{self.key(name)}[{index}]",
                    message=f"expected a string, got {_type_name(value)} {value!r}",
                )
        return tuple(values)

    def table(self, name: str) -> _Table | None:
        value = self.get(name, dict, "a table")
        if value is None:
            return None
        return _Table(value, f"{self.key(name)}.", _TABLES[name])

    def items(self, name: str, fields: tuple[str, ...]) -> list[_Table]:
        """A list of tables, each holding exactly *fields* (all required)."""
        values = self.get(name, list, "a list of tables like { name = ..., at = ... }") or []
        out = []
        for index, value in enumerate(values):
            key = f"{self.key(name)}[{index}]"
            if type(value) is not dict:
                raise PolicyError(key=key, message=f"expected a table, got {_type_name(value)} {value!r}")
            item = _Table(value, f"{key}.", fields)
            for field in fields:
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


# -- where in the text: naming the key of a line that does not parse ---------------------

_AT_LINE = re.compile(r"\(at line (\d+), column (\d+)\)$")
_HEADER = re.compile(r"\s*\[\[?\s*([A-Za-z0-9_\-.\s\"]+?)\s*\]\]?\s*(?:#.*)?$")
_BROKEN_HEADER = re.compile(r"\s*\[\[?\s*([A-Za-z0-9_\-.\s\"]*[A-Za-z0-9_\-\"])")
_PART = r"(?:[A-Za-z0-9_\-]+|\"[^\"\n]*\")"  # a bare or quoted key
_KEY_LINE = re.compile(rf"\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")


def _depth_change(line: str) -> int:
    """Brackets opened minus closed on *line*, outside strings and comments (a best guess)."""
    depth, quote = 0, ""
    for char in line:
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#":
            break
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
    return depth


def _dotted(raw: str) -> str:
    return ".".join(part.strip().strip('"') for part in raw.split("."))


def _key_at(text: str, lineno: int) -> str:
    """The dotted key whose value spans line *lineno* (1-based), or "" if none is found."""
    table, key, depth = "", "", 0
    for number, line in enumerate(text.splitlines()[:lineno], start=1):
        if depth <= 0:
            depth = 0
            header = _HEADER.match(line) or (_BROKEN_HEADER.match(line) if number == lineno else None)
            if header is not None:
                table, key = _dotted(header[1]), ""
                if number == lineno:
                    return table
                continue
            found = _KEY_LINE.match(line)
            if found is not None:
                key = _dotted(found[1])
            elif line.strip() and not line.lstrip().startswith("#"):
                key = ""
        depth += _depth_change(line)
    if not key:
        return table
    return f"{table}.{key}" if table else key


def policy_from_bytes(data: bytes) -> Policy:
    """Build a policy from a file's bytes: UTF-8 TOML (a leading byte order mark is allowed,
    since some editors write one)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        key = _key_at(data.decode("utf-8", "replace"), line)
        raise PolicyError(
            key=key,
            message=f"expected UTF-8 text, got the byte {data[exc.start : exc.start + 1]!r} "
            f"at line {line} ({exc.reason}); save the file as UTF-8",
        ) from None
    return policy_from_toml(text)


def _loads(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = _AT_LINE.search(message)
        if where is not None:
            key = _key_at(text, int(where[1]))
        elif message.endswith("(at end of document)"):
            key = _key_at(text, len(text.rstrip().splitlines()))
        else:
            key = ""
        raise PolicyError(key=key, message=f"expected valid TOML: {message}") from None
    except RecursionError:
        raise PolicyError(key="", message="expected valid TOML: values are nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with thousands of digits
        raise PolicyError(key="", message=f"expected valid TOML: {exc}") from None


def policy_from_toml(text: str) -> Policy:
    """Build a policy from TOML text; any problem is a ``PolicyError`` naming the key. With
    several problems, the error reads as the first and lists them all in ``errors``: each
    table is read on its own, and the policy's own checks run on what could be read."""
    if not isinstance(text, str):
        raise TypeError(f"from_toml() takes the file's text, got {type(text).__name__}")
    errors: list[PolicyError] = []
    failed: set[str] = set()  # the parts that could not be read, so their checks are moot
    top = _Table(_loads(text), "", _TOP, errors)
    kwargs: dict[str, Any] = {"name": "-"}

    def part(name: str, read: Callable[[], None]) -> None:
        try:
            read()
        except PolicyError as exc:
            errors.append(exc)
            failed.add(name)

    def header() -> None:
        name = top.get("name", str, "a string")
        if name is None:
            raise PolicyError(key="name", message="is required")
        kwargs["name"] = name

    def scalars() -> None:
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

    def survey_part() -> None:
        survey = top.table("survey")
        if survey is not None:
            survey_kwargs: dict[str, Any] = {}
            mode = survey.get("mode", str, "a string")
            if mode is not None:
                survey_kwargs["mode"] = mode
            outcomes = survey.strings("outcomes")
            if outcomes is not None:
                survey_kwargs["outcomes"] = outcomes
            kwargs["survey"] = SurveyPolicy(**survey_kwargs)

    def confirmation_part() -> None:
        confirmation = top.table("confirmation")
        if confirmation is not None:
            token = confirmation.get("token", str, "a string")
            acks = tuple(
                Acknowledgement(item.get("id", str, "a string"), item.get("text", str, "a string"))
                for item in confirmation.items("acknowledgements", _ACKNOWLEDGEMENT)
            )
            fresh_login = confirmation.get("fresh_login", str, "a duration like '15 minutes' or '2 hours'")
            fresh = (
                None
                if fresh_login is None
                else _guard("confirmation.fresh_login", lambda: Duration.parse(fresh_login))
            )
            kwargs["confirmation"] = ConfirmationPolicy(token, acks, fresh)

    def permissions_part() -> None:
        permissions = top.get("permissions", dict, "a table")
        if permissions is not None:
            # Which actions and relations are valid is the policy's own check (it names the key).
            table = _Table(permissions, "permissions.", tuple(permissions))
            for action in permissions:
                table.strings(action, "a list of relations like ['owner']")
            kwargs["permissions"] = permissions

    def recovery_part() -> None:
        recovery = top.table("recovery")
        if recovery is not None:
            window = recovery.get("window", str, "a duration like '90 days' or '3 months'")
            parsed = None if window is None else _guard("recovery.window", lambda: Duration.parse(window))
            kwargs["recovery"] = RecoveryPolicy(
                parsed, _phases(recovery), _choices(recovery), reminders=_reminders(recovery)
            )

    def purge_part() -> None:
        purge = top.table("purge")
        if purge is not None:
            categories = tuple(
                PurgeCategory(item.get("name", str, "a string"), item.get("at", str, "a string"))
                for item in purge.items("categories", _CATEGORY)
            )
            on_hold = purge.get("on_hold", str, "'wait' or 'retain'")
            cancel_work = purge.get("cancel_work", str, "'inline' or 'deferred'")
            kwargs["purge"] = PurgePolicy(
                categories,
                purge.strings("protected") or (),
                on_hold=on_hold,
                cancel_work="inline" if cancel_work is None else cancel_work,
            )

    def identity_part() -> None:
        identity = top.get("identity", dict, "a table")
        if identity is not None:
            identity = dict(identity)
            if "email_local_part" in identity:  # an option, not a kind of identifier
                local_part = identity.pop("email_local_part")
                if not isinstance(local_part, str):
                    raise PolicyError(
                        key="identity.email_local_part",
                        message=f"expected 'case_insensitive' or 'case_sensitive', got {local_part!r}",
                    )
                kwargs["email_local_part"] = local_part
            # Which kinds and rules are valid is the policy's own check (it names the key).
            kinds = _Table(identity, "identity.", tuple(identity))
            for kind in identity:
                kinds.get(kind, str, "a rule like 'after_purge' or 'after 30 days'")
            kwargs["identity"] = identity

    part("name", header)
    part("", scalars)
    part("survey", survey_part)
    part("confirmation", confirmation_part)
    part("permissions", permissions_part)
    part("recovery", recovery_part)
    part("purge", purge_part)
    part("identity", identity_part)
    try:
        policy = Policy(**kwargs)
    except PolicyError as exc:
        errors += [e for e in exc.errors if not _moot(e, failed)]
    if errors:
        raise PolicyError.of(errors)
    return policy


def _moot(error: PolicyError, failed: set[str]) -> bool:
    """Whether *error* of the policy's own checks is about a part that could not be read (and
    so was left at its default): it would only repeat, or mislead."""
    return any(
        part
        and (error.key == part or error.key.startswith((f"{part}.", f"{part}[")) or part in error.message)
        for part in failed
    )


def _reminders(recovery: _Table) -> tuple[Duration, ...]:
    texts = recovery.strings("reminders", "a list of durations like ['7 days', '1 day']") or ()
    return tuple(_duration(f"{recovery.key('reminders')}[{i}]", text) for i, text in enumerate(texts))


def _duration(key: str, text: str) -> Duration:
    parsed: Duration = _guard(key, lambda: Duration.parse(text))
    return parsed


def _phases(recovery: _Table) -> tuple[RecoveryPhase, ...]:
    phases = []
    for item in recovery.items("phases", _PHASE):
        length = item.get("length", str, "a duration like '30 days'")
        restore = item.strings("restore", "a list of relations like ['owner', 'support']")
        phases.append(RecoveryPhase(_duration(item.key("length"), length), restore or ()))
    return tuple(phases)


def _choices(recovery: _Table) -> tuple[Duration, ...]:
    texts = recovery.strings("choices", "a list of durations like ['30 days', '60 days']") or ()
    return tuple(_duration(f"{recovery.key('choices')}[{i}]", text) for i, text in enumerate(texts))


# -- writing ------------------------------------------------------------------------------


def _s(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, DEL aside)."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _list(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(_s(v) for v in values) + "]"


def policy_to_toml(policy: Policy) -> str:
    """The canonical file of *policy*: every key written, in the reference's order."""
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
    if policy.confirmation.fresh_login is not None:
        lines.append(f"fresh_login = {_s(str(policy.confirmation.fresh_login))}")
    lines.append("acknowledgements = [")
    for ack in policy.confirmation.acknowledgements:
        lines.append(f"  {{ id = {_s(ack.id)}, text = {_s(ack.text)} }},")
    lines += ["]", "", "[permissions]"]
    for action in ACTIONS_WITH_PERMISSIONS:
        relations = sorted(r.value for r in policy.permissions.get(action, frozenset()))
        lines.append(f"{action.value} = {_list(relations)}")
    for action in HOLD_ACTIONS:
        granted = policy.permissions.get(action, HOLD_PERMISSIONS)
        if policy.purge.on_hold is not None or granted != HOLD_PERMISSIONS:
            lines.append(f"{action.value} = {_list(sorted(r.value for r in granted))}")
    lines += ["", "[recovery]"]
    if policy.recovery.window is not None:
        lines.append(f"window = {_s(str(policy.recovery.window))}")
    if policy.recovery.phases:
        lines.append("phases = [")
        for phase in policy.recovery.phases:
            restore = _list([r.value for r in phase.restore])
            lines.append(f"  {{ length = {_s(str(phase.length))}, restore = {restore} }},")
        lines.append("]")
    if policy.recovery.choices:
        lines.append(f"choices = {_list([str(c) for c in policy.recovery.choices])}")
    if policy.recovery.reminders:
        lines.append(f"reminders = {_list([str(r) for r in policy.recovery.reminders])}")
    lines += ["", "[purge]", f"protected = {_list(policy.purge.protected)}"]
    if policy.purge.on_hold is not None:
        lines.append(f"on_hold = {_s(policy.purge.on_hold)}")
    if policy.purge.cancel_work != "inline":
        lines.append(f"cancel_work = {_s(policy.purge.cancel_work)}")
    lines.append("categories = [")
    for category in policy.purge.categories:
        lines.append(f"  {{ name = {_s(category.name)}, at = {_s(category.at)} }},")
    lines.append("]")
    if policy.identity or policy.email_local_part != DEFAULT_EMAIL_LOCAL_PART:
        lines += ["", "[identity]"]
        if policy.email_local_part != DEFAULT_EMAIL_LOCAL_PART:
            lines.append(f"email_local_part = {_s(policy.email_local_part)}")
        lines += [f"{kind} = {_s(str(rule))}" for kind, rule in policy.identity.items()]
    return "\n".join(lines) + "\n"
