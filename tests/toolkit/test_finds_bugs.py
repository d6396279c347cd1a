"""The toolkit finds real bugs: each test plants one fault in a port or in the engine, runs the
toolkit's suite or machine on it, and checks the failure names the fault with a short
counterexample."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from account_lifecycle import (
    AccountRecord,
    AccountStore,
    Actor,
    Duration,
    Lifecycle,
    MemoryStore,
    Policy,
    RecoveryPolicy,
    policies,
)
from account_lifecycle import decide as decide_module
from account_lifecycle import machine as machine_module
from account_lifecycle.errors import ReauthenticationRequired, RecoveryWindowExpired
from account_lifecycle.machine import Attempt, Guard
from account_lifecycle.testing.stateful import LifecycleStateMachine, machine_for

# the library's own functions, kept before a test plants a fault in their place
_TOKEN_MATCHES = machine_module._token_matches
_FRESH_LOGIN = machine_module._fresh_login
_CHOOSE = RecoveryPolicy.choose
_SETTLED = decide_module.settled
_DUE_STEPS = decide_module._due_steps
_REMINDER_SCHEDULE = decide_module.reminder_schedule
_QUARANTINE = decide_module._quarantine

#: Bounded, deterministic runs; one bug reported, shrunk, not explained.
FIND = settings(
    max_examples=200,
    stateful_step_count=10,
    derandomize=True,
    database=None,
    deadline=None,
    report_multiple_bugs=False,
    phases=(Phase.generate, Phase.shrink),
)


@pytest.fixture(autouse=True)
def _quiet_purge_failures() -> Iterator[None]:
    """Planted faults make purges fail on purpose; their warnings are noise here."""
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def steps_of(error: BaseException) -> list[str]:
    """The steps of the shrunk counterexample Hypothesis attached to *error* (rules only:
    no invariant checks, no teardown)."""
    notes = getattr(error, "__notes__", [])
    assert "Failing test case: <state machine>" in notes, notes
    return [
        note
        for note in notes
        if note.startswith(("state.", "accounts_"))
        and not note.startswith(("state.lifecycle_invariants()", "state.teardown()"))
    ]


def failures(result: pytest.RunResult) -> dict[str, str]:
    """Failed test name -> the first line of its error, from an inline pytester run."""
    reports = result.reprec.getfailures()  # type: ignore[attr-defined]
    return {r.nodeid.split("::")[-1]: r.longrepr.reprcrash.message.splitlines()[0] for r in reports}


# -- a purger that is not idempotent -------------------------------------------------------------

NOT_IDEMPOTENT = textwrap.dedent(
    '''
    from account_lifecycle import PurgeResult
    from account_lifecycle.testing.purger_contract import PurgerContract


    class ContactsApi:
        """Like a REST API whose DELETE answers 404 once the data is gone."""

        def __init__(self):
            self.rows = {}

        def delete_all(self, account_id):
            count = len(self.rows.pop(account_id))  # KeyError when nothing is left
            return count


    class ContactsPurger:
        category = "contacts"

        def __init__(self, api):
            self.api = api

        def purge(self, account_id, context):
            return PurgeResult(items=self.api.delete_all(account_id))


    class TestContactsPurger(PurgerContract):
        def make_purger(self):
            self.api = ContactsApi()
            return ContactsPurger(self.api)

        def seed(self, account_id, items):
            self.api.rows.setdefault(account_id, []).extend(range(items))

        def remaining(self, account_id):
            return len(self.api.rows.get(account_id, []))
    '''
)


def test_purger_contract_reports_a_purger_that_fails_when_called_again(pytester: pytest.Pytester) -> None:
    """A purger that raises once the data is gone fails the idempotency, empty-account and
    sequence checks, each naming the call; the sequence check shrinks to purging one account twice."""
    pytester.makepyfile(test_contacts=NOT_IDEMPOTENT)

    result = pytester.runpytest("-p", "no:cacheprovider", "-rf")

    result.assert_outcomes(passed=5, failed=3)
    assert failures(result) == {
        "test_a_second_purge_erases_nothing_more_and_does_not_fail": (
            "AssertionError: a second purge of 'acct-1' by purger 'contacts' raised KeyError: 'acct-1'"
        ),
        "test_an_account_with_nothing_to_erase_purges_cleanly": (
            "AssertionError: a purge of an empty account of 'acct-empty' by purger 'contacts' raised "
            "KeyError: 'acct-empty'"
        ),
        "test_any_sequence_of_purges_erases_exactly_the_purged_accounts": (
            "AssertionError: a repeated purge of 'acct-0' by purger 'contacts' raised KeyError: 'acct-0'"
        ),
    }
    # shrunk: one account, seeded with nothing, purged twice
    result.stdout.re_match_lines(
        [r"E +Failing test case: check\($", r"E +seeded=\[0\],.*", r"E +order=\[0, 0\],$"]
    )


# -- a store that loses the version check ------------------------------------------------------


class LostVersionStore(MemoryStore):
    """Saves whatever it is given: it compares the expected version with itself."""

    def save(self, record: AccountRecord, *, expected_version: int, **rest: Any) -> None:
        super().save(record, expected_version=self.get(record.account_id).version, **rest)


LOST_VERSION = textwrap.dedent(
    """
    from account_lifecycle import MemoryStore
    from account_lifecycle.testing.store_contract import StoreContract


    class LostVersionStore(MemoryStore):
        def save(self, record, *, expected_version, **rest):
            super().save(record, expected_version=self.get(record.account_id).version, **rest)


    class TestLostVersionStore(StoreContract):
        def make_store(self):
            return LostVersionStore()
    """
)


def test_store_contract_reports_a_store_that_ignores_the_expected_version(pytester: pytest.Pytester) -> None:
    """Exactly the contract's compare-and-set tests fail, each with "DID NOT RAISE ConcurrentUpdate".
    (The race of two threads is left out: whether it catches this store depends on whether its
    threads happen to interleave between a read and a write.)"""
    pytester.makepyfile(test_store=LOST_VERSION)

    result = pytester.runpytest("-p", "no:cacheprovider", "-rf", "-k", "not two_threads")

    did_not_raise = "Failed: DID NOT RAISE ConcurrentUpdate"
    assert failures(result) == {
        "test_save_with_another_version_raises_concurrent_update_and_writes_nothing[1]": did_not_raise,
        "test_save_with_another_version_raises_concurrent_update_and_writes_nothing[3]": did_not_raise,
        "test_a_refused_save_leaves_the_claim_as_it_was[plain]": did_not_raise,
        "test_a_refused_save_leaves_the_claim_as_it_was[lease]": did_not_raise,
        "test_a_refused_save_leaves_the_claim_as_it_was[release]": did_not_raise,
        "test_a_refused_save_erases_no_sealed_value": did_not_raise,
        "test_a_refused_write_writes_no_outbox_entry": did_not_raise,
    }


def test_state_machine_reports_a_lost_update_from_a_stale_read() -> None:
    """On the same store, the machine's stale_writes_rejected check reports a write decided on
    an outdated read that the store accepted; shrunk to one race on the first account."""

    class OnLostVersionStore(LifecycleStateMachine):
        policy = policies.ALLCLIENTS

        def make_store(self) -> AccountStore:
            return LostVersionStore()

    with pytest.raises(AssertionError) as info:
        run_state_machine_as_test(OnLostVersionStore, settings=FIND)

    assert str(info.value).splitlines()[0] == "expected ConcurrentUpdate, the command was accepted"
    steps = steps_of(info.value)
    assert steps == ["accounts_0 = state.first_account()", "state.race(account=accounts_0)"]


# -- a guard that trims the token ----------------------------------------------------------------


class TrimmingLifecycle(Lifecycle):
    """Forgives surrounding spaces in the typed token, which the contract forbids."""

    def confirm(
        self,
        account_id: str,
        actor: Actor,
        token: str | None = None,
        acknowledgements: Iterable[str] = (),
        **options: Any,
    ) -> AccountRecord:
        return super().confirm(
            account_id, actor, token.strip() if token else token, acknowledgements, **options
        )


class SmrtPhoneTrimming(LifecycleStateMachine):
    policy = policies.SMRTPHONE

    def make_lifecycle(self, **options: Any) -> Lifecycle:
        return TrimmingLifecycle(self.policy, **options)


def test_state_machine_reports_a_token_guard_that_trims() -> None:
    """A padded ' CONFIRM' is accepted by the trimming guard; the reference expected a refusal.
    Shrunk to opening the account and confirming with the padded token."""
    with pytest.raises(AssertionError) as info:
        run_state_machine_as_test(SmrtPhoneTrimming, settings=FIND)

    # the padded token gets past the token guard: either the confirmation is accepted, or it
    # stops at the next guard, which the reference says is never reached with a wrong token
    assert str(info.value).splitlines()[0] in {
        "expected WrongConfirmationToken, the command was accepted",
        "expected WrongConfirmationToken, got MissingAcknowledgements: these acknowledgements are "
        "required first: unported_numbers_lost, data_permanently_deleted, no_credit_refund",
    }
    steps = steps_of(info.value)
    assert len(steps) <= 3, steps
    assert steps[0] == "accounts_0 = state.first_account()"
    assert "token='padded'" in steps[-1], steps


def test_invariants_are_selected_by_name() -> None:
    """The trimming guard goes unnoticed when matches_reference, the invariant that catches it,
    is not among the checked ones: each invariant is selected on its own."""

    class OnlyChainAndVersions(SmrtPhoneTrimming):
        checked_invariants = ("chain_verifies", "versions_grow_by_one")

    run_state_machine_as_test(OnlyChainAndVersions, settings=settings(FIND, max_examples=30))

    with pytest.raises(ValueError, match=r"unknown invariants \['owner_confirms'\]"):
        type("Misspelt", (LifecycleStateMachine,), {"checked_invariants": ("owner_confirms",)})()


# -- a recovery window off by one ----------------------------------------------------------------


def _within_window_inclusive(attempt: Attempt) -> Exception | None:
    """The planted fault: ``<=`` where the contract says strictly before ``restorable_until``."""
    until = attempt.record.restorable_until
    if until is not None and attempt.now <= until:
        return None
    return RecoveryWindowExpired(
        account_id=attempt.record.account_id, restorable_until=until, now=attempt.now
    )


def test_state_machine_reports_a_restore_accepted_at_the_end_of_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Support restores exactly at restorable_until and the off-by-one guard lets it; shrunk to
    the one step that cancels and restores at the window's end."""
    monkeypatch.setattr(machine_module, "_within_window", _within_window_inclusive)

    class AllClientsOffByOne(LifecycleStateMachine):
        policy = policies.ALLCLIENTS

    with pytest.raises(AssertionError) as info:
        run_state_machine_as_test(AllClientsOffByOne, settings=FIND)

    assert str(info.value).splitlines()[0] == "expected RecoveryWindowExpired, the command was accepted"
    steps = steps_of(info.value)
    assert steps == [
        "accounts_0 = state.first_account()",
        "state.restore_at_window_end(account=accounts_0, offset=0)",
    ]


# -- faults in the closure features (docs/closure-features.md) -----------------------------------


def _policy(extra: str) -> Policy:
    return Policy.from_toml(f'name = "planted"\n[survey]\nmode = "off"\n{extra}')


TEMPLATE = _policy('[confirmation]\ntoken = "DELETE {account_id}"\n')
STEP_UP = _policy('[confirmation]\nfresh_login = "15 minutes"\n')
CHOICES = _policy('[recovery]\nchoices = ["30 days", "60 days"]\n')
PHASED = _policy(
    '[permissions]\nrequest_cancellation = ["owner"]\nwithdraw = ["owner"]\nconfirm = ["owner"]\n'
    'restore = ["owner", "support"]\n[recovery]\nphases = [\n'
    '  { length = "30 days", restore = ["owner", "support"] },\n'
    '  { length = "30 days", restore = ["support"] },\n]\n'
)
_HELD = '[recovery]\nwindow = "30 days"\n[purge]\ncategories = [{ name = "mail", at = "cancel" }]\n'
HOLD_WAIT = _policy(_HELD + 'on_hold = "wait"\n')
HOLD_RETAIN = _policy(_HELD + 'on_hold = "retain"\n')
REMINDED = _policy('[recovery]\nwindow = "30 days"\nreminders = ["7 days"]\n')
QUARANTINED = _policy('[identity]\nphone = "after 30 days"\n')


def _token_guard_without_template(template: str) -> Guard:
    """The planted fault: compares with the template as written, ``{account_id}`` and all."""
    original = _TOKEN_MATCHES(template)
    return Guard(
        original.name,
        lambda attempt: original.check(
            attrs.evolve(attempt, record=attrs.evolve(attempt.record, account_id="{account_id}"))
        ),
        needs_input=True,
    )


def _fresh_login_strict(max_age: timedelta) -> Guard:
    """The planted fault: a login exactly ``fresh_login`` old no longer counts."""
    original = _FRESH_LOGIN(max_age)

    def check(attempt: Attempt) -> Exception | None:
        at = attempt.authenticated_at
        if at is not None and attempt.now - at >= max_age:
            return ReauthenticationRequired(authenticated_at=at, max_age=max_age, now=attempt.now)
        return original.check(attempt)

    return Guard(original.name, check, needs_input=True)


def _no_phase_guard(phases: object) -> Guard:
    """The planted fault: whoever permissions.restore names restores in every phase."""
    return Guard("phase_allows", lambda attempt: None)


def _first_choice(self: RecoveryPolicy, window: object) -> Duration | None:
    """The planted fault: the owner's pick is checked, then ignored for the first choice."""
    _CHOOSE(self, window)  # type: ignore[arg-type]
    return self.choices[0] if self.choices else None


def _wait_as_retain(record: AccountRecord, key: str) -> bool:
    """The planted fault: a "wait" hold lets the account move on like a "retain" one."""
    return _SETTLED(record, key) or key in record.holds


def _retained_erased(rules: Any, record: AccountRecord, now: Any) -> Any:
    """The planted fault: categories under a "retain" hold are handed to their purgers."""
    kept = {k: h for k, h in record.holds.items() if h.mode != "retain"}
    return _DUE_STEPS(rules, attrs.evolve(record, holds=kept), now)


def _reminders_a_day_late(reminders: Any, restorable_until: datetime) -> Any:
    """The planted fault: each reminder planned one day later than its moment."""
    planned = _REMINDER_SCHEDULE(reminders, restorable_until)
    return tuple(attrs.evolve(r, at=r.at + timedelta(days=1)) for r in planned)


def _quarantine_without_delay(policy: Policy, record: AccountRecord, purged_at: datetime) -> Any:
    """The planted fault: ``after 30 days`` frees the identifier at the purge already."""
    freed = _QUARANTINE(policy, record, purged_at)
    return {kind: attrs.evolve(held, free_at=purged_at) for kind, held in freed.items()}


#: feature -> (policy, where the fault goes, the name it replaces, the fault, how the failure starts)
CLOSURE_FAULTS: dict[str, tuple[Policy, object, str, object, str]] = {
    "template": (
        TEMPLATE,
        machine_module,
        "_token_matches",
        _token_guard_without_template,
        "expected cancelled, got WrongConfirmationToken: type exactly 'DELETE {account_id}'",
    ),
    "fresh_login": (
        STEP_UP,
        machine_module,
        "_fresh_login",
        _fresh_login_strict,
        "expected cancelled, got ReauthenticationRequired",
    ),
    "phases": (
        PHASED,
        machine_module,
        "_phase_allows",
        _no_phase_guard,
        "expected NotPermitted, the command was accepted",
    ),
    "choices": (
        CHOICES,
        RecoveryPolicy,
        "choose",
        _first_choice,
        "acct-1: restorable until 2026-12-30 12:00:00+00:00, the calendar says 2027-01-29",
    ),
    "hold_wait": (
        HOLD_WAIT,
        decide_module,
        "settled",
        _wait_as_retain,
        "acct-1: stored restorable, reference cancelled",
    ),
    "hold_retain": (
        HOLD_RETAIN,
        decide_module,
        "_due_steps",
        _retained_erased,
        "acct-1: done ['mail'], reference []",
    ),
    "reminders": (
        REMINDED,
        decide_module,
        "reminder_schedule",
        _reminders_a_day_late,
        "acct-1: reminders {'7 days'",
    ),
    "quarantine": (
        QUARANTINED,
        decide_module,
        "_quarantine",
        _quarantine_without_delay,
        "acct-1: identifiers free at",
    ),
}


@pytest.mark.parametrize("feature", list(CLOSURE_FAULTS))
def test_state_machine_reports_a_fault_in_each_closure_feature(
    feature: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One fault planted in each closure feature (a token guard that does not render
    ``{account_id}``, a login exactly ``fresh_login`` old refused, no phase guard, the owner's
    window pick ignored, a "wait" hold that lets the account move on, a "retain" hold whose
    category is erased anyway, reminders planned a day late, a quarantine without its delay)
    is reported by ``machine_for(policy)`` with the message that names it, shrunk to at most
    three steps from the first account."""
    policy, home, name, fault, message = CLOSURE_FAULTS[feature]
    monkeypatch.setattr(home, name, fault)

    with pytest.raises(AssertionError) as info:
        run_state_machine_as_test(machine_for(policy), settings=FIND)

    assert str(info.value).splitlines()[0].startswith(message), str(info.value)
    steps = steps_of(info.value)
    assert steps[0] == "accounts_0 = state.first_account()"
    assert len(steps) <= 3, steps
