"""Errors raised by account_lifecycle.

Every error a caller can act on derives from one root::

    LifecycleError
    ├── AccountNotFound            unknown account id
    ├── AccountExists              id, or live identity, already taken
    ├── InvalidTransition          action impossible from the current state
    │   └── StaleConfirmation      a confirm answering an earlier cancellation request
    ├── NotPermitted               actor's relation may not take the action
    ├── IdempotencyKeyReused       a used key sent with another command or other arguments
    ├── WrongConfirmationToken     typed token is not exactly the policy's token
    ├── MissingAcknowledgements    required acknowledgements not given
    ├── PrerequisitesPending       a prerequisite check still reports work
    ├── ReauthenticationRequired   confirming needs a fresher login (step-up)
    ├── RecoveryWindowExpired      restore at or after restorable_until
    ├── ConcurrentUpdate           the stored version moved on; nothing written
    ├── ErasureInProgress          a purge step the command would change is running (retryable)
    ├── HistoryTampered            the audit chain does not verify
    ├── PolicyError                an invalid policy, naming the key
    ├── ConfigurationError         a lifecycle missing a purger or a check
    ├── PolicyMismatch             an account of another policy handed to this lifecycle
    ├── UnknownPolicyVersion       a policy label (name@version) the registry does not hold
    ├── MigrationRefused           an account migration that would break a promise
    └── StoreError                 the store failed; nothing was written
        └── RecordCorrupt          a stored record cannot be decoded

Misuse of the API by the programmer (an outcome the policy does not offer, an
unknown acknowledgement id, a naive datetime) raises the builtin ``ValueError``
or ``TypeError`` instead: those are bugs to fix, not situations to show a user.

Each error takes its context as keyword arguments, keeps it as attributes, and
writes a full sentence naming the values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from account_lifecycle.model import Action, Actor, State
    from account_lifecycle.values import PendingItem

__all__ = [
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
]


class LifecycleError(Exception):
    """Root of every error account_lifecycle raises on purpose: catch it to tell a situation a
    user or operator can act on from a bug. Builtin ``ValueError`` / ``TypeError`` are misuse."""


class AccountNotFound(LifecycleError):
    """No account with that id: raised by every command and read (``get``, ``history``, a store's
    ``save`` of an id never created). ``.account_id`` is the id asked for."""

    def __init__(self, *, account_id: str) -> None:
        self.account_id = account_id
        super().__init__(f"no account with id {account_id!r}")


class AccountExists(LifecycleError):
    """``open`` (a store's ``create`` or ``save``) would take what another account holds: the
    account id itself, its live identity, or one of its identifiers. Nothing was written.
    ``.account_id`` is the account being written; ``.identity`` the value that is taken (None
    when it is the id); ``.kind`` the kind of identifier (``"email"``, ``"phone"``), None for
    the id or the single identity. The message never shows the identity itself."""

    def __init__(self, *, account_id: str, identity: str | None = None, kind: str | None = None) -> None:
        self.account_id = account_id
        self.identity = identity
        self.kind = kind  # the kind of identifier ("email", "phone"), when one of those is taken
        if identity is None:
            msg = f"an account with id {account_id!r} already exists"
        elif kind is not None:
            msg = (
                f"cannot open {account_id!r}: its {kind} is still held by another account; "
                "the policy's [identity] table says when it is released"
            )
        else:
            msg = (
                f"cannot open {account_id!r}: its identity is still held by a live account; "
                "the policy's identity_reuse says when it is released"
            )
        super().__init__(msg)


class InvalidTransition(LifecycleError):
    """The command is not possible from the account's current state (a confirm while ``ACTIVE``,
    anything once ``PURGED``, ``receipt`` before ``PURGED``). Nothing was written. ``.state`` is
    the state it was in, ``.action`` the command (an ``Action`` or an effect's name) and
    ``.reason`` why, when more can be said than the state (``""`` otherwise)."""

    def __init__(self, *, state: State, action: Action | str, reason: str = "") -> None:
        self.state = state
        self.action = action
        self.reason = reason
        msg = f"cannot {action} from state {state}"
        super().__init__(f"{msg}: {reason}" if reason else msg)


class StaleConfirmation(InvalidTransition):
    """A confirm that answers another cancellation request than the open one (a page left open
    across a withdraw and a new request). ``.state`` is the current state; ``.given`` the
    cancellation id the confirm carried and ``.current`` the open request's (either may be None)."""

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
    """The actor's relation to the account may not take this command under the policy's
    permissions (a member confirming, a user who is neither owner nor member). Nothing was
    written. ``.actor`` and ``.action`` name who tried what; ``.relation`` is the relation read
    from the stored record (None: no relation at all). *reason*, when given, says why not now (a
    recovery phase in which the relation may not restore); ``.reason`` is ``""`` when the
    relation may never take the action."""

    def __init__(self, *, actor: Actor, action: Action, relation: str | None, reason: str = "") -> None:
        self.actor = actor
        self.action = action
        self.relation = relation
        self.reason = reason
        who = f"{actor} ({relation})" if relation else f"{actor} (no relation to the account)"
        msg = f"{who} may not {action}"
        super().__init__(f"{msg}: {reason}" if reason else msg)


class IdempotencyKeyReused(LifecycleError, ValueError):
    """An idempotency key already applied to this account came again with another command, from
    another actor, or with other arguments: it is not a retry, and its earlier result is not
    returned. Nothing was written. Raised only to an actor permitted the command now (anyone
    else gets ``NotPermitted``, which tells nothing about the key). ``.account_id`` and ``.key``
    name the account and the key, ``.action`` the command now sent, ``.applied`` the command the
    key was used for. The message never quotes the arguments (they may be survey answers).

    A ``LifecycleError`` because it depends on what is stored (the same call is fine on another
    account), and also a ``ValueError`` because a key sent for a second command was a
    ``ValueError`` before and is a caller's mistake to fix: send a fresh key."""

    def __init__(self, *, account_id: str, key: str, action: Action | str, applied: str) -> None:
        self.account_id = account_id
        self.key = key
        self.action = action
        self.applied = applied
        if str(applied) != str(action):
            why = f"was already used for {applied}; a {action} needs a key of its own"
        else:
            why = f"was already used for a {applied} with other arguments or by another actor"
        super().__init__(f"idempotency key {key!r} on {account_id!r} {why}; nothing was written")


class WrongConfirmationToken(LifecycleError):
    """``confirm`` with a token that is not exactly the policy's (no trimming, no case folding,
    no Unicode normalisation). Nothing was written. ``.expected`` is the text to type,
    ``.given`` what was typed (None when nothing was)."""

    def __init__(self, *, expected: str, given: str | None) -> None:
        self.expected = expected
        self.given = given
        super().__init__(
            f"type exactly {expected!r} to confirm (got {given!r}); "
            "letters, case and spaces must match exactly"
        )


class MissingAcknowledgements(LifecycleError):
    """``confirm`` without every acknowledgement the policy requires. Nothing was written.
    ``.missing`` holds the ids still to acknowledge, in the policy's order. An unknown id is a
    ``ValueError`` instead."""

    def __init__(self, *, missing: Sequence[str]) -> None:
        self.missing = tuple(missing)
        super().__init__(f"these acknowledgements are required first: {', '.join(self.missing)}")


class PrerequisitesPending(LifecycleError):
    """``confirm`` while a prerequisite check still reports work (unported numbers, open
    invoices). Nothing was written. Built from *pending* (check name -> its items);
    ``.pending`` maps each check's name to the ``what`` of its items (plain strings);
    ``.items`` to the ``PendingItem``s themselves, with why each blocks and how to fix it."""

    def __init__(self, *, pending: Mapping[str, Sequence[str | PendingItem]]) -> None:
        from account_lifecycle.values import PendingItem

        self.items = {
            name: tuple(item if isinstance(item, PendingItem) else PendingItem(str(item)) for item in items)
            for name, items in pending.items()
        }
        self.pending = {name: tuple(item.what for item in items) for name, items in self.items.items()}
        parts = "; ".join(
            f"{name}: {', '.join(_pending_text(item) for item in items)}"
            for name, items in self.items.items()
        )
        super().__init__(f"prerequisites still pending, complete them before confirming: {parts}")


def _pending_text(item: PendingItem) -> str:
    """``what``, then why and the fix in parentheses when the check gave them."""
    extra = [f"{label}: {text}" for label, text in (("why", item.why), ("fix", item.fix)) if text]
    return f"{item.what} ({'; '.join(extra)})" if extra else item.what


class ReauthenticationRequired(LifecycleError):
    """The policy asks for a fresh login (``confirmation.fresh_login``) to confirm, and the
    actor's last one (``.authenticated_at``, None when the host gave none) is too old, or lies
    in the future (then *reason* says so). ``.max_age`` is how old it may be, ``.now`` the
    lifecycle's clock when it was checked. Nothing was written."""

    def __init__(
        self, *, authenticated_at: datetime | None, max_age: timedelta, now: datetime, reason: str = ""
    ) -> None:
        self.authenticated_at = authenticated_at
        self.max_age = max_age
        self.now = now
        if authenticated_at is None:
            why = "no login time was given"
        else:
            why = reason or (f"the last login was at {_when(authenticated_at)}, it is now {_when(now)}")
        super().__init__(
            f"confirming needs a login within the last {_span(max_age)}: {why}; sign in again and retry"
        )


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _span(delta: timedelta) -> str:
    """``15 minutes``, ``2 hours``, ``1 day``: the largest whole unit."""
    seconds = int(delta.total_seconds())
    for size, unit in ((86_400, "day"), (3_600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


class RecoveryWindowExpired(LifecycleError):
    """``restore`` at or after the end of the recovery window. Nothing was written.
    ``.account_id`` names the account, ``.restorable_until`` when the window ended and
    ``.now`` the lifecycle's clock at the attempt."""

    def __init__(self, *, account_id: str, restorable_until: object, now: object) -> None:
        self.account_id = account_id
        self.restorable_until = restorable_until
        self.now = now
        super().__init__(
            f"account {account_id!r} could be restored until {restorable_until}; it is now {now}"
        )


class ConcurrentUpdate(LifecycleError):
    """The stored version moved on between the read and the compare-and-set write (another
    command won the race), or a write with a lease met another owner's live claim. Nothing was
    written; load the account again and retry. ``.account_id`` names it,
    ``.expected_version`` is the version the write expected."""

    def __init__(self, *, account_id: str, expected_version: int) -> None:
        self.account_id = account_id
        self.expected_version = expected_version
        super().__init__(
            f"account {account_id!r} changed since version {expected_version} was read; "
            "nothing was written, load it again and retry"
        )


class HistoryTampered(LifecycleError):
    """The audit trail does not verify (``verify_history``), or a stored event cannot be
    decoded (a store's ``history``). ``.account_id`` names the account, ``.seq`` the position
    (1, 2, ...) of the first bad event (one past the last when the last one was removed) and
    ``.reason`` what is wrong with it; the stored content is never quoted."""

    def __init__(self, *, account_id: str, seq: int, reason: str) -> None:
        self.account_id = account_id
        self.seq = seq
        self.reason = reason
        super().__init__(f"audit history of {account_id!r} does not verify at event {seq}: {reason}")


class PolicyError(LifecycleError):
    """An invalid policy, found when it is built or read (``Policy.from_toml``, ``Policy.load``):
    an unknown key, a blank token, a bad duration, a category both purged and protected.
    ``.key`` is the attribute path at fault (``"recovery.reminders[0]"``; ``""`` for the whole
    file) and ``.message`` what is wrong with it.

    A policy with several problems raises one ``PolicyError`` that reads as the first, whose
    ``errors`` lists every problem found (each a ``PolicyError``; ``account-lifecycle check``
    prints them all); for a single problem ``errors`` is ``(self,)``."""

    def __init__(self, *, key: str, message: str, errors: tuple[PolicyError, ...] = ()) -> None:
        self.key = key
        self.message = message
        self.errors: tuple[PolicyError, ...] = errors or (self,)
        super().__init__(f"{key}: {message}" if key else message)

    @classmethod
    def of(cls, errors: Sequence[PolicyError]) -> PolicyError:
        """One error for *errors* (at least one): the first, listing them all in ``errors``."""
        flat = tuple(e for error in errors for e in error.errors)
        if len(flat) == 1:
            return flat[0]
        return cls(key=flat[0].key, message=flat[0].message, errors=flat)


class ConfigurationError(LifecycleError):
    """A ``Lifecycle`` built without what its policy needs: a purge category that is not
    protected has no purger, a prerequisite has no check. *message* names what is missing."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class PolicyMismatch(LifecycleError):
    """The account was opened under another policy than the lifecycle that was asked to act.
    Nothing was written. ``.account_id`` names it, ``.account_policy`` is the policy stored
    with it and ``.lifecycle_policy`` the lifecycle's."""

    def __init__(self, *, account_id: str, account_policy: str, lifecycle_policy: str) -> None:
        self.account_id = account_id
        self.account_policy = account_policy
        self.lifecycle_policy = lifecycle_policy
        super().__init__(
            f"account {account_id!r} follows policy {account_policy!r}, not {lifecycle_policy!r}; "
            "use the lifecycle of its policy (or one store per policy)"
        )


class UnknownPolicyVersion(LifecycleError):
    """A policy label (``name@version``) that the lifecycle's registry does not hold, or that is
    not a label at all. Nothing was written. ``.label`` is the label asked for, ``.known`` the
    labels the registry holds."""

    def __init__(self, *, label: str, known: Sequence[str]) -> None:
        self.label = label
        self.known = tuple(known)
        super().__init__(
            f"no policy version {label!r} in this registry; it holds {', '.join(self.known) or 'none'}"
        )


class MigrationRefused(LifecycleError):
    """An account migration refused because it would break a promise made to accounts (a
    recovery window or phase shortened, a category erased earlier or one that was kept, a hold
    dropped), by rule, unless allowed rule by rule. Nothing was written. ``.source`` and
    ``.target`` are the labels, ``.rules`` maps each broken rule to how many accounts break it."""

    def __init__(self, *, source: str, target: str, rules: Mapping[str, int]) -> None:
        self.source = source
        self.target = target
        self.rules = dict(rules)
        broken = ", ".join(
            f"{rule} ({count} account{'s' if count != 1 else ''})" for rule, count in self.rules.items()
        )
        flags = " ".join(f"--allow {rule}" for rule in self.rules)
        super().__init__(
            f"migrating {source} -> {target} would break: {broken}; nothing was written "
            f"(allow each rule explicitly to go ahead: {flags})"
        )


class StoreError(LifecycleError):
    """The store itself failed: unreachable, locked for too long, full, read-only, a connection
    lost mid-transaction, a schema missing or too new. Nothing of the failed call was written.
    *message* says which store and what failed, never a password or the content of a row."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class RecordCorrupt(StoreError):
    """A stored account record cannot be decoded (damaged by hand, by a bug, or by a disk):
    raised by a store's ``get`` and every command that reads the account; ``claim_due`` returns
    a ``CorruptRecord`` for it instead. ``.account_id`` names the account, ``.reason`` what is
    wrong. The message names the account and what is wrong, never the record's content."""

    def __init__(self, *, account_id: str, reason: str) -> None:
        self.account_id = account_id
        self.reason = reason
        super().__init__(f"the stored record of {account_id!r} cannot be decoded: {reason}")


class ErasureInProgress(LifecycleError):
    """A purge step that the command would change is running now: its purger may be erasing
    the data the command wants kept (a restore, a legal hold on that category). Nothing was
    written; retry once the step has ended. ``.account_id`` and ``.action`` name the refused
    command, ``.steps`` the steps under way, ``.since`` when they started, and
    ``.retry_after`` when their claim lapses at the latest (None if unknown). ``retryable`` is
    True."""

    retryable = True

    def __init__(
        self,
        *,
        account_id: str,
        action: Action | str,
        steps: Sequence[str],
        since: datetime,
        retry_after: datetime | None = None,
    ) -> None:
        self.account_id = account_id
        self.action = action
        self.steps = tuple(steps)
        self.since = since
        self.retry_after = retry_after
        later = "" if retry_after is None else f" (at the latest after {_when(retry_after)})"
        super().__init__(
            f"{action} on {account_id!r} waits: erasure of {', '.join(self.steps)} is under way since "
            f"{_when(since)}; nothing was written, retry once it has ended{later}"
        )
