"""The library's tables as Django models (app label ``account_lifecycle``).

They hold what the other stores hold: a record per account (its body is the codec's JSON, the
columns beside it are what the database must filter and lock on), its audit events, the
identifiers it holds (as keyed digests), the sealed values of its events, and the outbox:
entries, cursors per listener, dead letters. ``DjangoStore`` is the only writer; the admin
reads them. Nothing personal is in plain text: identities and identifier values are digests,
sealed values are erased at purge.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models

__all__ = [
    "AccountRow",
    "DeadLetterRow",
    "EventRow",
    "IdentifierRow",
    "OutboxCursorRow",
    "OutboxEntryRow",
    "SealedValueRow",
]


class AccountRow(models.Model):
    """One account: its encoded record and the columns the store filters and locks on."""

    account_id = models.CharField(primary_key=True)
    version = models.BigIntegerField()
    state = models.CharField(db_index=True)
    #: a keyed digest, unique while the account holds it (NULLs repeat)
    live_identity = models.CharField(null=True, blank=True, unique=True)
    due_at = models.DateTimeField(null=True, blank=True)
    claim_owner = models.CharField(null=True, blank=True)
    claim_until = models.DateTimeField(null=True, blank=True)
    has_holds = models.BooleanField(default=False)
    has_failed_steps = models.BooleanField(default=False)
    policy = models.CharField(blank=True, default="")
    body = models.TextField()

    objects: ClassVar[Any]

    class Meta:
        db_table = "account_lifecycle_account"
        verbose_name = "account"
        # rows change through the lifecycle only: staff may view, and restore or hold through it
        default_permissions = ("view",)
        permissions: ClassVar[list[tuple[str, str]]] = [
            ("restore_account", "Can restore accounts as support"),
            ("hold_account", "Can place and release legal holds"),
        ]
        indexes: ClassVar[list[Any]] = [
            models.Index(
                fields=["due_at", "account_id"],
                name="al_account_due",
                condition=models.Q(due_at__isnull=False),
            ),
            # operators' queries (``Lifecycle.accounts``): the rare held or failed accounts and
            # each state, walked in id order
            models.Index(fields=["account_id"], name="al_account_held", condition=models.Q(has_holds=True)),
            models.Index(
                fields=["account_id"], name="al_account_failed", condition=models.Q(has_failed_steps=True)
            ),
            models.Index(fields=["state", "account_id"], name="al_account_state"),
        ]

    def __str__(self) -> str:
        return str(self.account_id)


class EventRow(models.Model):
    """One audit event of an account, in the codec's JSON (``at`` and ``action`` beside it for
    listing)."""

    id = models.BigAutoField(primary_key=True)
    account = models.ForeignKey(
        AccountRow, on_delete=models.PROTECT, related_name="events", db_column="account_id"
    )
    seq = models.BigIntegerField()
    at = models.DateTimeField()
    action = models.CharField()
    body = models.TextField()

    objects: ClassVar[Any]

    class Meta:
        db_table = "account_lifecycle_event"
        verbose_name = "audit event"
        default_permissions = ("view",)
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=["account", "seq"], name="al_event_account_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} #{self.seq} {self.action}"


class IdentifierRow(models.Model):
    """An identifier (by kind) an account holds until ``free_at``; the value is a keyed digest."""

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField()
    value = models.CharField()
    account = models.ForeignKey(
        AccountRow, on_delete=models.PROTECT, related_name="identifiers", db_column="account_id"
    )
    free_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[Any]

    class Meta:
        db_table = "account_lifecycle_identifier"
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=["kind", "value"], name="al_identifier_kind_value"),
        ]


class SealedValueRow(models.Model):
    """Personal data an audit event sealed (its hashed body holds the commitment); erased at purge."""

    id = models.BigAutoField(primary_key=True)
    account_id = models.CharField(db_index=True)
    seq = models.BigIntegerField()
    field = models.CharField()
    salt = models.TextField()
    value = models.TextField()

    objects: ClassVar[Any]

    class Meta:
        db_table = "account_lifecycle_sealed_value"
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=["account_id", "seq", "field"], name="al_sealed_event_field"),
        ]


class OutboxEntryRow(models.Model):
    """An audit event as the outbox numbers it: *position* increases in commit order."""

    position = models.BigIntegerField(primary_key=True)
    account_id = models.CharField()
    seq = models.BigIntegerField()

    objects: ClassVar[Any]

    class Meta:
        db_table = "account_lifecycle_outbox"


class OutboxCursorRow(models.Model):
    """How far one named listener has been fed, and the relay's claim on it."""

    listener = models.CharField(primary_key=True)
    position = models.BigIntegerField(default=0)
    attempts = models.IntegerField(default=0)
    retry_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(null=True, blank=True)
    owner = models.CharField(null=True, blank=True)
    until = models.DateTimeField(null=True, blank=True)
    version = models.BigIntegerField(default=0)

    objects: ClassVar[Any]

    class Meta:
        db_table = "account_lifecycle_outbox_cursor"


class DeadLetterRow(models.Model):
    """An outbox entry a listener gave up on; *error* is the failure, never the event's content."""

    id = models.BigAutoField(primary_key=True)
    listener = models.CharField()
    position = models.BigIntegerField()
    account_id = models.CharField()
    seq = models.BigIntegerField()
    error = models.TextField()
    at = models.DateTimeField()

    objects: ClassVar[Any]

    class Meta:
        db_table = "account_lifecycle_dead_letter"
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=["listener", "position"], name="al_dead_letter_listener_position"),
        ]
