"""Django signals for committed audit events, fed from the outbox (never from ``post_save``).

``lifecycle_event`` is sent once per committed audit event, with ``sender=Lifecycle`` (the
class) and ``event`` (the ``AuditEvent``), by the outbox listener ``"django.signals"`` that the
app registers on its lifecycle (``Lifecycle(outbox_listeners=...)``) when ``SIGNALS`` is on.
Receivers run where the outbox is relayed (``lifecycle_sweep`` relays after each sweep), after
the commit, in commit order; an event whose transaction rolled back is never sent. A receiver
that raises makes the relay retry the event later (with backoff, then a dead letter), so a
receiver is idempotent: it may see an event again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from django.dispatch import Signal

from account_lifecycle.audit import AuditEvent

if TYPE_CHECKING:
    from account_lifecycle.contrib.django.conf import LifecycleSettings

__all__ = ["OUTBOX_LISTENER", "lifecycle_event", "outbox_listeners", "send_event"]

#: The name of the outbox listener that sends ``lifecycle_event`` (its cursor, its dead letters).
OUTBOX_LISTENER: Final = "django.signals"

#: Sent for each committed audit event: ``receiver(sender, event, **kwargs)``.
lifecycle_event: Final = Signal()


def send_event(event: AuditEvent) -> None:
    """Send ``lifecycle_event`` for *event*: the outbox listener. A receiver's exception
    propagates, so the relay retries the delivery (and dead-letters it after its retries)."""
    from account_lifecycle.lifecycle import Lifecycle

    lifecycle_event.send(sender=Lifecycle, event=event)


def outbox_listeners(resolved: LifecycleSettings) -> dict[str, Any]:
    """The durable listeners of the configured lifecycle: the host's ``OUTBOX_LISTENERS``, and
    ``"django.signals"`` (``send_event``) unless ``SIGNALS`` is off."""
    found = dict(resolved.outbox_listeners)
    if resolved.signals:
        found[OUTBOX_LISTENER] = send_event
    return found
