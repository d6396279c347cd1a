"""One test per behavioural sentence of the two source documents (see tests/SEEDS.md).

Each test runs on the in-memory store and on a SQLite file.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from world import MEMBER, OWNER, STRANGER, SUPPORT, World

from account_lifecycle import (
    AccountExists,
    Action,
    InvalidTransition,
    ManualClock,
    MissingAcknowledgements,
    NotPermitted,
    PrerequisitesPending,
    RecoveryWindowExpired,
    ServiceState,
    State,
    SurveyOutcome,
    WrongConfirmationToken,
)

# -- smrtPhone ----------------------------------------------------------------------------


class TestSmrtPhone:
    def test_sp01_cancellation_is_permanent(self, sp: World) -> None:
        """'smrtPhone Account cancelation has a permanent nature': confirm ends in PURGED."""
        sp.open()
        record = sp.cancel()
        assert record.state is State.PURGED
        assert record.restorable_until is None
        assert sp.policy.recovery.window is None

    def test_sp02_cancel_button_is_the_owners_request(self, sp: World) -> None:
        """The Cancel subscription button is request_cancellation, offered to the owner."""
        sp.open()
        assert Action.REQUEST_CANCELLATION in sp.lc.allowed_actions("acct-1", OWNER)
        assert sp.lc.request_cancellation("acct-1", OWNER).state is State.SURVEYED

    def test_sp03_pressing_the_button_opens_a_survey(self, sp: World) -> None:
        """'Pressing the button will open a survey': the survey is required, it cannot be skipped."""
        sp.open()
        sp.lc.request_cancellation("acct-1", OWNER)
        team = {Action.ADD_MEMBER, Action.REMOVE_MEMBER, Action.CHANGE_IDENTITY}  # until cancelled
        assert sp.lc.allowed_actions("acct-1", OWNER) == {Action.SUBMIT_SURVEY, Action.WITHDRAW, *team}
        with pytest.raises(InvalidTransition):
            sp.lc.skip_survey("acct-1", OWNER)
        with pytest.raises(InvalidTransition):
            sp.lc.confirm("acct-1", OWNER, "CONFIRM", sp.acks)

    def test_sp04_survey_can_keep_the_account(self, sp: World) -> None:
        """Outcome 'changing your mind and keeping the smrtPhone account' returns to ACTIVE."""
        sp.open()
        sp.lc.request_cancellation("acct-1", OWNER)
        record = sp.lc.submit_survey("acct-1", OWNER, SurveyOutcome.KEEP_ACCOUNT, {"reason": "price"})
        assert record.state is State.ACTIVE
        assert sp.purged_categories() == []
        event = sp.lc.history("acct-1")[-1]
        assert (event.action, dict(event.details)["outcome"]) == ("submit_survey", "keep_account")

    def test_sp05_survey_can_book_a_meeting(self, sp: World) -> None:
        """Outcome 'book a meeting with the Customer Success Team': ACTIVE, meeting recorded for the host."""
        sp.open()
        sp.lc.request_cancellation("acct-1", OWNER)
        record = sp.lc.submit_survey("acct-1", OWNER, SurveyOutcome.BOOK_MEETING)
        assert record.state is State.ACTIVE
        actions = [e.action for e in sp.seen]
        assert actions[-2:] == ["submit_survey", "meeting_requested"]
        assert dict(sp.seen[-1].details) == {"requested_by": "user:owner"}

    def test_sp06_confirm_by_typing_confirm(self, sp: World) -> None:
        """'Confirm cancelation by typing CONFIRM into the cancelation box.'"""
        sp.open()
        sp.to_pending_confirm()
        record = sp.lc.confirm("acct-1", OWNER, "CONFIRM", sp.acks)
        assert record.state is State.PURGED
        assert sp.policy.confirmation.token == "CONFIRM"

    @pytest.mark.parametrize(
        "typed",
        [
            "confirm",
            "Confirm",
            "CONFIRm",
            " CONFIRM",
            "CONFIRM ",
            "CONFIRM\n",
            "C O N F I R M",
            "\uff23\uff2f\uff2e\uff26\uff29\uff32\uff2d",  # fullwidth: NFKC would fold it to CONFIRM
            "C\u041eNFIRM",  # Cyrillic O
            "CONFIRM\u200b",  # zero-width space
            "CONFIRMED",
            "",
            None,
        ],
    )
    def test_sp07_any_other_form_of_the_word_is_an_error(self, sp: World, typed: str | None) -> None:
        """'Any other form of the word will trigger an error, the letters must be all capitalized.'"""
        sp.open()
        sp.to_pending_confirm()
        before = sp.snapshot()
        with pytest.raises(WrongConfirmationToken) as caught:
            sp.lc.confirm("acct-1", OWNER, typed, sp.acks)
        assert (caught.value.expected, caught.value.given) == ("CONFIRM", typed)
        assert sp.snapshot() == before

    @pytest.mark.parametrize("actor", [MEMBER, STRANGER, SUPPORT])
    def test_sp08_only_the_account_owner_may_cancel(self, sp: World, actor) -> None:
        """'You can ask for a cancelation only if you are the Account Owner.'"""
        sp.open()
        with pytest.raises(NotPermitted) as caught:
            sp.lc.request_cancellation("acct-1", actor)
        assert caught.value.action is Action.REQUEST_CANCELLATION
        sp.to_pending_confirm()
        with pytest.raises(NotPermitted):
            sp.lc.confirm("acct-1", actor, "CONFIRM", sp.acks)
        assert sp.lc.get("acct-1").state is State.PENDING_CONFIRM

    def test_sp09_acknowledge_unported_numbers_are_lost(self, sp: World) -> None:
        """'You will need to acknowledge ... that you will lose any ... numbers ... not ported out.'"""
        sp.open()
        sp.to_pending_confirm()
        with pytest.raises(MissingAcknowledgements) as caught:
            sp.lc.confirm("acct-1", OWNER, "CONFIRM", ["data_permanently_deleted", "no_credit_refund"])
        assert caught.value.missing == ("unported_numbers_lost",)
        texts = {a.id: a.text for a in sp.policy.confirmation.acknowledgements}
        assert "not ported out" in texts["unported_numbers_lost"]
        assert sp.lc.get("acct-1").state is State.PENDING_CONFIRM

    def test_sp10_all_smrtphone_data_is_deleted(self, sp: World) -> None:
        """'All of your data ... (agents, call flows, billing history, call recordings) will be
        permanently deleted.'"""
        sp.open()
        sp.cancel()
        assert {"agents", "call_flows", "billing_history", "call_recordings"} <= set(sp.purged_categories())
        erased = [e.category for e in sp.lc.receipt("acct-1").erased]
        assert erased == ["agents", "call_flows", "billing_history", "call_recordings", "phone_numbers"]

    def test_sp11_remaining_credit_is_forfeited(self, sp: World) -> None:
        """'You can no longer use any remaining credit ... There is no refund.'"""
        sp.open()
        sp.cancel()
        actions = [e.action for e in sp.lc.history("acct-1")]
        assert actions.count("credit_forfeited") == 1
        assert "no_credit_refund" in sp.acks

    def test_sp12_phone_numbers_are_removed(self, sp: World) -> None:
        """'All phone numbers remaining on your account will be removed and cannot be recovered.'"""
        sp.open()
        sp.cancel()
        assert sp.purgers["phone_numbers"].accounts() == ["acct-1"]
        with pytest.raises(InvalidTransition):
            sp.lc.restore("acct-1", OWNER)

    def test_sp13_crm_data_is_never_touched(self, sp: World) -> None:
        """'smrtPhone will not delete or modify anything from your CRM workspace.'"""
        sp.open()
        sp.cancel()
        assert sp.purgers["crm_contacts"].calls == []
        assert sp.purgers["crm_logs"].calls == []
        assert sp.lc.receipt("acct-1").kept == ("crm_contacts", "crm_logs")

    def test_sp14_numbers_must_be_ported_out_before_cancelling(self, sp: World) -> None:
        """'All number transfers must be fully complete before you cancel.'"""
        sp.open()
        sp.to_pending_confirm()
        sp.port_outs.pending = ["+15550100", "+15550101"]
        before = sp.snapshot()
        with pytest.raises(PrerequisitesPending) as caught:
            sp.lc.confirm("acct-1", OWNER, "CONFIRM", sp.acks)
        assert caught.value.pending == {"port_outs": ("+15550100", "+15550101")}
        assert sp.snapshot() == before
        sp.port_outs.pending = []
        assert sp.lc.confirm("acct-1", OWNER, "CONFIRM", sp.acks).state is State.PURGED

    def test_sp15_no_reactivation(self, sp: World) -> None:
        """'smrtPhone does not support account reactivation.' Nobody may restore, not even support."""
        sp.open()
        sp.cancel()
        for actor in (OWNER, SUPPORT):
            assert sp.lc.allowed_actions("acct-1", actor) == frozenset()
            with pytest.raises(InvalidTransition):
                sp.lc.restore("acct-1", actor)
        assert State.RESTORABLE not in sp.lc.machine.reachable_states

    def test_sp16_same_email_fresh_account(self, sp: World) -> None:
        """'You will be able to use the same CRM account (email) ... but you will start from scratch.'"""
        sp.open(identity="boss@example.com")
        with pytest.raises(AccountExists):
            sp.lc.open("acct-2", owner="owner", identity="boss@example.com")
        sp.cancel()
        fresh = sp.lc.open("acct-2", owner="owner", identity="boss@example.com")
        assert (fresh.state, fresh.version, fresh.purge) == (State.ACTIVE, 1, {})
        assert [e.action for e in sp.lc.history("acct-2")] == ["open"]

    def test_sp17_an_honest_conversation_before_leaving(self, sp: World) -> None:
        """'If there is any possibility that you would stay ...': the owner can withdraw at any
        step before confirming, and nothing is lost."""
        sp.open()
        sp.lc.request_cancellation("acct-1", OWNER)
        assert sp.lc.withdraw("acct-1", OWNER).state is State.ACTIVE
        sp.to_pending_confirm()
        assert sp.lc.withdraw("acct-1", OWNER).state is State.ACTIVE
        assert sp.purged_categories() == []


# -- AllClients ---------------------------------------------------------------------------


class TestAllClients:
    def test_ac01_closing_deletes_all_data(self, ac: World) -> None:
        """'All of your data will be permanently deleted ... contacts, appointments, to-dos, email
        templates, autoresponders, and all historical information.'"""
        ac.open()
        ac.cancel()
        assert ac.purged_categories() == sorted(
            ["contacts", "appointments", "todos", "email_templates", "autoresponders", "history"]
        )

    def test_ac02_cannot_be_undone_by_the_customer(self, ac: World) -> None:
        """'This action cannot be undone': the owner has no way back once confirmed."""
        ac.open()
        ac.cancel()
        assert ac.lc.allowed_actions("acct-1", OWNER) == frozenset()
        with pytest.raises(NotPermitted):
            ac.lc.restore("acct-1", OWNER)

    def test_ac03_contact_support_before_closing(self, ac: World) -> None:
        """'We encourage you to contact our support team ... before closing': the survey offers
        a meeting with support, which keeps the account."""
        ac.open()
        ac.lc.request_cancellation("acct-1", OWNER)
        assert SurveyOutcome.BOOK_MEETING in ac.policy.survey.outcomes
        assert ac.lc.submit_survey("acct-1", OWNER, SurveyOutcome.BOOK_MEETING).state is State.ACTIVE
        assert ac.lc.history("acct-1")[-1].action == "meeting_requested"

    def test_ac04_the_cancel_button_is_the_owners(self, ac: World) -> None:
        """The red button in Billing & Plan is request_cancellation by the owner; members cannot."""
        ac.open()
        with pytest.raises(NotPermitted):
            ac.lc.request_cancellation("acct-1", MEMBER)
        assert ac.lc.request_cancellation("acct-1", OWNER).state is State.SURVEYED

    def test_ac05_optional_survey_then_plain_confirm(self, ac: World) -> None:
        """'You will be prompted to confirm this action and may be asked to complete an optional survey.'"""
        ac.open()
        ac.lc.request_cancellation("acct-1", OWNER)
        assert Action.SKIP_SURVEY in ac.lc.allowed_actions("acct-1", OWNER)
        assert ac.lc.skip_survey("acct-1", OWNER).state is State.PENDING_CONFIRM
        assert ac.policy.confirmation.token is None
        assert ac.lc.confirm("acct-1", OWNER).state is State.RESTORABLE

    def test_ac06_survey_may_also_be_answered(self, ac: World) -> None:
        """The optional survey, when answered with 'cancel', also leads to the confirmation."""
        ac.open()
        ac.lc.request_cancellation("acct-1", OWNER)
        record = ac.lc.submit_survey("acct-1", OWNER, SurveyOutcome.CANCEL, {"reason": "moving"})
        assert record.state is State.PENDING_CONFIRM

    def test_ac07_data_deleted_immediately(self, ac: World) -> None:
        """'Your account and all data will be permanently deleted immediately': the purge runs
        before confirm returns."""
        ac.open()
        ac.to_pending_confirm()
        record = ac.confirm()
        assert len(ac.purged_categories()) == 6
        assert {name: p.status.value for name, p in record.purge.items()} == {
            "contacts": "done", "appointments": "done", "todos": "done",
            "email_templates": "done", "autoresponders": "done", "history": "done",
            "backups": "pending",
        }  # fmt: skip

    def test_ac08_nothing_is_deleted_before_confirming(self, ac: World) -> None:
        """'Consider exporting important information' first: until confirm, nothing is erased
        and the owner can still step back."""
        ac.open()
        ac.to_pending_confirm()
        assert ac.purged_categories() == []
        assert ac.lc.withdraw("acct-1", OWNER).state is State.ACTIVE

    def test_ac09_restorable_from_backups_for_three_months(self, ac: World, clock: ManualClock) -> None:
        """'We may be able to restore your account from backups for up to 3 months after cancellation.'"""
        ac.open()
        record = ac.cancel()
        assert record.restorable_until == datetime(2027, 2, 28, 12, 0, tzinfo=UTC)
        clock.set(datetime(2027, 2, 28, 11, 59, 59, tzinfo=UTC))
        restored = ac.lc.restore("acct-1", SUPPORT)
        assert (restored.state, restored.purge, restored.restorable_until) == (State.ACTIVE, {}, None)

    def test_ac10_recovery_goes_through_support(self, ac: World) -> None:
        """'Contact cases@allclients.com if you need assistance with account recovery': support
        restores on the owner's behalf, the owner cannot restore alone."""
        ac.open()
        ac.cancel()
        assert ac.lc.allowed_actions("acct-1", SUPPORT) == {Action.RESTORE}
        with pytest.raises(NotPermitted):
            ac.lc.restore("acct-1", OWNER)
        ac.lc.restore("acct-1", SUPPORT)
        event = ac.lc.history("acct-1")[-1]
        assert (event.action, str(event.actor), dict(event.details)["on_behalf_of"]) == (
            "restore", "support:agent-7", "owner"
        )  # fmt: skip

    def test_ac11_after_three_months_data_cannot_be_recovered(self, ac: World, clock: ManualClock) -> None:
        """'After 3 months, account data cannot be recovered': restore at or after the end is
        refused, and the sweep erases the backups."""
        ac.open()
        record = ac.cancel()
        assert ac.purgers["backups"].calls == []
        clock.set(record.restorable_until)
        with pytest.raises(RecoveryWindowExpired):
            ac.lc.restore("acct-1", SUPPORT)
        report = ac.lc.sweep()
        assert report.purged == ("acct-1",)
        assert ac.purgers["backups"].accounts() == ["acct-1"]
        assert ac.lc.get("acct-1").state is State.PURGED

    def test_ac12_team_access_ends(self, ac: World) -> None:
        """'All team member access will be terminated when the main account is canceled.'"""
        ac.open(members=("member", "member-2"))
        ac.cancel()
        revoked = [e for e in ac.seen if e.action == "team_access_revoked"]
        assert [dict(e.details) for e in revoked] == [{"members": ("member", "member-2")}]
        assert ac.lc.allowed_actions("acct-1", MEMBER) == frozenset()

    def test_ac13_transfer_ownership_instead(self, ac: World) -> None:
        """'... or transferring account ownership if appropriate': the old owner stays a member."""
        ac.open()
        record = ac.lc.transfer_ownership("acct-1", OWNER, "member")
        assert (record.owner, record.members) == ("member", frozenset({"owner"}))
        with pytest.raises(NotPermitted):
            ac.lc.request_cancellation("acct-1", OWNER)

    def test_ac14_restore_within_three_months_then_a_new_account(self, ac: World, clock: ManualClock) -> None:
        """'After 3 months, account data is permanently deleted, but you're welcome to create a new
        account': the identity stays held until the purge, then it is free."""
        ac.open(identity="me@example.com")
        ac.cancel()
        with pytest.raises(AccountExists):
            ac.lc.open("acct-2", owner="owner", identity="me@example.com")
        clock.advance(timedelta(days=92))
        ac.lc.sweep()
        assert ac.lc.open("acct-2", owner="owner", identity="me@example.com").state is State.ACTIVE

    def test_ac15_cancel_just_messages(self, ac: World) -> None:
        """'You can cancel Messages separately': the service ends, the account stays active."""
        ac.open()
        record = ac.lc.cancel_service("acct-1", OWNER, "messages")
        assert (record.state, dict(record.services)) == (State.ACTIVE, {"messages": ServiceState.CANCELLED})
        assert ac.purged_categories() == []
        with pytest.raises(InvalidTransition):
            ac.lc.cancel_service("acct-1", OWNER, "messages")
        with pytest.raises(ValueError, match="unknown service 'twilio'"):
            ac.lc.cancel_service("acct-1", OWNER, "twilio")

    def test_ac16_problems_first_go_to_support(self, ac: World) -> None:
        """'Before canceling, please contact our support team': a meeting request keeps the
        account and is recorded for the host to act on."""
        ac.open()
        ac.lc.request_cancellation("acct-1", OWNER)
        ac.lc.submit_survey("acct-1", OWNER, "book_meeting", {"problem": "sync fails"})
        assert [e.action for e in ac.seen][-2:] == ["submit_survey", "meeting_requested"]
        assert ac.lc.get("acct-1").state is State.ACTIVE
