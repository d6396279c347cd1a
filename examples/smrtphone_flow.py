"""smrtPhone's cancel flow, as its help-center article describes it.

Run: python examples/smrtphone_flow.py
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from account_lifecycle import (
    Actor,
    Lifecycle,
    ManualClock,
    PrerequisitesPending,
    PurgeContext,
    SQLiteStore,
    SurveyOutcome,
    WrongConfirmationToken,
    policies,
)
from account_lifecycle.testing import fake_identity_keys, fake_purgers

POLICY = policies.SMRTPHONE


def say_erasing(account_id: str, context: PurgeContext) -> None:
    print(f"    erasing {context.category} of {account_id}")


numbers_not_ported = ["+1 555 0100"]


def port_outs(account_id: str) -> list[str]:
    """The host's check: which phone numbers are still waiting to be ported out."""
    return list(numbers_not_ported)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lc = Lifecycle(
            POLICY,
            store=SQLiteStore(Path(tmp) / "smrtphone.db"),
            # stand-ins for the host's deletion code (docs/embedding.md shows a real purger)
            purgers=fake_purgers(POLICY, before=say_erasing).values(),
            prerequisites={"port_outs": port_outs},
            clock=ManualClock(datetime(2026, 11, 30, 9, 0, tzinfo=UTC)),
            # identities are stored as keyed digests; a host loads its key from its secret store
            identity_keys=fake_identity_keys("example"),
        )
        owner = Actor.user("owner-1")
        everything = [a.id for a in POLICY.confirmation.acknowledgements]

        lc.open("acct-42", owner="owner-1", members=["agent-2"], identity="owner@example.com")
        lc.request_cancellation("acct-42", owner)  # the Cancel subscription button opens the survey
        lc.submit_survey("acct-42", owner, SurveyOutcome.CANCEL, {"reason": "switching provider"})

        try:
            lc.confirm("acct-42", owner, "confirm", everything)
        except WrongConfirmationToken as exc:
            print(f"refused: {exc}")
        try:
            lc.confirm("acct-42", owner, "CONFIRM", everything)
        except PrerequisitesPending as exc:
            print(f"refused: {exc}")

        numbers_not_ported.clear()  # the numbers were ported out
        record = lc.confirm("acct-42", owner, "CONFIRM", everything)
        print(f"account is {record.state}; allowed now: {sorted(lc.allowed_actions('acct-42', owner))}")
        print(lc.receipt("acct-42").to_json())

        fresh = lc.open("acct-43", owner="owner-1", identity="owner@example.com")
        print(f"same e-mail, fresh account: {fresh.account_id} is {fresh.state}")


if __name__ == "__main__":
    main()
