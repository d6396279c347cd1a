"""The one adapter between ``verify.diff_policies`` and the studio page.

Every difference becomes ``{text, keys, audience, risky, kind}``: a line in plain words,
the policy keys it is about, who notices it, whether it deserves a reviewer's attention,
and whether it is ``"semantic"`` (a field that differs) or ``"behavioural"`` (a path the
two policies treat differently). A report's semantic ``changes`` carry their own words,
keys, audience and risk and are read as they are; a behavioural difference carries a path
and the two outcomes, told in words here, with no keys, for everyone, not marked risky
(unless it carries those fields itself). Only this function knows the report's shape.
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


def _entry(item: Any, kind: str) -> dict[str, Any]:
    text = getattr(item, "text", None)
    return {
        "text": str(text) if text else _told(item, "the baseline", "this file"),
        "keys": [str(key) for key in getattr(item, "keys", ()) or ()],
        "audience": str(getattr(item, "audience", None) or DEFAULT_AUDIENCE),
        "risky": bool(getattr(item, "risky", False)),
        "kind": kind,
    }


def differences(a: Policy, b: Policy) -> list[dict[str, Any]]:
    """The differences from baseline *a* to edited *b*, as JSON-able dicts, risky first."""
    report = diff_policies(a, b)
    out = [_entry(change, "semantic") for change in getattr(report, "changes", ()) or ()]
    out += [_entry(difference, "behavioural") for difference in report.differences]
    return sorted(out, key=lambda entry: not entry["risky"])  # stable: the report's order otherwise
