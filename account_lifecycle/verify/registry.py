"""``verify_registry``: every version of a registry verifies, and every allowed migration
between them keeps the promises made to accounts (no promised window or restore phase
shortened, no category erased earlier or erased when it was kept, no hold dropped)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from account_lifecycle.registry import PolicyRegistry
from account_lifecycle.verify.invariants import verify_policy
from account_lifecycle.verify.report import VerificationReport

__all__ = ["MigrationCheck", "RegistryReport", "verify_registry"]


@attrs.frozen
class MigrationCheck:
    """One allowed migration: the promises it breaks (``broken``, rule names) and those the
    registry's owner allowed it to break (``allowed``); it passes when every broken rule is
    allowed."""

    source: str
    target: str
    broken: tuple[str, ...]
    allowed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the migration breaks no promise it was not allowed to."""
        return set(self.broken) <= set(self.allowed)


@attrs.frozen
class RegistryReport:
    """What ``verify_registry`` found: each version's proof, and each allowed migration."""

    versions: Mapping[str, VerificationReport]
    migrations: tuple[MigrationCheck, ...]

    @property
    def ok(self) -> bool:
        """True when every version verifies and every migration keeps its promises."""
        return all(r.ok for r in self.versions.values()) and all(m.ok for m in self.migrations)

    def to_dict(self) -> dict[str, Any]:
        """As plain JSON data."""
        return {
            "ok": self.ok,
            "versions": {label: r.to_dict() for label, r in self.versions.items()},
            "migrations": [
                {
                    "from": m.source,
                    "to": m.target,
                    "ok": m.ok,
                    "broken": list(m.broken),
                    "allowed": list(m.allowed),
                }
                for m in self.migrations
            ],
        }


def verify_registry(
    registry: PolicyRegistry,
    migrations: Iterable[tuple[str, str] | tuple[str, str, Iterable[str]]] | None = None,
) -> RegistryReport:
    """Verify every version of *registry* (``verify_policy``) and check each allowed migration,
    given as ``(from, to)`` or ``(from, to, rules allowed)`` labels; by default every version
    of a name to each later version of it. ``UnknownPolicyVersion`` for a label it lacks."""
    from account_lifecycle.migration import check_rules, policy_rules_broken

    if migrations is None:
        migrations = [
            (a.label, b.label)
            for a in registry.policies
            for b in registry.versions_of(a.name)
            if b.version > a.version
        ]
    versions = {p.label: verify_policy(p) for p in registry.policies}
    checks = []
    for migration in migrations:
        source, target = registry.get(migration[0]), registry.get(migration[1])
        allowed = check_rules(migration[2]) if len(migration) > 2 else frozenset()
        broken = policy_rules_broken(source, target)
        checks.append(
            MigrationCheck(
                source.label,
                target.label,
                tuple(r.value for r in broken),
                tuple(sorted(r.value for r in allowed)),
            )
        )
    return RegistryReport(versions, tuple(checks))
