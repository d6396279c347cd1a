"""Legal holds per data category, reminders before the recovery window ends, and identity
quarantine per kind of identifier: in the policy and its file, in the service, the sweep,
the receipt and the proof."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from account_lifecycle import (
    AccountExists,
    Action,
    Actor,
    AuditEvent,
    Duration,
    HeldIdentifier,
    IdentityReuse,
    InvalidTransition,
    Lifecycle,
    ManualClock,
    MemoryStore,
    NotPermitted,
    Policy,
    PolicyError,
    PurgeContext,
    PurgeStatus,
    State,
    policies,
)
from account_lifecycle.audit import format_time
from account_lifecycle.closure import before, longest, reminder_schedule
from account_lifecycle.schedule import due_at
from account_lifecycle.testing.fakes import FakePurger, fake_purgers
from account_lifecycle.verify import verify_policy

START = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
OWNER = Actor.user("u-1")
AGENT = Actor.support("ann")
SYSTEM = Actor.system()

BASE = """
name = "acme"
[survey]
mode = "off"
[permissions]
request_cancellation = ["owner"]
withdraw = ["owner"]
confirm = ["owner"]
restore = ["owner"]
{permissions}
[recovery]
{recovery}
[purge]
protected = ["crm"]
{on_hold}
categories = [
  {{ name = "contacts", at = "cancel" }},
  {{ name = "files", at = "cancel" }},
  {{ name = "backups", at = "expiry" }},
]
[identity]
email = "after_purge"
phone = "after 30 days"
username = "never"
"""


def make_policy(
    *,
    on_hold: str | None = "wait",
    window: str = "30 days",
    reminders: tuple[str, ...] = (),
    permissions: str = "",
) -> Policy:
    recovery = f'window = "{window}"\nreminders = {json.dumps(list(reminders))}'
    return Policy.from_toml(
        BASE.format(
            permissions=permissions,
            recovery=recovery,
            on_hold="" if on_hold is None else f'on_hold = "{on_hold}"',
        )
    )


@attrs.define
class World:
    policy: Policy
    store: MemoryStore = attrs.Factory(MemoryStore)
    clock: ManualClock = attrs.Factory(lambda: ManualClock(START))
    calls: list[tuple[str, str]] = attrs.Factory(list)
    events: list[AuditEvent] = attrs.Factory(list)
    purgers: dict[str, FakePurger] = attrs.Factory(dict)

    def __attrs_post_init__(self) -> None:
        def refuse_held(account_id: str, context: PurgeContext) -> None:
            assert context.category not in self.store.get(account_id).holds, (
                "a held category reached its purger"
            )

        # each successful purge appends (account, category) to calls; a broken one raises
        self.purgers = fake_purgers(
            self.policy,
            items=2,
            before=refuse_held,
            journal=self.calls,
            fail_with=ConnectionError("unreachable"),
        )

    def lifecycle(self) -> Lifecycle:
        """A lifecycle on the shared store: several of them are several workers."""
        return Lifecycle(
            self.policy,
            store=self.store,
            clock=self.clock,
            purgers=self.purgers.values(),
            listeners=[self.events.append],
            retry_backoff=timedelta(0),
        )

    def cancel(self, lc: Lifecycle, account_id: str = "acc-1") -> Any:
        lc.request_cancellation(account_id, OWNER)
        return lc.confirm(account_id, OWNER)

    def actions(self, account_id: str = "acc-1") -> list[str]:
        return [str(e.action) for e in self.store.history(account_id)]


def opened(world: World, account_id: str = "acc-1", **identifiers: str) -> Lifecycle:
    lc = world.lifecycle()
    lc.open(account_id, owner="u-1", identifiers=identifiers or None)
    return lc


# -- the policy and its file ---------------------------------------------------------------


class TestPolicy:
    def test_built_in_policies_take_none_of_it(self) -> None:
        """smrtPhone and AllClients: no holds, reminders or identifier kinds; files unchanged."""
        for policy in (policies.SMRTPHONE, policies.ALLCLIENTS):
            assert policy.purge.on_hold is None
            assert policy.recovery.reminders == ()
            assert policy.identity == {}
            text = policy.to_toml()
            assert "on_hold" not in text
            assert "reminders" not in text
            assert "[identity]" not in text
            assert "place_hold" not in text

    def test_the_single_identity_is_the_default_kind(self) -> None:
        """identity_reuse rules open(identity=...): after_cancel reads as at_once."""
        assert policies.SMRTPHONE.identity_rule("identity") == IdentityReuse("at_once")
        assert policies.ALLCLIENTS.identity_rule("identity") == IdentityReuse("after_purge")
        policy = make_policy()
        assert policy.identity_rule("phone") == IdentityReuse("after", Duration(30, "days"))
        assert str(policy.identity_rule("phone")) == "after 30 days"

    def test_hold_permissions_default_to_support_and_system(self) -> None:
        """Also when a written [permissions] table leaves them out."""
        policy = make_policy()
        expected = {Action.PLACE_HOLD: {"support", "system"}, Action.RELEASE_HOLD: {"support", "system"}}
        assert {a: {r.value for r in policy.permissions[a]} for a in expected} == expected
        nobody = make_policy(permissions='release_hold = []\nplace_hold = ["owner"]')
        assert nobody.permissions[Action.RELEASE_HOLD] == frozenset()
        assert Policy.from_toml(nobody.to_toml()) == nobody

    @pytest.mark.parametrize(
        ("changes", "key", "message"),
        [
            ({"on_hold": "keep"}, "purge.on_hold", "expected 'wait' or 'retain', got 'keep'"),
            (
                {"reminders": ("30 days",)},
                "recovery.reminders[0]",
                "'30 days' before the end is not shorter than the recovery window, which can be as "
                "short as 30 days; a reminder must fall inside the window",
            ),
            (
                {"window": "1 month", "reminders": ("4 weeks",)},
                "recovery.reminders[0]",
                "'4 weeks' before the end is not shorter than the recovery window, which can be as "
                "short as 28 days; a reminder must fall inside the window",
            ),
            ({"reminders": ("1 day", "1 day")}, "recovery.reminders[1]", "'1 day' is listed twice"),
            (
                {"reminders": ("soon",)},
                "recovery.reminders[0]",
                "expected a duration like '90 days' or '3 months', got 'soon'",
            ),
        ],
    )
    def test_bad_values_name_their_key(self, changes: dict[str, Any], key: str, message: str) -> None:
        """Each mistake is a PolicyError naming the key and what was expected."""
        with pytest.raises(PolicyError) as caught:
            make_policy(**changes)
        assert (caught.value.key, caught.value.message) == (key, message)

    @pytest.mark.parametrize(
        ("table", "key", "message"),
        [
            (
                'email = "at_once"',
                "identity.email",
                "'at_once' would let another account take the identifier of an account that can "
                "still be restored; use 'after_purge' or 'after <duration>' with a recovery window",
            ),
            (
                'email = "after a while"',
                "identity.email",
                "expected 'never', 'at_once', 'after_purge' or 'after <duration>' like "
                "'after 30 days', got 'after a while'",
            ),
            ('email = ["never"]', "identity.email", "expected a rule like 'after_purge' or 'after 30 days'"),
            ('identity = "never"', "identity.identity", "the single identity of open(identity=...)"),
            ('"E-mail" = "never"', "identity.E-mail", "expected a lower-case kind of identifier"),
        ],
    )
    def test_bad_identity_rules_name_their_key(self, table: str, key: str, message: str) -> None:
        """A rule that is not one of the four, or that frees a restorable account's identifier."""
        text = f'name = "x"\n[recovery]\nwindow = "30 days"\n[identity]\n{table}\n'
        with pytest.raises(PolicyError) as caught:
            Policy.from_toml(text)
        assert caught.value.key == key
        assert caught.value.message.startswith(message)

    def test_reminders_need_a_window(self) -> None:
        with pytest.raises(PolicyError, match=r"^recovery\.reminders\[0\]: reminders go out before"):
            Policy.from_toml('name = "x"\n[recovery]\nreminders = ["1 day"]\n')

    def test_at_once_without_a_window_is_fine(self) -> None:
        policy = Policy.from_toml('name = "x"\n[identity]\nemail = "at_once"\n')
        assert policy.identity["email"] == IdentityReuse("at_once")

    @given(
        on_hold=st.sampled_from([None, "wait", "retain"]),
        reminders=st.lists(
            st.sampled_from(["1 day", "2 days", "1 week", "12 hours", "3 weeks"]), unique=True
        ),
        rules=st.dictionaries(
            st.sampled_from(["email", "phone", "username", "tax_id"]),
            st.one_of(
                st.sampled_from(["never", "after_purge"]),
                st.integers(1, 400).map(lambda n: f"after {n} days"),
                st.integers(1, 24).map(lambda n: f"after {n} months"),
            ),
        ),
        release=st.lists(st.sampled_from(["owner", "member", "support", "system"]), unique=True),
    )
    def test_round_trip(
        self, on_hold: str | None, reminders: list[str], rules: dict[str, str], release: list[str]
    ) -> None:
        """Policy.from_toml(p.to_toml()) == p, whatever holds, reminders and rules it has."""
        policy = attrs.evolve(
            make_policy(
                on_hold=on_hold, reminders=tuple(reminders), permissions=f"release_hold = {release!r}"
            ),
            identity=rules,
        )
        assert Policy.from_toml(policy.to_toml()) == policy
        assert policy.identity == {kind: IdentityReuse.parse(rule) for kind, rule in rules.items()}


# -- durations before a moment ------------------------------------------------------------


@given(
    amount=st.integers(1, 30),
    unit=st.sampled_from(["days", "weeks", "months", "years", "hours"]),
    moment=st.datetimes(datetime(2001, 1, 1), datetime(2090, 1, 1), timezones=st.just(UTC)),
)
def test_before_undoes_add_to_and_never_overshoots(amount: int, unit: str, moment: datetime) -> None:
    """``before(d, m)`` is at most ``d`` before *m* (calendar months clamp), and adding ``d``
    back lands on *m* whenever nothing was clamped."""
    duration = Duration(amount, unit)
    earlier = before(duration, moment)
    assert earlier < moment
    assert moment - earlier <= longest(duration)
    if earlier.day == moment.day:
        assert duration.add_to(earlier) == moment


def test_reminder_schedule_is_soonest_first() -> None:
    until = datetime(2026, 3, 31, 9, 0, tzinfo=UTC)
    schedule = reminder_schedule([Duration(1, "days"), Duration(1, "months")], until)
    assert [(r.before, r.at) for r in schedule] == [
        ("1 month", datetime(2026, 2, 28, 9, 0, tzinfo=UTC)),
        ("1 day", datetime(2026, 3, 30, 9, 0, tzinfo=UTC)),
    ]


# -- legal holds ---------------------------------------------------------------------------


class TestHolds:
    def test_placing_and_releasing_are_audited_and_stored(self) -> None:
        """hold_placed and hold_released events name the category; the record holds when, who
        and why."""
        world = World(make_policy())
        lc = opened(world)

        record = lc.place_hold("acc-1", AGENT, "contacts", "case 2026-114")

        assert record.holds["contacts"].by == "support:ann"
        assert (record.holds["contacts"].reason, record.holds["contacts"].at) == ("case 2026-114", START)
        assert record.state is State.ACTIVE
        record = lc.release_hold("acc-1", SYSTEM, "contacts")
        assert record.holds == {}
        placed, released = world.store.history("acc-1")[1:]
        assert (placed.action, placed.actor, dict(placed.details)) == (
            "hold_placed",
            AGENT,
            {"category": "contacts", "reason": "case 2026-114", "mode": "wait"},
        )
        assert (released.action, dict(released.details)) == (
            "hold_released",
            {"category": "contacts", "held_since": "2026-01-31T12:00:00.000000Z"},
        )

    def test_who_may_and_where(self) -> None:
        """Support and the system by default, not the owner; an unknown or protected category is a
        ValueError; a category held twice, or not held, is refused; nothing once purged."""
        world = World(make_policy())
        lc = opened(world)
        with pytest.raises(NotPermitted):
            lc.place_hold("acc-1", OWNER, "contacts", "mine")
        with pytest.raises(
            ValueError, match="unknown category 'photos'; this policy erases contacts, files, backups"
        ):
            lc.place_hold("acc-1", AGENT, "photos", "case 1")
        with pytest.raises(ValueError, match="'crm' is protected"):
            lc.place_hold("acc-1", AGENT, "crm", "case 1")
        with pytest.raises(ValueError, match="reason must be one line"):
            lc.place_hold("acc-1", AGENT, "files", "  ")
        with pytest.raises(InvalidTransition, match="'files' is not held"):
            lc.release_hold("acc-1", AGENT, "files")
        lc.place_hold("acc-1", AGENT, "files", "case 1")
        with pytest.raises(InvalidTransition, match="'files' is already held since"):
            lc.place_hold("acc-1", AGENT, "files", "case 2")
        assert world.actions() == ["open", "hold_placed"]
        assert lc.allowed_actions("acc-1", AGENT) == {Action.PLACE_HOLD, Action.RELEASE_HOLD}
        assert lc.allowed_actions("acc-1", OWNER) == {Action.REQUEST_CANCELLATION}

    def test_a_policy_without_on_hold_takes_no_holds(self) -> None:
        world = World(make_policy(on_hold=None))
        lc = opened(world)
        with pytest.raises(InvalidTransition, match="has no such step"):
            lc.place_hold("acc-1", AGENT, "contacts", "case 1")
        assert Action.PLACE_HOLD not in lc.allowed_actions("acc-1", AGENT)

    def test_wait_keeps_the_account_until_the_hold_is_released(self) -> None:
        """ "wait": the rest of the phase runs, the account stays cancelled and is not due; after
        the release the next sweep erases the category and moves the account on."""
        world = World(make_policy(on_hold="wait"))
        lc = opened(world)
        lc.place_hold("acc-1", AGENT, "contacts", "case 1")

        record = world.cancel(lc)

        assert record.state is State.CANCELLED
        assert record.purge["contacts"].status is PurgeStatus.PENDING
        assert record.purge["files"].status is PurgeStatus.DONE
        assert due_at(record) is None
        world.clock.advance(timedelta(days=3))
        assert lc.sweep().restorable == ()
        lc.release_hold("acc-1", AGENT, "contacts")
        assert due_at(world.store.get("acc-1")) == START

        assert lc.sweep().restorable == ("acc-1",)
        assert world.calls == [("acc-1", "files"), ("acc-1", "contacts")]

    def test_wait_at_the_window_end(self) -> None:
        """A hold on an expiry category keeps the account restorable (and not restorable by the
        owner any more) past its window, until released."""
        world = World(make_policy(on_hold="wait"))
        lc = opened(world)
        world.cancel(lc)
        lc.place_hold("acc-1", AGENT, "backups", "case 9")
        world.clock.advance(timedelta(days=31))

        assert lc.sweep().purged == ()
        assert world.store.get("acc-1").state is State.RESTORABLE
        assert lc.allowed_actions("acc-1", OWNER) == set()
        lc.release_hold("acc-1", AGENT, "backups")
        assert lc.sweep().purged == ("acc-1",)
        assert lc.receipt("acc-1").retained == ()

    def test_retain_moves_on_and_the_receipt_says_what_was_retained_and_why(self) -> None:
        """ "retain": the held category is skipped, the account moves on, and the receipt lists it
        apart from the protected categories, with the reason."""
        world = World(make_policy(on_hold="retain", window="30 days"))
        lc = opened(world)
        lc.place_hold("acc-1", AGENT, "contacts", "case 2026-114")

        record = world.cancel(lc)
        world.clock.advance(timedelta(days=30))
        lc.sweep()

        assert record.state is State.RESTORABLE
        receipt = lc.receipt("acc-1")
        assert [e.category for e in receipt.erased] == ["files", "backups"]
        assert receipt.kept == ("crm",)
        data = json.loads(receipt.to_json())
        assert data["retained"] == [
            {
                "category": "contacts",
                "reason": "case 2026-114",
                "since": "2026-01-31T12:00:00.000000Z",
                "by": "support:ann",
            }
        ]
        opened_event = next(e for e in world.store.history("acc-1") if e.action == "recovery_window_opened")
        assert opened_event.details["retained"] == ("contacts",)
        assert ("acc-1", "contacts") not in world.calls
        with pytest.raises(InvalidTransition):
            lc.release_hold("acc-1", AGENT, "contacts")  # purged: nothing is accepted any more

    def test_retain_then_release_while_restorable_erases_at_the_next_sweep(self) -> None:
        world = World(make_policy(on_hold="retain"))
        lc = opened(world)
        lc.place_hold("acc-1", AGENT, "contacts", "case 1")
        world.cancel(lc)
        lc.release_hold("acc-1", AGENT, "contacts")
        assert due_at(world.store.get("acc-1")) == START

        lc.sweep()

        record = world.store.get("acc-1")
        assert (record.state, record.purge["contacts"].status) == (State.RESTORABLE, PurgeStatus.DONE)
        assert due_at(record) == record.restorable_until
        world.clock.advance(timedelta(days=30))
        lc.sweep()
        assert lc.receipt("acc-1").retained == ()
        assert sorted(world.calls) == [("acc-1", c) for c in ("backups", "contacts", "files")]

    def test_receipts_without_holds_keep_their_bytes(self) -> None:
        """No "retained" key unless something was retained: earlier receipts are unchanged."""
        world = World(make_policy(window="1 day"))
        lc = opened(world)
        world.cancel(lc)
        world.clock.advance(timedelta(days=1))
        lc.sweep()
        assert sorted(json.loads(lc.receipt("acc-1").to_json())) == [
            "account_id",
            "chain_head",
            "erased",
            "kept",
            "policy",
        ]

    @given(
        mode=st.sampled_from(["wait", "retain"]),
        steps=st.lists(
            st.one_of(
                st.tuples(st.just("place"), st.sampled_from(["contacts", "files", "backups"])),
                st.tuples(st.just("release"), st.sampled_from(["contacts", "files", "backups"])),
                st.tuples(st.just("advance"), st.integers(0, 20)),
                st.tuples(st.just("sweep"), st.booleans()),
                st.tuples(st.just("break"), st.sampled_from(["contacts", "files", "backups"])),
            ),
            max_size=25,
        ),
    )
    def test_a_held_category_is_never_erased_and_every_other_is_erased_once(
        self, mode: str, steps: list[tuple[str, Any]]
    ) -> None:
        """Whatever holds come and go, and whenever sweeps run (some purgers failing for a
        while): no purger is called on a held category, no category is erased twice, an account
        waits ("wait") while a held category is pending, and once every hold is released and the
        window is over, everything not retained is erased."""
        world = World(make_policy(on_hold=mode, window="30 days"))
        lc = opened(world)
        world.cancel(lc)
        for action, arg in steps:
            record = world.store.get("acc-1")
            if action == "place":
                if record.state is not State.PURGED and arg not in record.holds:
                    progress = record.purge.get(arg)
                    if progress is None or progress.status is not PurgeStatus.DONE:
                        lc.place_hold("acc-1", AGENT, arg, "case")
            elif action == "release":
                if record.state is not State.PURGED and arg in record.holds:
                    lc.release_hold("acc-1", SYSTEM, arg)
            elif action == "advance":
                world.clock.advance(timedelta(days=arg))
            elif action == "sweep":
                world.lifecycle().sweep() if arg else lc.sweep()
            else:
                world.purgers[arg].fail_when = not world.purgers[arg].fail_when
            record = world.store.get("acc-1")
            if mode == "wait" and record.state is State.CANCELLED:
                held = [c for c in record.holds if c in record.purge]
                if held and all(
                    record.purge[k].status is PurgeStatus.DONE for k in record.purge if k not in record.holds
                ):
                    assert due_at(record) is None
        for purger in world.purgers.values():
            purger.fail_when = False
        record = world.store.get("acc-1")
        if record.state is not State.PURGED:
            for category in list(record.holds):
                lc.release_hold("acc-1", AGENT, category)
        world.clock.advance(timedelta(days=40))
        lc.sweep()

        record = world.store.get("acc-1")
        assert record.state is State.PURGED
        assert len(world.calls) == len(set(world.calls))
        retained = {r.category for r in lc.receipt("acc-1").retained}
        assert retained <= set(record.holds)
        assert {c for _, c in world.calls} | retained == {"contacts", "files", "backups"}
        if mode == "wait":
            assert retained == set()


# -- reminders -----------------------------------------------------------------------------


class TestReminders:
    def test_each_reminder_is_sent_once_with_its_details(self) -> None:
        world = World(make_policy(reminders=("7 days", "1 day")))
        lc = opened(world)
        record = world.cancel(lc)
        until = record.restorable_until
        assert [(r.before, r.at) for r in record.reminders] == [
            ("7 days", until - timedelta(days=7)),
            ("1 day", until - timedelta(days=1)),
        ]
        assert due_at(record) == until - timedelta(days=7)

        world.clock.set(until - timedelta(days=7))
        lc.sweep()
        lc.sweep()

        reminders = [e for e in world.events if e.action == "reminder"]
        assert [dict(e.details) for e in reminders] == [
            {
                "before": "7 days",
                "restorable_until": "2026-03-02T12:00:00.000000Z",
                "scheduled_for": "2026-02-23T12:00:00.000000Z",
            }
        ]
        assert due_at(world.store.get("acc-1")) == until - timedelta(days=1)

    def test_a_restore_ends_the_reminders_and_a_new_cancellation_has_its_own(self) -> None:
        world = World(make_policy(reminders=("7 days",)))
        lc = opened(world)
        first = world.cancel(lc).restorable_until
        world.clock.set(first - timedelta(days=6))
        lc.sweep()
        lc.restore("acc-1", OWNER)
        assert world.store.get("acc-1").reminders == ()
        second = world.cancel(lc).restorable_until
        world.clock.set(second - timedelta(days=6))
        lc.sweep()
        assert [e.details["restorable_until"] for e in world.events if e.action == "reminder"] == [
            format_time(first),
            format_time(second),
        ]

    @pytest.mark.parametrize(
        ("retry_after", "sent"), [(timedelta(days=26), ["7 days"]), (timedelta(days=31), [])]
    )
    def test_a_reminder_due_while_the_purge_was_retried_is_sent_late_or_skipped(
        self, retry_after: timedelta, sent: list[str]
    ) -> None:
        """A reminder whose moment passed while the account was still cancelled is sent once,
        late, when the account becomes restorable; once the window has ended, it is skipped."""
        world = World(make_policy(reminders=("7 days",)))
        lc = opened(world)
        world.purgers["files"].fail_when = True
        world.cancel(lc)
        world.purgers["files"].fail_when = False
        world.clock.advance(retry_after)

        lc.sweep()
        lc.sweep()

        assert [e.details["before"] for e in world.events if e.action == "reminder"] == sent

    @given(
        reminders=st.lists(
            st.sampled_from(["1 day", "3 days", "1 week", "2 weeks", "12 hours"]), min_size=1, unique=True
        ),
        sweeps=st.lists(st.tuples(st.integers(0, 35 * 24), st.integers(0, 2)), max_size=30),
    )
    def test_exactly_once_however_often_and_on_however_many_workers(
        self, reminders: list[str], sweeps: list[tuple[int, int]]
    ) -> None:
        """Sweeps at random hours, by three workers: each reminder is sent exactly once if some
        sweep ran between its moment and the window's end, else never; none after the end."""
        world = World(make_policy(reminders=tuple(reminders)))
        workers = [opened(world), world.lifecycle(), world.lifecycle()]
        until = world.cancel(workers[0]).restorable_until
        ran: list[datetime] = []
        for hour, worker in sorted(sweeps):
            world.clock.set(START + timedelta(hours=hour))
            workers[worker].sweep()
            ran.append(world.clock.now())

        sent = [e for e in world.events if e.action == "reminder"]
        labels = [e.details["before"] for e in sent]
        assert len(labels) == len(set(labels))
        for reminder in reminders:
            moment = before(Duration.parse(reminder), until)
            expected = any(moment <= at < until for at in ran)
            assert (reminder in labels) is expected, reminder
        assert all(e.at < until for e in sent)


# -- identity quarantine -------------------------------------------------------------------


class TestIdentity:
    def test_identifiers_are_held_by_kind(self) -> None:
        world = World(make_policy())
        lc = opened(world, email="ann@example.com", phone="+15550100")
        assert world.store.get("acc-1").identifiers == {
            "email": HeldIdentifier("ann@example.com"),
            "phone": HeldIdentifier("+15550100"),
        }
        with pytest.raises(AccountExists) as caught:
            lc.open("acc-2", owner="u-2", identifiers={"phone": "+15550100"})
        assert (caught.value.kind, caught.value.identity) == ("phone", "+15550100")
        assert str(caught.value) == (
            "cannot open 'acc-2': its phone is still held by another account; "
            "the policy's [identity] table says when it is released"
        )
        lc.open("acc-3", owner="u-3", identifiers={"username": "+15550100"})  # another kind
        with pytest.raises(ValueError, match="unknown kind of identifier 'fax'"):
            lc.open("acc-4", owner="u-4", identifiers={"fax": "1"})
        with pytest.raises(ValueError, match="unknown kind of identifier 'identity'"):
            lc.open("acc-4", owner="u-4", identifiers={"identity": "1"})

    def test_each_kind_is_freed_by_its_rule(self) -> None:
        """email after the purge, phone 30 days after it, username never; the purge event says when."""
        world = World(make_policy(window="1 day"))
        lc = opened(world, email="e", phone="+15550199", username="n")
        world.cancel(lc)
        world.clock.advance(timedelta(days=1))
        lc.sweep()
        purged_at = world.clock.now()
        purge = world.store.history("acc-1")[-1]
        assert purge.details["identifiers_free_at"] == {
            "email": format_time(purged_at),
            "phone": format_time(purged_at + timedelta(days=30)),
            "username": None,
        }
        lc.open("acc-2", owner="u-2", identifiers={"email": "e"})
        world.clock.advance(timedelta(days=30) - timedelta(microseconds=1))
        with pytest.raises(AccountExists):
            lc.open("acc-3", owner="u-3", identifiers={"phone": "+15550199"})
        world.clock.advance(timedelta(microseconds=1))
        lc.open("acc-3", owner="u-3", identifiers={"phone": "+15550199"})
        world.clock.advance(timedelta(days=3650))
        with pytest.raises(AccountExists):
            lc.open("acc-4", owner="u-4", identifiers={"username": "n"})

    def test_at_once_frees_at_the_cancellation(self) -> None:
        """Without a window, at_once frees the identifier at confirm, before the purge ends."""
        policy = Policy.from_toml(
            'name = "x"\n[survey]\nmode = "off"\n[purge]\ncategories = [{ name = "files", at = "cancel" }]\n'
            '[identity]\nemail = "at_once"\n'
        )
        world = World(policy)
        lc = opened(world, email="e")
        world.purgers["files"].fail_when = True
        record = world.cancel(lc)
        assert record.state is State.CANCELLED
        assert record.identifiers["email"].free_at == START
        lc.open("acc-2", owner="u-2", identifiers={"email": "e"})

    @given(
        delay=st.integers(1, 90),
        wait=st.integers(0, 120),
        cancel=st.booleans(),
    )
    def test_after_a_delay_counted_from_the_purge(self, delay: int, wait: int, cancel: bool) -> None:
        """ "after N days": the identifier is free exactly N days after the purge, never while the
        account can be restored, and never for an account that was not cancelled."""
        policy = attrs.evolve(make_policy(window="10 days"), identity={"phone": f"after {delay} days"})
        world = World(policy)
        lc = opened(world, phone="+15550199")
        if cancel:
            world.cancel(lc)
            world.clock.advance(timedelta(days=10))
            lc.sweep()
        world.clock.advance(timedelta(days=wait))
        free = cancel and wait >= delay
        if free:
            lc.open("acc-2", owner="u-2", identifiers={"phone": "+15550199"})
        else:
            with pytest.raises(AccountExists):
                lc.open("acc-2", owner="u-2", identifiers={"phone": "+15550199"})

    def test_the_single_identity_keeps_its_behaviour(self) -> None:
        """identity= still follows identity_reuse, apart from the identifiers."""
        world = World(make_policy(window="1 day"))
        lc = world.lifecycle()
        lc.open("acc-1", owner="u-1", identity="ann", identifiers={"email": "ann"})
        world.cancel(lc)
        with pytest.raises(AccountExists) as caught:
            lc.open("acc-2", owner="u-2", identity="ann")
        assert caught.value.kind is None
        world.clock.advance(timedelta(days=1))
        lc.sweep()
        lc.open("acc-2", owner="u-2", identity="ann", identifiers={"email": "ann"})


# -- the proof -----------------------------------------------------------------------------


class TestVerify:
    @pytest.mark.parametrize("mode", ["wait", "retain"])
    def test_policies_with_holds_prove_every_invariant(self, mode: str) -> None:
        report = verify_policy(make_policy(on_hold=mode))
        assert report.ok
        assert report.reachable == set(State) - {State.SURVEYED}  # the survey is off

    def test_a_hold_nobody_may_release_is_a_dead_end_under_wait(self) -> None:
        """With "wait" and release_hold granted to nobody, a held account can never move on:
        no_dead_end fails, and the conclusion names the refused releases first."""
        report = verify_policy(make_policy(on_hold="wait", permissions="release_hold = []"))
        assert [r.id for r in report.failures] == ["no_dead_end"]
        counterexample = report.result("no_dead_end").counterexample
        assert counterexample is not None
        assert [str(m) for m in counterexample.path][-1] == "support: place_hold  [cancelled -> cancelled]"
        assert "(on hold" in counterexample.conclusion
        assert "every step is refused: NotPermitted: user:owner (owner) may not release_hold" in (
            counterexample.conclusion
        )

    def test_retain_never_waits(self) -> None:
        report = verify_policy(make_policy(on_hold="retain", permissions="release_hold = []"))
        assert report.ok


def test_show_says_it_in_plain_words() -> None:
    """``account-lifecycle show`` explains reminders, holds and each kind's quarantine."""
    from account_lifecycle import describe_policy

    lines = describe_policy(make_policy(on_hold="retain", reminders=("7 days", "1 day")))

    assert "  Reminders go out 7 days and 1 day before the window ends." in lines
    assert lines[lines.index("Legal holds") + 1 :][:2] == [
        "  Placed on a data category by support staff and the system, released by support staff and "
        "the system.",
        "  A held category is not erased: the account moves on, and the receipt lists it as retained.",
    ]
    assert "  The same phone may open a fresh account 30 days after this one is purged." in lines
    assert "  The same username can never open another account." in lines
