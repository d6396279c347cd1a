"""account_lifecycle: account cancellation, recovery windows and purging as an explicit,
auditable state machine. Everything public is importable from here."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from account_lifecycle import policies
from account_lifecycle.adapters.memory import MemoryStore
from account_lifecycle.adapters.sqlite import SQLiteStore
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

# A library logs into the host's logging set-up and sets none up itself: quiet by default.
logging.getLogger("account_lifecycle").addHandler(logging.NullHandler())

if TYPE_CHECKING:  # imported lazily by __getattr__ below: they need the postgres or async extra
    from account_lifecycle.adapters.postgres import PostgresStore
    from account_lifecycle.adapters.sqlalchemy import AsyncSQLAlchemyStore, SQLAlchemyStore
    from account_lifecycle.aio import (
        AsyncAccountStore,
        AsyncLifecycle,
        AsyncPostgresStore,
        AsyncPurger,
        ThreadedStore,
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


#: Names imported when first asked for: the asyncio front end needs the ``async`` extra
#: (greenlet, and asyncio, which ``import account_lifecycle`` does not pay for otherwise).
_ASYNC = frozenset(
    {"AsyncAccountStore", "AsyncLifecycle", "AsyncPostgresStore", "AsyncPurger", "ThreadedStore"}
)


def __getattr__(name: str) -> Any:
    # PostgresStore needs the optional ``postgres`` extra (psycopg); import it only when asked.
    if name == "PostgresStore":
        from account_lifecycle.adapters.postgres import PostgresStore

        return PostgresStore
    if name == "__version__":
        globals()["__version__"] = found = _installed_version()
        return found
    if name in _ASYNC:
        from account_lifecycle import aio

        return getattr(aio, name)
    # SQLAlchemyStore and AsyncSQLAlchemyStore need the ``sqlalchemy`` extra, imported when asked.
    if name in ("SQLAlchemyStore", "AsyncSQLAlchemyStore"):
        from account_lifecycle.adapters import sqlalchemy

        return getattr(sqlalchemy, name)
    raise AttributeError(f"module 'account_lifecycle' has no attribute {name!r}")
