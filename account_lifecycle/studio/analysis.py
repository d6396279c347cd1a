"""What the studio page shows of a policy text: its errors at their keys, or, for a valid
text, the diagram, the proofs and the difference from the baseline.

The error words are ``check``'s (``PolicyError``: the key, then what was expected); the line
and column come from TOML's own message for a syntax error, else from ``locate``.
"""

from __future__ import annotations

import re
from typing import Any, Final

from account_lifecycle.diagram import draw
from account_lifecycle.errors import PolicyError
from account_lifecycle.policy import Policy
from account_lifecycle.studio.difference import differences
from account_lifecycle.studio.locate import locate
from account_lifecycle.studio.simulator import ACCOUNT
from account_lifecycle.studio.svg import render_svg
from account_lifecycle.verify import verify_policy

__all__ = ["analyse", "check_text", "policy_facts"]

_AT_LINE: Final = re.compile(r"\(at line (\d+), column (\d+)\)")


def check_text(text: str) -> tuple[Policy | None, list[dict[str, Any]]]:
    """The policy of *text*, or None and its errors, each ``{key, message, text, line, column}``
    (``text`` in ``check``'s words)."""
    try:
        return Policy.from_toml(text), []
    except PolicyError as exc:
        # every problem the reader found (``errors``, where it lists them), else the one
        return None, [_placed(text, error) for error in getattr(exc, "errors", None) or (exc,)]


def _placed(text: str, error: PolicyError) -> dict[str, Any]:
    where = _AT_LINE.search(error.message)
    line, column = (int(where[1]), int(where[2])) if where else locate(text, error.key)
    return {"key": error.key, "message": error.message, "text": str(error), "line": line, "column": column}


def policy_facts(policy: Policy) -> dict[str, Any]:
    """What the simulator's inputs offer: the token, acknowledgements, outcomes, choices..."""
    return {
        "label": policy.label,
        "token": policy.confirmation.token_for(ACCOUNT),
        "acknowledgements": [{"id": a.id, "text": a.text} for a in policy.confirmation.acknowledgements],
        "outcomes": [o.value for o in policy.survey.outcomes],
        "choices": [str(c) for c in policy.recovery.choices],
        "services": list(policy.services),
        "categories": [c.name for c in policy.purge.categories],
        "reminders": [str(r) for r in policy.recovery.reminders],
        "prerequisites": list(policy.prerequisites),
        "fresh_login": None
        if policy.confirmation.fresh_login is None
        else str(policy.confirmation.fresh_login),
    }


def analyse(text: str, baseline: Policy | None) -> dict[str, Any]:
    """Everything the page shows of *text*: ``valid`` and ``errors``, and for a valid text
    ``diagram`` (SVG and Mermaid), ``proofs`` (``verify``'s report), ``diff`` and ``facts``."""
    policy, errors = check_text(text)
    if policy is None:
        return {"valid": False, "errors": errors}
    report = verify_policy(policy)
    return {
        "valid": True,
        "errors": [],
        "label": policy.label,
        "diagram": {"svg": render_svg(policy), "mermaid": draw(policy, "mermaid")},
        "proofs": report.to_dict(),
        "diff": None
        if baseline is None
        else {"baseline": baseline.label, "differences": differences(baseline, policy)},
        "facts": policy_facts(policy),
    }
