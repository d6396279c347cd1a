"""``settings.ACCOUNT_LIFECYCLE``: read once, resolved into a ``Lifecycle`` built once per process.

::

    ACCOUNT_LIFECYCLE = {
        "POLICY": "allclients",              # a built-in name, a .toml path, or "module.attr"
        "PURGERS": ["crm.purgers.PURGERS"],  # dotted paths: a purger, a list of them, a class
                                             # or a factory returning either
        "PREREQUISITES": {},                 # check name -> dotted path of the check
        "EFFECTS": {},                       # effect name -> dotted path of the hook
        "IDENTITY_KEYS": None,               # dotted path: IdentityKeys, or a callable returning it
        "CLOCK": None,                       # dotted path: a Clock (tests: a ManualClock)
        "DATABASE": "default",               # the DATABASES alias of the tables
        "SIGNALS": True,                     # send lifecycle_event for each committed event
        "OUTBOX_LISTENERS": {},              # durable listener name -> dotted path of the callable
        "OPTIONS": {},                       # keyword arguments of Lifecycle (lease, sweep_batch, ...)
    }

``problems()`` lists what is wrong (the system checks report it, each with an id);
``lifecycle()`` builds the configured ``Lifecycle`` on first use and keeps it.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from account_lifecycle import policies
from account_lifecycle.errors import ConfigurationError, PolicyError
from account_lifecycle.identity_keys import IdentityKeys
from account_lifecycle.lifecycle import Lifecycle
from account_lifecycle.policy import Policy
from account_lifecycle.ports import Purger

__all__ = ["KEYS", "LifecycleSettings", "Problem", "lifecycle", "problems", "reset", "settings"]

#: The keys ``ACCOUNT_LIFECYCLE`` may have.
KEYS: Final = frozenset(
    {
        "POLICY",
        "PURGERS",
        "PREREQUISITES",
        "EFFECTS",
        "IDENTITY_KEYS",
        "CLOCK",
        "DATABASE",
        "SIGNALS",
        "OPTIONS",
    }
)


@attrs.frozen
class Problem:
    """One thing wrong with the settings: a system check ``id`` (``account_lifecycle.E005``), the
    message, and the hint saying how to fix it."""

    id: str
    msg: str
    hint: str = ""
    warning: bool = False


@attrs.frozen
class LifecycleSettings:
    """``ACCOUNT_LIFECYCLE`` resolved: the policy and every object the dotted paths name."""

    policy: Policy
    purgers: tuple[Purger, ...]
    prerequisites: Mapping[str, Any]
    effects: Mapping[str, Any]
    identity_keys: IdentityKeys | None
    clock: Any
    database: str
    signals: bool
    options: Mapping[str, Any]
    outbox_listeners: Mapping[str, Any] = attrs.field(factory=dict)


class _Invalid(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.msg)
        self.problem = problem


def _import(path: str, key: str, code: str) -> Any:
    """The object at ``"package.module.attr"`` (or ``"package.module:attr"``)."""
    if not isinstance(path, str) or not path:
        raise _Invalid(Problem(code, f"ACCOUNT_LIFECYCLE[{key!r}]: expected a dotted path, got {path!r}"))
    module_name, sep, attribute = path.partition(":")
    if not sep:
        module_name, _, attribute = path.rpartition(".")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except Exception as exc:  # whatever importing the host's module raised: reported, not raised
        raise _Invalid(
            Problem(code, f"ACCOUNT_LIFECYCLE[{key!r}]: cannot import {path!r} ({type(exc).__name__}: {exc})")
        ) from None
    return target


def _policy(value: object) -> Policy:
    if isinstance(value, Policy):
        return value
    if not isinstance(value, str) or not value:
        raise _Invalid(
            Problem(
                "account_lifecycle.E003",
                f"ACCOUNT_LIFECYCLE['POLICY'] must name a policy, got {value!r}",
                "a built-in name ('allclients', 'smrtphone'), a path to a .toml file, or 'module.attr'",
            )
        )
    try:
        if value.lower() in ("allclients", "smrtphone"):
            return policies.load(value.lower())
        if value.endswith(".toml"):
            return Policy.load(Path(value))
    except (PolicyError, OSError) as exc:
        raise _Invalid(Problem("account_lifecycle.E003", f"ACCOUNT_LIFECYCLE['POLICY']: {exc}")) from None
    found = _import(value, "POLICY", "account_lifecycle.E003")
    if not isinstance(found, Policy):
        raise _Invalid(
            Problem("account_lifecycle.E003", f"ACCOUNT_LIFECYCLE['POLICY']: {value!r} is not a Policy")
        )
    return found


def _purgers(value: object) -> tuple[Purger, ...]:
    if not isinstance(value, list | tuple):
        raise _Invalid(
            Problem("account_lifecycle.E004", f"ACCOUNT_LIFECYCLE['PURGERS'] must be a list, got {value!r}")
        )
    found: list[Purger] = []
    for entry in value:
        target = _import(entry, "PURGERS", "account_lifecycle.E004") if isinstance(entry, str) else entry
        if isinstance(target, type) or (callable(target) and not isinstance(target, Purger)):
            target = target()
        items = list(target) if isinstance(target, Iterable) and not isinstance(target, str) else [target]
        for item in items:
            if not isinstance(item, Purger):
                raise _Invalid(
                    Problem(
                        "account_lifecycle.E004",
                        f"ACCOUNT_LIFECYCLE['PURGERS']: {entry!r} gave {type(item).__name__}, not a purger",
                        "a purger has a category and a purge(account_id, context) method",
                    )
                )
            found.append(item)
    return tuple(found)


def _named(value: object, key: str, code: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _Invalid(Problem(code, f"ACCOUNT_LIFECYCLE[{key!r}] must be a dict, got {value!r}"))
    return {
        str(name): _import(path, key, code) if isinstance(path, str) else path for name, path in value.items()
    }


def _read(config: object) -> LifecycleSettings:
    if not isinstance(config, Mapping):
        raise _Invalid(
            Problem(
                "account_lifecycle.E001",
                "settings.ACCOUNT_LIFECYCLE is missing or not a dict",
                "set ACCOUNT_LIFECYCLE = {'POLICY': ..., 'PURGERS': [...]} in your settings",
            )
        )
    unknown = sorted(set(map(str, config)) - KEYS)
    if unknown:
        raise _Invalid(
            Problem(
                "account_lifecycle.E002",
                f"ACCOUNT_LIFECYCLE has unknown key(s): {', '.join(unknown)}",
                f"the keys are {', '.join(sorted(KEYS))}",
            )
        )
    if "POLICY" not in config:
        raise _Invalid(Problem("account_lifecycle.E003", "ACCOUNT_LIFECYCLE has no 'POLICY'"))
    keys = config.get("IDENTITY_KEYS")
    identity_keys = (
        _import(keys, "IDENTITY_KEYS", "account_lifecycle.E009") if isinstance(keys, str) else keys
    )
    if callable(identity_keys) and not isinstance(identity_keys, IdentityKeys):
        identity_keys = identity_keys()
    if identity_keys is not None and not isinstance(identity_keys, IdentityKeys):
        raise _Invalid(
            Problem("account_lifecycle.E009", "ACCOUNT_LIFECYCLE['IDENTITY_KEYS'] does not give IdentityKeys")
        )
    clock = config.get("CLOCK")
    options = config.get("OPTIONS", {})
    if not isinstance(options, Mapping):
        raise _Invalid(
            Problem("account_lifecycle.E010", f"ACCOUNT_LIFECYCLE['OPTIONS'] must be a dict, got {options!r}")
        )
    database = config.get("DATABASE", "default")
    return LifecycleSettings(
        policy=_policy(config["POLICY"]),
        purgers=_purgers(config.get("PURGERS", [])),
        prerequisites=_named(config.get("PREREQUISITES", {}), "PREREQUISITES", "account_lifecycle.E006"),
        effects=_named(config.get("EFFECTS", {}), "EFFECTS", "account_lifecycle.E007"),
        identity_keys=identity_keys,
        clock=_import(clock, "CLOCK", "account_lifecycle.E010") if isinstance(clock, str) else clock,
        database=str(database),
        signals=bool(config.get("SIGNALS", True)),
        options=dict(options),
        outbox_listeners=_named(
            config.get("OUTBOX_LISTENERS", {}), "OUTBOX_LISTENERS", "account_lifecycle.E012"
        ),
    )


_lock = threading.RLock()
_cache: dict[str, Any] = {}


def settings() -> LifecycleSettings:
    """``settings.ACCOUNT_LIFECYCLE`` resolved, read once per process; ``ConfigurationError``
    naming the check id when it is invalid (``manage.py check`` lists every problem)."""
    with _lock:
        if "settings" not in _cache:
            from django.conf import settings as django_settings

            try:
                _cache["settings"] = _read(getattr(django_settings, "ACCOUNT_LIFECYCLE", None))
            except _Invalid as exc:
                raise ConfigurationError(f"{exc.problem.id}: {exc.problem.msg}") from None
        resolved: LifecycleSettings = _cache["settings"]
        return resolved


def build(resolved: LifecycleSettings) -> Lifecycle:
    """The ``Lifecycle`` the resolved settings describe, on a ``DjangoStore``, with its durable
    listeners (``lifecycle_event`` and ``OUTBOX_LISTENERS``) fed from the outbox."""
    from account_lifecycle.contrib.django.signals import outbox_listeners
    from account_lifecycle.contrib.django.store import DjangoStore

    options: dict[str, Any] = dict(resolved.options)
    if resolved.clock is not None:
        options["clock"] = resolved.clock
    if resolved.identity_keys is not None:
        options["identity_keys"] = resolved.identity_keys
    if resolved.effects:
        options["effects"] = resolved.effects
    return Lifecycle(
        resolved.policy,
        store=DjangoStore(resolved.database),
        purgers=resolved.purgers,
        prerequisites=resolved.prerequisites,
        outbox_listeners=outbox_listeners(resolved) or None,
        **options,
    )


def lifecycle() -> Lifecycle:
    """The configured ``Lifecycle`` on a ``DjangoStore``, built on first use and kept (one per
    process; it holds no connection: Django's per-thread connections serve it)."""
    with _lock:
        if "lifecycle" not in _cache:
            _cache["lifecycle"] = build(settings())
        built: Lifecycle = _cache["lifecycle"]
        return built


def reset() -> None:
    """Forget the settings read and the lifecycle built (tests that change the settings)."""
    with _lock:
        _cache.clear()


def problems() -> list[Problem]:
    """Everything wrong with ``ACCOUNT_LIFECYCLE`` and the settings it depends on, read afresh
    (the system checks report these, each with its id)."""
    from django.conf import settings as django_settings

    found: list[Problem] = []
    if not getattr(django_settings, "USE_TZ", False):
        found.append(
            Problem(
                "account_lifecycle.E011",
                "account_lifecycle needs USE_TZ = True: every moment it stores is timezone-aware",
                "set USE_TZ = True",
            )
        )
    try:
        resolved = _read(getattr(django_settings, "ACCOUNT_LIFECYCLE", None))
    except _Invalid as exc:
        return [*found, exc.problem]
    databases = getattr(django_settings, "DATABASES", {})
    if resolved.database not in databases:
        found.append(
            Problem(
                "account_lifecycle.E008",
                f"ACCOUNT_LIFECYCLE['DATABASE'] is {resolved.database!r}, which DATABASES does not define",
            )
        )
    else:
        engine = str(databases[resolved.database].get("ENGINE", ""))
        mode = databases[resolved.database].get("OPTIONS", {}).get("transaction_mode")
        if engine.endswith("sqlite3") and mode != "IMMEDIATE":
            found.append(
                Problem(
                    "account_lifecycle.W001",
                    f"the SQLite database {resolved.database!r} starts transactions DEFERRED: concurrent "
                    "writers may fail with 'database is locked'",
                    "set DATABASES[...]['OPTIONS']['transaction_mode'] = 'IMMEDIATE'",
                    warning=True,
                )
            )
    policy = resolved.policy
    registered = {p.category for p in resolved.purgers}
    protected = set(policy.purge.protected)
    for category in policy.purge.categories:
        if category.name not in registered and category.name not in protected:
            found.append(
                Problem(
                    "account_lifecycle.E005",
                    f"policy {policy.label} purges the category {category.name!r}, and no purger in "
                    "ACCOUNT_LIFECYCLE['PURGERS'] erases it",
                    f"add a purger whose category is {category.name!r}",
                )
            )
    for name in policy.prerequisites:
        if name not in resolved.prerequisites:
            found.append(
                Problem(
                    "account_lifecycle.E006",
                    f"policy {policy.label} needs the prerequisite check {name!r}",
                    f"add {name!r} to ACCOUNT_LIFECYCLE['PREREQUISITES']",
                )
            )
    if policy.identity and resolved.identity_keys is None:
        found.append(
            Problem(
                "account_lifecycle.E009",
                f"policy {policy.label} holds identifiers, stored as keyed digests only",
                "set ACCOUNT_LIFECYCLE['IDENTITY_KEYS'] to the dotted path of your IdentityKeys",
            )
        )
    if not found:
        try:
            build(resolved)
        except (ConfigurationError, TypeError, ValueError) as exc:
            found.append(Problem("account_lifecycle.E010", f"the lifecycle cannot be built: {exc}"))
    return found
