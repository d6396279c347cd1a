"""account_lifecycle: account cancellation, recovery windows and purging as an explicit,
auditable state machine. Everything public is importable from here.

Each public name is imported on first use (PEP 562, ``account_lifecycle._lazy``): ``import
account_lifecycle`` loads no submodule, and ``from account_lifecycle import Lifecycle`` loads
what ``Lifecycle`` needs. Optional extras (psycopg, greenlet, SQLAlchemy, OpenTelemetry...) are
imported only by the names that need them."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from account_lifecycle import _lazy

# A library logs into the host's logging set-up and sets none up itself: quiet by default.
logging.getLogger("account_lifecycle").addHandler(logging.NullHandler())

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time, __getattr__ imports each name
    from account_lifecycle import policies
    from account_lifecycle.adapters.memory import MemoryStore
    from account_lifecycle.adapters.postgres import PostgresStore
    from account_lifecycle.adapters.sqlalchemy import AsyncSQLAlchemyStore, SQLAlchemyStore
    from account_lifecycle.adapters.sqlite import SQLiteStore
    from account_lifecycle.aio import (
        AsyncAccountStore,
        AsyncLifecycle,
        AsyncPostgresStore,
        AsyncPurger,
        ThreadedStore,
    )
    from account_lifecycle.audit import AuditEvent
    from account_lifecycle.clock import ManualClock, SystemClock
    from account_lifecycle.closure import IdentityReuse
    from account_lifecycle.describe import describe_policy
    from account_lifecycle.duration import Duration
    from account_lifecycle.errors import (
        AccountExists,
        AccountNotFound,
        ConcurrentUpdate,
        ConfigurationError,
        ErasureInProgress,
        HistoryTampered,
        IdempotencyKeyReused,
        InvalidTransition,
        LifecycleError,
        MigrationRefused,
        MissingAcknowledgements,
        NotPermitted,
        PolicyError,
        PolicyMismatch,
        PrerequisitesPending,
        ReauthenticationRequired,
        RecordCorrupt,
        RecoveryWindowExpired,
        StaleConfirmation,
        StoreError,
        UnknownPolicyVersion,
        WrongConfirmationToken,
    )
    from account_lifecycle.identity_keys import IdentityKey, IdentityKeys
    from account_lifecycle.lifecycle import Lifecycle, RekeyReport
    from account_lifecycle.migration import MigrationPlan, MigrationReport, MigrationRule, StatePlan
    from account_lifecycle.model import (
        AccountRecord,
        Action,
        Actor,
        Erasure,
        HeldIdentifier,
        Hold,
        PurgeProgress,
        PurgeStatus,
        Relation,
        Reminder,
        ServiceState,
        State,
        SurveyOutcome,
    )
    from account_lifecycle.outbox import (
        ListenerStatus,
        OutboxBusy,
        OutboxStatus,
        RedeliveryReport,
        Relay,
        RelayReport,
    )
    from account_lifecycle.policy import (
        Acknowledgement,
        ConfirmationPolicy,
        Policy,
        PurgeCategory,
        PurgePolicy,
        RecoveryPhase,
        RecoveryPolicy,
        SurveyPolicy,
    )
    from account_lifecycle.ports import (
        AccountStore,
        Clock,
        EffectHook,
        Listener,
        OutboxStore,
        PrerequisiteCheck,
        Purger,
    )
    from account_lifecycle.purge import Claim, SweepReport
    from account_lifecycle.queries import AccountPage
    from account_lifecycle.receipts import ErasedCategory, ErasureReceipt, RedactedValue, RetainedCategory
    from account_lifecycle.registry import PolicyRegistry, Rollout
    from account_lifecycle.sealed import SealedValue
    from account_lifecycle.timeline import KeptCategory, ScheduledErasure, Timeline, TimelinePhase
    from account_lifecycle.values import (
        AccountQuery,
        CorruptRecord,
        DeadLetter,
        EffectContext,
        Lease,
        OutboxCursor,
        OutboxEntry,
        PendingItem,
        PurgeContext,
        PurgeResult,
    )
    from account_lifecycle.verify import (
        Change,
        Difference,
        DiffReport,
        RegistryReport,
        diff_policies,
        verify_registry,
    )

    __version__: str


def _installed_version() -> str:
    """The version in pyproject.toml, as installed: the one source of truth. Read on first use
    of ``__version__`` (``importlib.metadata`` imports the ``email`` package: about a fifth of
    the import time of this package)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("account-lifecycle")
    except PackageNotFoundError:  # pragma: no cover - imported from a checkout that was never installed
        return "0+unknown"


__all__ = [
    "AccountExists",
    "AccountNotFound",
    "AccountPage",
    "AccountQuery",
    "AccountRecord",
    "AccountStore",
    "Acknowledgement",
    "Action",
    "Actor",
    "AsyncAccountStore",
    "AsyncLifecycle",
    "AsyncPostgresStore",
    "AsyncPurger",
    "AsyncSQLAlchemyStore",
    "AuditEvent",
    "Change",
    "Claim",
    "Clock",
    "ConcurrentUpdate",
    "ConfigurationError",
    "ConfirmationPolicy",
    "CorruptRecord",
    "DeadLetter",
    "DiffReport",
    "Difference",
    "Duration",
    "EffectContext",
    "EffectHook",
    "ErasedCategory",
    "Erasure",
    "ErasureInProgress",
    "ErasureReceipt",
    "HeldIdentifier",
    "HistoryTampered",
    "Hold",
    "IdempotencyKeyReused",
    "IdentityKey",
    "IdentityKeys",
    "IdentityReuse",
    "InvalidTransition",
    "KeptCategory",
    "Lease",
    "Lifecycle",
    "LifecycleError",
    "Listener",
    "ListenerStatus",
    "ManualClock",
    "MemoryStore",
    "MigrationPlan",
    "MigrationRefused",
    "MigrationReport",
    "MigrationRule",
    "MissingAcknowledgements",
    "NotPermitted",
    "OutboxBusy",
    "OutboxCursor",
    "OutboxEntry",
    "OutboxStatus",
    "OutboxStore",
    "PendingItem",
    "Policy",
    "PolicyError",
    "PolicyMismatch",
    "PolicyRegistry",
    "PostgresStore",
    "PrerequisiteCheck",
    "PrerequisitesPending",
    "PurgeCategory",
    "PurgeContext",
    "PurgePolicy",
    "PurgeProgress",
    "PurgeResult",
    "PurgeStatus",
    "Purger",
    "ReauthenticationRequired",
    "RecordCorrupt",
    "RecoveryPhase",
    "RecoveryPolicy",
    "RecoveryWindowExpired",
    "RedactedValue",
    "RedeliveryReport",
    "RegistryReport",
    "RekeyReport",
    "Relation",
    "Relay",
    "RelayReport",
    "Reminder",
    "RetainedCategory",
    "Rollout",
    "SQLAlchemyStore",
    "SQLiteStore",
    "ScheduledErasure",
    "SealedValue",
    "ServiceState",
    "StaleConfirmation",
    "State",
    "StatePlan",
    "StoreError",
    "SurveyOutcome",
    "SurveyPolicy",
    "SweepReport",
    "SystemClock",
    "ThreadedStore",
    "Timeline",
    "TimelinePhase",
    "UnknownPolicyVersion",
    "WrongConfirmationToken",
    "describe_policy",
    "diff_policies",
    "policies",
    "verify_registry",
]

#: Where each public name is defined (a module of this package): imported from there on first
#: use. ``policies`` is the subpackage itself. ``PostgresStore`` and ``AsyncPostgresStore`` need
#: the ``postgres`` extra, the ``aio`` names the ``async`` extra, ``SQLAlchemyStore`` and
#: ``AsyncSQLAlchemyStore`` the ``sqlalchemy`` extra: nothing imports them until asked.
_WHERE: dict[str, tuple[str, ...]] = {
    "adapters.memory": ("MemoryStore",),
    "adapters.postgres": ("PostgresStore",),
    "adapters.sqlalchemy": ("AsyncSQLAlchemyStore", "SQLAlchemyStore"),
    "adapters.sqlite": ("SQLiteStore",),
    "aio": ("AsyncAccountStore", "AsyncLifecycle", "AsyncPostgresStore", "AsyncPurger", "ThreadedStore"),
    "audit": ("AuditEvent",),
    "clock": ("ManualClock", "SystemClock"),
    "closure": ("IdentityReuse",),
    "describe": ("describe_policy",),
    "duration": ("Duration",),
    "errors": (
        "AccountExists",
        "AccountNotFound",
        "ConcurrentUpdate",
        "ConfigurationError",
        "ErasureInProgress",
        "HistoryTampered",
        "IdempotencyKeyReused",
        "InvalidTransition",
        "LifecycleError",
        "MigrationRefused",
        "MissingAcknowledgements",
        "NotPermitted",
        "PolicyError",
        "PolicyMismatch",
        "PrerequisitesPending",
        "ReauthenticationRequired",
        "RecordCorrupt",
        "RecoveryWindowExpired",
        "StaleConfirmation",
        "StoreError",
        "UnknownPolicyVersion",
        "WrongConfirmationToken",
    ),
    "identity_keys": ("IdentityKey", "IdentityKeys"),
    "lifecycle": ("Lifecycle", "RekeyReport"),
    "migration": ("MigrationPlan", "MigrationReport", "MigrationRule", "StatePlan"),
    "model": (
        "AccountRecord",
        "Action",
        "Actor",
        "Erasure",
        "HeldIdentifier",
        "Hold",
        "PurgeProgress",
        "PurgeStatus",
        "Relation",
        "Reminder",
        "ServiceState",
        "State",
        "SurveyOutcome",
    ),
    "outbox": ("ListenerStatus", "OutboxBusy", "OutboxStatus", "RedeliveryReport", "Relay", "RelayReport"),
    "policies": ("policies",),
    "policy": (
        "Acknowledgement",
        "ConfirmationPolicy",
        "Policy",
        "PurgeCategory",
        "PurgePolicy",
        "RecoveryPhase",
        "RecoveryPolicy",
        "SurveyPolicy",
    ),
    "ports": (
        "AccountStore",
        "Clock",
        "EffectHook",
        "Listener",
        "OutboxStore",
        "PrerequisiteCheck",
        "Purger",
    ),
    "purge": ("Claim", "SweepReport"),
    "queries": ("AccountPage",),
    "receipts": ("ErasedCategory", "ErasureReceipt", "RedactedValue", "RetainedCategory"),
    "registry": ("PolicyRegistry", "Rollout"),
    "sealed": ("SealedValue",),
    "timeline": ("KeptCategory", "ScheduledErasure", "Timeline", "TimelinePhase"),
    "values": (
        "AccountQuery",
        "CorruptRecord",
        "DeadLetter",
        "EffectContext",
        "Lease",
        "OutboxCursor",
        "OutboxEntry",
        "PendingItem",
        "PurgeContext",
        "PurgeResult",
    ),
    "verify": ("Change", "DiffReport", "Difference", "RegistryReport", "diff_policies", "verify_registry"),
}
_LAZY = {name: f"{__name__}.{module}" for module, names in _WHERE.items() for name in names}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()["__version__"] = found = _installed_version()
        return found
    return _lazy.resolve(globals(), _LAZY, name)


def __dir__() -> list[str]:
    return _lazy.listing(globals(), __all__)
