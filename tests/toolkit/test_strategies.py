"""The toolkit's strategies generate only valid values, reach every option, and drive the
lifecycle to the answers the contract gives (exact tokens, acknowledgements, window ends)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from account_lifecycle import (
    AccountRecord,
    Action,
    Actor,
    ConfirmationPolicy,
    Duration,
    Lifecycle,
    ManualClock,
    MemoryStore,
    MissingAcknowledgements,
    Policy,
    ReauthenticationRequired,
    RecoveryPolicy,
    Relation,
    State,
    SurveyOutcome,
    SurveyPolicy,
    WrongConfirmationToken,
    policies,
)
from account_lifecycle.testing import strategies as lst
from account_lifecycle.testing.fakes import PendingItems, fake_identity_keys, recording_purgers
from account_lifecycle.testing.reference import window_end

START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
#: A bounded, deterministic search that stops at the first value found (no shrinking).
REACH = settings(
    max_examples=3000,
    database=None,
    derandomize=True,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def lifecycle(policy: Policy, clock: ManualClock | None = None) -> Lifecycle:
    """A lifecycle of *policy* on a fresh memory store with recording purgers and clear checks."""
    return Lifecycle(
        policy,
        store=MemoryStore(),
        clock=clock or ManualClock(START),
        purgers=recording_purgers(policy).values(),
        prerequisites={name: PendingItems() for name in policy.prerequisites},
        identity_keys=fake_identity_keys(),
    )


def at_confirmation(lc: Lifecycle, account_id: str = "acct-1") -> Actor:
    """Open an account owned by 'owner-1' and take it to PENDING_CONFIRM; return the owner."""
    owner = Actor.user("owner-1")
    lc.open(account_id, owner="owner-1", members={"member-1"})
    record = lc.request_cancellation(account_id, owner)
    if record.state is State.SURVEYED:
        lc.submit_survey(account_id, owner, SurveyOutcome.CANCEL)
    return owner


# -- policies --------------------------------------------------------------------------------


@given(policy=lst.policies())
def test_generated_policies_validate_and_round_trip_through_toml(policy: Policy) -> None:
    """Every generated policy validates again when rebuilt (no PolicyError) and reads back
    from its own TOML unchanged."""
    assert attrs.evolve(policy) == policy
    assert Policy.from_toml(policy.to_toml()) == policy


@given(policy=lst.policies())
def test_generated_policies_follow_the_cross_field_rules(policy: Policy) -> None:
    """Expiry purges only with a window, no after_cancel reuse with one, protected categories
    apart from purged ones, and owner_confirms waived when others may confirm."""
    has_window = policy.recovery.has_window
    assert has_window or policy.purge.at("expiry") == ()
    assert not (has_window and any(r.when == "at_once" for r in policy.identity.values()))
    assert not (has_window and policy.identity_reuse == "after_cancel")
    assert set(policy.purge.protected).isdisjoint(c.name for c in policy.purge.categories)
    others_confirm = policy.permissions[Action.CONFIRM] - {Relation.OWNER}
    assert not others_confirm or "owner_confirms" in policy.waivers


OPTIONS: dict[str, Callable[[Policy], bool]] = {
    "survey off": lambda p: p.survey.mode == "off",
    "survey optional": lambda p: p.survey.mode == "optional",
    "survey required with every outcome": lambda p: (
        p.survey.mode == "required" and len(p.survey.outcomes) == 3
    ),
    "survey offering cancel alone": lambda p: p.survey.mode != "off" and p.survey.outcomes == ("cancel",),
    "no token": lambda p: p.confirmation.token is None,
    "an ASCII token": lambda p: p.confirmation.token is not None and p.confirmation.token.isascii(),
    "a non-ASCII token": lambda p: p.confirmation.token is not None and not p.confirmation.token.isascii(),
    "a token with an inner space": lambda p: " " in (p.confirmation.token or ""),
    "three acknowledgements": lambda p: len(p.confirmation.acknowledgements) == 3,
    "two prerequisites": lambda p: len(p.prerequisites) == 2,
    "support restores": lambda p: Relation.SUPPORT in p.permissions[Action.RESTORE],
    "members confirm": lambda p: Relation.MEMBER in p.permissions[Action.CONFIRM],
    "nobody restores": lambda p: p.permissions[Action.RESTORE] == frozenset(),
    "no window": lambda p: p.recovery.window is None,
    "a window in days": lambda p: p.recovery.window is not None and p.recovery.window.unit == "days",
    "a window in weeks": lambda p: p.recovery.window is not None and p.recovery.window.unit == "weeks",
    "a window in months": lambda p: p.recovery.window is not None and p.recovery.window.unit == "months",
    "a window in years": lambda p: p.recovery.window is not None and p.recovery.window.unit == "years",
    "an expiry purge": lambda p: p.purge.at("expiry") != (),
    "cancel and expiry purges": lambda p: p.purge.at("expiry") != () and p.purge.at("cancel") != (),
    "protected categories": lambda p: len(p.purge.protected) >= 2,
    "both on_cancel effects": lambda p: len(p.on_cancel) == 2,
    "identity reuse after cancel": lambda p: p.identity_reuse == "after_cancel",
    "identity reuse never": lambda p: p.identity_reuse == "never",
    "two services": lambda p: len(p.services) == 2,
    "a waiver": lambda p: p.waivers != (),
    "a non-ASCII name": lambda p: not p.name.isascii(),
    # the closure features (docs/closure-features.md)
    "recovery phases": lambda p: len(p.recovery.phases) >= 2,
    "window choices": lambda p: len(p.recovery.choices) >= 2,
    "reminders": lambda p: len(p.recovery.reminders) >= 2,
    "a token template": lambda p: "{account_id}" in (p.confirmation.token or ""),
    "a step-up login": lambda p: p.confirmation.fresh_login is not None,
    "holds that wait": lambda p: p.purge.on_hold == "wait" and p.purge.categories != (),
    "holds that retain": lambda p: p.purge.on_hold == "retain" and p.purge.categories != (),
    "identity rules for two kinds": lambda p: len(p.identity) == 2,
    "an identity quarantine after a delay": lambda p: any(r.when == "after" for r in p.identity.values()),
}


@pytest.mark.parametrize("option", list(OPTIONS))
def test_policies_reach_every_option(option: str) -> None:
    """policies() generates each variant a host may write (found within a bounded search)."""
    found = find(lst.policies(), OPTIONS[option], settings=REACH)

    assert OPTIONS[option](found) is True


def test_parts_of_a_policy_can_be_pinned() -> None:
    """A strategy handed for a part is used for that part; the dependent parts follow."""
    pinned = lst.policies(survey=st.just(SurveyPolicy("off", ())), window=st.just(Duration(3, "months")))

    found = find(pinned, lambda p: p.purge.at("expiry") != (), settings=REACH)

    assert (found.survey, found.recovery.window) == (SurveyPolicy("off", ()), Duration(3, "months"))
    assert found.identity_reuse in ("after_purge", "never")


# -- tokens ----------------------------------------------------------------------------------

TOKEN_KINDS: dict[str, Callable[[str | None], bool]] = {
    "exact": lambda t: t == "CONFIRM",
    "none": lambda t: t is None,
    "empty": lambda t: t == "",
    "lower case": lambda t: t == "confirm",
    "mixed case": lambda t: t is not None and t.upper() == "CONFIRM" and t not in ("CONFIRM", "confirm"),
    "leading space": lambda t: t == " CONFIRM",
    "trailing line break": lambda t: t == "CONFIRM\n",
    "inner space": lambda t: (
        t is not None and t.replace(" ", "") == "CONFIRM" and t.strip() == t != "CONFIRM"
    ),
    "non-breaking space": lambda t: t is not None and "\u00a0" in t,
    "fullwidth": lambda t: t == "\uff23\uff2f\uff2e\uff26\uff29\uff32\uff2d",
    "Cyrillic O": lambda t: t is not None and "\u041e" in t and len(t) == 7,
    "Greek letter": lambda t: t is not None and any("\u0391" <= c <= "\u03a9" for c in t),
    "zero-width": lambda t: (
        t is not None and any(z in t for z in ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"))
    ),
    "very long": lambda t: t is not None and len(t) >= 10_000,
    "truncated": lambda t: t == "CONFIR",
}


@pytest.mark.parametrize("kind", list(TOKEN_KINDS))
def test_tokens_reach_every_kind_of_typing(kind: str) -> None:
    """tokens() generates the exact token and each way of typing it wrong."""
    found = find(lst.tokens("CONFIRM"), TOKEN_KINDS[kind], settings=REACH)

    assert TOKEN_KINDS[kind](found) is True


def test_tokens_include_other_normal_forms_of_a_decomposed_token() -> None:
    """For a token typed with a combining accent, its NFC spelling is generated too."""
    decomposed = "SUPPRIME\u0301"

    found = find(
        lst.tokens(decomposed), lambda t: t == unicodedata.normalize("NFC", decomposed), settings=REACH
    )

    assert found == "SUPPRIM\u00c9"


@pytest.mark.parametrize("expected", ["CONFIRM", "delete my account", "確認", "SUPPRIME\u0301", "123"])
def test_every_wrong_token_kind_differs_from_the_token(expected: str) -> None:
    """token_variant gives a string other than the token for every wrong kind, even where the
    kind cannot apply as such (no case in '確認', nothing to normalise in '123')."""
    variants = [lst.token_variant(expected, kind) for kind in lst.WRONG_TOKEN_KINDS]

    assert expected not in variants
    assert len(variants) == len(lst.WRONG_TOKEN_KINDS) == 10


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), expected=lst.policy_tokens())
def test_confirm_accepts_exactly_the_policys_token(data: st.DataObject, expected: str) -> None:
    """With every acknowledgement given, confirm accepts a typed token if and only if it is the
    policy's token, code point for code point."""
    policy = attrs.evolve(
        policies.SMRTPHONE,
        confirmation=ConfirmationPolicy(expected, policies.SMRTPHONE.confirmation.acknowledgements),
    )
    typed = data.draw(lst.tokens(expected), label="typed")
    lc = lifecycle(policy)
    owner = at_confirmation(lc)
    acks = [a.id for a in policy.confirmation.acknowledgements]

    if typed == expected:
        assert lc.confirm("acct-1", owner, typed, acks).state is State.PURGED
    else:
        with pytest.raises(WrongConfirmationToken):
            lc.confirm("acct-1", owner, typed, acks)
        assert lc.get("acct-1").state is State.PENDING_CONFIRM


# -- acknowledgements ------------------------------------------------------------------------


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_acknowledgement_sets_decide_the_confirmation(data: st.DataObject) -> None:
    """An unknown id is a ValueError, a missing one MissingAcknowledgements naming exactly the
    missing ids in the policy's order, and all of them confirm."""
    policy = policies.SMRTPHONE
    given_ids = data.draw(lst.acknowledgement_sets(policy), label="acknowledgements")
    required = [a.id for a in policy.confirmation.acknowledgements]
    lc = lifecycle(policy)
    owner = at_confirmation(lc)

    if not given_ids <= set(required):
        with pytest.raises(ValueError, match="unknown acknowledgement id"):
            lc.confirm("acct-1", owner, "CONFIRM", given_ids)
    elif given_ids != set(required):
        with pytest.raises(MissingAcknowledgements) as info:
            lc.confirm("acct-1", owner, "CONFIRM", given_ids)
        assert info.value.missing == tuple(a for a in required if a not in given_ids)
    else:
        assert lc.confirm("acct-1", owner, "CONFIRM", given_ids).state is State.PURGED


def test_acknowledgement_sets_reach_all_none_and_unknown() -> None:
    """acknowledgement_sets() draws the full set, the empty set and sets with an unknown id."""
    strategy = lst.acknowledgement_sets(policies.SMRTPHONE)
    full = frozenset(a.id for a in policies.SMRTPHONE.confirmation.acknowledgements)

    assert find(strategy, lambda s: s == full, settings=REACH) == full
    assert find(strategy, lambda s: not s, settings=REACH) == frozenset()
    unknown = find(strategy, lambda s: not s <= full, settings=REACH)
    assert unknown - full == frozenset({"not_a_real_acknowledgement"})


# -- actors ----------------------------------------------------------------------------------


@given(actor=lst.actors())
def test_generated_actors_survive_their_text_form(actor: Actor) -> None:
    """Every generated actor is valid and parses back from str(actor)."""
    assert Actor.parse(str(actor)) == actor


def test_actors_draw_from_the_given_users() -> None:
    """With user ids, users are drawn from them (and support and the system still appear)."""
    strategy = lst.actors(["owner-1", "member-1"])

    member = Actor.user("member-1")
    assert find(strategy, lambda a: a == member, settings=REACH) == member
    assert find(strategy, lambda a: a.kind == "system", settings=REACH) == Actor.system()


# -- timelines ---------------------------------------------------------------------------------


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(timeline=lst.timelines())
def test_restore_is_offered_strictly_before_the_calendar_end_of_the_window(timeline: lst.Timeline) -> None:
    """Cancelled at the timeline's start, the account is restorable until the window's calendar
    end (months clamped to the month's last day), and support may restore at every stop of the
    clock strictly before it and at none from it on."""
    policy = attrs.evolve(policies.ALLCLIENTS, recovery=RecoveryPolicy(timeline.window))
    clock = ManualClock(timeline.cancelled_at)
    lc = lifecycle(policy, clock)
    owner = at_confirmation(lc)
    record = lc.confirm("acct-1", owner)
    end = window_end(timeline.window, timeline.cancelled_at)

    assert record.restorable_until == end
    support = Actor.support("agent-1")
    for moment in timeline.moments(end):
        clock.set(moment)
        assert (Action.RESTORE in lc.allowed_actions("acct-1", support)) is (moment < end), moment


TIMELINES: dict[str, Callable[[lst.Timeline], bool]] = {
    "cancelled on 29 February": lambda t: (t.cancelled_at.month, t.cancelled_at.day) == (2, 29),
    "cancelled on 31 January": lambda t: (t.cancelled_at.month, t.cancelled_at.day) == (1, 31),
    "cancelled on 30 November": lambda t: (t.cancelled_at.month, t.cancelled_at.day) == (11, 30),
    "a stop exactly at the end": lambda t: timedelta(0) in t.offsets,
    "a stop one microsecond before": lambda t: -timedelta(microseconds=1) in t.offsets,
    "a stop one microsecond after": lambda t: timedelta(microseconds=1) in t.offsets,
    "a window in months ending on a clamped day": lambda t: (
        t.window.unit == "months" and window_end(t.window, t.cancelled_at).day < t.cancelled_at.day
    ),
}


@pytest.mark.parametrize("shape", list(TIMELINES))
def test_timelines_cluster_around_window_ends_and_month_ends(shape: str) -> None:
    """timelines() reaches month-end cancellations and each boundary stop."""
    found = find(lst.timelines(), TIMELINES[shape], settings=REACH)

    assert TIMELINES[shape](found) is True


@given(timeline=lst.timelines())
def test_timeline_stops_are_in_order(timeline: lst.Timeline) -> None:
    """The clock only moves forward along a timeline."""
    assert list(timeline.offsets) == sorted(timeline.offsets)


# -- command sequences -------------------------------------------------------------------------


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), policy=lst.policies())
def test_any_command_sequence_is_refused_or_committed_with_a_verifying_history(
    data: st.DataObject, policy: Policy
) -> None:
    """On any generated policy, any generated command sequence only ever raises the typed
    refusals, and the account's history verifies with one event per seq number."""
    commands = data.draw(lst.command_sequences(policy), label="commands")
    clock = ManualClock(START)
    lc = lifecycle(policy, clock)
    lc.open("acct-1", owner="owner-1", members={"member-1"})

    results = lst.run_commands(lc, "acct-1", commands, clock.advance)

    assert len(results) == len(commands)
    lc.verify_history("acct-1")
    history = lc.history("acct-1")
    assert [e.seq for e in history] == list(range(1, len(history) + 1))


def test_a_command_runs_as_the_role_it_names() -> None:
    """Roles resolve against the stored record: the owner confirms, a stranger is refused."""
    lc = lifecycle(policies.ALLCLIENTS)
    lc.open("acct-1", owner="owner-1", members={"member-1"})
    commands = [
        lst.Command("request_cancellation", "stranger"),
        lst.Command("request_cancellation", "owner"),
        lst.Command("skip_survey", "owner"),
        lst.Command("confirm", "owner"),
    ]

    results = lst.run_commands(lc, "acct-1", commands)

    assert [describe(r) for r in results] == ["NotPermitted", "surveyed", "pending_confirm", "restorable"]


def describe(result: lst.CommandResult) -> str:
    """The refusal's type name, or the state the command left the account in."""
    if result.error is not None:
        return type(result.error).__name__
    assert isinstance(result.value, AccountRecord)
    return result.value.state.value


TEMPLATE = Policy.from_toml(
    'name = "typed"\n[confirmation]\ntoken = "DELETE {account_id}"\nfresh_login = "15 minutes"\n'
    '[recovery]\nchoices = ["30 days", "60 days"]\n[purge]\non_hold = "wait"\n'
    'categories = [{ name = "mail", at = "cancel" }]\n'
)


def test_command_sequences_reach_an_accepted_confirm_on_a_template_policy() -> None:
    """On a policy with a token template, step-up login, window choices and holds, a good
    share of 200 sequences reach an accepted confirm (the token is rendered for the account,
    the login is fresh), and the sequences also place holds and type stale logins."""
    seen: dict[str, int] = {"confirmed": 0, "hold placed": 0, "stale login refused": 0}

    @settings(max_examples=200, derandomize=True, database=None, deadline=None)
    @given(commands=lst.command_sequences(TEMPLATE))
    def run(commands: list[lst.Command]) -> None:
        clock = ManualClock(START)
        lc = lifecycle(TEMPLATE, clock)
        lc.open("acct-1", owner="owner-1", members={"member-1"})
        for result in lst.run_commands(lc, "acct-1", commands, clock.advance):
            action = result.command.action
            if action == "confirm" and result.error is None:
                seen["confirmed"] += 1
            if action == "place_hold" and result.error is None:
                seen["hold placed"] += 1
            if isinstance(result.error, ReauthenticationRequired):
                seen["stale login refused"] += 1

    run()

    assert seen["confirmed"] >= 50, seen
    assert seen["hold placed"] > 0, seen
    assert seen["stale login refused"] > 0, seen
    assert lst.unreachable_confirm(TEMPLATE) is None


def test_unreachable_confirm_says_why_no_sequence_confirms() -> None:
    """A policy that lets nobody confirm, or whose survey offers no 'cancel', is named."""
    nobody = attrs.evolve(
        policies.ALLCLIENTS, permissions={**policies.ALLCLIENTS.permissions, Action.CONFIRM: frozenset()}
    )

    assert lst.unreachable_confirm(nobody) == "permissions.confirm grants nobody"
    assert lst.unreachable_confirm(policies.ALLCLIENTS) is None
