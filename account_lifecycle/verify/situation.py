"""The abstract account ``verify`` explores (a ``Situation``) and the steps taken from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

import attrs

from account_lifecycle.errors import LifecycleError
from account_lifecycle.model import Actor, State
from account_lifecycle.policy import ACTIONS_WITH_PERMISSIONS

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
    team: str = _NO_WINDOW  # "member removed" once the one member was removed (until added back)

    def __str__(self) -> str:
        facts = []
        if self.team != _NO_WINDOW:
            facts.append(self.team)
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
