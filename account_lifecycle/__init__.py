"""account_lifecycle: account cancellation, recovery windows and purging as an explicit,
auditable state machine. Everything public is importable from here."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
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

if TYPE_CHECKING:  # imported lazily by __getattr__ below: it needs the postgres extra
    from account_lifecycle.adapters.postgres import PostgresStore

try:  # one source of truth: the version in pyproject.toml, as installed
    __version__ = version("account-lifecycle")
except PackageNotFoundError:  # pragma: no cover - imported from a checkout that was never installed
    __version__ = "0+unknown"

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
    "Timeline",
    "TimelinePhase",
    "UnknownPolicyVersion",
    "WrongConfirmationToken",
    "describe_policy",
    "diff_policies",
    "policies",
    "verify_registry",
]


def __getattr__(name: str) -> Any:
    # PostgresStore needs the optional ``postgres`` extra (psycopg); import it only when asked.
    if name == "PostgresStore":
        from account_lifecycle.adapters.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module 'account_lifecycle' has no attribute {name!r}")
