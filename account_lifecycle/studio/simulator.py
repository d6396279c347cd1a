"""The studio's simulator: one sample account under the edited policy, run by the real
``Lifecycle`` on a ``MemoryStore`` with a ``ManualClock`` and recording purgers.

It holds no account data but its own sample (owner ``owner``, member ``member``); the
clock moves only when told, and each move is followed by a sweep, as the host's scheduler
would run one. A refused command changes nothing and comes back as its error's words.
A counterexample from ``verify`` replays step by step, each step saying what the proof
expected and what the engine did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from account_lifecycle.adapters.memory import MemoryStore
from account_lifecycle.audit import format_time
from account_lifecycle.clock import ManualClock
from account_lifecycle.duration import Duration
from account_lifecycle.errors import LifecycleError
from account_lifecycle.lifecycle import Lifecycle
from account_lifecycle.model import AccountRecord, Action, Actor, State, SurveyOutcome
from account_lifecycle.policy import Policy
from account_lifecycle.testing.fakes import (
    PendingItems,
    RecordingPurger,
    fake_identity_keys,
    recording_purgers,
)

__all__ = ["ACCOUNT", "ACTORS", "START", "Simulator", "SimulatorError"]

ACCOUNT: Final = "sample"
START: Final = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
ACTORS: Final = {
    "owner": Actor.user("owner"),
    "member": Actor.user("member"),
    "support": Actor.support("agent"),
    "system": Actor.system(),
}
#: The relations a counterexample may name, ``stranger`` included (a user with no relation).
_REPLAY_ACTORS: Final = {**ACTORS, "stranger": Actor.user("stranger")}
COMMANDS: Final = tuple(a.value for a in Action if a not in (Action.OPEN, Action.PURGE))
_UNITS: Final = ("days", "months")
_MAX_CLOCK: Final = 1200  # days or months in one move
_NEVER_FAILS: Final = 0
_ALWAYS_FAILS: Final = 10**9
_FORWARD: Final = (State.ACTIVE, State.SURVEYED, State.PENDING_CONFIRM)


class SimulatorError(ValueError):
    """A request the simulator cannot take (unknown actor, action, unit...): a 400, nothing done."""


def _refusal(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def _text(inputs: Mapping[str, Any], name: str, limit: int = 200) -> str | None:
    value = inputs.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise SimulatorError(f"{name} must be a string of at most {limit} characters")
    return value


class Simulator:
    """One sample account, its clock and its purgers, under *policy*."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.clock = ManualClock(START)
        self.purgers: dict[str, RecordingPurger] = recording_purgers(policy)
        self.checks = {name: PendingItems() for name in policy.prerequisites}
        self.lifecycle = Lifecycle(
            policy,
            store=MemoryStore(),
            purgers=self.purgers.values(),
            prerequisites=self.checks,
            clock=self.clock,
            identity_keys=fake_identity_keys("studio"),  # the sample account's identifiers only
        )
        self.lifecycle.open(ACCOUNT, owner="owner", members=("member",))
        self.log: list[str] = [f"{format_time(START)} sample account opened (owner, member)"]
        self.purgers_fail = False

    # -- settings --------------------------------------------------------------------------

    def set_options(self, *, purgers_fail: bool, prerequisites_pending: bool) -> None:
        self.purgers_fail = purgers_fail
        for purger in self.purgers.values():
            purger.fail_times = _ALWAYS_FAILS if purgers_fail else _NEVER_FAILS
        for check in self.checks.values():
            check.pending = ["sample item"] if prerequisites_pending else []

    def _say(self, text: str) -> None:
        self.log.append(f"{format_time(self.clock.now())} {text}")

    # -- commands --------------------------------------------------------------------------

    def act(self, actor: str, action: str, inputs: Mapping[str, Any]) -> str | None:
        """Run *action* as *actor* with the page's *inputs*; the refusal in words, or None."""
        if actor not in _REPLAY_ACTORS:
            raise SimulatorError(f"unknown actor; expected one of {', '.join(ACTORS)}")
        if action not in COMMANDS:
            raise SimulatorError(f"unknown action; expected one of {', '.join(COMMANDS)}")
        call = self._call(_REPLAY_ACTORS[actor], Action(action), inputs)
        try:
            call()
        except (LifecycleError, ValueError) as exc:
            self._say(f"{actor}: {action} refused: {_refusal(exc)}")
            return _refusal(exc)
        self._say(f"{actor}: {action} -> {self.record().state.value}")
        return None

    def _call(self, actor: Actor, action: Action, inputs: Mapping[str, Any]) -> Any:
        """The lifecycle call for *action*, its inputs checked (``SimulatorError``) beforehand."""
        lc = self.lifecycle
        if action is Action.SUBMIT_SURVEY:
            outcome = _text(inputs, "outcome") or SurveyOutcome.CANCEL.value
            if outcome not in {o.value for o in SurveyOutcome}:
                raise SimulatorError("outcome must be one of " + ", ".join(o.value for o in SurveyOutcome))
            return lambda: lc.submit_survey(ACCOUNT, actor, SurveyOutcome(outcome))
        if action is Action.CONFIRM:
            return self._confirm(actor, inputs)
        if action is Action.TRANSFER_OWNERSHIP:
            new_owner = _text(inputs, "new_owner") or "member"
            return lambda: lc.transfer_ownership(ACCOUNT, actor, new_owner)
        if action is Action.CANCEL_SERVICE:
            service = _text(inputs, "service") or next(iter(self.policy.services), "messages")
            return lambda: lc.cancel_service(ACCOUNT, actor, service)
        if action in (Action.PLACE_HOLD, Action.RELEASE_HOLD):
            category = _text(inputs, "category") or self._first_category()
            if action is Action.RELEASE_HOLD:
                return lambda: lc.release_hold(ACCOUNT, actor, category)
            reason = _text(inputs, "reason") or "litigation hold (simulated)"
            return lambda: lc.place_hold(ACCOUNT, actor, category, reason)
        if action in (Action.ADD_MEMBER, Action.REMOVE_MEMBER):
            user = _text(inputs, "user") or "member"
            team_call = lc.add_member if action is Action.ADD_MEMBER else lc.remove_member
            return lambda: team_call(ACCOUNT, actor, user)
        if action is Action.CHANGE_IDENTITY:
            identity = _text(inputs, "identity") or "renamed@example.com"
            return lambda: lc.change_identity(ACCOUNT, actor, identity)
        simple = {
            Action.REQUEST_CANCELLATION: lc.request_cancellation,
            Action.SKIP_SURVEY: lc.skip_survey,
            Action.WITHDRAW: lc.withdraw,
            Action.RESTORE: lc.restore,
        }
        command = simple[action]
        return lambda: command(ACCOUNT, actor)

    def _first_category(self) -> str:
        held = list(self.record().holds)
        if held:
            return held[0]
        return next((c.name for c in self.policy.purge.categories), "")

    def _confirm(self, actor: Actor, inputs: Mapping[str, Any]) -> Any:
        token = _text(inputs, "token")
        acks = inputs.get("acknowledgements", [])
        if not isinstance(acks, list) or not all(isinstance(a, str) and len(a) <= 200 for a in acks):
            raise SimulatorError("acknowledgements must be a list of ids")
        if len(acks) > 100:
            raise SimulatorError("acknowledgements: too many")
        window = _text(inputs, "window")
        minutes = inputs.get("login_minutes_ago")
        if minutes is not None and (
            isinstance(minutes, bool) or not isinstance(minutes, int) or not 0 <= minutes <= 10**6
        ):
            raise SimulatorError("login_minutes_ago must be a whole number of minutes, 0 or more")
        logged_in = None if minutes is None else self.clock.now() - timedelta(minutes=minutes)
        return lambda: self.lifecycle.confirm(
            ACCOUNT, actor, token, tuple(acks), window=window, authenticated_at=logged_in
        )

    # -- time ------------------------------------------------------------------------------

    def move_clock(self, amount: int, unit: str) -> None:
        """Move the clock by *amount* days or months (calendar months), then sweep."""
        if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= _MAX_CLOCK:
            raise SimulatorError(f"amount must be a whole number from 1 to {_MAX_CLOCK}")
        if unit not in _UNITS:
            raise SimulatorError("unit must be 'days' or 'months'")
        now = self.clock.now()
        if unit == "days":
            self.clock.set(now + timedelta(days=amount))
        else:
            self.clock.set(Duration.parse(f"{amount} months").add_to(now))
        self._say(f"clock moved {amount} {unit}")
        self.sweep()

    def sweep(self) -> None:
        report = self.lifecycle.sweep()
        for word, ids in (
            ("purged", report.purged),
            ("failed", report.failed),
            ("restorable", report.restorable),
        ):
            if ids:
                self._say(f"sweep: {word}")

    # -- starting states -------------------------------------------------------------------

    def drive_to(self, target: State) -> None:
        """Take the sample account to *target* by the policy's own commands; ``SimulatorError``
        if the policy never leads there."""
        for _ in range(8):
            state = self.record().state
            if state is target:
                self._say(f"sample account started in {target.value}")
                return
            if not self._step_towards(state, target):
                break
        raise SimulatorError(f"this policy does not lead the sample account to {target.value}")

    def _step_towards(self, state: State, target: State) -> bool:
        inputs: dict[str, Any] = {
            "token": self.policy.confirmation.token_for(ACCOUNT),
            "acknowledgements": [a.id for a in self.policy.confirmation.acknowledgements],
            "login_minutes_ago": 0,
            "outcome": SurveyOutcome.CANCEL.value,
        }
        if state is State.ACTIVE:
            actions = [Action.REQUEST_CANCELLATION]
        elif state is State.SURVEYED:
            actions = [Action.SUBMIT_SURVEY, Action.SKIP_SURVEY]
        elif state is State.PENDING_CONFIRM:
            actions = [Action.CONFIRM]
            if target is State.CANCELLED:  # a purge that fails once leaves it there
                for purger in self.purgers.values():
                    purger.fail_times = 1
        elif state is State.RESTORABLE and target is State.PURGED:
            until = self.record().restorable_until
            if until is None:
                return False
            self.clock.set(max(until, self.clock.now()))
            self.sweep()
            return self.record().state is not State.RESTORABLE
        elif state is State.CANCELLED:
            self.clock.advance(timedelta(hours=1))
            self.sweep()
            return self.record().state is not State.CANCELLED
        else:
            return False
        for action in actions:
            for actor in ACTORS:
                if self.act(actor, action.value, inputs) is None:
                    return True
        return False

    # -- replaying a counterexample ----------------------------------------------------------

    def replay(self, path: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Take each move of a ``verify`` counterexample; each comes back with what the proof
        said would happen and what the engine did."""
        out = []
        for number, move in enumerate(path, start=1):
            actor, action = str(move.get("actor")), str(move.get("action"))
            inputs = move.get("inputs") or {}
            before = self.record().state
            seen = len(self.lifecycle.history(ACCOUNT))
            if actor == "clock":
                refused = self._time_passes(action, inputs)
            elif action == "purge":
                refused = self._system_purge(inputs)
            elif action in COMMANDS:
                refused = self.act(actor, action, self._replay_inputs(action, inputs))
            else:  # the system's own moves (settle, expire): a sweep is what runs them
                self.sweep()
                refused = None
            after = self.record().state
            expected = move.get("to")
            # a confirm also runs the cancel-time purge inline: the states it passed through count
            passed = {e.to_state.value for e in self.lifecycle.history(ACCOUNT)[seen:]} | {after.value}
            out.append(
                {
                    "number": number,
                    "step": f"{actor}: {action}",
                    "from": before.value,
                    "to": after.value,
                    "refused": refused,
                    "expected": expected,
                    "agrees": (expected is None) == (refused is not None)
                    and (expected is None or expected in passed),
                }
            )
        return out

    def _replay_inputs(self, action: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """A counterexample's abstract inputs (``token=right``) as the page would type them."""
        if action == Action.CONFIRM:
            right = self.policy.confirmation.token_for(ACCOUNT)
            token = right if inputs.get("token") != "wrong" else f"{right or 'CONFIRM'}!"
            every = [a.id for a in self.policy.confirmation.acknowledgements]
            acks = [] if inputs.get("acknowledgements") == "none" else every
            pending = inputs.get("prerequisites") == "pending"
            for check in self.checks.values():
                check.pending = ["sample item"] if pending else []
            return {
                "token": token,
                "acknowledgements": acks,
                "window": inputs.get("window") or None,
                "login_minutes_ago": None if inputs.get("login") == "none" else 0,
            }
        if action == Action.SUBMIT_SURVEY:
            return {"outcome": inputs.get("outcome")}
        return {key: str(value) for key, value in inputs.items() if key in ("service", "new_owner", "user")}

    def _time_passes(self, action: str, inputs: Mapping[str, Any]) -> str | None:
        timeline = self.lifecycle.preview(ACCOUNT)
        if action == "phase_ends":
            number = int(str(inputs.get("phase", "1")))
            ends = [p.ends for p in timeline.phases if p.number == number]
            if not ends:
                return "no such phase"
            self.clock.set(max(ends[0], self.clock.now()))
        elif timeline.restorable_until is not None:
            self.clock.set(max(timeline.restorable_until, self.clock.now()))
        self._say(f"time passes: {action.replace('_', ' ')}")
        return None

    def _system_purge(self, inputs: Mapping[str, Any]) -> str | None:
        fails = inputs.get("result") == "failed"
        if fails:
            for purger in self.purgers.values():
                purger.fail_times = 1
        self.clock.advance(timedelta(hours=1))  # past any retry backoff
        self.sweep()
        self.set_options(purgers_fail=self.purgers_fail, prerequisites_pending=False)
        return None

    # -- what the page shows -----------------------------------------------------------------

    def record(self) -> AccountRecord:
        return self.lifecycle.get(ACCOUNT)

    def view(self) -> dict[str, Any]:
        record = self.record()
        lc = self.lifecycle

        def when(moment: datetime | None) -> str | None:
            return None if moment is None else format_time(moment)

        return {
            "policy": self.policy.label,
            "now": format_time(self.clock.now()),
            "state": record.state.value,
            "cancelled_at": when(record.cancelled_at),
            "restorable_until": when(record.restorable_until),
            "purge": {
                name: {
                    "status": progress.status.value,
                    "attempts": progress.attempts,
                    "error": progress.error,
                }
                for name, progress in sorted(record.purge.items())
            },
            "holds": {name: {"by": hold.by, "reason": hold.reason} for name, hold in record.holds.items()},
            "reminders": [
                {"before": r.before, "at": format_time(r.at), "sent_at": when(r.sent_at)}
                for r in record.reminders
            ],
            "allowed": {
                name: sorted(a.value for a in lc.allowed_actions(ACCOUNT, actor))
                for name, actor in ACTORS.items()
            },
            "history": [
                {
                    "seq": e.seq,
                    "at": format_time(e.at),
                    "actor": str(e.actor),
                    "action": str(e.action),
                    "from": None if e.from_state is None else e.from_state.value,
                    "to": e.to_state.value,
                }
                for e in lc.history(ACCOUNT)
            ],
            "timeline": lc.preview(ACCOUNT).to_dict(),
            "erased_by_purgers": {name: len(p.calls) for name, p in sorted(self.purgers.items()) if p.calls},
            "options": {
                "purgers_fail": self.purgers_fail,
                "prerequisites_pending": any(c.pending for c in self.checks.values()),
            },
            "log": self.log[-30:],
        }
