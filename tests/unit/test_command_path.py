"""The command path's shortcuts give what the general code gives (issue 14, target 1).

``chain_event`` builds the event field by field instead of through ``AuditEvent(...)``; plain
details are frozen without a call per value; ``format_time`` formats the fields itself; a
registry of one version resolves an account of its name at once. Each is checked here against
the general code it stands for, over drawn inputs.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from account_lifecycle import Lifecycle, MemoryStore, PolicyMismatch, policies
from account_lifecycle.audit import AuditEvent, _freeze, _freeze_details, chain_event, format_time
from account_lifecycle.model import AccountRecord, Action, Actor, State
from account_lifecycle.sealed import SealedValue
from account_lifecycle.testing.fakes import fake_identity_keys, fake_purgers

TEXT = st.text(st.characters(exclude_categories=()), max_size=8)
UTC_MOMENTS = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
MOMENTS = UTC_MOMENTS | st.datetimes(
    min_value=datetime(2, 1, 1),
    timezones=st.sampled_from([timezone(timedelta(hours=-3)), timezone(timedelta(hours=5, minutes=30))]),
)
SCALARS = st.none() | st.booleans() | st.integers() | TEXT | st.sampled_from([State.ACTIVE, Action.CONFIRM])
DETAILS = st.dictionaries(
    TEXT,
    st.recursive(
        SCALARS | st.floats(allow_nan=False, allow_infinity=False) | MOMENTS,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
        max_leaves=6,
    ),
    max_size=4,
)


def _types(value: Any) -> Any:
    """The value's shape: its type, and those of what it holds."""
    if isinstance(value, MappingProxyType | dict):
        return (type(value), {k: _types(v) for k, v in value.items()})
    if isinstance(value, tuple | list):
        return (type(value), [_types(v) for v in value])
    return type(value)


@settings(max_examples=150, deadline=None)
@given(
    seq=st.integers(min_value=1, max_value=2**40),
    account_id=TEXT,
    at=MOMENTS,
    actor=st.sampled_from([Actor.system(), Actor.user("u-1"), Actor.support("a-7")]),
    action=TEXT | st.sampled_from(list(Action)),
    from_state=st.none() | st.sampled_from(list(State)),
    to_state=st.sampled_from(list(State)),
    policy=TEXT,
    details=DETAILS | st.none(),
    prev_hash=TEXT,
    version=st.integers(min_value=0, max_value=2**40),
    sealed=st.booleans(),
)
def test_chain_event_is_the_attrs_event_with_its_hash(sealed: bool, **fields: Any) -> None:
    sealed_values = {"answers": SealedValue("ab" * 32, {"why": "x"})} if sealed else None
    fast = chain_event(**fields, sealed_values=sealed_values)

    slow = AuditEvent(
        **{
            **fields,
            "at": fields["at"].astimezone(UTC),
            "action": str(fields["action"]),
            "details": fields["details"] or {},
        },
        sealed_values=sealed_values or {},
    )
    slow = attrs.evolve(slow, hash=slow.compute_hash())
    assert fast == slow
    assert fast.hash == slow.hash == fast.compute_hash()
    assert fast.sealed_values == slow.sealed_values
    for field in attrs.fields(AuditEvent):
        assert _types(getattr(fast, field.name)) == _types(getattr(slow, field.name)), field.name


@settings(max_examples=300, deadline=None)
@given(details=st.dictionaries(TEXT | st.integers(), SCALARS, max_size=5) | DETAILS)
def test_freezing_plain_details_is_the_general_freeze(details: dict[Any, Any]) -> None:
    try:
        expected: Any = _freeze(details, "details")
    except TypeError as error:  # the same refusal, word for word
        with pytest.raises(TypeError, match=re.escape(str(error))):
            _freeze_details(details)
        return
    got = _freeze_details(details)
    assert got == expected
    assert _types(got) == _types(expected)
    assert got is not details


@settings(max_examples=300, deadline=None)
@given(moment=MOMENTS)
def test_format_time_is_the_strftime_text_in_utc(moment: datetime) -> None:
    assert format_time(moment) == moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_format_time_refuses_naive_moments_as_before() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2026, 1, 1))


# -- a registry of one version resolves an account of its name at once ----------------------


def _general_rules(lc: Lifecycle, record: AccountRecord) -> Any:
    """``Lifecycle._rules_of`` without the shortcut for a registry of one."""
    registry = lc.registry
    if record.state is State.ACTIVE and registry.knows(record.policy):
        return lc.versions[registry.current_for(record.account_id).label]
    return lc.versions[registry.resolve(record).label]


def _outcome(call: Any) -> Any:
    try:
        return call()
    except PolicyMismatch as error:
        return (type(error), str(error))


@pytest.mark.parametrize("policy", [policies.ALLCLIENTS, policies.SMRTPHONE])
@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(["", "allclients", "smrtphone", "other"]),
    version=st.integers(min_value=0, max_value=3),
    state=st.sampled_from(list(State)),
)
def test_rules_of_a_registry_of_one_are_the_general_answer(
    policy: Any, name: str, version: int, state: State
) -> None:
    lc = Lifecycle(
        policy,
        store=MemoryStore(),
        purgers=fake_purgers(policy).values(),
        prerequisites=dict.fromkeys(policy.prerequisites, lambda account_id: ()),
        identity_keys=fake_identity_keys(),
    )
    assert lc.registry.only is lc.policy
    record = AccountRecord(account_id="a-1", state=state, owner="u-1", policy=name, policy_version=version)
    assert _outcome(lambda: lc._rules_of(record)) == _outcome(lambda: _general_rules(lc, record))
    try:  # the runner's: the version the account is pinned to, None for a policy not held
        general = lc.versions[lc.registry.resolve(record).label]
    except PolicyMismatch:
        general = None
    assert lc._runner_rules(record) is general
    assert lc._label_of(name, version) == lc._label_of(name, version)  # cached: the same answer


def test_a_registry_with_a_rollout_or_two_versions_takes_the_general_path() -> None:
    from account_lifecycle import PolicyRegistry

    one = policies.ALLCLIENTS
    two = attrs.evolve(one, version=one.version + 1)
    assert PolicyRegistry([one, two]).only is None
    assert PolicyRegistry([one], rollout=lambda account_id: None).only is None
    assert PolicyRegistry([one]).only is one
