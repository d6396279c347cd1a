"""Policy versions for the tests: AllClients as shipped (3 months, restored by support) and a
second version with a phased window, and purgers for every category either erases."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from account_lifecycle import Lifecycle, Policy, PurgeResult, policies
from account_lifecycle.duration import Duration
from account_lifecycle.model import Action, Relation
from account_lifecycle.policy import RecoveryPhase, RecoveryPolicy
from account_lifecycle.registry import PolicyRegistry

V1: Policy = policies.ALLCLIENTS


def phased(base: Policy = V1, version: int = 2) -> Policy:
    """*base* with a phased window: the owner or support for 30 days, then support for 3 months."""
    permissions = dict(base.permissions)
    permissions[Action.RESTORE] = frozenset({Relation.OWNER, Relation.SUPPORT})
    recovery = RecoveryPolicy(
        phases=(
            RecoveryPhase(Duration.parse("30 days"), ("owner", "support")),
            RecoveryPhase(Duration.parse("3 months"), ("support",)),
        )
    )
    return attrs.evolve(base, version=version, permissions=permissions, recovery=recovery)


V2 = phased()


class Recorder:
    """A purger that records every call: ``calls`` is shared by all purgers of a lifecycle."""

    def __init__(self, category: str, calls: list[tuple[str, str, str]]) -> None:
        self.category = category
        self.calls = calls

    def purge(self, account_id: str, context: Any) -> PurgeResult:
        self.calls.append((account_id, self.category, context.policy))
        return PurgeResult(items=1)


def lifecycle(
    versions: Iterable[Policy] | PolicyRegistry,
    store: Any,
    clock: Any,
    calls: list[tuple[str, str, str]] | None = None,
    **kwargs: Any,
) -> Lifecycle:
    """A lifecycle of *versions* (the last one current) with a recording purger per category."""
    registry = versions if isinstance(versions, PolicyRegistry) else PolicyRegistry(list(versions))
    sink = [] if calls is None else calls
    names = {c.name for p in registry.policies for c in p.purge.categories}
    return Lifecycle(
        registry, store=store, clock=clock, purgers=[Recorder(n, sink) for n in sorted(names)], **kwargs
    )
