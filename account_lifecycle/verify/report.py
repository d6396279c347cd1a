"""The value classes ``verify_policy`` and ``diff_policies`` answer with; each has ``to_dict()``."""

from __future__ import annotations

from typing import Any

import attrs

from account_lifecycle.model import State
from account_lifecycle.verify.changes import AUDIENCES, Change
from account_lifecycle.verify.situation import Step


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
        """As plain JSON data, for ``diff --json``."""
        return {
            "path": [move.to_dict() for move in self.path],
            "step": self.step.to_dict(),
            "from": self.source.value,
            "a": self.a,
            "b": self.b,
        }


@attrs.frozen
class DiffReport:
    """What ``diff_policies(a, b)`` found, from *a* to *b*.

    ``changes`` are the semantic differences, one ``Change`` per line in plain words (with
    the policy keys, the audience that notices it, and a ``risky`` mark), customers' first.
    ``differences`` are the behavioural ones: a path both policies allow, then a step they
    treat differently. ``same`` only when there are neither."""

    a: str
    b: str
    differences: tuple[Difference, ...]
    changes: tuple[Change, ...] = ()

    @property
    def same(self) -> bool:
        """True when the policies behave the same on every abstract path and nothing a
        customer, support agent or auditor would notice differs."""
        return not self.differences and not self.changes

    @property
    def risky(self) -> tuple[Change, ...]:
        """The changes that erase more or sooner, let fewer people restore, or drop a safeguard."""
        return tuple(c for c in self.changes if c.risky)

    def by_audience(self) -> dict[str, tuple[Change, ...]]:
        """The changes grouped by who notices them: ``customer``, ``support``, ``auditor``
        (each key present, in that order)."""
        return {who: tuple(c for c in self.changes if c.audience == who) for who in AUDIENCES}

    def to_dict(self) -> dict[str, Any]:
        """As plain JSON data, for ``diff --json``."""
        return {
            "a": self.a,
            "b": self.b,
            "same": self.same,
            "risky": bool(self.risky),
            "changes": [c.to_dict() for c in self.changes],
            "differences": [d.to_dict() for d in self.differences],
        }
