"""``LifecycleStateMachine``: a Hypothesis rule-based test of a lifecycle against a reference model.

Subclass it with your policy, your store and (optionally) your purgers and checks, and
turn it into a test case::

    class TestMyPolicy(LifecycleStateMachine):
        policy = Policy.load("my_policy.toml")

        def make_store(self) -> AccountStore:
            return MyStore(...)

    TestCase = TestMyPolicy.TestCase

Random actors (owner, member, stranger, support, system) send random commands with right
and wrong tokens, partial acknowledgements, pending prerequisites, failing purgers and a
clock moving around the window's end. After every step the selected invariants are
checked (all of ``INVARIANTS`` by default; set ``checked_invariants`` to a subset).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Final

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule

from account_lifecycle.adapters.memory import MemoryStore
from account_lifecycle.audit import AuditEvent
from account_lifecycle.clock import ManualClock
from account_lifecycle.errors import LifecycleError
from account_lifecycle.lifecycle import Lifecycle
from account_lifecycle.model import (
    AccountRecord,
    Action,
    Actor,
    PurgeStatus,
    Relation,
    ServiceState,
    State,
    SurveyOutcome,
)
from account_lifecycle.policies import ALLCLIENTS
from account_lifecycle.policy import Policy
from account_lifecycle.ports import AccountStore, PurgeContext, PurgeResult
from account_lifecycle.testing.reference import (
    Outcome,
    RefAccount,
    expected_outcome,
    identity_held,
    open_outcome,
)

__all__ = ["INVARIANTS", "FlakyPurger", "LifecycleStateMachine"]

#: The invariants checked after every step, by name.
INVARIANTS: Final = (
    "matches_reference",  # the stored state is the one the reference model expects
    "owner_confirmed_before_purge",  # no category is erased unless the owner confirmed
    "expiry_not_before_window",  # nothing marked at = "expiry" is erased before the window ends
    "purged_terminal",  # a PURGED account never changes again
    "protected_never_purged",  # protected categories are never handed to a purger
    "versions_grow_by_one",  # every committed write adds exactly one version, none skipped
    "refused_writes_nothing",  # a refused command leaves record and history untouched
    "chain_verifies",  # every account's audit chain verifies
)

START: Final = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
IDENTITIES: Final = ("a@example.com", "b@example.com", None)
TOKEN_VARIANTS: Final = ("exact", "lower", "padded", "lookalike", "none")
RELATIONS: Final = ("owner", "member", "stranger", "support", "system")
# the owner acts most of the time and types the right token most of the time, so that runs
# get deep into the lifecycle; the others still appear in every few steps
ACTORS: Final = st.one_of(st.just("owner"), st.sampled_from(RELATIONS))
TOKENS: Final = st.one_of(st.just("exact"), st.sampled_from(TOKEN_VARIANTS))


class FlakyPurger:
    """Records calls; fails for an account while ``broken[(account, category)]`` is positive."""

    def __init__(self, category: str, broken: dict[tuple[str, str], int]) -> None:
        self.category = category
        self.broken = broken
        self.calls: list[PurgeContext] = []

    def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:
        self.calls.append(context)
        key = (account_id, self.category)
        if self.broken.get(key, 0) > 0:
            self.broken[key] -= 1
            raise RuntimeError(f"{self.category} store unavailable")
        return PurgeResult(items=1)


class LifecycleStateMachine(RuleBasedStateMachine):
    """Drives one lifecycle with random commands and checks invariants after every step."""

    policy: ClassVar[Policy] = ALLCLIENTS
    checked_invariants: ClassVar[Sequence[str]] = INVARIANTS

    accounts = Bundle("accounts")

    # -- hooks a host overrides -------------------------------------------------------------

    def make_store(self) -> AccountStore:
        """A fresh, empty store for one run."""
        return MemoryStore()

    def close_store(self, store: AccountStore) -> None:
        """Release the store after a run (close files, drop schemas)."""
        close: Callable[[], None] | None = getattr(store, "close", None)
        if close is not None:
            close()

    # -- set-up -----------------------------------------------------------------------------

    def __init__(self) -> None:
        super().__init__()
        unknown = set(self.checked_invariants) - set(INVARIANTS)
        if unknown:
            raise ValueError(f"unknown invariants {sorted(unknown)}; expected names from {INVARIANTS}")
        self.clock = ManualClock(START)
        self.store = self.make_store()
        self.broken: dict[tuple[str, str], int] = {}
        names = [c.name for c in self.policy.purge.categories] + list(self.policy.purge.protected)
        self.purgers = {name: FlakyPurger(name, self.broken) for name in names}
        self.model: dict[str, RefAccount] = {}
        self.pending: dict[str, tuple[str, ...]] = {}
        self.last: dict[str, tuple[AccountRecord, int]] = {}  # account -> (record, history length)
        self.confirmations: dict[str, list[tuple[datetime, str]]] = {}  # account -> (when, relation)
        self.windows: dict[str, list[tuple[datetime, datetime | None]]] = {}  # account -> (cancelled, until)
        self.counter = 0
        self.lc = Lifecycle(
            self.policy,
            store=self.store,
            clock=self.clock,
            purgers=self.purgers.values(),
            prerequisites=dict.fromkeys(self.policy.prerequisites, self._check),
            retry_backoff=timedelta(0),
            max_retry_backoff=timedelta(0),
        )

    def teardown(self) -> None:
        self.close_store(self.store)

    def _check(self, account_id: str) -> Sequence[str]:
        return self.pending.get(account_id, ())

    # -- helpers ------------------------------------------------------------------------------

    def _actor(self, account_id: str, relation: str) -> tuple[Actor, Relation | None]:
        ref = self.model[account_id]
        if relation == "owner":
            return Actor.user(ref.owner), Relation.OWNER
        if relation == "member" and ref.members:
            member = sorted(ref.members)[0]
            return Actor.user(member), Relation.MEMBER
        if relation == "support":
            return Actor.support("agent"), Relation.SUPPORT
        if relation == "system":
            return Actor.system(), Relation.SYSTEM
        return Actor.user("stranger"), None

    def _token(self, variant: str) -> str | None:
        token = self.policy.confirmation.token
        if token is None or variant == "none":
            return None if variant == "none" else token
        return {
            "exact": token,
            "lower": token.lower() if token.lower() != token else token + "x",
            "padded": f" {token}",
            "lookalike": token.replace("O", "\u041e") if "O" in token else token + "\u200b",
        }[variant]

    def _snapshot(self, account_id: str) -> tuple[AccountRecord, tuple[AuditEvent, ...]]:
        return self.lc.get(account_id), self.lc.history(account_id)

    def _run(
        self, account_id: str, expected: Outcome, call: Callable[[], AccountRecord]
    ) -> AccountRecord | None:
        """Run one command and check it against the reference's expectation."""
        before = self._snapshot(account_id)
        label = expected.__name__ if isinstance(expected, type) else str(expected)
        event(f"expected {label}")
        try:
            record = call()
        except (LifecycleError, ValueError) as exc:
            assert isinstance(expected, type), f"expected {expected}, got {type(exc).__name__}: {exc}"
            assert isinstance(exc, expected), f"expected {expected.__name__}, got {type(exc).__name__}: {exc}"
            if "refused_writes_nothing" in self.checked_invariants:
                assert self._snapshot(account_id) == before, "a refused command wrote something"
            return None
        assert not isinstance(expected, type), f"expected {expected.__name__}, the command was accepted"
        if "versions_grow_by_one" in self.checked_invariants:
            history = self.lc.history(account_id)
            assert record.version > before[0].version
            assert record.last_seq == len(history)
        return record

    def _purge_outcome(self, account_id: str, phase: str) -> bool:
        """Mirror one purge run of *phase* on the reference; True if every category is done."""
        ref = self.model[account_id]
        done = True
        for category in self.policy.purge.at(phase):
            if category in ref.purged:
                continue
            key = (account_id, category)
            if self.broken.get(key, 0) > 0:
                done = False  # the real purger decrements its own counter
            else:
                ref.purged.add(category)
        return done

    def _broken_snapshot(self) -> dict[tuple[str, str], int]:
        return dict(self.broken)

    def _settle_reference(self, account_id: str, failures: dict[tuple[str, str], int]) -> None:
        """After a run of the cancel phase: CANCELLED stays, or moves to RESTORABLE / PURGED."""
        ref = self.model[account_id]
        all_done = True
        for category in self.policy.purge.at("cancel"):
            if category in ref.purged:
                continue
            if failures.get((account_id, category), 0) > 0:
                all_done = False
            else:
                ref.purged.add(category)
        if all_done:
            ref.state = State.RESTORABLE if self.policy.recovery.window is not None else State.PURGED

    # -- rules ----------------------------------------------------------------------------------

    @initialize(target=accounts)
    def first_account(self) -> str:
        """Every run starts with one account, so no run is spent on an empty store."""
        return self._open("a@example.com", 1)

    @rule(target=accounts, identity=st.sampled_from(IDENTITIES), members=st.integers(0, 2))
    def open_account(self, identity: str | None, members: int) -> str:
        return self._open(identity, members)

    def _open(self, identity: str | None, members: int) -> str:
        self.counter += 1
        account_id = f"acct-{self.counter}"
        member_ids = {f"m{self.counter}-{n}" for n in range(members)}
        expected = open_outcome(self.policy, self.model, account_id, identity)
        try:
            record = self.lc.open(account_id, owner=f"o{self.counter}", members=member_ids, identity=identity)
        except LifecycleError as exc:
            assert isinstance(expected, type) and isinstance(exc, expected), f"unexpected {exc!r}"
            return account_id  # an id that does not exist: commands on it must raise AccountNotFound
        assert expected is State.ACTIVE, f"expected {expected}, the open was accepted"
        self.model[account_id] = RefAccount(
            state=State.ACTIVE,
            owner=f"o{self.counter}",
            members=member_ids,
            identity=identity,
            services=dict.fromkeys(self.policy.services, ServiceState.ACTIVE),
        )
        self.last[account_id] = (record, 1)
        return account_id

    def _known(self, account_id: str) -> bool:
        if account_id in self.model:
            return True
        try:
            self.lc.get(account_id)
        except LifecycleError:
            return False
        raise AssertionError(f"{account_id} exists in the store but the open was refused")

    @rule(account=accounts, relation=ACTORS)
    def request_cancellation(self, account: str, relation: str) -> None:
        if not self._known(account):
            return
        actor, rel = self._actor(account, relation)
        ref = self.model[account]
        expected = expected_outcome(self.policy, ref, Action.REQUEST_CANCELLATION, rel, now=self.clock.now())
        record = self._run(account, expected, lambda: self.lc.request_cancellation(account, actor))
        if record is not None:
            ref.state = record.state

    @rule(account=accounts, relation=ACTORS, outcome=st.sampled_from(list(SurveyOutcome)))
    def submit_survey(self, account: str, relation: str, outcome: SurveyOutcome) -> None:
        if not self._known(account):
            return
        actor, rel = self._actor(account, relation)
        ref = self.model[account]
        expected = expected_outcome(
            self.policy, ref, Action.SUBMIT_SURVEY, rel, now=self.clock.now(), outcome=outcome
        )
        record = self._run(account, expected, lambda: self.lc.submit_survey(account, actor, outcome))
        if record is not None:
            assert record.state is expected
            ref.state = record.state

    @rule(account=accounts, relation=ACTORS)
    def skip_survey(self, account: str, relation: str) -> None:
        if not self._known(account):
            return
        actor, rel = self._actor(account, relation)
        ref = self.model[account]
        expected = expected_outcome(self.policy, ref, Action.SKIP_SURVEY, rel, now=self.clock.now())
        record = self._run(account, expected, lambda: self.lc.skip_survey(account, actor))
        if record is not None:
            ref.state = record.state

    @rule(account=accounts, token=TOKENS, all_acks=st.booleans())
    def owner_cancels(self, account: str, token: str, all_acks: bool) -> None:
        """The owner goes the whole way: request, survey 'cancel' (or skip), then types a token."""
        if not self._known(account):
            return
        self.request_cancellation(account, "owner")
        if self.model[account].state is State.SURVEYED:
            self.submit_survey(account, "owner", SurveyOutcome.CANCEL)
        self.confirm(account, "owner", token, set(), all_acks or token != "exact")

    @rule(account=accounts)
    def owner_reaches_confirmation(self, account: str) -> None:
        """The owner asks to cancel and answers the survey with 'cancel' (or skips it)."""
        if not self._known(account):
            return
        self.request_cancellation(account, "owner")
        if self.model[account].state is State.SURVEYED:
            self.submit_survey(account, "owner", SurveyOutcome.CANCEL)

    @rule(account=accounts, offset=st.sampled_from([-1, 0, 1]), restore=st.booleans())
    def clock_to_window_end(self, account: str, offset: int, restore: bool) -> None:
        """Move the clock to one microsecond around an account's restorable_until, and maybe
        restore it right there as someone the policy lets restore."""
        ref = self.model.get(account)
        if ref is None or ref.restorable_until is None:
            return
        self.clock.set(ref.restorable_until + timedelta(microseconds=offset))
        allowed = sorted(r.value for r in self.policy.permissions.get(Action.RESTORE, frozenset()))
        if restore and ref.state is State.RESTORABLE and allowed:
            self.restore(account, allowed[0])

    @rule(account=accounts, relation=ACTORS)
    def withdraw(self, account: str, relation: str) -> None:
        if not self._known(account):
            return
        actor, rel = self._actor(account, relation)
        ref = self.model[account]
        expected = expected_outcome(self.policy, ref, Action.WITHDRAW, rel, now=self.clock.now())
        record = self._run(account, expected, lambda: self.lc.withdraw(account, actor))
        if record is not None:
            ref.state = record.state

    @rule(
        account=accounts,
        relation=ACTORS,
        token=st.sampled_from(TOKEN_VARIANTS),
        acks=st.sets(st.integers(0, 5)),
        all_acks=st.booleans(),
    )
    def confirm(self, account: str, relation: str, token: str, acks: set[int], all_acks: bool) -> None:
        if not self._known(account):
            return
        actor, rel = self._actor(account, relation)
        ref = self.model[account]
        required = [a.id for a in self.policy.confirmation.acknowledgements]
        given = frozenset(required) if all_acks else frozenset(required[i] for i in acks if i < len(required))
        typed = self._token(token)
        ref.pending_prerequisites = self.pending.get(account, ())
        now = self.clock.now()
        expected = expected_outcome(
            self.policy, ref, Action.CONFIRM, rel, now=now, token=typed, acknowledgements=given
        )
        failures = self._broken_snapshot()
        record = self._run(account, expected, lambda: self.lc.confirm(account, actor, typed, given))
        if record is None:
            return
        self.confirmations.setdefault(account, []).append((now, str(rel)))
        window = self.policy.recovery.window
        until = None if window is None else window.add_to(now)
        self.windows.setdefault(account, []).append((now, until))
        ref.restorable_until = until
        ref.purged = set()
        ref.state = State.CANCELLED
        self._settle_reference(account, failures)

    @rule(account=accounts, relation=ACTORS)
    def restore(self, account: str, relation: str) -> None:
        if not self._known(account):
            return
        actor, rel = self._actor(account, relation)
        ref = self.model[account]
        expected = expected_outcome(self.policy, ref, Action.RESTORE, rel, now=self.clock.now())
        record = self._run(account, expected, lambda: self.lc.restore(account, actor))
        if record is not None:
            ref.state = State.ACTIVE
            ref.restorable_until = None
            ref.purged = set()

    @rule(account=accounts, relation=ACTORS, member=st.booleans())
    def transfer_ownership(self, account: str, relation: str, member: bool) -> None:
        if not self._known(account):
            return
        actor, rel = self._actor(account, relation)
        ref = self.model[account]
        new_owner = sorted(ref.members)[0] if member and ref.members else "stranger"
        expected = expected_outcome(
            self.policy, ref, Action.TRANSFER_OWNERSHIP, rel, now=self.clock.now(), new_owner=new_owner
        )
        record = self._run(account, expected, lambda: self.lc.transfer_ownership(account, actor, new_owner))
        if record is not None:
            ref.members = (ref.members - {new_owner}) | {ref.owner}
            ref.owner = new_owner

    @rule(account=accounts, relation=ACTORS, service=st.sampled_from(["messages", "fax"]))
    def cancel_service(self, account: str, relation: str, service: str) -> None:
        if not self._known(account):
            return
        actor, rel = self._actor(account, relation)
        ref = self.model[account]
        expected = expected_outcome(
            self.policy, ref, Action.CANCEL_SERVICE, rel, now=self.clock.now(), service=service
        )
        record = self._run(account, expected, lambda: self.lc.cancel_service(account, actor, service))
        if record is not None:
            ref.services[service] = ServiceState.CANCELLED

    @rule(account=accounts, items=st.lists(st.sampled_from(["+15550100", "+15550101"]), max_size=2))
    def set_pending_prerequisites(self, account: str, items: list[str]) -> None:
        self.pending[account] = tuple(items)

    @rule(
        account=accounts,
        category=st.sampled_from(["contacts", "backups", "agents", "phone_numbers", "history"]),
        times=st.integers(1, 2),
    )
    def break_purger(self, account: str, category: str, times: int) -> None:
        self.broken[(account, category)] = times

    @rule(days=st.sampled_from([1, 30, 60, 88, 89, 90, 91, 92, 120]), seconds=st.sampled_from([-1, 0, 1]))
    def advance_clock(self, days: int, seconds: int) -> None:
        self.clock.advance(timedelta(days=days, seconds=seconds))

    @rule()
    def sweep(self) -> None:
        now = self.clock.now()
        failures = self._broken_snapshot()
        due = sorted(self._due(now))
        report = self.lc.sweep()
        event(f"sweep purged {min(len(report.purged), 2)}+ failed {min(len(report.failed), 2)}+")
        handled = set(report.purged) | set(report.failed) | set(report.restorable)
        assert handled <= set(due), f"sweep touched accounts that were not due: {handled - set(due)}"
        for account_id in due:
            ref = self.model[account_id]
            if ref.state is State.CANCELLED:
                self._settle_reference(account_id, failures)
            elif ref.state is State.RESTORABLE:
                all_done = True
                for category in self.policy.purge.at("expiry"):
                    if category in ref.purged:
                        continue
                    if failures.get((account_id, category), 0) > 0:
                        all_done = False
                    else:
                        ref.purged.add(category)
                if all_done:
                    ref.state = State.PURGED
        assert set(report.purged) == {a for a in due if self.model[a].state is State.PURGED}

    def _due(self, now: datetime) -> Iterable[str]:
        for account_id, ref in self.model.items():
            if ref.state is State.CANCELLED or (
                ref.state is State.RESTORABLE
                and ref.restorable_until is not None
                and now >= ref.restorable_until
            ):
                yield account_id

    @rule(account=consumes(accounts))
    def forget(self, account: str) -> None:
        """Stop sending commands to an account (keeps the bundle small); it stays checked."""

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def lifecycle_invariants(self) -> None:
        for account_id, ref in self.model.items():
            record, history = self._snapshot(account_id)
            self._check_account(account_id, ref, record, history)
            self.last[account_id] = (record, len(history))
        if "protected_never_purged" in self.checked_invariants:
            for name in self.policy.purge.protected:
                assert self.purgers[name].calls == [], f"protected category {name} was handed to a purger"
        if "owner_confirmed_before_purge" in self.checked_invariants:
            for purger in self.purgers.values():
                for call in purger.calls:
                    confirmations = self.confirmations.get(call.account_id, [])
                    assert any(when <= call.now for when, _ in confirmations), (
                        f"{call.category} of {call.account_id} purged without a confirmation"
                    )
                    if "owner_confirms" not in self.policy.waivers:
                        assert all(rel == "owner" for _, rel in confirmations), "a non-owner confirmed"
        if "expiry_not_before_window" in self.checked_invariants:
            for category in self.policy.purge.at("expiry"):
                for call in self.purgers[category].calls:
                    windows = self.windows.get(call.account_id, [])
                    assert windows, f"{category} of {call.account_id} purged with no cancellation"
                    until = windows[-1][1]
                    assert until is not None, f"{category} of {call.account_id} has no window"
                    assert call.now >= until, (
                        f"{category} of {call.account_id} purged at {call.now}, before {until}"
                    )

    def _check_account(
        self, account_id: str, ref: RefAccount, record: AccountRecord, history: tuple[AuditEvent, ...]
    ) -> None:
        previous, previous_len = self.last[account_id]
        if "matches_reference" in self.checked_invariants:
            assert record.state is ref.state, f"{account_id}: stored {record.state}, reference {ref.state}"
            assert record.owner == ref.owner and set(record.members) == ref.members
            assert dict(record.services) == ref.services
            done = {name for name, p in record.purge.items() if p.status is PurgeStatus.DONE}
            assert done == ref.purged, f"{account_id}: done {sorted(done)}, reference {sorted(ref.purged)}"
            if ref.identity is not None:
                held = identity_held(self.policy, ref.state)
                assert (record.live_identity is not None) == held, f"{account_id}: identity held={not held}"
        if "purged_terminal" in self.checked_invariants and previous.state is State.PURGED:
            assert record == previous and len(history) == previous_len, f"{account_id} changed after PURGED"
        if "versions_grow_by_one" in self.checked_invariants:
            # every committed write carries the next version; its events name it, so the
            # versions in the history run 1, 2, 3, ... without a gap up to the record's
            versions = [e.version for e in history]
            assert versions[0] == 1 and versions[-1] == record.version, f"{account_id}: versions {versions}"
            assert all(b - a in (0, 1) for a, b in itertools.pairwise(versions)), versions
            assert record.last_seq == len(history)
        if "chain_verifies" in self.checked_invariants:
            self.lc.verify_history(account_id)
