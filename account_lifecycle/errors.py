"""Errors raised by account_lifecycle.

Every error a caller can act on derives from one root::

    LifecycleError
    ├── AccountNotFound            unknown account id
    ├── AccountExists              id, or live identity, already taken
    ├── InvalidTransition          action impossible from the current state
    │   └── StaleConfirmation      a confirm answering an earlier cancellation request
    ├── NotPermitted               actor's relation may not take the action
    ├── WrongConfirmationToken     typed token is not exactly the policy's token
    ├── MissingAcknowledgements    required acknowledgements not given
    ├── PrerequisitesPending       a prerequisite check still reports work
    ├── RecoveryWindowExpired      restore at or after restorable_until
    ├── ConcurrentUpdate           the stored version moved on; nothing written
    ├── HistoryTampered            the audit chain does not verify
    ├── PolicyError                an invalid policy, naming the key
    ├── ConfigurationError         a lifecycle missing a purger or a check
    ├── PolicyMismatch             an account of another policy handed to this lifecycle
    └── StoreError                 the store failed; nothing was written

Misuse of the API by the programmer (an outcome the policy does not offer, an
unknown acknowledgement id, a naive datetime) raises the builtin ``ValueError``
or ``TypeError`` instead: those are bugs to fix, not situations to show a user.

Each error takes its context as keyword arguments, keeps it as attributes, and
writes a full sentence naming the values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from account_lifecycle.model import Action, Actor, State

__all__ = [
    "AccountExists",
    "AccountNotFound",
    "ConcurrentUpdate",
    "ConfigurationError",
    "HistoryTampered",
    "InvalidTransition",
    "LifecycleError",
    "MissingAcknowledgements",
    "NotPermitted",
    "PolicyError",
    "PolicyMismatch",
    "PrerequisitesPending",
    "RecoveryWindowExpired",
    "StaleConfirmation",
    "StoreError",
    "WrongConfirmationToken",
]


class LifecycleError(Exception):
    """Root of every error account_lifecycle raises on purpose."""


class AccountNotFound(LifecycleError):
    def __init__(self, *, account_id: str) -> None:
        self.account_id = account_id
        super().__init__(f"no account with id {account_id!r}")


class AccountExists(LifecycleError):
    def __init__(self, *, account_id: str, identity: str | None = None) -> None:
        self.account_id = account_id
        self.identity = identity
        if identity is None:
            msg = f"an account with id {account_id!r} already exists"
        else:
            msg = (
                f"cannot open {account_id!r}: its identity is still held by a live account; "
                "the policy's identity_reuse says when it is released"
            )
        super().__init__(msg)


class InvalidTransition(LifecycleError):
    def __init__(self, *, state: State, action: Action | str, reason: str = "") -> None:
        self.state = state
        self.action = action
        self.reason = reason
        msg = f"cannot {action} from state {state}"
        super().__init__(f"{msg}: {reason}" if reason else msg)


class StaleConfirmation(InvalidTransition):
    """A confirm that answers another cancellation request than the open one."""

    def __init__(self, *, state: State, given: str | None, current: str | None) -> None:
        self.given = given
        self.current = current
        super().__init__(
            state=state,
            action="confirm",
            reason=f"it answers cancellation request {given!r}, but the open request is {current!r}; "
            "reload the page and confirm again",
        )


class NotPermitted(LifecycleError):
    def __init__(self, *, actor: Actor, action: Action, relation: str | None) -> None:
        self.actor = actor
        self.action = action
        self.relation = relation
        who = f"{actor} ({relation})" if relation else f"{actor} (no relation to the account)"
        super().__init__(f"{who} may not {action}")


class WrongConfirmationToken(LifecycleError):
    def __init__(self, *, expected: str, given: str | None) -> None:
        self.expected = expected
        self.given = given
        super().__init__(
            f"type exactly {expected!r} to confirm (got {given!r}); "
            "letters, case and spaces must match exactly"
        )


class MissingAcknowledgements(LifecycleError):
    def __init__(self, *, missing: Sequence[str]) -> None:
        self.missing = tuple(missing)
        super().__init__(f"these acknowledgements are required first: {', '.join(self.missing)}")


class PrerequisitesPending(LifecycleError):
    def __init__(self, *, pending: Mapping[str, Sequence[str]]) -> None:
        self.pending = {name: tuple(items) for name, items in pending.items()}
        parts = "; ".join(f"{name}: {', '.join(items)}" for name, items in self.pending.items())
        super().__init__(f"prerequisites still pending, complete them before confirming: {parts}")


class RecoveryWindowExpired(LifecycleError):
    def __init__(self, *, account_id: str, restorable_until: object, now: object) -> None:
        self.account_id = account_id
        self.restorable_until = restorable_until
        self.now = now
        super().__init__(
            f"account {account_id!r} could be restored until {restorable_until}; it is now {now}"
        )


class ConcurrentUpdate(LifecycleError):
    def __init__(self, *, account_id: str, expected_version: int) -> None:
        self.account_id = account_id
        self.expected_version = expected_version
        super().__init__(
            f"account {account_id!r} changed since version {expected_version} was read; "
            "nothing was written, load it again and retry"
        )


class HistoryTampered(LifecycleError):
    def __init__(self, *, account_id: str, seq: int, reason: str) -> None:
        self.account_id = account_id
        self.seq = seq
        self.reason = reason
        super().__init__(f"audit history of {account_id!r} does not verify at event {seq}: {reason}")


class PolicyError(LifecycleError):
    def __init__(self, *, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


class ConfigurationError(LifecycleError):
    def __init__(self, message: str) -> None:
        super().__init__(message)


class PolicyMismatch(LifecycleError):
    """The account was opened under another policy than the lifecycle that was asked to act."""

    def __init__(self, *, account_id: str, account_policy: str, lifecycle_policy: str) -> None:
        self.account_id = account_id
        self.account_policy = account_policy
        self.lifecycle_policy = lifecycle_policy
        super().__init__(
            f"account {account_id!r} follows policy {account_policy!r}, not {lifecycle_policy!r}; "
            "use the lifecycle of its policy (or one store per policy)"
        )


class StoreError(LifecycleError):
    """The store failed (unreachable, locked for too long, corrupt); nothing was written."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
