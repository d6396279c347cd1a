"""The probes: every command by every relation with every input that matters."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from account_lifecycle.model import Action, SurveyOutcome
from account_lifecycle.policy import Policy
from account_lifecycle.verify.situation import _ACCOUNT, _COMMANDS, RELATIONS, Step

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
            elif action in (Action.ADD_MEMBER, Action.REMOVE_MEMBER):
                # the account's one member, and the owner (never a member to add or remove)
                for user in ("member", "owner"):
                    step = Step(relation, action, (("user", user),))
                    out.append(_Probe(step, action, {"member": user}))
            elif action is Action.TRANSFER_OWNERSHIP:
                step = Step(relation, action, (("new_owner", "member"),))
                out.append(_Probe(step, action, {"new_owner": "member"}))
            else:
                out.append(_Probe(Step(relation, action), action))
    if alphabet.holds:
        out += [_Probe(Step(r, a), a) for r in RELATIONS for a in (Action.PLACE_HOLD, Action.RELEASE_HOLD)]
    return tuple(out)
