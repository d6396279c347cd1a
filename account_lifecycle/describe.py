"""A policy in plain words, for the people who own the flow: ``describe_policy``.

``account-lifecycle show`` prints it; a host may show it on an admin page."""

from __future__ import annotations

import json
from collections.abc import Sequence

from account_lifecycle.model import Action, Relation, SurveyOutcome
from account_lifecycle.policy import Policy

__all__ = ["describe_policy"]

#: A relation in plain words ("support staff"), shared with the semantic diff.
RELATION_WORDS = {
    Relation.OWNER: "the owner",
    Relation.MEMBER: "team members",
    Relation.SUPPORT: "support staff",
    Relation.SYSTEM: "the system",
}


def _who(policy: Policy, action: Action) -> str:
    relations = policy.permissions.get(action, frozenset())
    if not relations:
        return "nobody"
    return join_words([RELATION_WORDS[r] for r in Relation if r in relations])


def join_words(words: Sequence[str], last: str = "and") -> str:
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {last} {words[-1]}"


_OUTCOME_WORDS = {
    SurveyOutcome.KEEP_ACCOUNT: "keep the account",
    SurveyOutcome.BOOK_MEETING: "book a meeting",
    SurveyOutcome.CANCEL: "cancel",
}


def describe_policy(policy: Policy) -> list[str]:
    """*policy* in plain words, one line of text per item, for the people who own the flow:
    who may do what, what is erased when, what is kept, how long a restore is possible."""
    lines = [f"{policy.name}, version {policy.version}"]
    if policy.description:
        lines += [f"  {line}" for line in policy.description.splitlines()]
    lines += ["", "Asking to cancel"]
    lines.append(f"  Who may ask: {_who(policy, Action.REQUEST_CANCELLATION)}.")
    survey = policy.survey
    if survey.mode == "off":
        lines.append("  There is no survey: asking to cancel goes straight to confirmation.")
    else:
        offered = join_words([_OUTCOME_WORDS[o] for o in survey.outcomes], "or")
        lines.append(f"  A survey is {survey.mode}; its answers: {offered}.")
        returns = [o for o in survey.outcomes if o is not SurveyOutcome.CANCEL]
        if returns:
            answers = join_words([f'"{_OUTCOME_WORDS[o]}"' for o in returns], "or")
            lines.append(f"  Answering {answers} keeps the account active.")
        lines.append(f"  Who may answer: {_who(policy, Action.SUBMIT_SURVEY)}.")
        if survey.mode == "optional":
            lines.append(f"  Who may skip it: {_who(policy, Action.SKIP_SURVEY)}.")
    lines.append(f"  Who may withdraw before confirming: {_who(policy, Action.WITHDRAW)}.")

    lines += ["", "Confirming"]
    lines.append(f"  Who may confirm: {_who(policy, Action.CONFIRM)}.")
    token = policy.confirmation.token
    if token is None:
        lines.append("  A plain confirmation: nothing to type.")
    else:
        typed = json.dumps(token, ensure_ascii=False)
        lines.append(f"  They type exactly {typed}: letters, case and spaces must match.")
        if "{account_id}" in token:
            lines.append("  ({account_id} stands for the account's own id, e.g. DELETE acc-1042.)")
    if policy.confirmation.fresh_login is not None:
        lines.append(f"  They must have logged in within the last {policy.confirmation.fresh_login}.")
    acks = policy.confirmation.acknowledgements
    if acks:
        lines.append("  They acknowledge:")
        lines += [f"    - {ack.id}: {ack.text}" for ack in acks]
    if policy.prerequisites:
        names = ", ".join(policy.prerequisites)
        lines.append(f"  Confirming waits until these checks report nothing pending: {names}.")

    lines += ["", "At cancellation"]
    effects = ["Access to the account ends."]
    if "revoke_team_access" in policy.on_cancel:
        effects.append("Team members lose access.")
    if "forfeit_credit" in policy.on_cancel:
        effects.append("Remaining credit is forfeited.")
    lines.append("  " + " ".join(effects))
    at_cancel = policy.purge.at("cancel")
    if policy.purge.cancel_work == "deferred" and at_cancel:
        lines.append(
            f"  Erased right after, by the next sweep (confirming returns at once): {', '.join(at_cancel)}."
        )
    else:
        lines.append(f"  Erased at once: {', '.join(at_cancel) if at_cancel else 'nothing'}.")
    if policy.purge.protected:
        lines.append(f"  Never erased (protected): {', '.join(policy.purge.protected)}.")

    lines += ["", "Recovery"]
    window = policy.recovery.window
    if not policy.recovery.has_window:
        lines.append(
            "  None: a cancelled account can never be restored; it is purged once its data is erased."
        )
    elif policy.recovery.phases:
        lines.append("  Restorable after cancellation in phases, one after the other:")
        for number, phase in enumerate(policy.recovery.phases, start=1):
            who = join_words([RELATION_WORDS[r] for r in phase.restore], "or")
            lines.append(f"    {number}. for {phase.length}, by {who}")
    elif policy.recovery.choices:
        choices = join_words([str(c) for c in policy.recovery.choices], "or")
        lines.append(
            f"  Restorable for {choices} after cancellation, as the owner chooses when confirming "
            f"({policy.recovery.choices[0]} if they do not), by {_who(policy, Action.RESTORE)}."
        )
    else:
        lines.append(f"  Restorable for {window} after cancellation, by {_who(policy, Action.RESTORE)}.")
    if policy.recovery.has_window:
        at_expiry = policy.purge.at("expiry")
        erased = f"the rest is erased ({', '.join(at_expiry)}) and " if at_expiry else ""
        lines.append(f"  When the window ends, {erased}the account is purged.")
    lines += _explain_closure(policy)

    lines += ["", "Afterwards"]
    reuse = {
        "after_cancel": "may open a fresh account as soon as this one is cancelled",
        "after_purge": "may open a fresh account once this one is purged",
        "never": "can never open another account",
    }[policy.identity_reuse]
    lines.append(f"  The same identity (e.g. e-mail) {reuse}.")
    for kind, rule in policy.identity.items():
        lines.append(f"  {_IDENTIFIER_WORDS[rule.when].format(kind=kind, delay=rule.delay)}")
    if policy.services:
        who = _who(policy, Action.CANCEL_SERVICE)
        lines.append(f"  Services that can be cancelled alone, by {who}: {', '.join(policy.services)}.")
    lines.append(f"  Ownership may be handed to a member by {_who(policy, Action.TRANSFER_OWNERSHIP)}.")
    lines.append(
        f"  Until the account is cancelled, members are added by {_who(policy, Action.ADD_MEMBER)} "
        f"and removed by {_who(policy, Action.REMOVE_MEMBER)} (a removed member loses every "
        f"permission at once); the identity is changed by {_who(policy, Action.CHANGE_IDENTITY)}."
    )
    if policy.waivers:
        lines.append(f"  Knowingly departs from: {', '.join(policy.waivers)} (see verify).")
    return lines


_IDENTIFIER_WORDS = {
    "never": "The same {kind} can never open another account.",
    "at_once": "The same {kind} may open a fresh account as soon as this one is cancelled.",
    "after_purge": "The same {kind} may open a fresh account once this one is purged.",
    "after": "The same {kind} may open a fresh account {delay} after this one is purged.",
}


def _explain_closure(policy: Policy) -> list[str]:
    """Reminders and legal holds, in plain words (nothing for a policy without them)."""
    lines = []
    if policy.recovery.reminders:
        when = join_words([str(r) for r in policy.recovery.reminders])
        lines.append(f"  Reminders go out {when} before the window ends.")
    if policy.purge.on_hold is not None:
        lines += ["", "Legal holds"]
        placed = _who(policy, Action.PLACE_HOLD)
        released = _who(policy, Action.RELEASE_HOLD)
        lines.append(f"  Placed on a data category by {placed}, released by {released}.")
        if policy.purge.on_hold == "wait":
            lines.append("  A held category is not erased: the account waits until the hold is released.")
        else:
            lines.append(
                "  A held category is not erased: the account moves on, and the receipt lists it as retained."
            )
    return lines
