"""The one adapter between ``verify.diff_policies`` and the studio page.

Every difference becomes ``{text, keys, audience, risky}``: a line in plain words, the
policy keys it is about, who it concerns, and whether it deserves a reviewer's attention.
A report whose differences carry those themselves (``text``, ``keys``, ``audience``,
``risky``) is read as it is; one that carries only a path and the two outcomes is told in
words here, with no keys, for everyone, and not marked risky.
"""

from __future__ import annotations

from typing import Any, Final

from account_lifecycle.policy import Policy
from account_lifecycle.verify import diff_policies

__all__ = ["DEFAULT_AUDIENCE", "differences"]

DEFAULT_AUDIENCE: Final = "everyone"


def _told(difference: Any, a: str, b: str) -> str:
    path = getattr(difference, "path", ())
    step = getattr(difference, "step", None)
    before = "; ".join(str(move.step) for move in path)
    where = f"after {before}, " if before else ""
    return f"{where}{step}: {a} {difference.a}; {b} {difference.b}"


def differences(a: Policy, b: Policy) -> list[dict[str, Any]]:
    """The differences between baseline *a* and edited *b*, as JSON-able dicts."""
    report = diff_policies(a, b)
    out = []
    for difference in report.differences:
        text = getattr(difference, "text", None)
        out.append(
            {
                "text": str(text) if text else _told(difference, "the baseline", "this file"),
                "keys": [str(key) for key in getattr(difference, "keys", ()) or ()],
                "audience": str(getattr(difference, "audience", None) or DEFAULT_AUDIENCE),
                "risky": bool(getattr(difference, "risky", False)),
            }
        )
    return out
