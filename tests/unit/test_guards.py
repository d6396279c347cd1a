"""Every guard and every error of the service, and that a refused command writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest
from world import MEMBER, OWNER, STRANGER, SUPPORT, SYSTEM, World

from account_lifecycle import (
    AccountExists,
    AccountNotFound,
    Action,
    ConcurrentUpdate,
    ConfigurationError,
    InvalidTransition,
    Lifecycle,
    ManualClock,
    MemoryStore,
    MissingAcknowledgements,
    NotPermitted,
    Policy,
    PrerequisitesPending,
    RecoveryWindowExpired,
    State,
    SurveyOutcome,
    SurveyPolicy,
    policies,
)
from account_lifecycle.testing.fakes import RecordingPurger


class TestNothingWrittenOnRefusal:
    @pytest.mark.parametrize("actor", [MEMBER, STRANGER, SUPPORT, SYSTEM])
    def test_not_permitted_writes_nothing(self, sp: World, actor) -> None:
        """A refused command leaves the record and the history exactly as they were."""
        sp.open()
        before = sp.snapshot()
        with pytest.raises(NotPermitted) as caught:
            sp.lc.request_cancellation("acct-1", actor)
        assert caught.value.actor == actor
        assert sp.snapshot() == before
        assert len(sp.seen) == 1  # only the open event reached the listener

    def test_stranger_is_named_as_having_no_relation(self, sp: World) -> None:
        """A user who is neither owner nor member is permitted nothing, and the error says why."""
        sp.open()
        with pytest.raises(NotPermitted, match="no relation to the account") as caught:
            sp.lc.request_cancellation("acct-1", STRANGER)
        assert caught.value.relation is None

    def test_prerequisite_check_that_raises_writes_nothing(self, sp: World) -> None:
        """A host check that fails propagates its error, and the confirm writes nothing."""
        sp.open()
        sp.to_pending_confirm()
        before = sp.snapshot()

        def broken(account_id: str) -> list[str]:
            raise ConnectionError("porting service down")

        sp.lc.prerequisites["port_outs"] = broken
        with pytest.raises(ConnectionError):
            sp.confirm()
        assert sp.snapshot() == before

    def test_prerequisite_check_returning_a_string_is_a_type_error(self, sp: World) -> None:
        """A check must return a sequence of items; one bare string is refused, not split."""
        sp.open()
        sp.to_pending_confirm()
        sp.lc.prerequisites["port_outs"] = lambda account_id: "+15550100"
        with pytest.raises(TypeError, match="sequence of strings"):
            sp.confirm()
        assert sp.lc.get("acct-1").state is State.PENDING_CONFIRM


class TestStates:
    @pytest.mark.parametrize(
        ("command", "state"),
        [
            ("submit_survey", State.ACTIVE),
            ("withdraw", State.ACTIVE),
            ("confirm", State.ACTIVE),
            ("restore", State.ACTIVE),
            ("request_cancellation", State.SURVEYED),
            ("confirm", State.SURVEYED),
            ("request_cancellation", State.PENDING_CONFIRM),
            ("transfer_ownership", State.PENDING_CONFIRM),
            ("withdraw", State.PURGED),
            ("request_cancellation", State.PURGED),
            ("confirm", State.PURGED),
        ],
    )
    def test_invalid_transition_names_state_and_action(self, sp: World, command: str, state: State) -> None:
        """A command impossible from the current state is an InvalidTransition carrying both."""
        sp.open()
        if state is State.SURVEYED:
            sp.lc.request_cancellation("acct-1", OWNER)
        elif state is State.PENDING_CONFIRM:
            sp.to_pending_confirm()
        elif state is State.PURGED:
            sp.cancel()
        before = sp.snapshot()
        calls = {
            "submit_survey": lambda: sp.lc.submit_survey("acct-1", OWNER, SurveyOutcome.CANCEL),
            "withdraw": lambda: sp.lc.withdraw("acct-1", OWNER),
            "confirm": lambda: sp.lc.confirm("acct-1", OWNER, "CONFIRM", sp.acks),
            "restore": lambda: sp.lc.restore("acct-1", OWNER),
            "request_cancellation": lambda: sp.lc.request_cancellation("acct-1", OWNER),
            "transfer_ownership": lambda: sp.lc.transfer_ownership("acct-1", OWNER, "member"),
        }
        with pytest.raises(InvalidTransition) as caught:
            calls[command]()
        assert (caught.value.state, caught.value.action) == (state, command)
        assert sp.snapshot() == before

    def test_survey_off_goes_straight_to_confirmation(self, store, clock) -> None:
        """With survey.mode = 'off', request_cancellation moves to PENDING_CONFIRM."""
        policy = attrs.evolve(policies.ALLCLIENTS, survey=SurveyPolicy("off", ()))
        world = World(policy, store, clock)
        world.open()
        assert world.lc.request_cancellation("acct-1", OWNER).state is State.PENDING_CONFIRM
        with pytest.raises(InvalidTransition):
            world.lc.submit_survey("acct-1", OWNER, SurveyOutcome.CANCEL)

    def test_skip_survey_refused_when_survey_is_required(self, sp: World) -> None:
        """skip_survey exists only for optional surveys."""
        sp.open()
        sp.lc.request_cancellation("acct-1", OWNER)
        with pytest.raises(InvalidTransition):
            sp.lc.skip_survey("acct-1", OWNER)

    def test_receipt_before_purged_is_invalid(self, ac: World) -> None:
        """A receipt exists only once the account is PURGED."""
        ac.open()
        ac.cancel()
        with pytest.raises(InvalidTransition) as caught:
            ac.lc.receipt("acct-1")
        assert caught.value.state is State.RESTORABLE


class TestInputs:
    def test_outcome_not_offered_is_a_value_error(self, store, clock) -> None:
        """An outcome the policy does not offer is a ValueError, and nothing is written."""
        policy = attrs.evolve(
            policies.SMRTPHONE,
            survey=SurveyPolicy("required", (SurveyOutcome.KEEP_ACCOUNT, SurveyOutcome.CANCEL)),
        )
        world = World(policy, store, clock)
        world.open()
        world.lc.request_cancellation("acct-1", OWNER)
        before = world.snapshot()
        with pytest.raises(ValueError, match="not offered"):
            world.lc.submit_survey("acct-1", OWNER, SurveyOutcome.BOOK_MEETING)
        with pytest.raises(ValueError, match="unknown survey outcome 'stay'"):
            world.lc.submit_survey("acct-1", OWNER, "stay")
        assert world.snapshot() == before

    def test_unknown_acknowledgement_is_a_value_error(self, sp: World) -> None:
        """An acknowledgement id the policy does not have is a ValueError, not a missing one."""
        sp.open()
        sp.to_pending_confirm()
        with pytest.raises(ValueError, match="unknown acknowledgement id"):
            sp.lc.confirm("acct-1", OWNER, "CONFIRM", [*sp.acks, "i_agree"])
        with pytest.raises(TypeError):
            sp.lc.confirm("acct-1", OWNER, "CONFIRM", "unported_numbers_lost")

    def test_missing_acknowledgements_lists_all_missing_in_policy_order(self, sp: World) -> None:
        """MissingAcknowledgements carries every missing id, in the policy's order."""
        sp.open()
        sp.to_pending_confirm()
        with pytest.raises(MissingAcknowledgements) as caught:
            sp.lc.confirm("acct-1", OWNER, "CONFIRM", ["no_credit_refund"])
        assert caught.value.missing == ("unported_numbers_lost", "data_permanently_deleted")

    def test_guards_are_checked_in_a_fixed_order(self, sp: World) -> None:
        """Permission first, then token, then acknowledgements, then prerequisites."""
        sp.open()
        sp.to_pending_confirm()
        sp.port_outs.pending = ["+15550100"]
        with pytest.raises(NotPermitted):
            sp.lc.confirm("acct-1", MEMBER, "nope", [])
        with pytest.raises(Exception, match="type exactly 'CONFIRM'"):
            sp.lc.confirm("acct-1", OWNER, "nope", [])
        with pytest.raises(MissingAcknowledgements):
            sp.lc.confirm("acct-1", OWNER, "CONFIRM", [])
        assert sp.port_outs.calls == []  # host checks run only once the cheap guards passed
        with pytest.raises(PrerequisitesPending):
            sp.confirm()
        assert sp.port_outs.calls == ["acct-1"]

    @pytest.mark.parametrize("bad", ["", " acct", "acct\n", "a\x00b", "x" * 256, "\ud800"])
    def test_bad_account_ids_are_refused(self, sp: World, bad: str) -> None:
        """Empty, padded, control-character, over-long and invalid-Unicode ids are ValueErrors."""
        with pytest.raises(ValueError):
            sp.lc.open(bad, owner="owner")
        with pytest.raises(TypeError):
            sp.lc.open(42, owner="owner")  # type: ignore[arg-type]

    def test_owner_cannot_also_be_a_member(self, sp: World) -> None:
        """The owner is not listed among the members; members are one collection, not a string."""
        with pytest.raises(ValueError, match="cannot also be listed"):
            sp.lc.open("acct-1", owner="owner", members=["owner"])
        with pytest.raises(TypeError):
            sp.lc.open("acct-1", owner="owner", members="member")

    def test_survey_answers_are_validated(self, sp: World) -> None:
        """Answers map question ids to text of bounded size."""
        sp.open()
        sp.lc.request_cancellation("acct-1", OWNER)
        with pytest.raises(TypeError):
            sp.lc.submit_survey("acct-1", OWNER, "cancel", {"q": 3})  # type: ignore[dict-item]
        with pytest.raises(ValueError):
            sp.lc.submit_survey("acct-1", OWNER, "cancel", {"q": "x" * 10_001})
        record = sp.lc.submit_survey("acct-1", OWNER, "cancel", {"why": "trop cher 💸"})
        assert record.state is State.PENDING_CONFIRM
        assert sp.lc.history("acct-1")[-1].sealed_values["answers"].value == {"why": "trop cher 💸"}


class TestOwnership:
    def test_transfer_needs_an_existing_member(self, ac: World) -> None:
        """The new owner must already be a member, else ValueError."""
        ac.open()
        with pytest.raises(ValueError, match="must already be a member"):
            ac.lc.transfer_ownership("acct-1", OWNER, "stranger")

    def test_only_the_owner_transfers(self, ac: World) -> None:
        """A member cannot take the account over."""
        ac.open()
        with pytest.raises(NotPermitted):
            ac.lc.transfer_ownership("acct-1", MEMBER, "member")

    def test_relation_comes_from_the_stored_record(self, ac: World) -> None:
        """After a transfer the old owner is a member and the new owner acts as owner."""
        ac.open()
        ac.lc.transfer_ownership("acct-1", OWNER, "member")
        with pytest.raises(NotPermitted):
            ac.lc.request_cancellation("acct-1", OWNER)
        assert ac.lc.request_cancellation("acct-1", MEMBER).state is State.SURVEYED


class TestWindow:
    def test_restore_strictly_before_the_end(self, ac: World, clock: ManualClock) -> None:
        """One microsecond before restorable_until is in time; the instant itself is too late."""
        ac.open()
        record = ac.cancel()
        assert record.restorable_until is not None
        clock.set(record.restorable_until)
        before = ac.snapshot()
        with pytest.raises(RecoveryWindowExpired) as caught:
            ac.lc.restore("acct-1", SUPPORT)
        assert caught.value.restorable_until == record.restorable_until
        assert ac.snapshot() == before
        assert Action.RESTORE not in ac.lc.allowed_actions("acct-1", SUPPORT)
        clock.set(record.restorable_until - timedelta(microseconds=1))
        assert ac.lc.restore("acct-1", SUPPORT).state is State.ACTIVE

    @pytest.mark.parametrize(
        ("cancelled", "until"),
        [
            (datetime(2026, 11, 30, 12, tzinfo=UTC), datetime(2027, 2, 28, 12, tzinfo=UTC)),
            (datetime(2027, 11, 30, 12, tzinfo=UTC), datetime(2028, 2, 29, 12, tzinfo=UTC)),
            (datetime(2026, 1, 31, 0, tzinfo=UTC), datetime(2026, 4, 30, 0, tzinfo=UTC)),
            (datetime(2026, 12, 15, 8, tzinfo=UTC), datetime(2027, 3, 15, 8, tzinfo=UTC)),
        ],
    )
    def test_calendar_months_clamp_at_month_end(self, store, cancelled: datetime, until: datetime) -> None:
        """Three calendar months, clamped to the shorter month's last day (30 Nov -> 28/29 Feb)."""
        world = World(policies.ALLCLIENTS, store, ManualClock(cancelled))
        world.open()
        assert world.cancel().restorable_until == until

    def test_restore_starts_purge_progress_afresh(self, ac: World, clock: ManualClock) -> None:
        """A restored account cancelled again purges every category again."""
        ac.open()
        ac.cancel()
        ac.lc.restore("acct-1", SUPPORT)
        clock.advance(timedelta(days=1))
        record = ac.cancel()
        assert record.state is State.RESTORABLE
        assert ac.purgers["contacts"].accounts() == ["acct-1", "acct-1"]


class TestStoreErrors:
    def test_unknown_ids(self, sp: World) -> None:
        """Every query and command names an unknown id with AccountNotFound."""
        for call in (
            lambda: sp.lc.get("nope"),
            lambda: sp.lc.history("nope"),
            lambda: sp.lc.verify_history("nope"),
            lambda: sp.lc.receipt("nope"),
            lambda: sp.lc.allowed_actions("nope", OWNER),
            lambda: sp.lc.request_cancellation("nope", OWNER),
        ):
            with pytest.raises(AccountNotFound) as caught:
                call()
            assert caught.value.account_id == "nope"

    def test_duplicate_id(self, sp: World) -> None:
        """Opening an id twice is AccountExists and leaves the first account alone."""
        first = sp.open()
        with pytest.raises(AccountExists) as caught:
            sp.lc.open("acct-1", owner="someone-else")
        assert caught.value.account_id == "acct-1"
        assert sp.lc.get("acct-1") == first

    def test_stale_save_is_a_concurrent_update(self, sp: World) -> None:
        """A save against a version that moved on raises ConcurrentUpdate and writes nothing."""
        record = sp.open()
        sp.lc.request_cancellation("acct-1", OWNER)
        before = sp.snapshot()
        with pytest.raises(ConcurrentUpdate) as caught:
            sp.store.save(attrs.evolve(record, version=2), expected_version=1, events=())
        assert caught.value.expected_version == 1
        assert sp.snapshot() == before


class TestConfiguration:
    def test_missing_purger(self) -> None:
        """A category that is not protected needs a purger."""
        with pytest.raises(ConfigurationError, match="call_recordings"):
            Lifecycle(
                policies.SMRTPHONE,
                store=MemoryStore(),
                purgers=[RecordingPurger(c.name) for c in policies.SMRTPHONE.purge.categories[:3]],
                prerequisites={"port_outs": lambda a: ()},
            )

    def test_missing_prerequisite_check(self) -> None:
        """A prerequisite named by the policy needs a check."""
        with pytest.raises(ConfigurationError, match="port_outs"):
            Lifecycle(
                policies.SMRTPHONE,
                store=MemoryStore(),
                purgers=[RecordingPurger(c.name) for c in policies.SMRTPHONE.purge.categories],
            )

    def test_two_purgers_for_one_category(self) -> None:
        """One category, one purger."""
        purgers = [RecordingPurger(c.name) for c in policies.ALLCLIENTS.purge.categories]
        with pytest.raises(ConfigurationError, match="two purgers"):
            Lifecycle(policies.ALLCLIENTS, store=MemoryStore(), purgers=[*purgers, RecordingPurger("todos")])

    def test_purger_for_protected_category_is_never_called(self, sp: World) -> None:
        """Registering a purger for a protected category is allowed; it is simply never called."""
        assert "crm_contacts" not in sp.lc.purgers
        sp.open()
        sp.cancel()
        assert sp.purgers["crm_contacts"].calls == []


class TestClock:
    def test_naive_clock_is_refused_before_anything_is_written(self, store) -> None:
        """A clock that returns naive datetimes makes commands fail with ValueError, writing nothing."""

        class NaiveClock:
            def now(self) -> datetime:
                return datetime(2026, 11, 30, 12, 0)

        lc = Lifecycle(
            policies.ALLCLIENTS, store=store, clock=NaiveClock(),
            purgers=[RecordingPurger(c.name) for c in policies.ALLCLIENTS.purge.categories],
        )  # fmt: skip
        with pytest.raises(ValueError, match="timezone-aware"):
            lc.open("acct-1", owner="owner")
        with pytest.raises(AccountNotFound):
            lc.get("acct-1")

    def test_manual_clock_rejects_naive_datetimes(self) -> None:
        """ManualClock takes aware datetimes only, and normalises them to UTC."""
        with pytest.raises(ValueError):
            ManualClock(datetime(2026, 1, 1))
        clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
        with pytest.raises(ValueError):
            clock.set(datetime(2026, 1, 2))
        with pytest.raises(TypeError):
            clock.advance(5)  # type: ignore[arg-type]
        assert clock.advance(timedelta(hours=1)) == datetime(2026, 1, 1, 1, tzinfo=UTC)


class TestListeners:
    def test_failing_listener_does_not_undo_the_change(self, store, clock, caplog) -> None:
        """A listener that raises is logged; the committed change and the other listeners stand."""
        seen: list[str] = []

        def broken(event: object) -> None:
            raise RuntimeError("mail server down")

        lc = Lifecycle(
            policies.ALLCLIENTS, store=store, clock=clock,
            purgers=[RecordingPurger(c.name) for c in policies.ALLCLIENTS.purge.categories],
            listeners=[broken, lambda e: seen.append(e.action)],
        )  # fmt: skip
        lc.open("acct-1", owner="owner")
        assert lc.request_cancellation("acct-1", OWNER).state is State.SURVEYED
        assert seen == ["open", "request_cancellation"]
        assert lc.get("acct-1").state is State.SURVEYED
        assert "mail server down" in caplog.text


class TestAllowedActions:
    def test_owner_in_each_state(self, ac: World) -> None:
        """allowed_actions follows state, relation and permissions."""
        ac.open()
        team = {Action.ADD_MEMBER, Action.REMOVE_MEMBER, Action.CHANGE_IDENTITY}  # until cancelled
        assert ac.lc.allowed_actions("acct-1", OWNER) == {
            Action.REQUEST_CANCELLATION, Action.TRANSFER_OWNERSHIP, Action.CANCEL_SERVICE, *team,
        }  # fmt: skip
        ac.lc.request_cancellation("acct-1", OWNER)
        assert ac.lc.allowed_actions("acct-1", OWNER) == {
            Action.SUBMIT_SURVEY, Action.SKIP_SURVEY, Action.WITHDRAW, *team,
        }  # fmt: skip
        ac.lc.skip_survey("acct-1", OWNER)
        assert ac.lc.allowed_actions("acct-1", OWNER) == {Action.CONFIRM, Action.WITHDRAW, *team}
        assert ac.lc.allowed_actions("acct-1", MEMBER) == frozenset()
        assert ac.lc.allowed_actions("acct-1", STRANGER) == frozenset()

    def test_confirm_offered_without_guessing_the_token(self, sp: World) -> None:
        """The token and the prerequisites are inputs: confirm is offered before they are known."""
        sp.open()
        sp.to_pending_confirm()
        sp.port_outs.pending = ["+15550100"]
        assert Action.CONFIRM in sp.lc.allowed_actions("acct-1", OWNER)
        assert sp.port_outs.calls == []


def test_policy_with_member_confirm_is_honoured(store, clock) -> None:
    """Permissions come from the policy: a variant that lets members confirm lets them."""
    permissions = {a.value: sorted(r.value for r in rs) for a, rs in policies.ALLCLIENTS.permissions.items()}
    permissions["confirm"] = ["member", "owner"]
    policy: Policy = attrs.evolve(policies.ALLCLIENTS, permissions=permissions, waivers=("owner_confirms",))
    world = World(policy, store, clock)
    world.open()
    world.to_pending_confirm()
    assert world.lc.confirm("acct-1", MEMBER).state is State.RESTORABLE


class TestOnePolicyPerAccount:
    def test_commands_refuse_an_account_of_another_policy(self, store, clock) -> None:
        """An account remembers its policy; another policy's lifecycle refuses to act on it."""
        from account_lifecycle import PolicyMismatch

        smrtphone = World(policies.SMRTPHONE, store, clock)
        allclients = World(policies.ALLCLIENTS, store, clock)
        record = smrtphone.open()
        assert record.policy == "smrtphone"
        before = smrtphone.snapshot()
        with pytest.raises(PolicyMismatch) as caught:
            allclients.lc.request_cancellation("acct-1", OWNER)
        assert (caught.value.account_policy, caught.value.lifecycle_policy) == ("smrtphone", "allclients")
        with pytest.raises(PolicyMismatch):
            allclients.lc.allowed_actions("acct-1", OWNER)
        assert smrtphone.snapshot() == before

    def test_sweep_never_runs_another_policys_purgers(self, store, clock) -> None:
        """A sweep of one policy leaves due accounts of another policy alone."""
        allclients = World(policies.ALLCLIENTS, store, clock)
        allclients.open()
        allclients.purgers["contacts"].fail_times = 1
        assert allclients.cancel().state is State.CANCELLED  # due for a retry
        smrtphone = World(policies.SMRTPHONE, store, clock)
        clock.advance(timedelta(hours=1))
        assert smrtphone.lc.sweep().purged == ()
        assert all(p.calls == [] for p in smrtphone.purgers.values())
        assert allclients.lc.sweep().restorable == ("acct-1",)
