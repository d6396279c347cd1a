"""A small world for behaviour tests: one lifecycle with recording purgers and checks."""

from __future__ import annotations

from collections.abc import Iterable

from account_lifecycle import (
    AccountRecord,
    AccountStore,
    Actor,
    AuditEvent,
    Lifecycle,
    ManualClock,
    Policy,
    SurveyOutcome,
)
from account_lifecycle.testing.fakes import PendingItems, fake_identity_keys, recording_purgers

OWNER = Actor.user("owner")
MEMBER = Actor.user("member")
STRANGER = Actor.user("stranger")
SUPPORT = Actor.support("agent-7")
SYSTEM = Actor.system()


class World:
    def __init__(self, policy: Policy, store: AccountStore, clock: ManualClock) -> None:
        self.policy = policy
        self.store = store
        self.clock = clock
        # protected categories get purgers too, to prove they are never called
        self.purgers = recording_purgers(policy, extra=policy.purge.protected)
        self.port_outs = PendingItems()
        self.seen: list[AuditEvent] = []
        checks = {"port_outs": self.port_outs} if "port_outs" in policy.prerequisites else {}
        self.lc = Lifecycle(
            policy,
            store=store,
            clock=clock,
            purgers=self.purgers.values(),
            prerequisites=checks,
            listeners=[self.seen.append],
            identity_keys=fake_identity_keys(),
        )

    @property
    def token(self) -> str | None:
        return self.policy.confirmation.token

    @property
    def acks(self) -> list[str]:
        return [a.id for a in self.policy.confirmation.acknowledgements]

    def open(
        self,
        account_id: str = "acct-1",
        *,
        members: Iterable[str] = ("member",),
        identity: str | None = "owner@example.com",
    ) -> AccountRecord:
        return self.lc.open(account_id, owner="owner", members=members, identity=identity)

    def to_pending_confirm(self, account_id: str = "acct-1") -> AccountRecord:
        record = self.lc.request_cancellation(account_id, OWNER)
        if self.policy.survey.mode != "off":
            record = self.lc.submit_survey(account_id, OWNER, SurveyOutcome.CANCEL)
        return record

    def confirm(self, account_id: str = "acct-1", actor: Actor = OWNER) -> AccountRecord:
        return self.lc.confirm(account_id, actor, self.token, self.acks)

    def cancel(self, account_id: str = "acct-1") -> AccountRecord:
        self.to_pending_confirm(account_id)
        return self.confirm(account_id)

    def snapshot(self, account_id: str = "acct-1") -> tuple[AccountRecord, tuple[AuditEvent, ...]]:
        return self.lc.get(account_id), self.lc.history(account_id)

    def purged_categories(self, account_id: str = "acct-1") -> list[str]:
        return sorted(name for name, p in self.purgers.items() if account_id in p.accounts())
