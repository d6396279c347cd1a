"""Exhaustive verification of a policy, and behavioural differences between two policies.

``verify_policy`` explores every abstract situation an account of the policy can reach,
driving the policy's own ``PolicyMachine.decide`` with constructed ``Attempt`` objects, so
what is proven is what the engine runs, not a second copy of the rules. A situation is the
account's state plus the facts that matter to the guards and the invariants:

- whether the recovery window is still open or has ended (in ``RESTORABLE``); with
  ``recovery.phases``, which phase the clock is in ("phase 1", "phase 2", ...: each is
  entered at its very first moment) or that the window has ended,
- which of ``recovery.choices`` the owner picked at confirm,
- which relation confirmed the cancellation under way (``owner``, ``member``, ...),
- whether purge work is pending or has failed (in ``CANCELLED``, and once the window ended).

From each situation every command is tried by every relation (``owner``, ``member``,
``support``, ``system`` and a ``stranger``), with the token right or wrong, the
acknowledgements complete or not, the prerequisites pending or clear, each window choice
(and none), and every survey outcome; the system's purge steps either succeed or fail, and
time may end a phase or the window.

The invariants, by id (``policy.INVARIANTS``):

``owner_confirms``           nothing is purged unless the owner confirmed
``no_restore_after_window``  restore is accepted only while the window is open (and, in a
                             phased window, only from a relation the current phase allows)
``purged_terminal``          nothing is accepted from ``PURGED``
``all_states_reachable``     every state the policy's machine can be in is reachable
``no_dead_end``              from every reachable situation, ``ACTIVE`` or ``PURGED`` still is

A failing invariant comes with a counterexample: the shortest path of steps, each with the
actor's relation. A policy may waive an invariant (``Policy.waivers``); the report names
each waiver it honoured.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import attrs

from account_lifecycle.errors import LifecycleError
from account_lifecycle.machine import EXPIRE, SETTLE, Attempt, PolicyMachine
from account_lifecycle.model import AccountRecord, Action, Actor, ServiceState, State, SurveyOutcome
from account_lifecycle.policy import ACTIONS_WITH_PERMISSIONS, INVARIANTS, Policy, phase_bounds

__all__ = [
    "RELATIONS",
    "Counterexample",
    "DiffReport",
    "Difference",
    "InvariantResult",
    "Move",
    "Situation",
    "Step",
    "VerificationReport",
    "diff_policies",
    "verify_policy",
]

#: The relations an actor may have to an account; ``stranger`` is a user who has none.
RELATIONS: Final = ("owner", "member", "support", "system", "stranger")
_ACTORS: Final = {
    "owner": Actor.user("owner"),
    "member": Actor.user("member"),
    "support": Actor.support("agent"),
    "system": Actor.system(),
    "stranger": Actor.user("stranger"),
}
_COMMANDS: Final = ACTIONS_WITH_PERMISSIONS
_CANCELLED_AT: Final = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)  # a month's end: windows clamp
_NOW: Final = _CANCELLED_AT + timedelta(hours=1)
_REFUSALS: Final = (LifecycleError, ValueError)
_NO_WINDOW: Final = "-"
_ACCOUNT: Final = "account"  # the id of the account explored
_DESCRIPTIONS: Final = {
    "owner_confirms": "nothing is purged unless the owner confirmed",
    "no_restore_after_window": "restore is accepted only while the recovery window is open",
    "purged_terminal": "nothing is accepted once the account is purged",
    "all_states_reachable": "every state the policy's machine can be in is reachable",
    "no_dead_end": "from every reachable situation, active or purged can still be reached",
}


# -- situations and steps -------------------------------------------------------------------


@attrs.frozen
class Situation:
    """An abstract account: its state plus the facts the guards and invariants look at."""

    state: State
    window: str = _NO_WINDOW  # "open" or "ended" while RESTORABLE
    confirmed_by: str = _NO_WINDOW  # relation whose confirm started the cancellation under way
    purge: str = _NO_WINDOW  # "pending" or "failed" while purge work is due
    choice: str = _NO_WINDOW  # the window picked from recovery.choices at confirm
    held: str = _NO_WINDOW  # "yes" while a category is under a legal hold

    def __str__(self) -> str:
        facts = []
        if self.held != _NO_WINDOW:
            facts.append("on hold")
        if self.window != _NO_WINDOW:
            facts.append(self.window if self.window.startswith("phase") else f"window {self.window}")
        if self.choice != _NO_WINDOW:
            facts.append(f"{self.choice} chosen")
        if self.confirmed_by != _NO_WINDOW:
            facts.append(f"confirmed by {self.confirmed_by}")
        if self.purge != _NO_WINDOW:
            facts.append(f"purge {self.purge}")
        return f"{self.state.value} ({', '.join(facts)})" if facts else self.state.value


@attrs.frozen
class Step:
    """One thing that happens: a command by a relation, a purge by the system, or time passing."""

    actor: str  # a relation, or "clock"
    action: str = attrs.field(converter=str)  # a command, "purge", "window_ends", or an internal event
    inputs: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        if self.actor == "clock":
            if self.action == "phase_ends":
                return f"time passes: recovery phase {dict(self.inputs)['phase']} ends"
            return "time passes: the recovery window ends"
        if self.action == "purge":
            facts = dict(self.inputs)
            return f"system: purge the {facts['categories']} categories ({facts['result']})"
        details = " ".join(f"{key}={value}" for key, value in self.inputs)
        return f"{self.actor}: {self.action}" + (f" {details}" if details else "")

    def to_dict(self) -> dict[str, Any]:
        return {"actor": self.actor, "action": self.action, "inputs": dict(self.inputs)}


@attrs.frozen
class Move:
    """A step taken from a state, and where it led (or why it was refused)."""

    step: Step
    source: State
    target: State | None = None
    refusal: str | None = None

    def __str__(self) -> str:
        if self.refusal is not None:
            return f"{self.step}  [{self.source.value}: refused, {self.refusal}]"
        assert self.target is not None
        return f"{self.step}  [{self.source.value} -> {self.target.value}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.step.to_dict(),
            "from": self.source.value,
            "to": None if self.target is None else self.target.value,
            "refused": self.refusal,
        }


@attrs.frozen
class Counterexample:
    """A concrete path that breaks an invariant, and what went wrong at its end."""

    path: tuple[Move, ...]
    conclusion: str

    def lines(self) -> list[str]:
        return [f"{number}. {move}" for number, move in enumerate(self.path, start=1)] + [self.conclusion]

    def to_dict(self) -> dict[str, Any]:
        return {"path": [move.to_dict() for move in self.path], "conclusion": self.conclusion}


@attrs.frozen
class InvariantResult:
    id: str
    holds: bool
    waived: bool
    description: str
    counterexample: Counterexample | None = None

    @property
    def status(self) -> str:
        """``"holds"``, ``"fails"``, or ``"waived"`` (fails, but the policy waives it)."""
        if self.holds:
            return "holds"
        return "waived" if self.waived else "fails"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "description": self.description,
            "counterexample": None if self.counterexample is None else self.counterexample.to_dict(),
        }


@attrs.frozen
class VerificationReport:
    """What ``verify_policy`` found: one result per invariant, and notes worth reading."""

    policy: str
    situations: int
    steps: int
    reachable: frozenset[State]
    results: tuple[InvariantResult, ...]
    waivers: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every invariant holds or is waived."""
        return all(r.status != "fails" for r in self.results)

    @property
    def failures(self) -> tuple[InvariantResult, ...]:
        return tuple(r for r in self.results if r.status == "fails")

    @property
    def waivers_honoured(self) -> tuple[str, ...]:
        """Waived invariants that fail: the policy's declared departures, in use."""
        return tuple(r.id for r in self.results if r.status == "waived")

    @property
    def waivers_unused(self) -> tuple[str, ...]:
        """Waived invariants that hold anyway: the waiver could be removed."""
        return tuple(w for w in self.waivers if w not in self.waivers_honoured)

    def result(self, invariant: str) -> InvariantResult:
        for result in self.results:
            if result.id == invariant:
                return result
        raise KeyError(invariant)

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "ok": self.ok,
            "situations": self.situations,
            "steps": self.steps,
            "reachable": sorted(s.value for s in self.reachable),
            "invariants": [r.to_dict() for r in self.results],
            "waivers_honoured": list(self.waivers_honoured),
            "waivers_unused": list(self.waivers_unused),
            "notes": list(self.notes),
        }


# -- the probes: every command by every relation with every input that matters ------------


@attrs.frozen
class _Probe:
    step: Step
    trigger: str
    inputs: Mapping[str, Any] = attrs.Factory(dict)
    pending: bool = False  # prerequisite checks report pending work
    window: str | None = None  # the window picked at confirm, as the owner would type it
    logged_in: bool = True  # the host passes a login time of the moment (else none)


def _wrong(token: str | None) -> str:
    """A near miss for *token*: another case, or one character more."""
    if token is None:
        return "CONFIRM"  # typed although the policy asks for no token
    for candidate in (token.lower(), token.upper()):
        if candidate != token:
            return candidate
    return token + "!"


@attrs.frozen
class _Alphabet:
    """Which input variations to try; shared by the policies being compared, so that each
    step means the same thing for each (``token=right`` is each policy's own token)."""

    tokens: bool
    acknowledgements: bool
    prerequisites: bool
    services: tuple[str, ...]
    windows: tuple[str, ...] = ()  # every recovery choice of the policies compared
    logins: bool = False  # a policy asks for a fresh login: try with one and without
    holds: bool = False  # a policy takes legal holds: place and release one

    @classmethod
    def of(cls, *policies: Policy) -> _Alphabet:
        services = sorted({s for p in policies for s in p.services}) or ["messages"]
        return cls(
            tokens=any(p.confirmation.token is not None for p in policies),
            acknowledgements=any(p.confirmation.acknowledgements for p in policies),
            prerequisites=any(p.prerequisites for p in policies),
            services=tuple(services),
            windows=tuple(dict.fromkeys(str(c) for p in policies for c in p.recovery.choices)),
            logins=any(p.confirmation.fresh_login is not None for p in policies),
            holds=any(p.purge.on_hold is not None and p.purge.categories for p in policies),
        )


def _confirm_inputs(
    policy: Policy, alphabet: _Alphabet
) -> Iterator[tuple[tuple[tuple[str, str], ...], dict[str, Any], bool, str | None, bool]]:
    token = policy.confirmation.token_for(_ACCOUNT)
    tokens = [("right", token), ("wrong", _wrong(token))] if alphabet.tokens else [("", token)]
    every = frozenset(a.id for a in policy.confirmation.acknowledgements)
    acks = [("all", every), ("none", frozenset())] if alphabet.acknowledgements else [("", every)]
    checks = [("clear", False), ("pending", True)] if alphabet.prerequisites else [("", False)]
    windows: list[str | None] = [None, *alphabet.windows]
    logins = [("fresh", True), ("none", False)] if alphabet.logins else [("", True)]
    for login_label, logged_in in logins:
        for token_label, token_value in tokens:
            for ack_label, ack_value in acks:
                for check_label, pending in checks:
                    for window in windows:
                        labels = (
                            ("login", login_label),
                            ("token", token_label),
                            ("acknowledgements", ack_label),
                            ("prerequisites", check_label),
                            ("window", window or ""),
                        )
                        yield (
                            tuple((k, v) for k, v in labels if v),
                            {"token": token_value, "acknowledgements": ack_value},
                            pending,
                            window,
                            logged_in,
                        )


def _probes(policy: Policy, alphabet: _Alphabet) -> tuple[_Probe, ...]:
    """Every command attempt worth trying: each command, by each relation, with each input
    variation of *alphabet* in *policy*'s own terms."""
    out: list[_Probe] = []
    for relation in RELATIONS:
        for action in _COMMANDS:
            if action is Action.SUBMIT_SURVEY:
                for outcome in SurveyOutcome:
                    step = Step(relation, action, (("outcome", outcome.value),))
                    out.append(_Probe(step, action, {"outcome": outcome}))
            elif action is Action.CONFIRM:
                for labels, inputs, pending, window, login in _confirm_inputs(policy, alphabet):
                    step = Step(relation, action, labels)
                    out.append(_Probe(step, action, inputs, pending, window, login))
            elif action is Action.CANCEL_SERVICE:
                for service in alphabet.services:
                    step = Step(relation, action, (("service", service),))
                    out.append(_Probe(step, action, {"service": service}))
            elif action is Action.TRANSFER_OWNERSHIP:
                step = Step(relation, action, (("new_owner", "member"),))
                out.append(_Probe(step, action, {"new_owner": "member"}))
            else:
                out.append(_Probe(Step(relation, action), action))
    if alphabet.holds:
        out += [_Probe(Step(r, a), a) for r in RELATIONS for a in (Action.PLACE_HOLD, Action.RELEASE_HOLD)]
    return tuple(out)


# -- one machine over abstract situations ---------------------------------------------------


@attrs.frozen
class _Outcome:
    target: Situation | None
    refusal: str | None = None

    @property
    def accepted(self) -> bool:
        return self.target is not None

    def signature(self) -> str:
        if self.target is not None:
            return f"allows it: {self.target.state.value}"
        assert self.refusal is not None
        return f"refuses it: {self.refusal.partition(':')[0]}"


def _pending_checks(names: Iterable[str], pending: bool) -> dict[str, Callable[[str], Sequence[str]]]:
    def check(account_id: str) -> Sequence[str]:
        return ("pending work",) if pending else ()

    return dict.fromkeys(names, check)


class _Model:
    """The policy's real machine, driven over situations."""

    def __init__(self, machine: PolicyMachine, prerequisite_names: Iterable[str]) -> None:
        self.machine = machine
        self.policy = machine.policy
        self._checks = {pending: _pending_checks(prerequisite_names, pending) for pending in (False, True)}
        self._records: dict[Situation, AccountRecord] = {}
        self.phased = bool(self.policy.recovery.phases)
        self._bounds: dict[str, tuple[tuple[datetime, datetime], ...]] = {}

    def bounds(self, choice: str) -> tuple[tuple[datetime, datetime], ...]:
        """``(starts, ends)`` of each phase of the window (of *choice*), opened at ``_CANCELLED_AT``."""
        bounds = self._bounds.get(choice)
        if bounds is None:
            picked = None if choice == _NO_WINDOW else self.policy.recovery.choose(choice)
            bounds = phase_bounds(self.policy.recovery_phases(picked), _CANCELLED_AT)
            self._bounds[choice] = bounds
        return bounds

    def record(self, situation: Situation) -> AccountRecord:
        record = self._records.get(situation)
        if record is None:
            cancelled = situation.state in (State.CANCELLED, State.RESTORABLE, State.PURGED)
            bounds = self.bounds(situation.choice)
            record = AccountRecord(
                account_id=_ACCOUNT,
                state=situation.state,
                owner="owner",
                members=frozenset({"member"}),
                cancelled_at=_CANCELLED_AT if cancelled else None,
                restorable_until=bounds[-1][1] if cancelled and bounds else None,
                services=dict.fromkeys(self.policy.services, ServiceState.ACTIVE),
            )
            self._records[situation] = record
        return record

    def now(self, situation: Situation) -> datetime:
        bounds = self.bounds(situation.choice)
        if situation.window == "ended" and bounds:
            return bounds[-1][1]  # the very moment the window ends: restore must already be refused
        if situation.window.startswith("phase ") and bounds:
            number = int(situation.window.split()[1])
            if number > 1:
                return bounds[number - 1][0]  # the very moment the phase begins
        return _NOW

    def choice(self, probe: _Probe) -> str:
        """The window a confirm probe picks, as the situation records it (``ValueError`` if the
        policy refuses it, exactly as ``Lifecycle.confirm`` does before deciding)."""
        if not self.policy.recovery.choices and probe.window is None:
            return _NO_WINDOW
        return str(self.policy.recovery.choose(probe.window))

    def decide(self, situation: Situation, trigger: str, actor: str, probe: _Probe | None) -> State | str:
        """The new state, or the refusal as ``"ErrorName: message"``."""
        record = self.record(situation)
        who = _ACTORS[actor]
        now = self.now(situation)
        attempt = Attempt(
            record=record,
            actor=who,
            relation=None if probe is None else record.relation_of(who),
            now=now,
            prerequisites=self._checks[probe is not None and probe.pending],
            authenticated_at=now if probe is not None and probe.logged_in else None,
            **({} if probe is None else probe.inputs),
        )
        try:
            return self.machine.decide(trigger, attempt)
        except _REFUSALS as exc:
            return f"{type(exc).__name__}: {exc}"

    def command(self, situation: Situation, probe: _Probe) -> _Outcome:
        if probe.trigger in (Action.PLACE_HOLD, Action.RELEASE_HOLD):
            return self._hold(situation, probe)
        choice = situation.choice
        if probe.trigger == Action.CONFIRM:
            try:
                choice = self.choice(probe)
            except _REFUSALS as exc:
                return _Outcome(None, f"{type(exc).__name__}: {exc}")
        result = self.decide(situation, probe.trigger, probe.step.actor, probe)
        if not isinstance(result, State):
            return _Outcome(None, result)
        return _Outcome(_after(situation, result, probe.step, phased=self.phased, choice=choice))

    def system_steps(self, situation: Situation) -> Iterator[tuple[Step, _Outcome]]:
        """What the sweeper and the clock do from *situation*."""
        state = situation.state
        in_phase = situation.window.startswith("phase ")
        if state is State.RESTORABLE and in_phase:
            number = int(situation.window.split()[1])
            if number < len(self.bounds(situation.choice)):
                yield (
                    Step("clock", "phase_ends", (("phase", str(number)),)),
                    _Outcome(attrs.evolve(situation, window=f"phase {number + 1}")),
                )
                return
        if state is State.RESTORABLE and (situation.window == "open" or in_phase):  # the last phase
            yield (
                Step("clock", "window_ends"),
                _Outcome(attrs.evolve(situation, window="ended", purge="pending")),
            )
            return
        if state is State.CANCELLED:
            phase, trigger = "cancel", SETTLE
        elif state is State.RESTORABLE:
            phase, trigger = "expiry", EXPIRE
        else:
            if state is State.PURGED:  # nothing may fire from PURGED, not even internal events
                for event in (SETTLE, EXPIRE):
                    if event in self.machine.events():
                        yield self._internal(situation, event)
            return
        if (
            situation.held != _NO_WINDOW
            and self.policy.purge.on_hold == "wait"
            and self.policy.purge.at(phase)
        ):
            # The held category is not erased and the account waits in its state: only
            # releasing the hold leads on.
            waits = Step(
                "system", "purge", (("categories", f"{phase}-time"), ("result", "waits for the hold"))
            )
            yield waits, _Outcome(situation)
            return
        step = Step("system", "purge", (("categories", f"{phase}-time"), ("result", "done")))
        result = self.decide(situation, trigger, "system", None)
        if not isinstance(result, State):
            yield step, _Outcome(None, result)
        else:
            yield step, _Outcome(_after(situation, result, step, phased=self.phased))
        if self.policy.purge.at(phase):
            failed = Step("system", "purge", (("categories", f"{phase}-time"), ("result", "failed")))
            yield failed, _Outcome(attrs.evolve(situation, purge="failed"))

    def _hold(self, situation: Situation, probe: _Probe) -> _Outcome:
        """Placing a legal hold (on some category: one more changes nothing abstract) or
        releasing it; the state stays, the ``held`` fact changes."""
        if probe.trigger == Action.RELEASE_HOLD and situation.held == _NO_WINDOW:
            return _Outcome(None, "InvalidTransition: no category is held")
        result = self.decide(situation, probe.trigger, probe.step.actor, probe)
        if not isinstance(result, State):
            return _Outcome(None, result)
        held = "yes" if probe.trigger == Action.PLACE_HOLD else _NO_WINDOW
        return _Outcome(attrs.evolve(situation, held=held))

    def _internal(self, situation: Situation, event: str) -> tuple[Step, _Outcome]:
        step = Step("system", event)
        result = self.decide(situation, event, "system", None)
        if not isinstance(result, State):
            return step, _Outcome(None, result)
        return step, _Outcome(_after(situation, result, step, phased=self.phased))


def _after(situation: Situation, dest: State, step: Step, **facts: Any) -> Situation:
    """The situation after an accepted step moved the account to *dest*; legal holds stay
    through every move."""
    after = _moved(situation, dest, step, **facts)
    return after if after.held == situation.held else attrs.evolve(after, held=situation.held)


def _moved(
    situation: Situation, dest: State, step: Step, *, phased: bool = False, choice: str | None = None
) -> Situation:
    """The situation after an accepted step moved the account to *dest*; a confirm records the
    window *choice* it made."""
    if dest is situation.state:
        return situation
    if dest in (State.ACTIVE, State.SURVEYED, State.PENDING_CONFIRM):
        return Situation(dest)
    confirmed_by = step.actor if step.action == Action.CONFIRM else situation.confirmed_by
    chosen = situation.choice if choice is None else choice
    if dest is State.CANCELLED:
        return Situation(dest, confirmed_by=confirmed_by, purge="pending", choice=chosen)
    if dest is State.RESTORABLE:
        window = "phase 1" if phased else "open"
        return Situation(dest, window=window, confirmed_by=confirmed_by, choice=chosen)
    return Situation(dest, confirmed_by=confirmed_by, choice=chosen)


# -- exploration ----------------------------------------------------------------------------


@attrs.frozen
class _Edge:
    source: Situation
    step: Step
    outcome: _Outcome


class _Graph:
    """Every situation reachable from a fresh account, with every step tried from each."""

    def __init__(self, model: _Model, probes: Sequence[_Probe]) -> None:
        start = Situation(State.ACTIVE)
        self.order: list[Situation] = [start]
        self.parent: dict[Situation, tuple[Situation, Step] | None] = {start: None}
        self.edges: dict[Situation, list[_Edge]] = {}
        queue = deque([start])
        while queue:
            situation = queue.popleft()
            edges = [_Edge(situation, p.step, model.command(situation, p)) for p in probes]
            edges += [_Edge(situation, step, outcome) for step, outcome in model.system_steps(situation)]
            self.edges[situation] = edges
            for edge in edges:
                target = edge.outcome.target
                if target is not None and target not in self.parent:
                    self.parent[target] = (situation, edge.step)
                    self.order.append(target)
                    queue.append(target)

    def path_to(self, situation: Situation) -> list[Move]:
        moves: list[Move] = []
        link = self.parent[situation]
        current = situation
        while link is not None:
            previous, step = link
            moves.append(Move(step, previous.state, current.state))
            current = previous
            link = self.parent[previous]
        return moves[::-1]

    def counterexample(self, edge: _Edge, conclusion: str) -> Counterexample:
        target = edge.outcome.target
        last = Move(
            edge.step, edge.source.state, None if target is None else target.state, edge.outcome.refusal
        )
        return Counterexample((*self.path_to(edge.source), last), conclusion)

    def all_edges(self) -> Iterator[_Edge]:
        for situation in self.order:
            yield from self.edges[situation]


def _refusals(edges: Iterable[_Edge], limit: int = 3) -> str:
    """The distinct reasons among refused *edges*, for a conclusion."""
    reasons: list[str] = []
    for edge in edges:
        refusal = edge.outcome.refusal
        if refusal is not None and refusal not in reasons:
            reasons.append(refusal)
    shown = "; ".join(reasons[:limit])
    more = f" (and {len(reasons) - limit} more)" if len(reasons) > limit else ""
    return shown + more


def _first(graph: _Graph, broken: Callable[[_Edge], str | None]) -> Counterexample | None:
    """The counterexample of the first edge (in breadth-first order) that *broken* objects to."""
    for edge in graph.all_edges():
        conclusion = broken(edge)
        if conclusion is not None:
            return graph.counterexample(edge, conclusion)
    return None


def _owner_confirms(edge: _Edge) -> str | None:
    confirmed_by = edge.source.confirmed_by
    if confirmed_by == "owner":
        return None
    target = edge.outcome.target
    purging = edge.step.action == "purge" or (
        target is not None and target.state is State.PURGED and edge.source.state is not State.PURGED
    )
    if not purging:
        return None
    who = confirmed_by if confirmed_by != _NO_WINDOW else "nobody"
    return f"data is purged, but the cancellation was confirmed by {who}, not by the owner"


def _no_restore_after_window(policy: Policy) -> Callable[[_Edge], str | None]:
    phases = policy.recovery.phases

    def broken(edge: _Edge) -> str | None:
        if edge.step.action != Action.RESTORE or not edge.outcome.accepted:
            return None
        window = edge.source.window
        if window == "open":
            return None
        if window.startswith("phase ") and phases:
            number = int(window.split()[1])
            allowed = phases[number - 1].restore
            if edge.step.actor in allowed:
                return None
            who = ", ".join(r.value for r in allowed)
            return (
                f"restore by {edge.step.actor} was accepted in recovery phase {number}, "
                f"where only {who} may restore"
            )
        if window == "ended":
            return "restore was accepted after the recovery window had ended"
        return f"restore was accepted from {edge.source.state.value}, where no recovery window is open"

    return broken


def _purged_terminal(edge: _Edge) -> str | None:
    if edge.source.state is State.PURGED and edge.outcome.accepted:
        return "a step was accepted after the account was purged"
    return None


def _all_states_reachable(graph: _Graph, machine: PolicyMachine) -> Counterexample | None:
    reached = {s.state for s in graph.order}
    missing = sorted((s for s in machine.reachable_states if s not in reached), key=list(State).index)
    if not missing:
        return None
    names = ", ".join(s.value for s in missing)
    # Where the machine has a way into a missing state from a reached one: show it refused.
    for trigger, source, dest, _guards in machine.transitions():
        if dest in missing and source in reached:
            situation = next(s for s in graph.order if s.state is source)
            tried = [
                e
                for e in graph.edges[situation]
                if e.step.action == trigger or (trigger in (SETTLE, EXPIRE) and e.step.action == "purge")
            ]
            refused = sorted(
                (e for e in tried if not e.outcome.accepted),
                key=lambda e: (e.step.actor != "owner", ("outcome", "cancel") not in e.step.inputs),
            )
            if refused:
                conclusion = (
                    f"never reached: {names}. The machine's {trigger} from {source.value} to "
                    f"{dest.value} is refused whoever tries it: {_refusals(refused)}"
                )
                return graph.counterexample(refused[0], conclusion)
    return Counterexample((), f"never reached: {names}; no step of the policy leads there")


def _no_dead_end(graph: _Graph, machine: PolicyMachine) -> Counterexample | None:
    good = {s for s in graph.order if s.state in (State.ACTIVE, State.PURGED)}
    incoming: dict[Situation, list[Situation]] = {}
    for edge in graph.all_edges():
        if edge.outcome.target is not None:
            incoming.setdefault(edge.outcome.target, []).append(edge.source)
    frontier = list(good)
    while frontier:
        situation = frontier.pop()
        for source in incoming.get(situation, ()):
            if source not in good:
                good.add(source)
                frontier.append(source)
    for situation in graph.order:
        if situation not in good:
            stuck = {s.state.value for s in graph.order if s not in good}
            leaving = [e for e in graph.edges[situation] if e.outcome.target != situation]
            moves = sorted({e.outcome.target.state.value for e in leaving if e.outcome.target is not None})
            conclusion = (
                f"dead end: from {situation} neither active nor purged can be reached"
                f" (stuck states: {', '.join(sorted(stuck))})"
            )
            if moves:
                conclusion += f"; steps lead only to {', '.join(moves)}"
            else:
                # The refusals worth reading are those of the machine's own ways out.
                ways_out = {
                    t[0] for t in machine.transitions() if t[1] is situation.state and t[2] is not t[1]
                }
                relevant = sorted(
                    (e for e in leaving if e.step.action in ways_out), key=lambda e: e.step.actor != "owner"
                )
                if situation.held != _NO_WINDOW and machine.policy.purge.on_hold == "wait":
                    releases = [e for e in leaving if e.step.action == Action.RELEASE_HOLD]
                    relevant = [*releases, *relevant]  # the way out of a legal hold comes first
                conclusion += f"; every step is refused: {_refusals(relevant or leaving, limit=4)}"
            return Counterexample(tuple(graph.path_to(situation)), conclusion)
    return None


def _notes(policy: Policy, machine: PolicyMachine) -> tuple[str, ...]:
    triggers = {t[0] for t in machine.transitions()}
    notes = []
    for action in ACTIONS_WITH_PERMISSIONS:
        granted = policy.permissions.get(action, frozenset())
        if granted and action.value not in triggers:
            who = ", ".join(sorted(r.value for r in granted))
            why = {
                Action.RESTORE: "the policy has no recovery.window",
                Action.SKIP_SURVEY: f"the survey is {policy.survey.mode}",
                Action.SUBMIT_SURVEY: "the survey is off",
                Action.CANCEL_SERVICE: "the policy lists no services",
            }.get(action, "the machine has no such step")
            notes.append(f"permissions.{action.value} grants {who}, but {why}: it can never happen")
    if policy.recovery.phases:
        granted = policy.permissions.get(Action.RESTORE, frozenset())
        in_phases = {r for phase in policy.recovery.phases for r in phase.restore}
        idle = sorted(r.value for r in granted - in_phases)
        if idle:
            notes.append(
                f"permissions.restore grants {', '.join(idle)}, but no recovery phase lets "
                f"{'it' if len(idle) == 1 else 'them'} restore: it can never happen"
            )
    return tuple(notes)


def verify_policy(policy: Policy, *, machine: PolicyMachine | None = None) -> VerificationReport:
    """Explore every reachable abstract situation of *policy* and check every invariant.

    *machine* defaults to ``PolicyMachine(policy)``; tests pass a deliberately broken one.
    """
    if not isinstance(policy, Policy):
        raise TypeError(f"verify_policy() takes a Policy, got {type(policy).__name__}")
    machine = machine if machine is not None else PolicyMachine(policy)
    probes = _probes(policy, _Alphabet.of(policy))
    graph = _Graph(_Model(machine, policy.prerequisites), probes)
    found = {
        "owner_confirms": _first(graph, _owner_confirms),
        "no_restore_after_window": _first(graph, _no_restore_after_window(policy)),
        "purged_terminal": _first(graph, _purged_terminal),
        "all_states_reachable": _all_states_reachable(graph, machine),
        "no_dead_end": _no_dead_end(graph, machine),
    }
    results = tuple(
        InvariantResult(
            id=invariant,
            holds=found[invariant] is None,
            waived=invariant in policy.waivers,
            description=_DESCRIPTIONS[invariant],
            counterexample=found[invariant],
        )
        for invariant in INVARIANTS
    )
    return VerificationReport(
        policy=policy.label,
        situations=len(graph.order),
        steps=sum(len(edges) for edges in graph.edges.values()),
        reachable=frozenset(s.state for s in graph.order),
        results=results,
        waivers=policy.waivers,
        notes=_notes(policy, machine),
    )


# -- differences between two policies ------------------------------------------------------


@attrs.frozen
class Difference:
    """A concrete path both policies allow, then one step they treat differently."""

    path: tuple[Move, ...]
    step: Step
    source: State
    a: str  # "allows it: <state>" or "refuses it: <Error>: <message>"
    b: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": [move.to_dict() for move in self.path],
            "step": self.step.to_dict(),
            "from": self.source.value,
            "a": self.a,
            "b": self.b,
        }


@attrs.frozen
class DiffReport:
    a: str
    b: str
    differences: tuple[Difference, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "differences": [d.to_dict() for d in self.differences]}


def _describe(outcome: _Outcome) -> str:
    if outcome.target is not None:
        return f"allows it: {outcome.target.state.value}"
    return f"refuses it: {outcome.refusal}"


def diff_policies(a: Policy, b: Policy) -> DiffReport:
    """Behavioural differences between *a* and *b*: for each, a path both allow, then a step
    one allows and the other refuses (or that leads them to different states). Only the
    first divergence on each path is reported; the shortest example of each kind is kept."""
    names = tuple(dict.fromkeys((*a.prerequisites, *b.prerequisites)))
    models = (_Model(PolicyMachine(a), names), _Model(PolicyMachine(b), names))
    alphabet = _Alphabet.of(a, b)
    probes = tuple(zip(_probes(a, alphabet), _probes(b, alphabet), strict=True))
    start = Situation(State.ACTIVE)
    parent: dict[Situation, tuple[Situation, Step] | None] = {start: None}
    queue = deque([start])
    differences: list[Difference] = []
    kinds: set[tuple[str, ...]] = set()

    def path_to(situation: Situation) -> tuple[Move, ...]:
        moves: list[Move] = []
        link = parent[situation]
        current = situation
        while link is not None:
            previous, step = link
            moves.append(Move(step, previous.state, current.state))
            current = previous
            link = parent[previous]
        return tuple(moves[::-1])

    while queue:
        situation = queue.popleft()
        pairs = [
            (pa.step, models[0].command(situation, pa), models[1].command(situation, pb)) for pa, pb in probes
        ]
        system_a = dict(models[0].system_steps(situation))
        system_b = dict(models[1].system_steps(situation))
        pairs += [(step, system_a[step], system_b[step]) for step in system_a if step in system_b]
        for step, one, other in pairs:
            if one.target == other.target:
                if one.target is not None and one.target not in parent:
                    parent[one.target] = (situation, step)
                    queue.append(one.target)
                continue  # the same move, or refused by both (maybe for different reasons)
            kind = (situation.state.value, step.actor, step.action, one.signature(), other.signature())
            if kind in kinds:
                continue
            kinds.add(kind)
            described = (_describe(one), _describe(other))
            if one.target is not None and other.target is not None and described[0] == described[1]:
                # the same state, other facts (say, the window chosen): show the facts
                described = (f"allows it: {one.target}", f"allows it: {other.target}")
            differences.append(Difference(path_to(situation), step, situation.state, *described))
    return DiffReport(a.label, b.label, tuple(differences))
