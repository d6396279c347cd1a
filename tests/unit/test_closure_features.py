"""Issue 10, the policy-driven half: phased recovery windows and window choices, token
templates, step-up authentication, the timeline preview and prerequisites with reasons.
Each is read from and written to TOML, enforced by the service, understood by verify."""

from __future__ import annotations

import json
import unicodedata
import zoneinfo
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from account_lifecycle import (
    Action,
    Actor,
    ConfirmationPolicy,
    Duration,
    KeptCategory,
    Lifecycle,
    ManualClock,
    MemoryStore,
    NotPermitted,
    PendingItem,
    Policy,
    PolicyError,
    PrerequisitesPending,
    PurgeCategory,
    PurgePolicy,
    ReauthenticationRequired,
    RecoveryPhase,
    RecoveryPolicy,
    RecoveryWindowExpired,
    Relation,
    State,
    SurveyPolicy,
    Timeline,
    WrongConfirmationToken,
    policies,
)
from account_lifecycle.diagram import draw
from account_lifecycle.machine import CLOCK_SKEW
from account_lifecycle.testing.fakes import fake_purgers
from account_lifecycle.verify import verify_policy

START = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
OWNER, MEMBER, SUPPORT = Actor.user("ann"), Actor.user("bob"), Actor.support("desk")
ACTORS = {Relation.OWNER: OWNER, Relation.MEMBER: MEMBER, Relation.SUPPORT: SUPPORT}
EVERYONE = (Relation.OWNER, Relation.MEMBER, Relation.SUPPORT)


def base(**changes: object) -> Policy:
    """No survey, everyone may restore, one category erased at cancel: the parts under test vary."""
    policy = Policy(
        name="closure",
        survey=SurveyPolicy("off"),
        permissions={
            Action.REQUEST_CANCELLATION: {"owner"},
            Action.WITHDRAW: {"owner"},
            Action.CONFIRM: {"owner"},
            Action.RESTORE: {"owner", "member", "support"},
        },
        purge=PurgePolicy((PurgeCategory("contacts", "cancel"),)),
    )
    return attrs.evolve(policy, **changes)


def service(policy: Policy, **kwargs: object) -> tuple[Lifecycle, ManualClock]:
    clock = ManualClock(START)
    purgers = list(fake_purgers(policy, items=2).values())
    lc = Lifecycle(policy, store=MemoryStore(), purgers=purgers, clock=clock, **kwargs)  # type: ignore[arg-type]
    return lc, clock


def pending(lc: Lifecycle, account_id: str = "acc-1") -> None:
    lc.open(account_id, owner="ann", members=["bob"])
    lc.request_cancellation(account_id, OWNER)


# -- durations ------------------------------------------------------------------------------


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "fixed"),
        [("15 minutes", timedelta(minutes=15)), ("1 minute", timedelta(minutes=1)),
         ("2 hours", timedelta(hours=2)), ("1 hour", timedelta(hours=1)), ("3 days", timedelta(days=3)),
         ("2 weeks", timedelta(weeks=2)), ("3 months", None), ("1 year", None)],
    )  # fmt: skip
    def test_minutes_and_hours_are_fixed_lengths(self, text: str, fixed: timedelta | None) -> None:
        """Minutes, hours, days and weeks have a fixed length; months and years stay calendar units."""
        duration = Duration.parse(text)
        assert (str(duration), duration.fixed) == (text, fixed)

    @given(st.sampled_from(["minutes", "hours", "days", "weeks", "months", "years"]), st.integers(1, 99))
    def test_every_unit_prints_and_parses_back(self, unit: str, amount: int) -> None:
        """``Duration.parse(str(d)) == d`` for every unit, singular or plural."""
        duration = Duration(amount, unit)
        assert Duration.parse(str(duration)) == duration

    def test_months_are_still_clamped_calendar_months(self) -> None:
        """31 January + 1 month is the last day of February, not 3 March."""
        assert Duration(1, "months").add_to(START) == datetime(2026, 2, 28, 12, 0, tzinfo=UTC)


# -- policy files ---------------------------------------------------------------------------

SALESFORCE = """
name = "salesforce-like"
[permissions]
request_cancellation = ["owner"]
confirm = ["owner"]
restore = ["owner", "support"]
[survey]
mode = "off"
[confirmation]
token = "DELETE {account_id}"
fresh_login = "15 minutes"
[recovery]
phases = [
  { length = "30 days", restore = ["owner", "support"] },
  { length = "30 days", restore = ["support"] },
]
"""


_FIRST = '{ length = "30 days", restore = ["owner", "support"] }'
_SECOND = '{ length = "30 days", restore = ["support"] }'


def key_of(text: str) -> str:
    with pytest.raises(PolicyError) as caught:
        Policy.from_toml(text)
    return caught.value.key


class TestPolicyFiles:
    def test_the_issue_example_reads_and_round_trips(self) -> None:
        """Phases, a token template and a fresh login, read from TOML and written back."""
        policy = Policy.from_toml(SALESFORCE)
        assert policy.recovery.phases == (
            RecoveryPhase(Duration(30, "days"), (Relation.OWNER, Relation.SUPPORT)),
            RecoveryPhase(Duration(30, "days"), (Relation.SUPPORT,)),
        )
        assert policy.recovery.window is None
        assert policy.recovery.has_window
        assert policy.confirmation.fresh_login == Duration(15, "minutes")
        assert Policy.from_toml(policy.to_toml()) == policy

    def test_choices_read_and_round_trip(self) -> None:
        """``choices`` keeps its order: the first is the default."""
        policy = Policy.from_toml('name = "c"\n[recovery]\nchoices = ["60 days", "30 days"]\n')
        assert policy.recovery.choices == (Duration(60, "days"), Duration(30, "days"))
        assert Policy.from_toml(policy.to_toml()) == policy

    @pytest.mark.parametrize(
        ("edit", "key"),
        [
            (("[recovery]", '[recovery]\nwindow = "3 months"'), "recovery.phases"),
            (("[recovery]", '[recovery]\nchoices = ["3 days"]'), "recovery.choices"),
            (('restore = ["support"] }', 'restore = ["member"] }'), "recovery.phases[1].restore"),
            (('restore = ["support"] }', "restore = [] }"), "recovery.phases[1].restore"),
            (('restore = ["support"] }', 'restore = ["admin"] }'), "recovery.phases[1].restore"),
            (('restore = ["support"] }', 'restore = ["support", "support"] }'), "recovery.phases[1].restore"),
            (('restore = ["support"] }', 'restore = "support" }'), "recovery.phases[1].restore"),
            ((_SECOND, '{ length = "30 days" }'), "recovery.phases[1].restore"),
            ((_FIRST, _FIRST.replace("30 days", "30 minutes")), "recovery.phases[0].length"),
            ((_FIRST, _FIRST.replace('"30 days"', '"-1"')), "recovery.phases[0].length"),
            ((_FIRST, _FIRST.replace("30 days", "100 years")), "recovery.phases"),
            (("{account_id}", "{user}"), "confirmation.token"),
            (("{account_id}", "{Account_ID}"), "confirmation.token"),
            (("{account_id}", "{ account_id }"), "confirmation.token"),
            (('"15 minutes"', '"25 hours"'), "confirmation.fresh_login"),
            (('"15 minutes"', '"1 month"'), "confirmation.fresh_login"),
            (('"15 minutes"', '"15"'), "confirmation.fresh_login"),
            (('"15 minutes"', "15"), "confirmation.fresh_login"),
        ],
    )  # fmt: skip
    def test_each_mistake_names_its_key(self, edit: tuple[str, str], key: str) -> None:
        """Every broken rule is a ``PolicyError`` naming the key to fix."""
        old, new = edit
        assert old in SALESFORCE
        assert key_of(SALESFORCE.replace(old, new, 1)) == key

    def test_a_phase_needs_permission_to_restore_and_says_how_to_fix_it(self) -> None:
        """permissions.restore says who may ever restore; a phase cannot widen it."""
        text = SALESFORCE.replace('restore = ["support"] }', 'restore = ["member"] }')
        with pytest.raises(PolicyError) as caught:
            Policy.from_toml(text)
        assert caught.value.message == (
            "'member' may restore in this phase, but permissions.restore does not grant it; "
            "add 'member' to permissions.restore (who may ever restore)"
        )

    def test_duplicate_choice_and_window_in_hours(self) -> None:
        """Choices are listed once; recovery windows are counted in days or longer."""
        assert key_of('name = "c"\n[recovery]\nchoices = ["3 days", "3 days"]\n') == "recovery.choices[1]"
        assert key_of('name = "c"\n[recovery]\nwindow = "48 hours"\n') == "recovery.window"

    def test_other_braces_are_plain_text(self) -> None:
        """Only a name in braces reads as a placeholder: ``{}`` and ``{!}`` are typed as they are."""
        policy = base(confirmation=ConfirmationPolicy("DELETE {} {!}"))
        assert policy.confirmation.token_for("acc-1") == "DELETE {} {!}"

    def test_builtins_are_unchanged(self) -> None:
        """The built-ins use none of the features, and their files say so."""
        for policy in (policies.SMRTPHONE, policies.ALLCLIENTS):
            assert (policy.recovery.phases, policy.recovery.choices) == ((), ())
            assert policy.confirmation.fresh_login is None
            assert "phases" not in policy.to_toml()
            assert "fresh_login" not in policy.to_toml()


_RELATION_SETS = st.lists(st.sampled_from(EVERYONE), min_size=1, max_size=3, unique=True).map(tuple)
_WINDOWS = st.builds(Duration, st.integers(1, 400), st.sampled_from(["days", "weeks", "months"]))
_TOKEN_WORDS = st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=8)


@st.composite
def closure_policies(draw: st.DrawFn) -> Policy:
    """Valid policies using any of the features: a window, phases or choices; a fixed or
    templated token; a fresh login or none."""
    form = draw(st.sampled_from(["none", "window", "phases", "choices"]))
    recovery = RecoveryPolicy()
    if form == "window":
        recovery = RecoveryPolicy(draw(_WINDOWS))
    elif form == "phases":
        phases = draw(st.lists(st.builds(RecoveryPhase, _WINDOWS, _RELATION_SETS), min_size=1, max_size=4))
        recovery = RecoveryPolicy(phases=tuple(phases))
    elif form == "choices":
        recovery = RecoveryPolicy(
            choices=tuple(draw(st.lists(_WINDOWS, min_size=1, max_size=4, unique=True)))
        )
    word = draw(_TOKEN_WORDS)
    token = draw(st.sampled_from([None, word, f"{word} {{account_id}}", "{account_id}"]))
    fresh = draw(st.none() | st.builds(Duration, st.integers(1, 24), st.just("hours")))
    categories = [PurgeCategory("contacts", "cancel")]
    if recovery.has_window:
        categories.append(PurgeCategory("backups", "expiry"))
    return base(
        confirmation=ConfirmationPolicy(token, (), fresh),
        recovery=recovery,
        purge=PurgePolicy(tuple(categories), ("crm",)),
    )


@given(closure_policies())
def test_generated_policies_round_trip_and_prove_their_invariants(policy: Policy) -> None:
    """``from_toml(to_toml(p)) == p``, and verify proves all five invariants of each."""
    assert Policy.from_toml(policy.to_toml()) == policy
    report = verify_policy(policy)
    assert report.ok, [r.counterexample for r in report.failures]


# -- phased windows -------------------------------------------------------------------------


def phased(lengths: Sequence[int], allowed: Sequence[tuple[Relation, ...]]) -> Policy:
    phases = tuple(RecoveryPhase(Duration(n, "days"), r) for n, r in zip(lengths, allowed, strict=True))
    return base(recovery=RecoveryPolicy(phases=phases))


class TestPhasedWindows:
    @given(
        st.lists(st.tuples(st.integers(1, 40), _RELATION_SETS), min_size=1, max_size=4),
        st.integers(0, 24 * 170),
        st.sampled_from(EVERYONE),
    )
    def test_restore_is_accepted_exactly_in_the_phases_that_allow_the_relation(
        self, spec: list[tuple[int, tuple[Relation, ...]]], hours: int, relation: Relation
    ) -> None:
        """Whatever the phases and the moment, restore succeeds iff the clock is in a phase that
        lists the relation; allowed_actions says the same beforehand; the window ends with the
        last phase (a model of plain day counts, apart from the library's)."""
        policy = phased([n for n, _ in spec], [r for _, r in spec])
        lc, clock = service(policy)
        pending(lc)
        record = lc.confirm("acc-1", OWNER)
        ends = [START + timedelta(days=sum(n for n, _ in spec[: i + 1])) for i in range(len(spec))]
        assert record.restorable_until == ends[-1]
        clock.advance(timedelta(hours=hours))
        now = clock.now()
        phase = next((i for i, end in enumerate(ends) if now < end), None)
        expected = phase is not None and relation in spec[phase][1]
        actor = ACTORS[relation]
        assert (Action.RESTORE in lc.allowed_actions("acc-1", actor)) is expected
        if expected:
            assert lc.restore("acc-1", actor).state is State.ACTIVE
        else:
            error = RecoveryWindowExpired if phase is None else NotPermitted
            with pytest.raises(error):
                lc.restore("acc-1", actor)
            assert lc.get("acc-1").state is State.RESTORABLE

    def test_the_refusal_names_the_phase_and_its_dates(self) -> None:
        """In the support-only phase the owner learns when their own phase ended."""
        lc, clock = service(Policy.from_toml(SALESFORCE))
        pending(lc)
        lc.confirm("acc-1", OWNER, "DELETE acc-1", authenticated_at=START)
        clock.set(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))  # the first moment of phase 2
        with pytest.raises(NotPermitted) as caught:
            lc.restore("acc-1", OWNER)
        assert str(caught.value) == (
            "user:ann (owner) may not restore: recovery phase 2 of 2 runs from 2026-03-02T12:00:00Z "
            "until 2026-04-01T12:00:00Z, and only support may restore in it; owner could restore in "
            "phase 1, which ended at 2026-03-02T12:00:00Z"
        )
        assert caught.value.reason.startswith("recovery phase 2 of 2")

    def test_a_relation_whose_phase_is_still_ahead_is_told_when_it_starts(self) -> None:
        """A cooling-off phase for support first, then the owner: the owner learns the start."""
        lc, _ = service(phased([7, 30], [(Relation.SUPPORT,), (Relation.OWNER,)]))
        pending(lc)
        lc.confirm("acc-1", OWNER)
        with pytest.raises(
            NotPermitted, match="owner may restore from phase 2, which starts at 2026-02-07T12:00:00Z"
        ):
            lc.restore("acc-1", OWNER)

    def test_a_relation_that_may_restore_again_later_is_told_both_phases(self) -> None:
        """Owner, then support alone, then owner again: in the middle phase the owner learns
        when their first phase ended and when they may restore again."""
        lc, clock = service(phased([7, 7, 30], [(Relation.OWNER,), (Relation.SUPPORT,), (Relation.OWNER,)]))
        pending(lc)
        lc.confirm("acc-1", OWNER)
        clock.advance(timedelta(days=8))
        with pytest.raises(NotPermitted) as caught:
            lc.restore("acc-1", OWNER)
        assert caught.value.reason is not None
        assert "owner could restore in phase 1, which ended at" in caught.value.reason
        assert "owner may restore again from phase 3, which starts at" in caught.value.reason

    def test_phases_chain_calendar_months(self) -> None:
        """31 January + 1 month is 28 February; the next month runs to 28 March."""
        lc, _ = service(
            base(
                recovery=RecoveryPolicy(
                    phases=(
                        RecoveryPhase(Duration(1, "months"), (Relation.OWNER,)),
                        RecoveryPhase(Duration(1, "months"), (Relation.SUPPORT,)),
                    )
                )
            )
        )
        pending(lc)
        assert lc.confirm("acc-1", OWNER).restorable_until == datetime(2026, 3, 28, 12, 0, tzinfo=UTC)

    def test_diagram_labels_the_restore_edge_with_its_phases(self) -> None:
        """The restore edge says who restores in each phase; built-ins keep their labels."""
        text = draw(Policy.from_toml(SALESFORCE))
        assert (
            "restorable --> active: restore [may_restore, within_window, phase_allows] "
            "(phases 30 days by owner/support, then 30 days by support)"
        ) in text
        assert "phases" not in draw(policies.ALLCLIENTS)


# -- window choices -------------------------------------------------------------------------


class TestWindowChoices:
    @given(st.lists(_WINDOWS, min_size=1, max_size=4, unique=True), st.data())
    def test_the_owner_picks_one_of_the_choices(self, choices: list[Duration], data: st.DataObject) -> None:
        """The window picked (or the first) sets restorable_until and is recorded in the audit."""
        policy = base(recovery=RecoveryPolicy(choices=tuple(choices)))
        lc, _ = service(policy)
        pending(lc)
        picked = data.draw(st.none() | st.sampled_from(choices))
        as_text = data.draw(st.booleans())
        window = None if picked is None else (str(picked) if as_text else picked)
        record = lc.confirm("acc-1", OWNER, window=window)
        used = choices[0] if picked is None else picked
        assert record.restorable_until == used.add_to(START)
        confirm = next(e for e in lc.history("acc-1") if e.action == "confirm")
        assert confirm.details["window"] == str(used)
        assert lc.preview("acc-1").window == used

    def test_an_unlisted_window_is_a_value_error_and_writes_nothing(self) -> None:
        """A length the policy does not offer is refused before anything happens."""
        lc, _ = service(base(recovery=RecoveryPolicy(choices=(Duration(30, "days"), Duration(60, "days")))))
        pending(lc)
        before = lc.get("acc-1")
        with pytest.raises(
            ValueError, match="window '45 days' is not offered; choose one of '30 days', '60 days'"
        ):
            lc.confirm("acc-1", OWNER, window="45 days")
        with pytest.raises(ValueError, match="expected a duration"):
            lc.confirm("acc-1", OWNER, window="sixty days")
        assert lc.get("acc-1") == before

    def test_a_window_without_choices_is_a_value_error(self) -> None:
        """A fixed window is not the owner's to change."""
        lc, _ = service(base(recovery=RecoveryPolicy(Duration(30, "days"))))
        pending(lc)
        with pytest.raises(ValueError, match="offers no choice of recovery window"):
            lc.confirm("acc-1", OWNER, window="30 days")

    def test_builtin_confirm_events_are_unchanged(self) -> None:
        """No window and no login are recorded for policies that use neither."""
        lc, _ = service(attrs.evolve(policies.ALLCLIENTS, purge=PurgePolicy()))
        lc.open("acc-1", owner="ann")
        lc.request_cancellation("acc-1", OWNER)
        lc.skip_survey("acc-1", OWNER)
        lc.confirm("acc-1", OWNER)
        confirm = next(e for e in lc.history("acc-1") if e.action == "confirm")
        assert sorted(confirm.details) == ["acknowledged", "cancellation_id", "token_typed"]


# -- token templates ------------------------------------------------------------------------

_ACCOUNT_IDS = st.text(st.characters(categories=["L", "N", "P", "S"]), min_size=1, max_size=30)


class TestTokenTemplates:
    @given(_ACCOUNT_IDS, _TOKEN_WORDS)
    def test_the_token_is_rendered_per_account_and_compared_exactly(self, account_id: str, word: str) -> None:
        """Exactly the rendered text confirms; the template itself, another case, surrounding
        spaces or another Unicode form are refused, each showing the rendered token."""
        template = f"{word} {{account_id}}"
        lc, _ = service(base(confirmation=ConfirmationPolicy(template)))
        pending(lc, account_id)
        expected = f"{word} {account_id}"
        misses = {template, f" {expected}", f"{expected} ", expected.swapcase(), expected.casefold()}
        misses |= {unicodedata.normalize(form, expected) for form in ("NFC", "NFD", "NFKC", "NFKD")}
        for miss in sorted(misses - {expected}):
            with pytest.raises(WrongConfirmationToken) as caught:
                lc.confirm(account_id, OWNER, miss)
            assert (caught.value.expected, caught.value.given) == (expected, miss)
        assert lc.confirm(account_id, OWNER, expected).state is State.PURGED

    def test_one_account_token_does_not_confirm_another(self) -> None:
        """The id in the typed text must be the account's own."""
        lc, _ = service(base(confirmation=ConfirmationPolicy("DELETE {account_id}")))
        pending(lc, "acc-1")
        pending(lc, "acc-2")
        with pytest.raises(WrongConfirmationToken, match="type exactly 'DELETE acc-2'"):
            lc.confirm("acc-2", OWNER, "DELETE acc-1")


# -- step-up authentication -----------------------------------------------------------------

STEP_UP = base(confirmation=ConfirmationPolicy("CONFIRM", (), Duration(15, "minutes")))


class TestStepUp:
    @given(st.integers(-3 * 3600, 3 * 3600))
    def test_a_login_counts_within_its_age_and_the_clock_skew(self, seconds: int) -> None:
        """A login at most 15 minutes old and at most one minute ahead confirms; any other is
        ``ReauthenticationRequired`` carrying the login time and the age allowed."""
        lc, clock = service(STEP_UP)
        pending(lc)
        logged_in = clock.now() + timedelta(seconds=seconds)
        fresh = -15 * 60 <= seconds <= CLOCK_SKEW.total_seconds()
        if fresh:
            assert lc.confirm("acc-1", OWNER, "CONFIRM", authenticated_at=logged_in).state is State.PURGED
        else:
            with pytest.raises(ReauthenticationRequired) as caught:
                lc.confirm("acc-1", OWNER, "CONFIRM", authenticated_at=logged_in)
            assert (caught.value.authenticated_at, caught.value.max_age) == (logged_in, timedelta(minutes=15))
            assert lc.get("acc-1").state is State.PENDING_CONFIRM

    def test_no_login_time_is_the_same_error(self) -> None:
        """A host that forgets to pass the login time gets the same refusal."""
        lc, _ = service(STEP_UP)
        pending(lc)
        with pytest.raises(ReauthenticationRequired, match="no login time was given") as caught:
            lc.confirm("acc-1", OWNER, "CONFIRM")
        assert caught.value.authenticated_at is None

    def test_guard_order_permission_then_login_then_token(self) -> None:
        """A member is refused for permission before the login; a stale login before a wrong token."""
        lc, clock = service(STEP_UP)
        pending(lc)
        with pytest.raises(NotPermitted):
            lc.confirm("acc-1", MEMBER, "wrong")
        with pytest.raises(ReauthenticationRequired):
            lc.confirm("acc-1", OWNER, "wrong", authenticated_at=clock.now() - timedelta(hours=1))
        with pytest.raises(WrongConfirmationToken):
            lc.confirm("acc-1", OWNER, "wrong", authenticated_at=clock.now())

    def test_a_naive_login_time_is_a_programming_error(self) -> None:
        """Naive datetimes mean nothing across hosts: ValueError, as everywhere in the library."""
        lc, _ = service(STEP_UP)
        pending(lc)
        with pytest.raises(ValueError, match="timezone-aware"):
            lc.confirm("acc-1", OWNER, "CONFIRM", authenticated_at=datetime(2026, 1, 31, 12, 0))
        with pytest.raises(TypeError):
            lc.confirm("acc-1", OWNER, "CONFIRM", authenticated_at="2026-01-31T12:00:00Z")  # type: ignore[arg-type]

    def test_the_login_time_is_audited_and_other_time_zones_count(self) -> None:
        """An offset login time is compared as UTC and recorded in the confirm event."""
        lc, clock = service(STEP_UP)
        pending(lc)
        tokyo = clock.now().astimezone(zoneinfo.ZoneInfo("Asia/Tokyo")) - timedelta(minutes=5)
        lc.confirm("acc-1", OWNER, "CONFIRM", authenticated_at=tokyo)
        confirm = next(e for e in lc.history("acc-1") if e.action == "confirm")
        assert confirm.details["authenticated_at"] == "2026-01-31T11:55:00.000000Z"

    def test_allowed_actions_does_not_guess_the_login(self) -> None:
        """Like the token, the login is an input: confirm is offered to the owner."""
        lc, _ = service(STEP_UP)
        pending(lc)
        assert Action.CONFIRM in lc.allowed_actions("acc-1", OWNER)


# -- timeline preview -----------------------------------------------------------------------


class TestTimeline:
    @given(closure_policies(), st.data())
    def test_the_preview_before_confirming_tells_the_dates_the_confirm_sets(
        self, policy: Policy, data: st.DataObject
    ) -> None:
        """Previewed at the moment of the confirm, every date comes true: restorable_until, the
        phases, each erasure; and the confirmed account's own preview agrees."""
        lc, clock = service(policy)
        pending(lc)
        window = (
            data.draw(st.none() | st.sampled_from(policy.recovery.choices))
            if policy.recovery.choices
            else None
        )
        before = lc.preview("acc-1", window=window)
        assert before.hypothetical is True
        record = lc.confirm(
            "acc-1",
            OWNER,
            policy.confirmation.token_for("acc-1"),
            window=window,
            authenticated_at=clock.now(),
        )
        after = lc.preview("acc-1")
        assert after.hypothetical is False
        assert before.restorable_until == after.restorable_until == record.restorable_until
        assert before.phases == after.phases
        assert before.window == after.window
        assert [(e.category, e.moment, e.at) for e in before.erasures] == [
            (e.category, e.moment, e.at) for e in after.erasures
        ]
        assert [e.done for e in after.erasures] == [e.moment == "cancel" for e in after.erasures]
        assert after.kept == (KeptCategory("crm", "protected"),)
        if before.phases:
            assert before.phases[0].starts == START
            assert before.phases[-1].ends == record.restorable_until
            assert after.current_phase == 1
        assert json.loads(after.to_json()) == after.to_dict()

    def test_an_account_far_from_cancelling_gets_dates_relative_to_at(self) -> None:
        """``at`` moves the hypothetical confirm; nothing is written."""
        policy = Policy.from_toml(SALESFORCE)
        lc, _ = service(policy)
        lc.open("acc-1", owner="ann")
        at = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
        timeline = lc.preview("acc-1", at=at)
        assert (timeline.state, timeline.cancelled_at, timeline.restorable_until) == (
            State.ACTIVE,
            at,
            at + timedelta(days=60),
        )
        assert [(p.number, p.restore) for p in timeline.phases] == [
            (1, (Relation.OWNER, Relation.SUPPORT)),
            (2, (Relation.SUPPORT,)),
        ]
        assert (timeline.token, timeline.fresh_login) == ("DELETE acc-1", Duration(15, "minutes"))
        assert len(lc.history("acc-1")) == 1

    def test_json_is_stable_and_complete(self) -> None:
        """The same account and moment give the same bytes, with every documented key."""
        lc, _ = service(
            attrs.evolve(
                policies.SMRTPHONE, purge=PurgePolicy((PurgeCategory("agents"),), ("crm_contacts",))
            ),
            prerequisites={"port_outs": lambda _: ()},
        )
        lc.open("acc-1", owner="ann")
        first, second = lc.preview("acc-1").to_json(), lc.preview("acc-1").to_json()
        assert first == second
        assert sorted(json.loads(first)) == [
            "account_id", "at", "cancelled_at", "current_phase", "erasures", "fresh_login", "hypothetical",
            "kept", "on_cancel", "phases", "policy", "restorable_until", "state", "token", "window",
            "window_choices",
        ]  # fmt: skip
        data = json.loads(first)
        assert data["restorable_until"] is None
        assert data["phases"] == []
        assert data["on_cancel"] == ["forfeit_credit", "revoke_team_access"]
        assert data["token"] == "CONFIRM"

    def test_a_purged_account_shows_what_was_erased_and_when(self) -> None:
        """After the window, every erasure is done, at its real moment."""
        policy = base(
            recovery=RecoveryPolicy(Duration(10, "days")),
            purge=PurgePolicy((PurgeCategory("contacts", "cancel"), PurgeCategory("backups", "expiry"))),
        )
        lc, clock = service(policy)
        pending(lc)
        lc.confirm("acc-1", OWNER)
        clock.advance(timedelta(days=12))
        lc.sweep()
        timeline = lc.preview("acc-1")
        assert timeline.state is State.PURGED
        assert [(e.category, e.done, e.at) for e in timeline.erasures] == [
            ("contacts", True, START),
            ("backups", True, START + timedelta(days=12)),
        ]
        assert isinstance(timeline, Timeline)

    def test_a_window_for_a_confirmed_account_is_refused(self) -> None:
        """The window was chosen at confirm: asking for another later is a ValueError."""
        lc, _ = service(base(recovery=RecoveryPolicy(choices=(Duration(30, "days"),))))
        pending(lc)
        lc.confirm("acc-1", OWNER)
        with pytest.raises(ValueError, match="already cancelled"):
            lc.preview("acc-1", window="30 days")

    def test_a_naive_at_is_refused(self) -> None:
        lc, _ = service(base())
        lc.open("acc-1", owner="ann")
        with pytest.raises(ValueError, match="timezone-aware"):
            lc.preview("acc-1", at=datetime(2026, 1, 1))


# -- prerequisites with reasons -------------------------------------------------------------

_TEXT = st.text(st.characters(categories=["L", "N", "Zs"]), max_size=12)
_ITEMS = st.lists(
    _TEXT.filter(str.strip) | st.builds(PendingItem, _TEXT.filter(str.strip), _TEXT, _TEXT), max_size=4
)


class TestPendingItems:
    @given(_ITEMS, _ITEMS)
    def test_pending_keeps_the_whats_and_items_keep_the_reasons(
        self, first: list[object], second: list[object]
    ) -> None:
        """``.pending`` is name -> the ``what`` strings (the contract), ``.items`` the PendingItems;
        the message shows each why and fix."""
        policy = base(prerequisites=("port_outs", "invoices"))
        checks = {"port_outs": lambda _: first, "invoices": lambda _: second}
        lc, _ = service(policy, prerequisites=checks)
        pending(lc)
        items = {
            name: tuple(i if isinstance(i, PendingItem) else PendingItem(str(i)) for i in values)
            for name, values in (("port_outs", first), ("invoices", second))
            if values
        }
        if not items:
            assert lc.confirm("acc-1", OWNER).state is State.PURGED
            return
        with pytest.raises(PrerequisitesPending) as caught:
            lc.confirm("acc-1", OWNER)
        assert caught.value.items == items
        assert caught.value.pending == {name: tuple(i.what for i in values) for name, values in items.items()}
        message = str(caught.value)
        for values in items.values():
            for item in values:
                assert item.what in message
                if item.why:
                    assert f"why: {item.why}" in message
                if item.fix:
                    assert f"fix: {item.fix}" in message

    @pytest.mark.parametrize("field", ["what", "why", "fix"])
    def test_a_non_string_field_is_a_type_error_naming_the_check(self, field: str) -> None:
        """A check that builds an item of the wrong shape is a bug in the host, named."""
        item = attrs.evolve(PendingItem("+15550100"), **{field: 42})
        lc, _ = service(base(prerequisites=("port_outs",)), prerequisites={"port_outs": lambda _: [item]})
        pending(lc)
        with pytest.raises(
            TypeError, match=f"prerequisite check 'port_outs' returned a PendingItem whose {field} is int 42"
        ):
            lc.confirm("acc-1", OWNER)

    def test_plain_strings_read_as_before(self) -> None:
        """The message of plain-string items is unchanged."""
        error = PrerequisitesPending(pending={"port_outs": ["+15550100"]})
        assert (
            str(error) == "prerequisites still pending, complete them before confirming: port_outs: +15550100"
        )
        assert error.items == {"port_outs": (PendingItem("+15550100"),)}
