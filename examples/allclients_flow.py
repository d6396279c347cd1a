"""AllClients' close-account flow: optional survey, plain confirm, 3 months to restore.

Run: python examples/allclients_flow.py
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from account_lifecycle import (
    Actor,
    AuditEvent,
    Lifecycle,
    ManualClock,
    NotPermitted,
    RecoveryWindowExpired,
    SQLiteStore,
    policies,
)
from account_lifecycle.testing import fake_purgers

POLICY = policies.ALLCLIENTS


def notify(event: AuditEvent) -> None:
    """A listener: the host e-mails people, revokes sessions, restores backups."""
    if event.action == "team_access_revoked":
        print(f"    revoke sessions of {', '.join(event.details['members'])}")
    elif event.action == "restore":
        print("    restore the account's data from backups")


def main() -> None:
    clock = ManualClock(datetime(2026, 11, 30, 9, 0, tzinfo=UTC))
    with tempfile.TemporaryDirectory() as tmp:
        lc = Lifecycle(
            POLICY,
            store=SQLiteStore(Path(tmp) / "allclients.db"),
            # stand-ins for the host's deletion code (docs/embedding.md shows a real purger)
            purgers=fake_purgers(POLICY, items=10).values(),
            listeners=[notify],
            clock=clock,
        )
        owner, support = Actor.user("owner-9"), Actor.support("cases-desk")

        lc.open("acct-7", owner="owner-9", members=["t-1", "t-2"])
        lc.cancel_service("acct-7", owner, "messages")  # only the Messages service
        lc.request_cancellation("acct-7", owner)
        lc.skip_survey("acct-7", owner)
        record = lc.confirm("acct-7", owner)
        print(f"cancelled; restorable until {record.restorable_until:%d %b %Y}")

        try:
            lc.restore("acct-7", owner)
        except NotPermitted as exc:
            print(f"refused: {exc} (recovery goes through cases@allclients.com)")

        clock.advance(timedelta(days=20))
        print(f"support restores: {lc.restore('acct-7', support).state}")

        lc.request_cancellation("acct-7", owner)
        lc.skip_survey("acct-7", owner)
        lc.confirm("acct-7", owner)
        clock.advance(timedelta(days=100))
        try:
            lc.restore("acct-7", support)
        except RecoveryWindowExpired as exc:
            print(f"refused: {exc}")
        print(f"sweep: {lc.sweep()}")
        print(f"erased: {[e.category for e in lc.receipt('acct-7').erased]}")


if __name__ == "__main__":
    main()
