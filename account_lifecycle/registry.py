"""Several versions of a policy in production: ``PolicyRegistry``.

A registry knows policies by their label (``name@version``) and names one of them current:
the version new accounts open under and new cancellations start under. An account pins the
version it entered each phase under (``AccountRecord.policy_version``, ``AccountRecord.pins``),
and keeps following it until it leaves the phase: a customer who cancelled under "restorable
for 3 months" keeps the date they were shown, whatever the current version says by then.

A roll-out sends a share of the accounts to another version first (``Rollout``): the choice
is a stable function of the account id, so an account keeps its variant from one call to the
next. ``Lifecycle(policy)`` is a registry of one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from os import PathLike
from typing import Final

import attrs

from account_lifecycle.errors import PolicyMismatch, UnknownPolicyVersion
from account_lifecycle.model import AccountRecord
from account_lifecycle.policy import Policy

__all__ = ["PolicyRegistry", "Rollout", "parse_label"]

#: Buckets a share of account ids is counted in (a share is exact to 0.01 %).
_BUCKETS: Final = 10_000


def parse_label(label: str) -> tuple[str, int]:
    """``"allclients@2"`` -> ``("allclients", 2)``; ``UnknownPolicyVersion`` for text that is
    not a label."""
    if not isinstance(label, str):
        raise TypeError(f"a policy label is text like 'allclients@2', got {type(label).__name__}")
    name, sep, version = label.rpartition("@")
    if not sep or not name or not version.isdigit() or not version.isascii() or int(version) < 1:
        raise UnknownPolicyVersion(label=label, known=())
    return name, int(version)


def bucket_of(account_id: str) -> int:
    """The stable bucket (0 to 9999) of *account_id*: the first bytes of its SHA-256."""
    digest = hashlib.sha256(account_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % _BUCKETS


@attrs.frozen
class Rollout:
    """Send ``share`` (0 to 1: ``0.05`` is 5 %) of the accounts to the version ``label``
    instead of the registry's current one. An account is in the share when its stable bucket
    (``bucket_of``: a hash of its id, never random) is below ``share`` of the buckets, so
    raising the share later only adds accounts to the variant."""

    label: str
    share: float

    def __attrs_post_init__(self) -> None:
        parse_label(self.label)
        if (
            isinstance(self.share, bool)
            or not isinstance(self.share, int | float)
            or not 0 <= self.share <= 1
        ):
            raise ValueError(f"a roll-out share is a number from 0 to 1 (0.05 is 5%), got {self.share!r}")

    def choose(self, account_id: str) -> str | None:
        """``label`` for an account in the share, else None (the registry's current)."""
        return self.label if bucket_of(account_id) < round(self.share * _BUCKETS) else None


#: A host's own rule: the label of the version an account gets, or None for the current one.
Chooser = Callable[[str], "str | None"]


class PolicyRegistry:
    """The versions of the policies a lifecycle knows, by label, and the current one.

    *policies*: ``Policy`` objects or paths of policy files. *current*: the label new accounts
    and new cancellations get (default: the last policy given). *rollout*: a ``Rollout``, or a
    host callable ``account_id -> label | None``, that picks another version for some accounts
    (None: the current one). Two policies with one label are a ``ValueError``; a label the
    registry does not hold is ``UnknownPolicyVersion``."""

    def __init__(
        self,
        policies: Iterable[Policy | str | PathLike[str]],
        *,
        current: str | None = None,
        rollout: Rollout | Chooser | None = None,
    ) -> None:
        if isinstance(policies, Policy | str):
            raise TypeError("policies must be a collection of Policy objects or file paths, not one")
        by_label: dict[str, Policy] = {}
        for item in policies:
            policy = item if isinstance(item, Policy) else Policy.load(item)
            if policy.label in by_label and by_label[policy.label] != policy:
                raise ValueError(f"two different policies are labelled {policy.label}; bump the version")
            by_label[policy.label] = policy
        if not by_label:
            raise ValueError("a registry holds at least one policy")
        self._policies = by_label
        self._names = frozenset(p.name for p in by_label.values())
        self._single = len(by_label) == 1
        self.current = self.get(current) if current is not None else list(by_label.values())[-1]
        if isinstance(rollout, Rollout):
            self.get(rollout.label)
        elif rollout is not None and not callable(rollout):
            raise TypeError(f"rollout must be a Rollout or a callable, got {type(rollout).__name__}")
        self.rollout = rollout

    @classmethod
    def of(cls, policy: Policy | PolicyRegistry) -> PolicyRegistry:
        """*policy* as a registry of one (a registry is returned as it is)."""
        if isinstance(policy, PolicyRegistry):
            return policy
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must be a Policy or a PolicyRegistry, got {type(policy).__name__}")
        return cls([policy])

    def __repr__(self) -> str:
        return f"PolicyRegistry({', '.join(self._policies)}; current {self.current.label})"

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label the registry holds, in the order given."""
        return tuple(self._policies)

    @property
    def policies(self) -> tuple[Policy, ...]:
        """Every policy the registry holds, in the order given."""
        return tuple(self._policies.values())

    def get(self, label: str) -> Policy:
        """The policy labelled *label*; ``UnknownPolicyVersion`` if there is none."""
        parse_label(label)
        policy = self._policies.get(label)
        if policy is None:
            raise UnknownPolicyVersion(label=label, known=self.labels)
        return policy

    def versions_of(self, name: str) -> tuple[Policy, ...]:
        """The versions of policy *name* the registry holds, oldest first."""
        return tuple(sorted((p for p in self._policies.values() if p.name == name), key=lambda p: p.version))

    def current_for(self, account_id: str) -> Policy:
        """The version *account_id* opens or starts a cancellation under: the roll-out's pick
        for it, else the current version."""
        rollout = self.rollout
        if rollout is None:
            return self.current
        label = rollout.choose(account_id) if isinstance(rollout, Rollout) else rollout(account_id)
        if label is None:
            return self.current
        if not isinstance(label, str):
            raise TypeError(f"the roll-out callable returned {label!r}, not a policy label or None")
        return self.get(label)

    def resolve(self, record: AccountRecord) -> Policy:
        """The version *record* is pinned to. A record written before versions were recorded
        (``policy_version`` 0), or pinned to a version this registry does not hold while it holds
        exactly one version of that name, follows the oldest (or only) version of its name; a
        record of a name the registry does not know is a ``PolicyMismatch`` (nothing written),
        as is one pinned to an unknown version of a name with several versions here."""
        return self.resolve_pin(record.policy, record.policy_version, account_id=record.account_id)

    def knows(self, name: str) -> bool:
        """Whether the registry holds a version of policy *name*."""
        return name in self._names

    @property
    def only(self) -> Policy | None:
        """The registry's one version when it holds one and has no roll-out (every account of
        its name follows it), else None."""
        return self.current if self.rollout is None and self._single else None

    def resolve_pin(self, name: str, version: int, *, account_id: str = "?") -> Policy:
        """``resolve`` for an account of policy *name* pinned to *version* (0: unknown)."""
        if not name:  # a record from before the policy was stored: the current one
            return self.current
        exact = self._policies.get(f"{name}@{version}")
        if exact is not None:
            return exact
        versions = self.versions_of(name)
        if versions and (version == 0 or len(versions) == 1):
            return versions[0]
        names = tuple(dict.fromkeys(p.name for p in self._policies.values()))
        label = f"{name}@{version}" if version else name
        raise PolicyMismatch(
            account_id=account_id,
            account_policy=label if versions else name,
            lifecycle_policy=", ".join(self.labels if versions else names),
        )

    def pinned_to(self, policy: Policy, record: AccountRecord) -> bool:
        """Whether *record* follows *policy* in this registry (without raising)."""
        try:
            return self.resolve(record).label == policy.label
        except PolicyMismatch:
            return False
