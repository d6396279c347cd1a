"""The simulator: the real ``Lifecycle`` driving one sample account on a manual clock."""

from __future__ import annotations

import pytest

from account_lifecycle import Policy, State, policies
from account_lifecycle.studio.simulator import START, Simulator, SimulatorError
from account_lifecycle.verify import verify_policy

ALLCLIENTS = policies.path("allclients").read_text(encoding="utf-8")


@pytest.mark.parametrize("target", list(State))
def test_the_sample_account_starts_in_any_state_allclients_reaches(target: State) -> None:
    simulator = Simulator(policies.ALLCLIENTS)
    simulator.drive_to(target)
    assert simulator.record().state is target


def test_a_state_the_policy_never_reaches_is_refused() -> None:
    """SMRTPHONE has no window: no sample account can be restorable."""
    with pytest.raises(SimulatorError, match="does not lead the sample account to restorable"):
        Simulator(policies.SMRTPHONE).drive_to(State.RESTORABLE)


def test_allclients_through_confirm_then_three_months_is_purged_as_the_timeline_said() -> None:
    simulator = Simulator(policies.ALLCLIENTS)
    for action in ("request_cancellation", "skip_survey", "confirm"):
        assert simulator.act("owner", action, {}) is None
    view = simulator.view()
    assert view["state"] == "restorable"
    until = view["timeline"]["restorable_until"]
    [backups] = [e for e in view["timeline"]["erasures"] if e["category"] == "backups"]
    assert (backups["moment"], backups["at"], backups["done"]) == ("expiry", until, False)
    simulator.move_clock(3, "months")
    after = simulator.view()
    assert after["state"] == "purged"
    assert after["now"] == until == "2026-04-15T09:00:00.000000Z"
    [backups] = [e for e in after["timeline"]["erasures"] if e["category"] == "backups"]
    assert backups["done"] is True
    assert backups["at"] == until
    assert after["history"][-1]["to"] == "purged"
    assert after["erased_by_purgers"]["backups"] == 1


def test_allowed_actions_follow_the_actor() -> None:
    simulator = Simulator(policies.ALLCLIENTS)
    simulator.drive_to(State.RESTORABLE)
    allowed = simulator.view()["allowed"]
    assert "restore" in allowed["support"]
    assert "restore" not in allowed["owner"]
    assert allowed["member"] == []


def test_a_refused_command_changes_nothing_and_says_why() -> None:
    simulator = Simulator(policies.SMRTPHONE)
    simulator.drive_to(State.PENDING_CONFIRM)
    before = simulator.view()["history"]
    refused = simulator.act("owner", "confirm", {"token": "confirm", "acknowledgements": []})
    assert refused is not None
    assert refused.startswith("WrongConfirmationToken")
    assert simulator.view()["history"] == before
    assert simulator.record().state is State.PENDING_CONFIRM


def test_the_token_acknowledgements_and_login_time_are_the_pages_inputs() -> None:
    simulator = Simulator(policies.SMRTPHONE)
    simulator.drive_to(State.PENDING_CONFIRM)
    acks = [a.id for a in policies.SMRTPHONE.confirmation.acknowledgements]
    assert simulator.act("owner", "confirm", {"token": "CONFIRM", "acknowledgements": acks[:1]}) is not None
    assert simulator.act("owner", "confirm", {"token": "CONFIRM", "acknowledgements": acks}) is None
    assert simulator.record().state is State.PURGED


def test_purgers_that_fail_leave_the_account_cancelled_until_they_work() -> None:
    simulator = Simulator(policies.ALLCLIENTS)
    simulator.drive_to(State.PENDING_CONFIRM)
    simulator.set_options(purgers_fail=True, prerequisites_pending=False)
    assert simulator.act("owner", "confirm", {}) is None
    assert simulator.record().state is State.CANCELLED
    simulator.set_options(purgers_fail=False, prerequisites_pending=False)
    simulator.move_clock(1, "days")
    assert simulator.record().state is State.RESTORABLE


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.act("landlord", "withdraw", {}), "unknown actor"),
        (lambda s: s.act("owner", "open", {}), "unknown action"),
        (lambda s: s.act("owner", "confirm", {"acknowledgements": "all"}), "list of ids"),
        (lambda s: s.act("owner", "confirm", {"login_minutes_ago": -5}), "whole number of minutes"),
        (lambda s: s.act("owner", "submit_survey", {"outcome": "maybe"}), "outcome must be one of"),
        (lambda s: s.move_clock(0, "days"), "from 1 to"),
        (lambda s: s.move_clock(1, "fortnights"), "'days' or 'months'"),
        (lambda s: s.move_clock(True, "days"), "whole number"),
    ],
)
def test_bad_input_is_a_simulator_error_and_changes_nothing(call: object, message: str) -> None:
    simulator = Simulator(policies.ALLCLIENTS)
    before = simulator.view()
    with pytest.raises(SimulatorError, match=message):
        call(simulator)  # type: ignore[operator]
    assert simulator.view()["history"] == before["history"]
    assert simulator.clock.now() == START


def test_a_counterexample_replays_and_the_engine_agrees_with_the_proof() -> None:
    """Let a member confirm: ``owner_confirms`` fails, and its path runs for real."""
    policy = Policy.from_toml(ALLCLIENTS.replace('confirm = ["owner"]', 'confirm = ["owner", "member"]'))
    counterexample = verify_policy(policy).result("owner_confirms").counterexample
    assert counterexample is not None
    simulator = Simulator(policy)
    steps = simulator.replay(counterexample.to_dict()["path"])
    assert [s["step"] for s in steps][:3] == [
        "owner: request_cancellation",
        "owner: submit_survey",
        "member: confirm",
    ]
    assert all(step["agrees"] for step in steps)
    assert simulator.record().state is State.RESTORABLE
    confirms = [e for e in simulator.view()["history"] if e["action"] == "confirm"]
    assert [e["actor"] for e in confirms] == ["user:member"]


def test_a_refusal_on_the_path_is_replayed_as_a_refusal() -> None:
    """A path step the proof says is refused is refused by the engine too."""
    simulator = Simulator(policies.ALLCLIENTS)
    steps = simulator.replay(
        [{"actor": "member", "action": "request_cancellation", "inputs": {}, "from": "active", "to": None}]
    )
    assert steps[0]["refused"] is not None
    assert steps[0]["agrees"] is True


def test_reminders_are_due_before_the_window_ends_and_sent_by_the_sweep() -> None:
    text = ALLCLIENTS.replace('window = "3 months"', 'window = "3 months"\nreminders = ["7 days"]')
    simulator = Simulator(Policy.from_toml(text))
    simulator.drive_to(State.RESTORABLE)
    [reminder] = simulator.view()["reminders"]
    assert reminder == {"before": "7 days", "at": "2026-04-08T09:00:00.000000Z", "sent_at": None}
    simulator.move_clock(85, "days")
    [reminder] = simulator.view()["reminders"]
    assert reminder["sent_at"] == "2026-04-10T09:00:00.000000Z"
    assert simulator.view()["history"][-1]["action"] == "reminder"


def test_team_changes_run_in_the_simulator() -> None:
    """The team commands take the page's ``user`` (default: the sample member); the identity
    change is held as a digest, and the log names no identity."""
    simulator = Simulator(policies.ALLCLIENTS)
    assert simulator.act("owner", "remove_member", {}) is None
    assert simulator.record().members == frozenset()
    assert simulator.act("member", "request_cancellation", {}) is not None  # a stranger now
    assert simulator.act("owner", "add_member", {"user": "member"}) is None
    assert simulator.act("owner", "remove_member", {"user": "owner"}) is not None
    assert simulator.act("owner", "change_identity", {"identity": "x@example.com"}) is None
    assert simulator.lifecycle.holds_identity("sample", "x@example.com")
    assert not any("x@example.com" in line for line in simulator.log)
