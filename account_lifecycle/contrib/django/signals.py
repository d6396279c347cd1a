"""Django signals for committed audit events, fed from the outbox (never from ``post_save``).

``lifecycle_event`` is sent once per committed audit event, with ``sender=Lifecycle`` class,
``event`` (the ``AuditEvent``) and ``position`` (its outbox position, or None when delivered
by the in-process listener). Receivers run in the relay's process, after the commit: a
receiver that fails is retried by the relay, so receivers must be idempotent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from django.dispatch import Signal

from account_lifecycle.audit import AuditEvent

if TYPE_CHECKING:
    from account_lifecycle.contrib.django.conf import LifecycleSettings

__all__ = ["OUTBOX_LISTENER", "lifecycle_event", "listeners", "send_event"]

#: The name of the outbox listener that sends ``lifecycle_event`` (its cursor, its dead letters).
OUTBOX_LISTENER: Final = "django.signals"

#: Sent for each committed audit event: ``receiver(sender, event, position, **kwargs)``.
lifecycle_event: Final = Signal()


def send_event(event: AuditEvent, position: int | None = None) -> None:
    """Send ``lifecycle_event`` for *event*; a receiver's exception propagates (the relay retries
    the delivery, then dead-letters it)."""
    from account_lifecycle.lifecycle import Lifecycle

    lifecycle_event.send(sender=Lifecycle, event=event, position=position)


def listeners(resolved: LifecycleSettings) -> tuple[Any, ...]:
    """The in-process listeners the app registers on the lifecycle: none, since the signals come
    from the outbox relay (``lifecycle_sweep`` relays)."""
    del resolved
    return ()
