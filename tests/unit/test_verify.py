"""verify, diff and diagram: built-ins prove their invariants, planted faults are caught with a
concrete counterexample that replays on a real ``Lifecycle``, and waivers are honoured by name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from account_lifecycle import (
    Acknowledgement,
    Action,
    Actor,
    ConfirmationPolicy,
    Duration,
    Lifecycle,
    LifecycleError,
    ManualClock,
    MemoryStore,
    Policy,
    PolicyError,
    PurgeCategory,
    PurgePolicy,
    RecoveryPhase,
    RecoveryPolicy,
    Relation,
    State,
    SurveyOutcome,
    SurveyPolicy,
    policies,
)
from account_lifecycle.diagram import draw, to_dot, to_mermaid
from account_lifecycle.machine import PolicyMachine
from account_lifecycle.policy import ACTIONS_WITH_PERMISSIONS, INVARIANTS, phase_bounds
from account_lifecycle.testing.fakes import FakePurger, fake_purgers
from account_lifecycle.verify import Counterexample, Step, diff_policies, verify_policy

SMRTPHONE, ALLCLIENTS = policies.SMRTPHONE, policies.ALLCLIENTS
ALL_STATES = frozenset(State)


def granting(policy: Policy, **grants: Sequence[str]) -> Policy:
    """*policy* with the permissions of some actions replaced."""
    permissions = dict(policy.permissions)
    for action, relations in grants.items():
        permissions[Action(action)] = frozenset(Relation(r) for r in relations)
    return attrs.evolve(policy, permissions=permissions)


def lines(counterexample: Counterexample | None) -> list[str]:
    assert counterexample is not None
    return counterexample.lines()


# -- replaying a counterexample on the real service ----------------------------------------


class Pending:
    def __init__(self) -> None:
        self.items: tuple[str, ...] = ()

    def __call__(self, account_id: str) -> Sequence[str]:
        return self.items


ACTORS: Mapping[str, Actor] = {
    "owner": Actor.user("owner"),
    "member": Actor.user("member"),
    "support": Actor.support("agent"),
    "system": Actor.system(),
    "stranger": Actor.user("stranger"),
}


def replay(policy: Policy, counterexample: Counterexample) -> State:
    """Play *counterexample* on a real ``Lifecycle`` (memory store, manual clock), checking
    that every move lands where the verifier said, and every refusal is the same error.

    The verifier treats the purge after a confirm as a step of its own; here the inline purge
    at confirm fails (so the account waits in ``CANCELLED``) and the purge step is a sweep."""
    assert policy.purge.at("cancel"), "replay needs a cancel-time category to hold the account"
    clock = ManualClock(datetime(2026, 1, 31, 12, 0, tzinfo=UTC))
    purgers = list(fake_purgers(policy).values())
    pending = Pending()
    lc = Lifecycle(
        policy,
        store=MemoryStore(),
        purgers=purgers,
        prerequisites=dict.fromkeys(policy.prerequisites, pending),
        clock=clock,
        retry_backoff=timedelta(0),
    )
    lc.open("account", owner="owner", members=["member"])
    for move in counterexample.path:
        assert lc.get("account").state is move.source
        error = attempt(lc, policy, move.step, clock, purgers, pending)
        if error is not None:
            assert move.refusal is not None, f"{move.step} was refused for real: {error}"
            assert move.refusal.startswith(f"{type(error).__name__}: ")
        else:
            assert move.refusal is None, f"{move.step} was accepted for real, not refused: {move.refusal}"
            assert lc.get("account").state is move.target
    return lc.get("account").state


def attempt(
    lc: Lifecycle, policy: Policy, step: Step, clock: ManualClock, purgers: list[FakePurger], pending: Pending
) -> Exception | None:
    """Take one step of a counterexample through the service's public API."""
    inputs = dict(step.inputs)
    actor = ACTORS.get(step.actor, Actor.system())
    try:
        if step.actor == "clock" and step.action == "phase_ends":
            cancelled_at = lc.get("account").cancelled_at
            assert cancelled_at is not None
            clock.set(phase_bounds(policy.recovery.phases, cancelled_at)[int(inputs["phase"]) - 1][1])
        elif step.actor == "clock":
            until = lc.get("account").restorable_until
            assert until is not None
            clock.set(until)
        elif step.action == "purge":
            for purger in purgers:
                purger.fail_when = inputs["result"] == "failed"
            lc.sweep()
        elif step.action == "confirm":
            right = policy.confirmation.token_for("account")
            token = "not the token" if inputs.get("token") == "wrong" else right
            logged_in = None if inputs.get("login") == "none" else clock.now()
            acks = (
                []
                if inputs.get("acknowledgements") == "none"
                else [a.id for a in policy.confirmation.acknowledgements]
            )
            pending.items = ("+15550100",) if inputs.get("prerequisites") == "pending" else ()
            for purger in purgers:
                purger.fail_when = True  # the account waits in CANCELLED for the purge step
            lc.confirm("account", actor, token, acks, window=inputs.get("window"), authenticated_at=logged_in)
        elif step.action == "submit_survey":
            lc.submit_survey("account", actor, inputs["outcome"])
        elif step.action == "cancel_service":
            lc.cancel_service("account", actor, inputs["service"])
        elif step.action == "transfer_ownership":
            lc.transfer_ownership("account", actor, "member")
        elif step.action in ("add_member", "remove_member"):
            getattr(lc, step.action)("account", actor, inputs["user"])
        else:
            getattr(lc, step.action)("account", actor)
    except (LifecycleError, ValueError) as exc:
        return exc
    return None


# -- the built-ins --------------------------------------------------------------------------


class TestBuiltins:
    def test_smrtphone_proves_every_invariant(self) -> None:
        """smrtPhone: all five invariants hold; restorable is unreachable, as its machine says."""
        report = verify_policy(SMRTPHONE)
        assert [(r.id, r.status) for r in report.results] == [(i, "holds") for i in INVARIANTS]
        assert report.ok is True
        assert report.reachable == ALL_STATES - {State.RESTORABLE}
        assert report.reachable == PolicyMachine(SMRTPHONE).reachable_states
        assert report.waivers_honoured == ()
        assert report.notes == (
            "permissions.skip_survey grants owner, but the survey is required: it can never happen",
            "permissions.cancel_service grants owner, but the policy lists no services: it can never happen",
        )

    def test_allclients_proves_every_invariant(self) -> None:
        """AllClients: all five invariants hold, every state is reached, nothing to note."""
        report = verify_policy(ALLCLIENTS)
        assert [(r.id, r.status) for r in report.results] == [(i, "holds") for i in INVARIANTS]
        assert report.reachable == ALL_STATES
        assert report.notes == ()

    def test_exploration_covers_every_fact(self) -> None:
        """AllClients' situations: the window open and ended, purge pending and failed, each
        with the member on the team and removed."""
        report = verify_policy(ALLCLIENTS)
        assert (report.situations, report.steps) == (18, 1372)


class TestTeamChanges:
    def test_a_removed_member_is_refused_everything(self) -> None:
        """Every step the member tries once removed is refused, even where members may confirm."""
        from account_lifecycle.verify.graph import _Graph
        from account_lifecycle.verify.model import _Model
        from account_lifecycle.verify.probes import _Alphabet, _probes

        policy = attrs.evolve(granting(ALLCLIENTS, confirm=["owner", "member"]), waivers=("owner_confirms",))
        graph = _Graph(_Model(PolicyMachine(policy), ()), _probes(policy, _Alphabet.of(policy)))
        removed = [s for s in graph.order if s.team != "-"]
        assert {s.state for s in removed} == set(State)
        member_steps = [e for s in removed for e in graph.edges[s] if e.step.actor == "member"]
        assert member_steps
        assert [e for e in member_steps if e.outcome.accepted] == []
        refusals = {e.outcome.refusal.partition(":")[0] for e in member_steps if e.outcome.refusal}
        assert refusals == {"NotPermitted", "InvalidTransition"}  # no such step in that state

    def test_a_machine_that_keeps_a_removed_members_relation_is_caught(self) -> None:
        """Planted fault: a machine that decides a removed member's confirm with a stale
        relation breaks ``owner_confirms``, with the removal on the path."""

        class StaleRelation(PolicyMachine):
            def decide(self, trigger: str, attempt: Any) -> State:
                if (
                    trigger == "confirm"
                    and attempt.actor == Actor.user("member")
                    and attempt.relation is None
                ):
                    attempt.relation = Relation.OWNER  # as if read from a cache before the removal
                return super().decide(trigger, attempt)

        assert verify_policy(ALLCLIENTS).ok
        result = verify_policy(ALLCLIENTS, machine=StaleRelation(ALLCLIENTS)).result("owner_confirms")
        assert not result.holds
        found = lines(result.counterexample)
        assert found[2:] == [
            "3. owner: remove_member user=member  [pending_confirm -> pending_confirm]",
            "4. member: confirm  [pending_confirm -> cancelled]",
            "a removed member's confirmation was accepted: it is a stranger to the account",
        ]

    def test_report_as_json_data(self) -> None:
        """``to_dict`` lists every invariant with its status."""
        data = verify_policy(ALLCLIENTS).to_dict()
        assert data["ok"] is True
        assert [(i["id"], i["status"]) for i in data["invariants"]] == [(i, "holds") for i in INVARIANTS]
        assert data["reachable"] == sorted(s.value for s in State)

    def test_verify_takes_a_policy(self) -> None:
        """Handing it a file name is a programming error."""
        with pytest.raises(TypeError, match="takes a Policy, got str"):
            verify_policy("smrtphone")  # type: ignore[arg-type]


# -- planted faults -------------------------------------------------------------------------


class TestPlantedFaults:
    def test_member_may_confirm(self) -> None:
        """``confirm = ["member"]``: a member's confirmation leads to a purge."""
        policy = granting(SMRTPHONE, confirm=["member"])
        report = verify_policy(policy)
        assert [r.id for r in report.failures] == ["owner_confirms"]
        counterexample = report.result("owner_confirms").counterexample
        assert lines(counterexample) == [
            "1. owner: request_cancellation  [active -> surveyed]",
            "2. owner: submit_survey outcome=cancel  [surveyed -> pending_confirm]",
            "3. member: confirm token=right acknowledgements=all prerequisites=clear"
            "  [pending_confirm -> cancelled]",
            "4. system: purge the cancel-time categories (done)  [cancelled -> purged]",
            "data is purged, but the cancellation was confirmed by member, not by the owner",
        ]
        assert counterexample is not None
        assert replay(policy, counterexample) is State.PURGED

    def test_support_may_confirm_on_a_restorable_policy(self) -> None:
        """Support confirming is caught on the purge that follows, through the recovery window."""
        policy = granting(ALLCLIENTS, confirm=["support"])
        counterexample = verify_policy(policy).result("owner_confirms").counterexample
        assert lines(counterexample)[-2:] == [
            "4. system: purge the cancel-time categories (done)  [cancelled -> restorable]",
            "data is purged, but the cancellation was confirmed by support, not by the owner",
        ]
        assert lines(counterexample)[2] == "3. support: confirm  [pending_confirm -> cancelled]"

    def test_nobody_may_confirm_or_withdraw(self) -> None:
        """``confirm = []`` and ``withdraw = []``: pending_confirm is a dead end, and the states
        after it are never reached; both counterexamples name the refusals."""
        policy = granting(ALLCLIENTS, confirm=[], withdraw=[])
        report = verify_policy(policy)
        assert [r.id for r in report.failures] == ["all_states_reachable", "no_dead_end"]
        dead_end = report.result("no_dead_end").counterexample
        assert lines(dead_end)[:2] == [
            "1. owner: request_cancellation  [active -> surveyed]",
            "2. owner: submit_survey outcome=cancel  [surveyed -> pending_confirm]",
        ]
        assert lines(dead_end)[2].startswith(
            "dead end: from pending_confirm neither active nor purged can be reached "
            "(stuck states: pending_confirm); every step is refused: "
            "NotPermitted: user:owner (owner) may not withdraw; "
            "NotPermitted: user:owner (owner) may not confirm"
        )
        unreachable = report.result("all_states_reachable").counterexample
        assert lines(unreachable)[2] == (
            "3. owner: confirm  [pending_confirm: refused, NotPermitted: user:owner (owner) may not confirm]"
        )
        assert lines(unreachable)[3].startswith(
            "never reached: cancelled, restorable, purged. The machine's confirm from pending_confirm "
            "to cancelled is refused whoever tries it: NotPermitted"
        )
        assert dead_end is not None
        assert unreachable is not None
        assert replay(policy, dead_end) is State.PENDING_CONFIRM
        assert replay(policy, unreachable) is State.PENDING_CONFIRM

    def test_nobody_may_ask_to_cancel(self) -> None:
        """``request_cancellation = []``: only active is ever reached."""
        policy = granting(SMRTPHONE, request_cancellation=[])
        report = verify_policy(policy)
        assert report.reachable == {State.ACTIVE}
        assert [r.id for r in report.failures] == ["all_states_reachable"]
        assert lines(report.result("all_states_reachable").counterexample)[0] == (
            "1. owner: request_cancellation  [active: refused, "
            "NotPermitted: user:owner (owner) may not request_cancellation]"
        )

    def test_survey_without_cancel_if_it_were_allowed(self) -> None:
        """The validator refuses a survey that cannot cancel; forced past it, verify catches it."""
        no_cancel = SurveyPolicy("required", (SurveyOutcome.KEEP_ACCOUNT,))
        with pytest.raises(PolicyError) as caught:
            attrs.evolve(SMRTPHONE, survey=no_cancel)
        assert caught.value.key == "survey.outcomes"
        policy = attrs.evolve(SMRTPHONE)
        object.__setattr__(policy, "survey", no_cancel)  # past the validator, as if it allowed it
        report = verify_policy(policy)
        assert [r.id for r in report.failures] == ["all_states_reachable"]
        counterexample = report.result("all_states_reachable").counterexample
        assert lines(counterexample)[1].startswith(
            "2. owner: submit_survey outcome=cancel  [surveyed: refused, ValueError: survey outcome"
        )
        assert lines(counterexample)[2].startswith(
            "never reached: pending_confirm, cancelled, purged. The machine's submit_survey from "
            "surveyed to pending_confirm is refused whoever tries it"
        )
        assert counterexample is not None
        assert replay(policy, counterexample) is State.SURVEYED

    def test_restore_without_the_window_check(self) -> None:
        """A machine whose restore lost its window guard restores after the window ended."""
        machine = PolicyMachine(ALLCLIENTS)
        for transition in machine.machine.get_transitions("restore"):
            transition.conditions = [
                c for c in transition.conditions if getattr(c.func, "name", "") != "within_window"
            ]
        report = verify_policy(ALLCLIENTS, machine=machine)
        assert [r.id for r in report.failures] == ["no_restore_after_window"]
        assert lines(report.result("no_restore_after_window").counterexample) == [
            "1. owner: request_cancellation  [active -> surveyed]",
            "2. owner: submit_survey outcome=cancel  [surveyed -> pending_confirm]",
            "3. owner: confirm  [pending_confirm -> cancelled]",
            "4. system: purge the cancel-time categories (done)  [cancelled -> restorable]",
            "5. time passes: the recovery window ends  [restorable -> restorable]",
            "6. support: restore  [restorable -> active]",
            "restore was accepted after the recovery window had ended",
        ]

    def test_restore_granted_without_a_window(self) -> None:
        """Restore granted on a policy with no window can never happen; verify says so."""
        report = verify_policy(granting(SMRTPHONE, restore=["owner", "support"]))
        assert report.ok is True
        assert report.notes == (
            "permissions.skip_survey grants owner, but the survey is required: it can never happen",
            "permissions.restore grants owner, support, but the policy has no recovery.window: "
            "it can never happen",
            "permissions.cancel_service grants owner, but the policy lists no services: it can never happen",
        )

    def test_a_way_out_of_purged(self) -> None:
        """A machine with a transition out of purged breaks purged_terminal."""
        machine = PolicyMachine(ALLCLIENTS)
        machine.machine.add_transition("restore", State.PURGED.value, State.ACTIVE.value)
        report = verify_policy(ALLCLIENTS, machine=machine)
        assert [r.id for r in report.failures] == ["no_restore_after_window", "purged_terminal"]
        assert lines(report.result("purged_terminal").counterexample)[-2:] == [
            "7. owner: restore  [purged -> active]",
            "a step was accepted after the account was purged",
        ]


# -- waivers --------------------------------------------------------------------------------


class TestWaivers:
    def test_waiver_suppresses_the_failure_and_is_named(self) -> None:
        """Admins may confirm, knowingly: the report passes and names the waiver it honoured."""
        policy = attrs.evolve(granting(SMRTPHONE, confirm=["owner", "support"]), waivers=("owner_confirms",))
        report = verify_policy(policy)
        assert report.ok is True
        assert report.result("owner_confirms").status == "waived"
        assert report.waivers_honoured == ("owner_confirms",)
        assert report.waivers_unused == ()
        assert lines(report.result("owner_confirms").counterexample)[2] == (
            "3. support: confirm token=right acknowledgements=all prerequisites=clear"
            "  [pending_confirm -> cancelled]"
        )

    def test_waiver_of_an_invariant_that_holds_is_unused(self) -> None:
        """A waiver that is not needed is reported as such, not as honoured."""
        report = verify_policy(attrs.evolve(ALLCLIENTS, waivers=("no_dead_end",)))
        assert report.ok is True
        assert report.waivers_honoured == ()
        assert report.waivers_unused == ("no_dead_end",)

    def test_waiver_covers_only_its_own_invariant(self) -> None:
        """Waiving owner_confirms leaves a dead end failing."""
        policy = attrs.evolve(
            granting(ALLCLIENTS, confirm=["member"], withdraw=[]), waivers=("owner_confirms",)
        )
        report = verify_policy(policy)
        assert [(r.id, r.status) for r in report.results if r.status != "holds"] == [
            ("owner_confirms", "waived"),
        ]
        assert report.ok is True


# -- random policies ------------------------------------------------------------------------


@st.composite
def policies_to_verify(draw: st.DrawFn) -> Policy:
    """Valid policies with arbitrary permissions, surveys, tokens, checks and windows."""
    mode = draw(st.sampled_from(["required", "optional", "off"]))
    permissions = {
        action: draw(st.frozensets(st.sampled_from(list(Relation)))) for action in ACTIONS_WITH_PERMISSIONS
    }
    window = draw(st.sampled_from([None, Duration(3, "months"), Duration(10, "days")]))
    recovery = RecoveryPolicy(window)
    form = draw(st.sampled_from(["window", "phases", "choices"]))
    granted = sorted(permissions[Action.RESTORE])
    if form == "phases" and granted:
        relations = st.lists(st.sampled_from(granted), min_size=1, unique=True).map(tuple)
        lengths = st.sampled_from([Duration(1, "months"), Duration(10, "days")])
        phases = draw(st.lists(st.builds(RecoveryPhase, lengths, relations), min_size=1, max_size=3))
        recovery = RecoveryPolicy(phases=tuple(phases))
    elif form == "choices":
        choices = draw(
            st.sampled_from([(Duration(10, "days"),), (Duration(3, "months"), Duration(10, "days"))])
        )
        recovery = RecoveryPolicy(choices=choices)
    categories = [PurgeCategory("data", "cancel")]
    if recovery.has_window and draw(st.booleans()):
        categories.append(PurgeCategory("backups", "expiry"))
    return Policy(
        name="random",
        survey=SurveyPolicy(mode),
        confirmation=ConfirmationPolicy(
            draw(st.sampled_from([None, "CONFIRM", "delete", "DELETE {account_id}"])),
            tuple(Acknowledgement(i, "text") for i in draw(st.sampled_from([(), ("a",), ("a", "b")]))),
            draw(st.sampled_from([None, Duration(15, "minutes")])),
        ),
        prerequisites=draw(st.sampled_from([(), ("port_outs",)])),
        permissions=permissions,
        recovery=recovery,
        purge=PurgePolicy(tuple(categories)),
        services=draw(st.sampled_from([(), ("messages",)])),
    )


@given(policies_to_verify())
@settings(max_examples=150)
def test_counterexamples_replay_on_the_real_service(policy: Policy) -> None:
    """Whatever the policy, each counterexample is a path the real ``Lifecycle`` takes too, and
    owner_confirms fails exactly when the permissions let someone else confirm."""
    report = verify_policy(policy)
    assert [r.id for r in report.results] == list(INVARIANTS)
    for result in report.results:
        assert (result.counterexample is None) is result.holds
        if result.counterexample is not None and result.counterexample.path:
            replay(policy, result.counterexample)
    if State.PENDING_CONFIRM in report.reachable:
        others = policy.permissions[Action.CONFIRM] - {Relation.OWNER}
        assert report.result("owner_confirms").holds is (not others)


# -- diff -----------------------------------------------------------------------------------


class TestDiff:
    def test_a_policy_does_not_differ_from_itself(self) -> None:
        """No differences between a policy and itself."""
        assert diff_policies(ALLCLIENTS, ALLCLIENTS).differences == ()

    def test_builtins_differ_where_the_sources_differ(self) -> None:
        """smrtPhone vs AllClients: services, skipping, the three confirm guards, and recovery."""
        report = diff_policies(SMRTPHONE, ALLCLIENTS)
        assert (report.a, report.b) == ("smrtphone@1", "allclients@1")
        summary = [(d.source.value, str(d.step), d.a.split(":")[0], d.b) for d in report.differences]
        assert summary == [
            ("active", "owner: cancel_service service=messages", "refuses it", "allows it: active"),
            ("surveyed", "owner: skip_survey", "refuses it", "allows it: pending_confirm"),
            (
                "pending_confirm",
                "owner: confirm token=right acknowledgements=all prerequisites=pending",
                "refuses it",
                "allows it: cancelled",
            ),
            (
                "pending_confirm",
                "owner: confirm token=right acknowledgements=none prerequisites=clear",
                "refuses it",
                "allows it: cancelled",
            ),
            (
                "pending_confirm",
                "owner: confirm token=wrong acknowledgements=all prerequisites=clear",
                "refuses it",
                "allows it: cancelled",
            ),
            (
                "cancelled",
                "system: purge the cancel-time categories (done)",
                "allows it",
                "allows it: restorable",
            ),
        ]
        assert report.differences[-1].a == "allows it: purged"
        assert [str(m) for m in report.differences[-1].path] == [
            "owner: request_cancellation  [active -> surveyed]",
            "owner: submit_survey outcome=cancel  [surveyed -> pending_confirm]",
            "owner: confirm token=right acknowledgements=all prerequisites=clear"
            "  [pending_confirm -> cancelled]",
        ]

    def test_a_widened_permission_is_one_difference_per_relation(self) -> None:
        """Letting members confirm too shows exactly the member's confirm as new behaviour."""
        report = diff_policies(SMRTPHONE, granting(SMRTPHONE, confirm=["owner", "member"]))
        assert [(str(d.step), d.a.split(":")[0], d.b) for d in report.differences] == [
            (
                "member: confirm token=right acknowledgements=all prerequisites=clear",
                "refuses it",
                "allows it: cancelled",
            )
        ]

    def test_diff_as_json_data(self) -> None:
        """``to_dict`` carries both labels and each difference's path."""
        data = diff_policies(SMRTPHONE, granting(SMRTPHONE, confirm=["owner", "member"])).to_dict()
        assert data["a"] == data["b"] == "smrtphone@1"
        assert [m["action"] for m in data["differences"][0]["path"]] == [
            "request_cancellation",
            "submit_survey",
        ]


# -- phased windows and window choices ------------------------------------------------------

PHASED = Policy.from_toml(
    """
name = "phased"
[permissions]
request_cancellation = ["owner"]
submit_survey = ["owner"]
withdraw = ["owner"]
confirm = ["owner"]
restore = ["owner", "support"]
[recovery]
phases = [
  { length = "1 month", restore = ["owner", "support"] },
  { length = "30 days", restore = ["support"] },
]
[purge]
categories = [{ name = "data", at = "cancel" }, { name = "backups", at = "expiry" }]
"""
)
CHOOSING = attrs.evolve(
    ALLCLIENTS, recovery=RecoveryPolicy(choices=(Duration(30, "days"), Duration(60, "days")))
)


def without_guard(policy: Policy, name: str) -> PolicyMachine:
    machine = PolicyMachine(policy)
    for transition in machine.machine.get_transitions():
        transition.conditions = [c for c in transition.conditions if getattr(c.func, "name", "") != name]
    return machine


class TestPhasesAndChoices:
    def test_phased_policy_proves_every_invariant_in_every_phase(self) -> None:
        """Each phase is a situation of its own, then the time past the window."""
        report = verify_policy(PHASED)
        assert report.ok is True
        assert [(r.id, r.status) for r in report.results] == [(i, "holds") for i in INVARIANTS]
        model_states = {str(s) for s in _situations(PHASED)}
        assert {
            "restorable (phase 1, confirmed by owner)",
            "restorable (phase 2, confirmed by owner)",
            "restorable (window ended, confirmed by owner, purge pending)",
        } <= model_states

    def test_a_restore_the_phase_does_not_allow_is_caught(self) -> None:
        """Without its phase guard the machine lets the owner restore in the support-only
        phase; the counterexample replays on the real service, phase boundary included."""
        report = verify_policy(PHASED, machine=without_guard(PHASED, "phase_allows"))
        assert [r.id for r in report.failures] == ["no_restore_after_window"]
        counterexample = report.result("no_restore_after_window").counterexample
        assert lines(counterexample)[-3:] == [
            "5. time passes: recovery phase 1 ends  [restorable -> restorable]",
            "6. owner: restore  [restorable -> active]",
            "restore by owner was accepted in recovery phase 2, where only support may restore",
        ]
        assert counterexample is not None
        # the real service keeps its guard: the same path ends in a refusal there
        with pytest.raises(AssertionError, match=r"refused for real: .*recovery phase 2 of 2"):
            replay(PHASED, counterexample)

    def test_a_relation_granted_restore_but_in_no_phase_is_noted(self) -> None:
        """permissions.restore grants member, no phase lets a member restore: a note says so."""
        policy = granting(PHASED, restore=["owner", "support", "member"])
        assert verify_policy(policy).notes[-1] == (
            "permissions.restore grants member, but no recovery phase lets it restore: it can never happen"
        )

    def test_each_window_choice_is_explored(self) -> None:
        """A confirm per choice (and one picking none), each with its own window to end."""
        report = verify_policy(CHOOSING)
        assert report.ok is True
        situations = {str(s) for s in _situations(CHOOSING)}
        for choice in ("30 days", "60 days"):
            assert f"restorable (window open, {choice} chosen, confirmed by owner)" in situations
            assert (
                f"restorable (window ended, {choice} chosen, confirmed by owner, purge pending)" in situations
            )

    def test_restore_past_a_chosen_window_is_caught(self) -> None:
        """Without the window guard, a restore after the chosen window ended is accepted."""
        report = verify_policy(CHOOSING, machine=without_guard(CHOOSING, "within_window"))
        assert [r.id for r in report.failures] == ["no_restore_after_window"]
        assert lines(report.result("no_restore_after_window").counterexample)[-1] == (
            "restore was accepted after the recovery window had ended"
        )

    def test_diff_names_the_choice(self) -> None:
        """A fixed window against choices: the confirm picking a window is refused by one."""
        report = diff_policies(ALLCLIENTS, CHOOSING)
        steps = [(str(d.step), d.a, d.b) for d in report.differences]
        assert (
            "owner: confirm window=30 days",
            "refuses it: ValueError: this policy offers no choice of recovery window, got "
            "window='30 days'; leave it out (recovery.choices lists the lengths an owner may pick)",
            "allows it: cancelled",
        ) in steps
        assert (
            "owner: confirm",
            "allows it: cancelled (confirmed by owner, purge pending)",
            "allows it: cancelled (30 days chosen, confirmed by owner, purge pending)",
        ) in steps

    def test_fresh_login_and_token_template_are_explored(self) -> None:
        """A confirm with and without a login, with the token rendered for the account."""
        policy = attrs.evolve(
            SMRTPHONE,
            confirmation=ConfirmationPolicy(
                "DELETE {account_id}", SMRTPHONE.confirmation.acknowledgements, Duration(15, "minutes")
            ),
        )
        report = verify_policy(policy)
        assert report.ok is True
        assert report.reachable == ALL_STATES - {State.RESTORABLE}

    def test_builtins_explore_a_bounded_space(self) -> None:
        """The exploration stays small enough for a pre-commit hook: a bound on the situations
        and steps explored, which no machine's speed moves (the time itself is a benchmark,
        ``python -m bench.startup``: well under a second per built-in policy)."""
        for policy in (SMRTPHONE, ALLCLIENTS, PHASED, CHOOSING):
            report = verify_policy(policy)
            assert 0 < report.situations <= 100, (policy.name, report.situations)
            assert 0 < report.steps <= 10_000, (policy.name, report.steps)


def _situations(policy: Policy) -> list[object]:
    from account_lifecycle.verify.graph import _Graph
    from account_lifecycle.verify.model import _Model
    from account_lifecycle.verify.probes import _Alphabet, _probes

    graph = _Graph(_Model(PolicyMachine(policy), policy.prerequisites), _probes(policy, _Alphabet.of(policy)))
    return list(graph.order)


# -- diagrams -------------------------------------------------------------------------------


class TestDiagram:
    def test_mermaid_of_smrtphone(self) -> None:
        """Every transition of the machine, labelled with trigger and guards."""
        text = draw(SMRTPHONE, "mermaid")
        confirm_guards = next(t[3] for t in PolicyMachine(SMRTPHONE).transitions() if t[0] == "confirm")
        assert [g for g in confirm_guards if g != "answers_open_request"] == [
            "may_confirm",
            "token_matches",
            "acknowledged",
            "prerequisites_clear",
        ]
        assert text == (
            "---\n"
            'title: "smrtphone@1"\n'
            "---\n"
            "stateDiagram-v2\n"
            "    direction LR\n"
            "    [*] --> active\n"
            "    active --> surveyed: request_cancellation [may_request_cancellation]\n"
            "    surveyed --> active: submit_survey"
            " [may_submit_survey, outcome_offered, outcome_keeps_account]\n"
            "    surveyed --> pending_confirm: submit_survey"
            " [may_submit_survey, outcome_offered, outcome_cancels]\n"
            "    surveyed --> active: withdraw [may_withdraw]\n"
            "    pending_confirm --> active: withdraw [may_withdraw]\n"
            f"    pending_confirm --> cancelled: confirm [{', '.join(confirm_guards)}]\n"
            "    cancelled --> purged: settle (system, once the cancel-time purge is done)\n"
            "    active --> active: transfer_ownership [may_transfer_ownership, new_owner_is_member]\n"
            + "".join(
                f"    {state} --> {state}: {line}\n"
                for line in (
                    "add_member [may_add_member, may_join]",
                    "remove_member [may_remove_member, may_leave]",
                    "change_identity [may_change_identity]",
                )
                for state in ("active", "surveyed", "pending_confirm")
            )
            + "    purged --> [*]\n"
        )

    def test_dot_has_one_edge_per_transition(self) -> None:
        """The DOT drawing has exactly the machine's transitions, system moves dashed."""
        machine = PolicyMachine(ALLCLIENTS)
        dot = to_dot(machine)
        edges = [line for line in dot.splitlines() if " -> " in line and "__start" not in line]
        assert len(edges) == len(machine.transitions()) == 12 + 3 * 3  # team changes in 3 states
        assert '    restorable -> active [label="restore [may_restore, within_window]"];' in edges
        assert (
            '    restorable -> purged [label="expire (system, once the window ends and the rest is purged)", '
            "style=dashed];"
        ) in edges
        assert dot.startswith('digraph "allclients@1" {\n')
        assert dot.endswith("}\n")

    def test_quotes_in_the_name_are_escaped(self) -> None:
        """A policy name with quotes still gives valid DOT and Mermaid front matter."""
        machine = PolicyMachine(attrs.evolve(ALLCLIENTS, name='say "hi"'))
        assert to_dot(machine).startswith('digraph "say \\"hi\\"@1" {')
        assert to_mermaid(machine).startswith('---\ntitle: "say \\"hi\\"@1"\n---\n')

    def test_unknown_format(self) -> None:
        """Only mermaid and dot are drawn."""
        with pytest.raises(ValueError, match="unknown diagram format 'png'; expected one of mermaid, dot"):
            draw(SMRTPHONE, "png")
