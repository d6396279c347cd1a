"""diff_policies: the semantic changes (issue 16) beside the behavioural differences.

Each variant a product person tried and the old diff called "the same" is reported here
with its keys, its audience and its risk mark; equal policies are the same; and for random
pairs of generated policies (every closure feature in play) "same" means equal."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from account_lifecycle import (
    Action,
    Change,
    Duration,
    Policy,
    PurgeCategory,
    PurgePolicy,
    RecoveryPhase,
    RecoveryPolicy,
    Relation,
    diff_policies,
    policies,
)
from account_lifecycle.testing.strategies import closure_policies

BASE = Policy(
    name="plan",
    confirmation=policies.ALLCLIENTS.confirmation,
    recovery=RecoveryPolicy(Duration(3, "months")),
    purge=PurgePolicy(
        (PurgeCategory("contacts"), PurgeCategory("files", "expiry"), PurgeCategory("invoices"))
    ),
    permissions={**policies.ALLCLIENTS.permissions, Action.RESTORE: frozenset({Relation.OWNER})},
)


def only_change(a: Policy, b: Policy) -> Change:
    report = diff_policies(a, b)
    assert not report.same
    assert len(report.changes) == 1, report.changes
    return report.changes[0]


class TestIssueVariants:
    def test_window_three_months_to_thirty_days(self) -> None:
        shorter = attrs.evolve(BASE, recovery=RecoveryPolicy(Duration(30, "days")))
        change = only_change(BASE, shorter)
        assert change == Change(
            "the recovery window: 3 months -> 30 days", ("recovery.window",), "customer", risky=True
        )
        assert only_change(shorter, BASE).risky is False  # a longer window erases nothing sooner

    def test_purged_category_made_protected(self) -> None:
        kept = attrs.evolve(
            BASE,
            purge=PurgePolicy((PurgeCategory("contacts"), PurgeCategory("files", "expiry")), ("invoices",)),
        )
        change = only_change(BASE, kept)
        assert change.text == "invoices: erased at cancellation -> never erased (protected)"
        assert change.keys == ("purge.categories", "purge.protected")
        assert (change.audience, change.risky) == ("customer", False)
        assert only_change(kept, BASE).risky is True  # the other way erases more

    def test_category_moved_from_cancel_to_window_end(self) -> None:
        later = attrs.evolve(
            BASE,
            purge=PurgePolicy(
                (
                    PurgeCategory("contacts", "expiry"),
                    PurgeCategory("files", "expiry"),
                    PurgeCategory("invoices"),
                )
            ),
        )
        change = only_change(BASE, later)
        assert change.text == "contacts: erased at cancellation -> erased when the recovery window ends"
        assert (change.keys, change.risky) == (("purge.categories",), False)
        assert only_change(later, BASE).risky is True  # sooner

    def test_token_confirm_to_template(self) -> None:
        before = attrs.evolve(BASE, confirmation=attrs.evolve(BASE.confirmation, token="CONFIRM"))
        after = attrs.evolve(BASE, confirmation=attrs.evolve(BASE.confirmation, token="DELETE {account_id}"))
        change = only_change(before, after)
        assert change == Change(
            'the text typed to confirm: "CONFIRM" -> "DELETE {account_id}"',
            ("confirmation.token",),
            "customer",
        )
        assert only_change(before, BASE).risky is True  # no token at all: a safeguard dropped

    def test_reminders_added(self) -> None:
        reminded = attrs.evolve(BASE, recovery=attrs.evolve(BASE.recovery, reminders=(Duration(7, "days"),)))
        change = only_change(BASE, reminded)
        assert change == Change(
            "reminders before the window ends: none -> 7 days", ("recovery.reminders",), "customer"
        )
        assert only_change(reminded, BASE).risky is True


class TestChanges:
    def test_identical_policies_are_the_same(self) -> None:
        report = diff_policies(policies.SMRTPHONE, Policy.from_toml(policies.SMRTPHONE.to_toml()))
        assert report.same
        assert report.to_dict() == {
            "a": "smrtphone@1",
            "b": "smrtphone@1",
            "same": True,
            "risky": False,
            "changes": [],
            "differences": [],
        }

    def test_fewer_relations_restoring_in_a_phase_is_risky_for_them(self) -> None:
        granted = {**BASE.permissions, Action.RESTORE: frozenset({Relation.OWNER, Relation.SUPPORT})}
        phases = (
            RecoveryPhase(Duration(7, "days"), (Relation.OWNER,)),
            RecoveryPhase(Duration(23, "days"), (Relation.OWNER, Relation.SUPPORT)),
        )
        a = attrs.evolve(BASE, permissions=granted, recovery=RecoveryPolicy(phases=phases))
        b = attrs.evolve(
            a,
            recovery=RecoveryPolicy(
                phases=(phases[0], RecoveryPhase(Duration(23, "days"), (Relation.OWNER,)))
            ),
        )
        change = only_change(a, b)
        assert change.text == (
            "support staff may restore (counted from cancellation, a month as 31 days): "
            "from day 7 until day 30 -> never"
        )
        assert (change.keys, change.audience, change.risky) == (("recovery.phases",), "support", True)

    def test_permissions_and_waivers(self) -> None:
        a = attrs.evolve(policies.SMRTPHONE)
        b = attrs.evolve(
            a,
            permissions={**a.permissions, Action.CONFIRM: frozenset({Relation.OWNER, Relation.SUPPORT})},
            waivers=("owner_confirms",),
        )
        report = diff_policies(a, b)
        assert [(c.text, c.audience, c.risky) for c in report.changes] == [
            ("who may confirm: the owner -> the owner or support staff", "support", True),
            ("invariants waived: none -> owner_confirms", "auditor", True),
        ]
        assert report.differences  # support's confirm is now accepted
        assert report.by_audience()["customer"] == ()

    def test_holds_dropped_is_risky(self) -> None:
        held = attrs.evolve(BASE, purge=attrs.evolve(BASE.purge, on_hold="wait"))
        change = only_change(held, BASE)
        assert change.keys == ("purge.on_hold",)
        assert (change.audience, change.risky) == ("auditor", True)

    def test_an_order_no_rule_words_is_still_a_change(self) -> None:
        reordered = attrs.evolve(BASE, prerequisites=("b", "a"))
        ordered = attrs.evolve(BASE, prerequisites=("a", "b"))
        change = only_change(ordered, reordered)
        assert change == Change(
            "prerequisites differs (in order or form only)", ("prerequisites",), "auditor"
        )

    @pytest.mark.parametrize("field", ["version", "description"])
    def test_label_changes_are_for_auditors(self, field: str) -> None:
        other = attrs.evolve(BASE, **{field: 2 if field == "version" else "new words"})
        assert only_change(BASE, other).audience == "auditor"


@given(st.data(), closure_policies())
def test_same_only_for_equal_policies(data: st.DataObject, a: Policy) -> None:
    """For random pairs (the second often a one-part mutation of the first), diff says "same"
    exactly when the policies are equal, so two policies it calls the same behave the same on
    every command sequence and timeline; and a behavioural difference always comes with a
    change that words it."""
    b = data.draw(st.one_of(st.just(a), closure_policies(), _mutated(a)))
    report = diff_policies(a, b)
    assert report.same == (a == b)
    if report.differences:
        assert report.changes
    for change in report.changes:
        assert change.keys
        assert change.audience in ("customer", "support", "auditor")


def _mutated(policy: Policy) -> st.SearchStrategy[Policy]:
    return st.sampled_from(
        [
            attrs.evolve(policy, version=policy.version + 1),
            attrs.evolve(policy, purge=attrs.evolve(policy.purge, on_hold=None)),
            attrs.evolve(policy, confirmation=attrs.evolve(policy.confirmation, fresh_login=None)),
            attrs.evolve(policy, identity={}),
            attrs.evolve(policy, recovery=attrs.evolve(policy.recovery, reminders=())),
        ]
    )
