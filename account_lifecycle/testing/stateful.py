"""``LifecycleStateMachine``: a Hypothesis rule-based test of a lifecycle against a reference model.

Subclass it with your policy and, through its hooks, your store, your purgers and your
prerequisite checks, and turn it into a test case::

    class TestMyPolicy(LifecycleStateMachine):
        policy = Policy.load("my_policy.toml")

        def make_store(self) -> AccountStore:
            return MyStore(...)

        def make_purgers(self) -> Iterable[Purger]:
            return [ContactsPurger(FakeCrm()), ...]

    TestCase = TestMyPolicy.TestCase

Random actors (owner, member, stranger, support, system) send random commands with right
and wrong tokens, partial acknowledgements, pending prerequisites, failing purgers, writes
from stale reads and a clock moving around the window's end and to month ends. After
every step the selected invariants are checked: all of ``INVARIANTS`` by default; set
``checked_invariants`` to a subset. ``INVARIANT_TABLE`` says what each one checks and the
bugs it catches (``docs/testing.md`` shows it as a table).

``GeneratedPolicyMachine`` draws the policy itself from ``strategies.policies()`` at the
start of every run, so a failure comes with a shrunk policy as well as shrunk steps.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Final

import attrs
from hypothesis import currently_in_test_context
from hypothesis import event as _hypothesis_event
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)
from hypothesis.strategies import SearchStrategy

from account_lifecycle.adapters.memory import MemoryStore
from account_lifecycle.audit import AuditEvent
from account_lifecycle.clock import ManualClock
from account_lifecycle.duration import Duration
from account_lifecycle.errors import ConcurrentUpdate, ErasureInProgress, LifecycleError, NotPermitted
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
from account_lifecycle.ports import (
    AccountStore,
    CorruptRecord,
    Lease,
    PrerequisiteCheck,
    PurgeContext,
    Purger,
    PurgeResult,
)
from account_lifecycle.purge import EFFECT_PREFIX
from account_lifecycle.sealed import check_sealed
from account_lifecycle.testing.fakes import RecordingPurger, fake_identity_keys
from account_lifecycle.testing.incremental import TouchedModel, Trail, resealed, same_sealed
from account_lifecycle.testing.reference import (
    Outcome,
    RefAccount,
    RefStep,
    Start,
    expected_outcome,
    fixed_length,
    identity_held,
    open_outcome,
    phase_ends,
    render_token,
    run_purge,
    sweep_due,
)
from account_lifecycle.testing.reuse import Lent, borrow, give_back
from account_lifecycle.testing.strategies import WRONG_TOKEN_KINDS, token_variant

__all__ = [
    "INVARIANTS",
    "INVARIANT_TABLE",
    "FlakyPurger",
    "GeneratedPolicyMachine",
    "Invariant",
    "LifecycleStateMachine",
    "ObservedPurger",
    "TeamChangesMachine",
    "machine_for",
]


@attrs.frozen
class Invariant:
    """One property the machine checks, by name: what it checks and which bugs it catches."""

    name: str
    checks: str
    catches: str


#: Every invariant the machine knows, in the order they are checked.
INVARIANT_TABLE: Final[tuple[Invariant, ...]] = (
    Invariant(
        "matches_reference",
        "Each command is accepted or refused with exactly the error the reference model expects "
        "(the token rendered for the account, the login's age, the window picked, the recovery "
        "phase, legal holds), and after every step each account's state, owner, members, "
        "services, `restorable_until` (from a calendar computed apart from `Duration`), erased "
        "categories, holds, reminders (planned when, sent once), identifiers' `free_at` and held "
        "identity are the reference's.",
        "wrong guard order, lax token comparison (trimming, case folding, normalisation), "
        "off-by-one window ends and login ages, wrong month-end clamping, phases or picked windows "
        "ignored, holds that do not hold, reminders at the wrong moment, quarantines without their "
        "delay, a store dropping fields",
    ),
    Invariant(
        "owner_confirmed_before_purge",
        "A purger is only called for an account after a confirmation of it, and (unless the policy "
        "waives `owner_confirms`) every confirmation was the owner's.",
        "a purge started by the wrong command or the wrong actor",
    ),
    Invariant(
        "expiry_not_before_window",
        'A category purged `at = "expiry"` is only handed to its purger at or after the '
        "`restorable_until` of the latest cancellation.",
        "backups erased while the account can still be restored",
    ),
    Invariant(
        "purged_terminal",
        "A `PURGED` account never changes again: same record, same history.",
        "commands or sweeps that still write to a purged account",
    ),
    Invariant(
        "protected_never_purged",
        "No purger registered for a protected category is ever called.",
        "protected data (a CRM workspace) handed to a purger",
    ),
    Invariant(
        "versions_grow_by_one",
        "Each committed write stores the next version; the versions named by the history run "
        "1, 2, 3, ... up to the record's, and `last_seq` is the history's length.",
        "a store that skips, repeats or rewinds versions",
    ),
    Invariant(
        "refused_writes_nothing",
        "A refused command leaves the record and the history exactly as they were.",
        "half-written refusals, events appended for rejected commands",
    ),
    Invariant(
        "stale_writes_rejected",
        "A command decided on a record read before the account last changed (a page left open, a "
        "second worker) raises `ConcurrentUpdate` and writes nothing.",
        "a store whose `save` does not compare the expected version: lost updates",
    ),
    Invariant(
        "purge_steps_started_first",
        "Every purge outcome in the audit trail (`category_purged`, `purge_failed`) is for a step "
        "started before it, by the confirm or by an `erasure_started` event naming it; a start "
        "while steps are still in flight says `resumed`; each sweep writes exactly the starts the "
        "reference expects (phase, steps, `resumed`).",
        "a purger called before its start was committed (unfenced erasure), starts written "
        "without their event, a resumed erasure not marked so, held categories started",
    ),
    Invariant(
        "chain_verifies",
        "Every account's audit chain verifies against its record's `chain_head`.",
        "events edited, dropped or reordered by a store; a wrong chain head",
    ),
)
#: The names of ``INVARIANT_TABLE``; ``checked_invariants`` takes any subset.
INVARIANTS: Final[tuple[str, ...]] = tuple(i.name for i in INVARIANT_TABLE)

START: Final = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
IDENTITIES: Final = ("a@example.com", "b@example.com", None)
#: Values of each kind of identifier the machine opens accounts with, in their canonical form
#: (two per kind: accounts collide on them).
IDENTIFIER_VALUES: Final = {
    "email": ("ann@example.com", "bob@example.com"),
    "phone": ("+15550100", "+15550101"),
}
_OTHER_VALUES: Final = ("x1", "x2")


def identifier_value(kind: str, which: int) -> str:
    """The *which*-th (0 or 1) value the machine uses for identifiers of *kind*."""
    return IDENTIFIER_VALUES.get(kind, _OTHER_VALUES)[which % 2]


#: How long ago the actor logged in, as ``confirm(authenticated_at=...)`` says: within the
#: policy's ``fresh_login``, exactly at its limit, one microsecond too old, too far in the
#: future, or no login time at all.
LOGINS: Final = ("fresh", "limit", "stale", "future", "none")
LOGIN: Final = st.one_of(st.just("fresh"), st.sampled_from(LOGINS))
#: Which recovery window the owner picks: 0 the default, n the n-th choice, past them one
#: that is not offered.
WINDOW_PICKS: Final = st.one_of(st.just(0), st.integers(1, 3))
_UNOFFERED_WINDOW: Final = Duration(45, "days")
TOKEN_VARIANTS: Final = ("exact", *WRONG_TOKEN_KINDS)
RELATIONS: Final = ("owner", "member", "stranger", "support", "system")
# the owner acts most of the time and types the right token most of the time, so that runs
# get deep into the lifecycle; the others still appear in every few steps
ACTORS: Final = st.one_of(st.just("owner"), st.sampled_from(RELATIONS))
#: legal holds are support's (and the system's) by default: support places most of them
HOLDERS: Final = st.one_of(st.just("support"), st.sampled_from(RELATIONS))
TOKENS: Final = st.one_of(st.just("exact"), st.sampled_from(TOKEN_VARIANTS))
#: Month ends the clock jumps to, where calendar-month windows clamp (31 Jan + 1 month).
MONTH_ENDS: Final = ((1, 31), (2, 29), (3, 31), (8, 31), (11, 30), (12, 31))
_TIMES_OF_DAY: Final = (time(0, 0), time(12, 0), time(23, 59, 59, 999_999))
_UNKNOWN_SERVICE: Final = "no_such_service"
_UNKNOWN_CATEGORY: Final = "no_such_category"


def event(text: str) -> None:
    """Count *text* in Hypothesis' statistics; a no-op when a rule is called outside a run
    (a host stepping through the machine by hand)."""
    if currently_in_test_context():
        _hypothesis_event(text)


class ObservedPurger:
    """Wraps a host's purger: records every call, and fails instead of calling it while
    ``broken[(account, category)]`` is positive (each failure counts one down)."""

    def __init__(self, inner: Purger, broken: dict[tuple[str, str], int]) -> None:
        self.inner = inner
        self.category = inner.category
        self.broken = broken
        self.calls: list[PurgeContext] = []
        #: account -> something to do while the next purge of it runs (once)
        self.during: dict[str, Callable[[], None]] = {}

    def rebind(self, inner: Purger, broken: dict[tuple[str, str], int]) -> None:
        """Observe *inner* (of the same category) with the failure switches *broken*, from
        no calls: the wrapper of a lifecycle lent to a new run (``testing.reuse``)."""
        assert inner.category == self.category, f"{inner.category} is not {self.category}"
        self.inner = inner
        self.broken = broken
        self.calls = []
        self.during = {}

    @property
    def name(self) -> str:
        name = getattr(self.inner, "name", None)
        return name if isinstance(name, str) and name else type(self.inner).__qualname__

    def purge(self, account_id: str, context: PurgeContext) -> PurgeResult:
        self.calls.append(context)
        during = self.during.pop(account_id, None)
        if during is not None:
            during()
        key = (account_id, self.category)
        if self.broken.get(key, 0) > 0:
            self.broken[key] -= 1
            raise RuntimeError(f"{self.category} store unavailable")
        return self.inner.purge(account_id, context)


class FlakyPurger(ObservedPurger):
    """An ``ObservedPurger`` around a ``RecordingPurger`` erasing one item per call."""

    def __init__(self, category: str, broken: dict[tuple[str, str], int]) -> None:
        super().__init__(RecordingPurger(category), broken)


class _StaleReads:
    """A view of a store whose ``get`` returns the record a test remembered, once per
    account: a second writer deciding on what it read earlier. Everything else is the store's."""

    def __init__(self, store: AccountStore) -> None:
        self.store = store
        self.remembered: dict[str, AccountRecord] = {}

    def create(
        self,
        record: AccountRecord,
        events: Sequence[AuditEvent],
        *,
        now: datetime | None = None,
        aliases: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.store.create(record, events, now=now, aliases=aliases)

    def get(self, account_id: str) -> AccountRecord:
        stale = self.remembered.pop(account_id, None)
        return stale if stale is not None else self.store.get(account_id)

    def save(
        self,
        record: AccountRecord,
        *,
        expected_version: int,
        events: Sequence[AuditEvent],
        lease: Lease | None = None,
        release: str | None = None,
        now: datetime | None = None,
        erase_sealed: bool = False,
    ) -> None:
        self.store.save(
            record,
            expected_version=expected_version,
            events=events,
            lease=lease,
            release=release,
            now=now,
            erase_sealed=erase_sealed,
        )

    def history(self, account_id: str) -> tuple[AuditEvent, ...]:
        return self.store.history(account_id)

    def account_ids(self) -> tuple[str, ...]:
        return self.store.account_ids()

    def claim_due(
        self, *, now: datetime, lease: Lease, limit: int
    ) -> Sequence[AccountRecord | CorruptRecord]:
        return self.store.claim_due(now=now, lease=lease, limit=limit)

    def release(self, account_id: str, owner: str) -> None:
        self.store.release(account_id, owner)


if TYPE_CHECKING:
    _STALE_READS_IS_A_STORE: type[AccountStore] = _StaleReads


class LifecycleStateMachine(RuleBasedStateMachine):
    """Drives one lifecycle with random commands and checks invariants after every step.

    Class attributes: ``policy`` (the policy under test) and ``checked_invariants`` (names
    from ``INVARIANTS``). Hooks, each called once per run: ``make_store``/``close_store``,
    ``make_purgers``, ``make_prerequisites`` and ``make_lifecycle`` (the last three again when
    ``GeneratedPolicyMachine`` has drawn its policy).
    """

    policy: Policy = ALLCLIENTS
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

    def make_purgers(self) -> Iterable[Purger]:
        """The purgers to test, at least one per purge category of ``self.policy``; by default
        a ``RecordingPurger`` per category (and per protected category, to prove it is never
        called). The machine wraps each in an ``ObservedPurger`` that records calls and fails
        on demand, so a host's purgers need no failure switch of their own. A purger must
        succeed whenever the machine has not broken it."""
        names = [c.name for c in self.policy.purge.categories] + list(self.policy.purge.protected)
        return [RecordingPurger(name) for name in names]

    def make_prerequisites(self, pending: Mapping[str, Sequence[str]]) -> Mapping[str, PrerequisiteCheck]:
        """One check per prerequisite of ``self.policy``. *pending* is the machine's own view,
        account id -> what is still pending, changed by its ``set_pending_prerequisites``
        rule: a host's check must report something exactly when *pending* has items for the
        account (say, a fake carrier API seeded from it). By default every check reads it."""

        def check(account_id: str) -> Sequence[str]:
            return tuple(pending.get(account_id, ()))

        return dict.fromkeys(self.policy.prerequisites, check)

    def make_lifecycle(self, **options: Any) -> Lifecycle:
        """The lifecycle under test, built from *options* (``store``, ``clock``, ``purgers``,
        ``prerequisites``, ``identity_keys`` (``fake_identity_keys()``) and zero retry
        backoffs). Override to add listeners or effect hooks, or to test a ``Lifecycle``
        subclass. Called once per run, by ``use_policy`` (again when
        ``GeneratedPolicyMachine`` has drawn its policy)."""
        return Lifecycle(self.policy, **options)

    # -- set-up -----------------------------------------------------------------------------

    def __init__(self) -> None:
        super().__init__()
        unknown = set(self.checked_invariants) - set(INVARIANTS)
        if unknown:
            raise ValueError(f"unknown invariants {sorted(unknown)}; expected names from {INVARIANTS}")
        self.clock = ManualClock(START)
        self.store = self.make_store()
        self.broken: dict[tuple[str, str], int] = {}
        self.model: dict[str, RefAccount] = TouchedModel()
        self.pending: dict[str, tuple[str, ...]] = {}
        self.last: dict[str, tuple[AccountRecord, int]] = {}  # account -> (record, history length)
        self.confirmations: dict[str, list[tuple[datetime, str]]] = {}  # account -> (when, relation)
        self.windows: dict[str, list[tuple[datetime, datetime | None]]] = {}  # account -> (cancelled, until)
        self.remembered: dict[str, tuple[AccountRecord, RefAccount]] = {}  # account -> an earlier read
        self.trails: dict[str, Trail] = {}  # account -> its history as checked at the last step
        self._calls_seen: dict[str, int] = {}  # category -> purger calls checked
        self._owners_seen: dict[str, int] = {}  # purged account -> confirmations checked
        self._expiry_calls: dict[str, list[PurgeContext]] = {}  # account -> its expiry-time calls
        self._windows_seen: dict[str, int] = {}  # account -> windows its calls were checked against
        self.counter = 0
        self._lent: Lent | None = None  # a lifecycle lent by testing.reuse
        self.use_policy(self.policy)

    def use_policy(self, policy: Policy) -> None:
        """Build the purgers, checks and lifecycles of *policy*; before the first account only.

        With the default ``make_lifecycle`` and the class's own ``policy``, the lifecycle is one
        built for an earlier run of this class and given back by its ``teardown``
        (``testing.reuse``): it is pointed at this run's store, clock, checks and purgers, so
        that a run does not rebuild the policy's machine."""
        assert not self.model, "the policy is chosen before any account is opened"
        self._give_back()
        self.policy = policy
        inner: dict[str, Purger] = {}
        for purger in self.make_purgers():
            inner[purger.category] = purger
        for name in policy.purge.protected:  # never called; observed to prove it
            inner.setdefault(name, RecordingPurger(name))
        checks = self.make_prerequisites(self.pending)
        self._expiry_categories = frozenset(policy.purge.at("expiry"))
        options: dict[str, Any] = {
            "retry_backoff": timedelta(0),
            "max_retry_backoff": timedelta(0),
            "identity_keys": fake_identity_keys(),
        }
        reusable = (
            type(self).make_lifecycle is LifecycleStateMachine.make_lifecycle and policy is type(self).policy
        )
        if reusable:
            key = (type(self), id(policy), type(self.store), tuple(inner), tuple(checks))
            lent = borrow(key)
            if lent is None:
                wrappers = {category: ObservedPurger(p, self.broken) for category, p in inner.items()}
                lent = Lent(key, self.make_lifecycle, self.store, self.clock, checks, wrappers, options)
            else:
                for category, p in inner.items():
                    lent.purgers[category].rebind(p, self.broken)
                lent.lend(self.store, self.clock, checks)
            self._lent = lent
            self.purgers = lent.purgers
            self.lc = lent.lifecycle
            self._racer_options = lent.options
        else:
            self.purgers = {category: ObservedPurger(p, self.broken) for category, p in inner.items()}
            options.update(clock=self.clock, purgers=list(self.purgers.values()), prerequisites=checks)
            self.lc = self.make_lifecycle(store=self.store, **options)
            self._racer_options = options
        self.stale_view = _StaleReads(self.store)
        self._racer: Lifecycle | None = None

    def _give_back(self) -> None:
        lent, self._lent = self._lent, None
        if lent is not None:
            give_back(lent)

    @property
    def racer(self) -> Lifecycle:
        """The second writer of ``write_from_stale_read``: a plain lifecycle over a view of the
        same store (so ``make_lifecycle`` is called once per run), built the first time that
        rule runs: most runs never draw it, and a lifecycle costs a policy machine to build."""
        if self._racer is None:
            self._racer = Lifecycle(self.policy, store=self.stale_view, **self._racer_options)
        return self._racer

    def teardown(self) -> None:
        try:
            self.close_store(self.store)
        finally:
            self._give_back()

    # -- helpers ------------------------------------------------------------------------------

    def _actor(self, account_id: str, relation: str) -> tuple[Actor, Relation | None]:
        return self._actor_in(self.model[account_id], relation)

    @staticmethod
    def _actor_in(ref: RefAccount, relation: str) -> tuple[Actor, Relation | None]:
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

    def _token(self, variant: str, account_id: str) -> str | None:
        """The policy's token for *account_id* (its ``{account_id}`` rendered by the reference)
        typed as *variant* says; a plain confirm types nothing."""
        token = render_token(self.policy.confirmation.token, account_id)
        if token is None:
            return None
        return token_variant(token, variant)

    def _login(self, login: str) -> datetime | None:
        """When the actor last logged in, as *login* (one of ``LOGINS``) says, by the policy's
        ``fresh_login`` (15 minutes for a policy without one)."""
        fresh = self.policy.confirmation.fresh_login
        max_age = fixed_length(fresh) if fresh is not None else timedelta(minutes=15)
        now = self.clock.now()
        return {
            "fresh": now - timedelta(minutes=1),
            "limit": now - max_age,
            "stale": now - max_age - timedelta(microseconds=1),
            "future": now + timedelta(minutes=1, microseconds=1),
            "none": None,
        }[login]

    def _window(self, pick: int) -> Duration | None:
        choices = self.policy.recovery.choices
        if pick == 0:
            return None
        return choices[pick - 1] if pick <= len(choices) else _UNOFFERED_WINDOW

    def _fails(self, account_id: str) -> Callable[[str], bool]:
        """Whether the reference expects the next attempt of a category to fail (a copy of the
        machine's failure switches, counted down as the purgers will)."""
        left = dict(self.broken)

        def fails(category: str) -> bool:
            key = (account_id, category)
            if left.get(key, 0) > 0:
                left[key] -= 1
                return True
            return False

        return fails

    def _check_starts(
        self, account_id: str, expected: Sequence[Start], since: int, *, resumed: bool = False
    ) -> None:
        """The ``erasure_started`` events written since history length *since* are *expected*
        (categories only: a host's effect hooks are steps the reference does not plan); the
        first says ``resumed`` when *resumed*."""
        if "purge_steps_started_first" not in self.checked_invariants:
            return
        starts = []
        flags = []
        for e in self.lc.history(account_id)[since:]:
            if e.action != "erasure_started":
                continue
            steps = tuple(k for k in e.details["steps"] if not k.startswith(EFFECT_PREFIX))
            if steps:
                starts.append((e.details["phase"], steps))
                flags.append(bool(e.details.get("resumed", False)))
        assert starts == list(expected), f"{account_id}: erasure started {starts}, reference {list(expected)}"
        assert flags == [resumed and i == 0 for i in range(len(flags))], (
            f"{account_id}: resumed flags {flags}, expected {resumed} on the first start only"
        )

    def _snapshot(self, account_id: str) -> tuple[AccountRecord, tuple[AuditEvent, ...]]:
        return self.lc.get(account_id), self.lc.history(account_id)

    def _run(
        self,
        account_id: str,
        expected: Outcome,
        call: Callable[[], AccountRecord],
        *,
        invariant: str = "matches_reference",
    ) -> AccountRecord | None:
        """Run one command and, if *invariant* is checked, compare the outcome with *expected*."""
        before = self._snapshot(account_id)
        label = expected.__name__ if isinstance(expected, type) else str(expected)
        event(f"expected {label}")
        compare = invariant in self.checked_invariants
        try:
            record = call()
        except (LifecycleError, ValueError) as exc:
            if compare:
                assert isinstance(expected, type), f"expected {expected}, got {type(exc).__name__}: {exc}"
                assert isinstance(exc, expected), (
                    f"expected {expected.__name__}, got {type(exc).__name__}: {exc}"
                )
            if "refused_writes_nothing" in self.checked_invariants:
                assert self._snapshot(account_id) == before, "a refused command wrote something"
            return None
        if compare:
            assert not isinstance(expected, type), f"expected {expected.__name__}, the command was accepted"
        if "versions_grow_by_one" in self.checked_invariants:
            history = self.lc.history(account_id)
            assert record.version > before[0].version
            assert record.last_seq == len(history)
        return record

    # -- rules ----------------------------------------------------------------------------------

    @initialize(target=accounts)
    def first_account(self) -> str:
        """Every run starts with one account, so no run is spent on an empty store; it holds an
        identifier of each kind the policy's ``[identity]`` table lists."""
        return self._open(
            "a@example.com", 1, {kind: identifier_value(kind, 0) for kind in self.policy.identity}
        )

    @rule(
        target=accounts,
        identity=st.sampled_from(IDENTITIES),
        members=st.integers(0, 2),
        values=st.lists(st.integers(0, 1), max_size=3),
    )
    def open_account(self, identity: str | None, members: int, values: Sequence[int] = ()) -> str:
        """Open an account with an identity, members, and identifiers of the policy's kinds
        (the n-th kind gets the value the n-th draw picks: two accounts may share one)."""
        kinds = list(self.policy.identity)
        return self._open(
            identity,
            members,
            {kind: identifier_value(kind, n) for kind, n in zip(kinds, values, strict=False)},
        )

    def _open(self, identity: str | None, members: int, identifiers: dict[str, str] | None = None) -> str:
        self.counter += 1
        account_id = f"acct-{self.counter}"
        member_ids = {f"m{self.counter}-{n}" for n in range(members)}
        identifiers = identifiers or {}
        now = self.clock.now()
        expected = open_outcome(self.policy, self.model, account_id, identity, identifiers, now)
        try:
            record = self.lc.open(
                account_id,
                owner=f"o{self.counter}",
                members=member_ids,
                identity=identity,
                identifiers=identifiers or None,
            )
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
            identifiers=dict(identifiers),
            free_at=dict.fromkeys(identifiers),
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
            if "matches_reference" in self.checked_invariants:
                assert record.state is expected, f"expected {expected}, the survey led to {record.state}"
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

    @rule(account=accounts, token=TOKENS, all_acks=st.booleans(), window=st.integers(0, 3), login=LOGIN)
    def owner_cancels(
        self, account: str, token: str, all_acks: bool, window: int = 0, login: str = "fresh"
    ) -> None:
        """The owner goes the whole way: request, survey 'cancel' (or skip), then types a token,
        logged in as *login* says (``LOGINS``), picking a recovery window (``WINDOW_PICKS``)."""
        if not self._known(account):
            return
        self.request_cancellation(account, "owner")
        if self.model[account].state is State.SURVEYED:
            self.submit_survey(account, "owner", SurveyOutcome.CANCEL)
        self.confirm(account, "owner", token, set(), all_acks or token != "exact", login, window)

    @rule(account=accounts, token=st.sampled_from(WRONG_TOKEN_KINDS))
    def owner_types_a_wrong_token(self, account: str, token: str) -> None:
        """The owner reaches confirmation, acknowledges everything, and types the token in one of
        the ways the contract refuses (no trimming, case folding or normalisation)."""
        if not self._known(account):
            return
        self.owner_reaches_confirmation(account)
        self.confirm(account, "owner", token, set(), True)

    @rule(account=accounts, login=st.sampled_from(("limit", "stale", "future")))
    def owner_confirms_at_login_limit(self, account: str, login: str) -> None:
        """The owner reaches confirmation and confirms with a login exactly as old as
        ``fresh_login`` allows (accepted), one microsecond older, or beyond the clock skew in
        the future (both refused with ``ReauthenticationRequired``)."""
        if not self._known(account):
            return
        self.owner_reaches_confirmation(account)
        self.confirm(account, "owner", "exact", set(), True, login)

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

    @rule(account=accounts, offset=st.sampled_from([-1, 0, 1]))
    def restore_at_window_end(self, account: str, offset: int) -> None:
        """The owner cancels (unless the account is restorable already), the clock moves to one
        microsecond around the window's end, and someone the policy lets restore tries to."""
        if not self._known(account):
            return
        if self.model[account].state is not State.RESTORABLE:
            self.owner_cancels(account, "exact", True)
        self.clock_to_window_end(account, offset, True)

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
        login=LOGIN,
        window=WINDOW_PICKS,
    )
    def confirm(
        self,
        account: str,
        relation: str,
        token: str,
        acks: set[int],
        all_acks: bool,
        login: str = "fresh",
        window: int = 0,
    ) -> None:
        """Confirm as *relation*, typing the token as *token* says, logged in as *login* says
        (``LOGINS``), picking the window *window* (``WINDOW_PICKS``)."""
        if not self._known(account):
            return
        actor, rel = self._actor(account, relation)
        ref = self.model[account]
        required = [a.id for a in self.policy.confirmation.acknowledgements]
        given = frozenset(required) if all_acks else frozenset(required[i] for i in acks if i < len(required))
        typed = self._token(token, account)
        ref.pending_prerequisites = self.pending.get(account, ())
        now = self.clock.now()
        authenticated_at = self._login(login)
        picked = self._window(window)
        expected = expected_outcome(
            self.policy,
            ref,
            Action.CONFIRM,
            rel,
            now=now,
            token=typed,
            acknowledgements=given,
            account_id=account,
            authenticated_at=authenticated_at,
            window=picked,
        )
        fails = self._fails(account)
        since = len(self.lc.history(account))
        record = self._run(
            account,
            expected,
            lambda: self.lc.confirm(
                account, actor, typed, given, window=picked, authenticated_at=authenticated_at
            ),
        )
        if record is None:
            return
        event(f"confirmed, login {login}" if self.policy.confirmation.fresh_login else "confirmed")
        self.confirmations.setdefault(account, []).append((now, str(rel)))
        ref.phases = phase_ends(self.policy, now, picked)
        until = ref.phases[-1][0] if ref.phases else None
        self.windows.setdefault(account, []).append((now, until))
        ref.restorable_until = until
        ref.cancelled_at = now
        ref.ledger = {c: RefStep() for c in self.policy.purge.at("cancel")}
        ref.reminders = {}
        for kind in ref.identifiers:
            rule = self.policy.identity.get(kind)
            if rule is not None and rule.when == "at_once":
                ref.free_at[kind] = now
        ref.state = State.CANCELLED
        starts = run_purge(self.policy, ref, now, fails)
        # the confirm's own write starts the cancel-time steps: no event of its own
        if starts and starts[0][0] == "cancel":
            starts = starts[1:]
        self._check_starts(account, starts, since)

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
            ref.cancelled_at = None
            ref.ledger = {}
            ref.phases = ()
            ref.reminders = {}

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

    @rule(account=accounts, relation=ACTORS, which=st.integers(0, 4))
    def cancel_service(self, account: str, relation: str, which: int) -> None:
        """Cancel one of the policy's services, or (one draw in n + 1) a service it does not have."""
        if not self._known(account):
            return
        offered = self.policy.services
        index = which % (len(offered) + 1)
        service = offered[index] if index < len(offered) else _UNKNOWN_SERVICE
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

    @rule(account=accounts, which=st.integers(0, 9), times=st.integers(1, 2))
    def break_purger(self, account: str, which: int, times: int) -> None:
        """The purger of one of the policy's categories fails the next *times* calls for the account."""
        categories = [c.name for c in self.policy.purge.categories]
        if categories:
            self.broken[(account, categories[which % len(categories)])] = times

    @rule(days=st.sampled_from([1, 30, 60, 88, 89, 90, 91, 92, 120]), seconds=st.sampled_from([-1, 0, 1]))
    def advance_clock(self, days: int, seconds: int) -> None:
        self.clock.advance(timedelta(days=days, seconds=seconds))

    @rule(which=st.sampled_from(MONTH_ENDS), at=st.sampled_from(_TIMES_OF_DAY))
    def clock_to_month_end(self, which: tuple[int, int], at: time) -> None:
        """Jump forward to the next 31 Jan, 29 Feb, 30 Nov, ..., where calendar-month windows
        opened by a confirmation there end on a clamped day."""
        now = self.clock.now()
        month, day = which
        for year in range(now.year, now.year + 9):
            if day > 28 and (date(year, month, 1) + timedelta(days=day - 1)).month != month:
                continue  # 29 February of a common year
            candidate = datetime.combine(date(year, month, day), at, tzinfo=UTC)
            if candidate > now:
                self.clock.set(candidate)
                return

    @rule(account=accounts)
    def remember_record(self, account: str) -> None:
        """Someone reads the account (a page left open, a worker's batch); a later
        ``write_from_stale_read`` decides a command on that read."""
        if account in self.model:
            self.remembered[account] = (self.lc.get(account), copy.deepcopy(self.model[account]))

    @rule(account=accounts)
    def write_from_stale_read(self, account: str) -> None:
        """A second writer sends, from its stale read, a command that read would allow."""
        if "stale_writes_rejected" not in self.checked_invariants or account not in self.remembered:
            return
        stale, stale_ref = self.remembered[account]
        if self.lc.get(account).version == stale.version:
            return  # nothing changed since the read: not stale
        action = {
            State.ACTIVE: Action.REQUEST_CANCELLATION,
            State.SURVEYED: Action.WITHDRAW,
            State.PENDING_CONFIRM: Action.WITHDRAW,
            State.RESTORABLE: Action.RESTORE,
        }.get(stale.state)
        if action is None:
            return
        allowed = sorted(r.value for r in self.policy.permissions.get(action, frozenset()))
        relation = "owner" if "owner" in allowed or not allowed else allowed[0]
        actor, rel = self._actor_in(stale_ref, relation)
        expected: Outcome = expected_outcome(self.policy, stale_ref, action, rel, now=self.clock.now())
        if not isinstance(expected, type):
            expected = ConcurrentUpdate  # the read allowed it, but the account has moved on
        event(f"stale {action.value}: expected {expected.__name__}")
        self.stale_view.remembered[account] = stale
        send: Callable[[], AccountRecord] = {
            Action.REQUEST_CANCELLATION: lambda: self.racer.request_cancellation(account, actor),
            Action.WITHDRAW: lambda: self.racer.withdraw(account, actor),
            Action.RESTORE: lambda: self.racer.restore(account, actor),
        }[action]
        try:
            record = self._run(account, expected, send, invariant="stale_writes_rejected")
        finally:
            self.stale_view.remembered.pop(account, None)
        if record is not None:  # accepted against the reference's advice: follow the store
            self.model[account].state = record.state

    @rule(account=accounts)
    def race(self, account: str) -> None:
        """Two writers read the account; the owner's command commits first (a cancellation
        request, or a withdrawal); the other then writes from its now stale read."""
        if not self._known(account):
            return
        self.remember_record(account)
        if self.model[account].state is State.ACTIVE:
            self.request_cancellation(account, "owner")
        else:
            self.withdraw(account, "owner")
        self.write_from_stale_read(account)

    @rule()
    def sweep(self) -> None:
        now = self.clock.now()
        due = sorted(a for a, ref in self.model.items() if sweep_due(ref, now))
        since = {a: len(self.lc.history(a)) for a in due}
        fails = {a: self._fails(a) for a in due}
        report = self.lc.sweep()
        event(f"sweep purged {min(len(report.purged), 2)}+ failed {min(len(report.failed), 2)}+")
        handled = set(report.purged) | set(report.failed) | set(report.restorable)
        compare = "matches_reference" in self.checked_invariants
        if compare:
            assert handled <= set(due), f"sweep touched accounts that were not due: {handled - set(due)}"
        for account_id in due:
            ref = self.model[account_id]
            resumed = bool(ref.in_flight)
            starts = run_purge(self.policy, ref, now, fails[account_id])
            self._check_starts(account_id, starts, since[account_id], resumed=resumed)
        if compare:
            expected = {a for a in due if self.model[a].state is State.PURGED}
            purged = set(report.purged)
            assert purged == expected, f"sweep purged {sorted(purged)}, expected {sorted(expected)}"

    @rule(account=accounts, relation=HOLDERS, which=st.integers(0, 9))
    def place_hold(self, account: str, relation: str, which: int) -> None:
        """Place a legal hold on one of the policy's categories, or (one draw in n + 2) on a
        protected or unknown one."""
        self._hold(Action.PLACE_HOLD, account, relation, which)

    @rule(account=accounts, relation=HOLDERS, which=st.integers(0, 9))
    def release_hold(self, account: str, relation: str, which: int) -> None:
        """Release the legal hold on one of the policy's categories (or a protected or unknown one)."""
        self._hold(Action.RELEASE_HOLD, account, relation, which)

    def _category(self, which: int) -> str:
        """One of the policy's categories (*which* below 8), else a protected or unknown one."""
        names = [c.name for c in self.policy.purge.categories]
        others = [*self.policy.purge.protected[:1], _UNKNOWN_CATEGORY]
        if which < 8 and names:
            return names[which % len(names)]
        return others[which % len(others)]

    def _hold(self, action: Action, account: str, relation: str, which: int) -> None:
        if not self._known(account):
            return
        category = self._category(which)
        actor, rel = self._actor(account, relation)
        ref = self.model[account]
        now = self.clock.now()
        expected = expected_outcome(self.policy, ref, action, rel, now=now, category=category)
        if action is Action.PLACE_HOLD:
            record = self._run(
                account, expected, lambda: self.lc.place_hold(account, actor, category, "case-1")
            )
        else:
            record = self._run(account, expected, lambda: self.lc.release_hold(account, actor, category))
        if record is None:
            return
        event(f"{action.value} accepted in {ref.state.value}")
        if action is Action.PLACE_HOLD:
            assert self.policy.purge.on_hold is not None
            ref.holds[category] = self.policy.purge.on_hold
            return
        del ref.holds[category]
        step = ref.ledger.get(category)
        if (
            ref.state is State.RESTORABLE
            and category in self.policy.purge.at("cancel")
            and step is not None
            and not step.done
            and step.failed_at is None
        ):
            step.failed_at = now  # retained at cancel, released: due at once

    @rule(account=accounts, which=st.integers(0, 9), restore=st.booleans())
    def command_while_purging(self, account: str, which: int, restore: bool) -> None:
        """While the next purge of one of the account's categories runs, support places a hold
        on that very category (or someone restores the account): refused with
        ``ErasureInProgress``, retryable, writing nothing. The step then finishes."""
        names = [c.name for c in self.policy.purge.categories]
        if account not in self.model or not names:
            return
        category = names[which % len(names)]

        def meanwhile() -> None:
            event("a command while a purge step runs")
            before = self._snapshot(account)
            try:
                if restore:
                    self.lc.restore(account, Actor.support("agent"))
                else:
                    self.lc.place_hold(account, Actor.support("agent"), category, "case-2")
            except ErasureInProgress as exc:
                assert category in exc.steps, f"{category} runs, the refusal names {exc.steps}"
            except LifecycleError as exc:  # pragma: no cover - reported as the failure it is
                raise AssertionError(f"expected ErasureInProgress, got {type(exc).__name__}: {exc}") from exc
            else:
                raise AssertionError("expected ErasureInProgress, the command was accepted while purging")
            if "refused_writes_nothing" in self.checked_invariants:
                assert self._snapshot(account) == before, "a refused command wrote something"

        self.purgers[category].during[account] = meanwhile

    @rule(account=accounts, which=st.integers(0, 3), relation=ACTORS)
    def restore_at_phase_start(self, account: str, which: int, relation: str) -> None:
        """Move the clock to the very first moment of a recovery phase (where the previous
        phase's relations must already be refused) and restore there as *relation*."""
        ref = self.model.get(account)
        if ref is None or not ref.phases:
            return
        ends = [end for end, _ in ref.phases]
        self.clock.set(ends[which % len(ends)])
        self.restore(account, relation)

    @rule(account=accounts, which=st.integers(0, 3), offset=st.sampled_from([-1, 0, 1]))
    def clock_to_reminder(self, account: str, which: int, offset: int) -> None:
        """Move the clock to one microsecond around one of an account's reminders."""
        ref = self.model.get(account)
        if ref is None or not ref.reminders:
            return
        moments = sorted(at for at, _ in ref.reminders.values())
        self.clock.set(moments[which % len(moments)] + timedelta(microseconds=offset))

    @precondition(lambda self: len(self.bundle("accounts")) > 1)
    @rule(account=consumes(accounts))
    def forget(self, account: str) -> None:
        """Stop sending commands to an account (keeps the bundle small); it stays checked. The
        last account is never forgotten, or the rest of the run could only open new ones."""

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def lifecycle_invariants(self) -> None:
        """Every selected invariant, after each step. Exact, yet incremental: an account no rule
        touched (``TouchedModel``) whose record and history (sealed values included) are what
        was checked after the previous step is not checked again (the same inputs give the same
        verdict); the others are checked against their whole record, walking only the events
        appended since (``Trail``); purger calls are checked once each, and again when what they
        are checked against (an account's confirmations, its windows) grows."""
        model = self.model
        touched = model.touched if isinstance(model, TouchedModel) else None
        items = model.quiet_items() if isinstance(model, TouchedModel) else model.items()
        for account_id, ref in items:
            record, history = self._snapshot(account_id)
            if (
                touched is not None
                and account_id not in touched
                and self._unchanged(account_id, record, history)
            ):
                continue
            self._check_account(account_id, ref, record, history)
            self.last[account_id] = (record, len(history))
        if touched is not None:
            touched.clear()
        self._check_purger_calls()

    def _unchanged(self, account_id: str, record: AccountRecord, history: tuple[AuditEvent, ...]) -> bool:
        """Whether *record* and *history* are those checked after the previous step."""
        trail = self.trails.get(account_id)
        if trail is None:
            return False
        previous, _ = self.last[account_id]
        known = trail.events
        return (
            (record is previous or record == previous)
            and len(history) == len(known)
            and history == known
            and same_sealed(history, known)
        )

    def _check_purger_calls(self) -> None:
        """The purger-call invariants, over the calls made since the previous step, and over an
        account's earlier calls again when its confirmations or windows have grown since."""
        checked = self.checked_invariants
        if "protected_never_purged" in checked:
            for name in self.policy.purge.protected:
                assert self.purgers[name].calls == [], f"protected category {name} was handed to a purger"
        owners = "owner_confirmed_before_purge" in checked
        expiry = "expiry_not_before_window" in checked
        if not (owners or expiry):
            return
        for category, purger in self.purgers.items():
            seen = self._calls_seen.get(category, 0)
            calls = purger.calls
            if len(calls) == seen:
                continue
            for call in calls[seen:]:
                account_id = call.account_id
                if owners:
                    confirmations = self.confirmations.get(account_id, [])
                    assert any(when <= call.now for when, _ in confirmations), (
                        f"{call.category} of {account_id} purged without a confirmation"
                    )
                    self._owners_seen.setdefault(account_id, 0)
                if expiry and category in self._expiry_categories:
                    self._expiry_calls.setdefault(account_id, []).append(call)
                    self._windows_seen[account_id] = -1  # check this call below
            self._calls_seen[category] = len(calls)
        if owners and "owner_confirms" not in self.policy.waivers:
            for account_id, seen in self._owners_seen.items():
                confirmations = self.confirmations.get(account_id, [])
                if len(confirmations) != seen:
                    assert all(rel == "owner" for _, rel in confirmations[seen:]), "a non-owner confirmed"
                    self._owners_seen[account_id] = len(confirmations)
        if expiry:
            for account_id, expiry_calls in self._expiry_calls.items():
                windows = self.windows.get(account_id, [])
                if len(windows) == self._windows_seen.get(account_id):
                    continue
                for call in expiry_calls:
                    assert windows, f"{call.category} of {account_id} purged with no cancellation"
                    until = windows[-1][1]
                    assert until is not None, f"{call.category} of {account_id} has no window"
                    assert call.now >= until, (
                        f"{call.category} of {account_id} purged at {call.now}, before {until}"
                    )
                self._windows_seen[account_id] = len(windows)

    def _check_account(
        self, account_id: str, ref: RefAccount, record: AccountRecord, history: tuple[AuditEvent, ...]
    ) -> None:
        previous, previous_len = self.last[account_id]
        checked = self.checked_invariants
        trail = self.trails.setdefault(account_id, Trail())
        known = trail.events
        appended = trail.extend(
            self.policy, account_id, history, steps="purge_steps_started_first" in checked
        )
        if "matches_reference" in checked:
            assert record.state is ref.state, f"{account_id}: stored {record.state}, reference {ref.state}"
            assert record.owner == ref.owner and set(record.members) == ref.members
            assert dict(record.services) == ref.services
            assert record.restorable_until == ref.restorable_until, (
                f"{account_id}: restorable until {record.restorable_until}, "
                f"the calendar says {ref.restorable_until}"
            )
            done = {
                name
                for name, p in record.purge.items()
                if p.status is PurgeStatus.DONE and not name.startswith(EFFECT_PREFIX)
            }
            erased = {name for name, step in ref.ledger.items() if step.done}
            assert done == erased, f"{account_id}: done {sorted(done)}, reference {sorted(erased)}"
            holds = {name: hold.mode for name, hold in record.holds.items()}
            assert holds == ref.holds, f"{account_id}: holds {holds}, reference {ref.holds}"
            reminders = {r.before: (r.at, r.sent_at is not None) for r in record.reminders}
            sent = trail.sent  # reminders sent since the last confirmation
            assert len(sent) == len(set(sent)), f"{account_id}: reminders sent {sent}, each once"
            assert reminders == ref.reminders, (
                f"{account_id}: reminders {reminders}, reference {ref.reminders}"
            )
            free = {kind: held_id.free_at for kind, held_id in record.identifiers.items()}
            expected_free = dict(ref.free_at)
            if record.state is State.PURGED:
                # the purge drops the identifiers free by then: nothing needs their digests
                purged_at = trail.purged_at
                assert purged_at is not None, f"{account_id}: purged, with no purge event"
                expected_free = {k: v for k, v in expected_free.items() if v is None or v > purged_at}
            assert free == expected_free, (
                f"{account_id}: identifiers free at {free}, reference {expected_free}"
            )
            if ref.identity is not None:
                held = identity_held(self.policy, ref.state)
                assert (record.live_identity is not None) == held, f"{account_id}: identity held={not held}"
        if "purged_terminal" in checked and previous.state is State.PURGED:
            assert record == previous and len(history) == previous_len, f"{account_id} changed after PURGED"
        if "versions_grow_by_one" in checked:
            # every committed write carries the next version; its events name it, so the
            # versions in the history run 1, 2, 3, ... without a gap up to the record's
            assert trail.versions_ok and history and history[-1].version == record.version, (
                f"{account_id}: versions {[e.version for e in history]}"
            )
            assert record.last_seq == len(history)
        if "purge_steps_started_first" in checked:
            assert trail.step_problem is None, trail.step_problem
        if "chain_verifies" in checked:
            self._verify_history(account_id, record, history, known if appended else ())
        trail.sealed_as_purged = record.state is State.PURGED

    def _verify_history(
        self,
        account_id: str,
        record: AccountRecord,
        history: tuple[AuditEvent, ...],
        known: tuple[AuditEvent, ...],
    ) -> None:
        """``chain_verifies`` after a step: what ``Lifecycle.verify_history`` checks, re-hashing
        only the events appended since the previous step. *known* are the events verified then,
        still there, equal field by field (their content, hash and previous hash: frozen values
        whose hash was checked against that content); when they are not (a store rewrote or
        dropped one; *known* is then empty), or the first time, the library verifies the whole
        history. Sealed values are checked where they differ from those checked before (all of
        them if the account was checked as purged then and is not now)."""
        if not known:
            self.lc.verify_history(account_id)
            return
        prev = known[-1].hash
        for position in range(len(known) + 1, len(history) + 1):
            e = history[position - 1]
            assert e.seq == position, f"{account_id}: event {position} has seq {e.seq}"
            assert e.version >= 1, f"{account_id}: event {position} has no account version"
            assert e.account_id == account_id, f"{account_id}: event {position} belongs to {e.account_id}"
            assert e.prev_hash == prev, f"{account_id}: event {position} does not follow the previous one"
            assert e.compute_hash() == e.hash, f"{account_id}: event {position} does not match its hash"
            prev = e.hash
        assert prev == record.chain_head, f"{account_id}: the chain head is not the last event's hash"
        purged = record.state is State.PURGED
        trail = self.trails[account_id]
        recheck = history if trail.sealed_as_purged and not purged else resealed(history, known)
        check_sealed(account_id, recheck, erased_allowed=purged)


class GeneratedPolicyMachine(LifecycleStateMachine):
    """``LifecycleStateMachine`` whose policy is drawn from ``policy_strategy`` at the start of
    each run (by default ``strategies.policies()``), before the first account is opened. A
    failing run reports the drawn policy, shrunk like the steps. The store, purger and check
    hooks must work for any drawn policy: the defaults do."""

    policy_strategy: ClassVar[SearchStrategy[Policy] | None] = None

    @initialize(target=LifecycleStateMachine.accounts, data=st.data())
    def first_account(self, data: st.DataObject) -> str:
        """Draw the run's policy, then open the first account."""
        from account_lifecycle.testing.strategies import policies

        strategy = self.policy_strategy if self.policy_strategy is not None else policies()
        self.use_policy(data.draw(strategy, label="policy"))
        return self._open(
            "a@example.com", 1, {kind: identifier_value(kind, 0) for kind in self.policy.identity}
        )


class TeamChangesMachine(LifecycleStateMachine):
    """``LifecycleStateMachine`` that also adds and removes team members (``add_member``,
    ``remove_member``) against the reference. A separate class, so the base machine's search
    (its rules, its speed at finding planted faults) stays as it was; use it as a base:
    ``machine_for(policy, base=TeamChangesMachine)``."""

    @rule(account=LifecycleStateMachine.accounts, relation=ACTORS, add=st.booleans(), which=st.integers(0, 3))
    def change_team(self, account: str, relation: str, add: bool, which: int) -> None:
        """Add or remove a user: a member, the owner, or a newcomer. A removed member is a
        stranger from that write on: its next command is refused (``NotPermitted``)."""
        if not self._known(account):
            return
        actor, rel = self._actor(account, relation)
        ref = self.model[account]
        users = [*sorted(ref.members), ref.owner, f"n-{which}"]  # the simplest draw: a member
        user = users[which % len(users)]
        action = Action.ADD_MEMBER if add else Action.REMOVE_MEMBER
        expected = expected_outcome(self.policy, ref, action, rel, now=self.clock.now(), member=user)
        call = self.lc.add_member if add else self.lc.remove_member
        record = self._run(account, expected, lambda: call(account, actor, user))
        if record is None:
            return
        if add:
            ref.members = ref.members | {user}
            return
        ref.members = ref.members - {user}
        self._run(account, NotPermitted, lambda: self.lc.withdraw(account, Actor.user(user)))


def machine_for(
    policy: Policy, base: type[LifecycleStateMachine] = LifecycleStateMachine, **attributes: Any
) -> type[LifecycleStateMachine]:
    """A subclass of *base* testing *policy* (plus any other class *attributes*, such as
    ``checked_invariants``): ``run_state_machine_as_test(machine_for(p))``."""
    namespace = {"policy": policy, **attributes}
    return type(f"{base.__name__}For{policy.name.title().replace(' ', '')}", (base,), namespace)
