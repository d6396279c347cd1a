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

from typing import TYPE_CHECKING, Any

from account_lifecycle import _lazy

if TYPE_CHECKING:  # imported on first use by __getattr__ below (PEP 562)
    from account_lifecycle.verify.changes import AUDIENCES, Change
    from account_lifecycle.verify.diff import diff_policies
    from account_lifecycle.verify.invariants import verify_policy
    from account_lifecycle.verify.registry import MigrationCheck, RegistryReport, verify_registry
    from account_lifecycle.verify.report import (
        Counterexample,
        Difference,
        DiffReport,
        InvariantResult,
        Move,
        VerificationReport,
    )
    from account_lifecycle.verify.situation import RELATIONS, Situation, Step

__all__ = [
    "AUDIENCES",
    "RELATIONS",
    "Change",
    "Counterexample",
    "DiffReport",
    "Difference",
    "InvariantResult",
    "MigrationCheck",
    "Move",
    "RegistryReport",
    "Situation",
    "Step",
    "VerificationReport",
    "diff_policies",
    "verify_policy",
    "verify_registry",
]

#: Where each public name is defined. The explorer, the diff and the registry check import
#: much of the library (about a tenth of its import time): a program that migrates records
#: (``verify.changes`` alone) or never verifies does not pay for them.
_WHERE: dict[str, tuple[str, ...]] = {
    "changes": ("AUDIENCES", "Change"),
    "diff": ("diff_policies",),
    "invariants": ("verify_policy",),
    "registry": ("MigrationCheck", "RegistryReport", "verify_registry"),
    "report": ("Counterexample", "DiffReport", "Difference", "InvariantResult", "Move", "VerificationReport"),
    "situation": ("RELATIONS", "Situation", "Step"),
}
_LAZY = {name: f"{__name__}.{module}" for module, names in _WHERE.items() for name in names}


def __getattr__(name: str) -> Any:
    return _lazy.resolve(globals(), _LAZY, name)


def __dir__() -> list[str]:
    return _lazy.listing(globals(), __all__)
