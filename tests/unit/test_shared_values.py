"""Records share their read-only small mappings and the empty member set (memory per stored
account, ``bench/engine.py``): sharing must be invisible, equal to a private copy in every way."""

from __future__ import annotations

from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from account_lifecycle import model
from account_lifecycle.model import ServiceState, State

keys = st.text(min_size=1, max_size=6)
plain = st.dictionaries(keys, st.one_of(st.text(max_size=6), st.sampled_from(list(State))), max_size=10)


@given(plain)
def test_a_frozen_mapping_equals_its_source_and_is_read_only(source: dict[str, object]) -> None:
    frozen = model._frozen_mapping(source)
    assert dict(frozen) == source
    assert list(frozen) == list(source)  # order kept
    with pytest.raises(TypeError):
        frozen["x"] = "y"  # type: ignore[index]
    before = dict(source)
    source["changed-after"] = "yes"  # the caller's dict changing later changes nothing
    assert dict(frozen) == before


def test_equal_small_mappings_share_one_copy_and_unequal_ones_do_not() -> None:
    a = model._frozen_mapping({"active": "allclients@1", "cancelled": "allclients@1"})
    b = model._frozen_mapping({"active": "allclients@1", "cancelled": "allclients@1"})
    c = model._frozen_mapping({"cancelled": "allclients@1", "active": "allclients@1"})  # other order
    d = model._frozen_mapping({"phone": ServiceState.ACTIVE})
    assert a is b
    assert a is not c
    assert list(c) == ["cancelled", "active"]
    assert d is model._frozen_mapping({"phone": ServiceState.ACTIVE})
    assert d["phone"] is ServiceState.ACTIVE
    assert model._frozen_mapping({}) is model._frozen_mapping(MappingProxyType({}))


def test_mappings_of_other_values_are_private_copies() -> None:
    value = ("not", "a", "plain", "value")
    a = model._frozen_mapping({"k": value})
    b = model._frozen_mapping({"k": value})
    assert a == b
    assert a is not b


def test_the_shared_table_is_bounded_and_stays_correct_past_its_limit() -> None:
    made = [model._frozen_mapping({"n": str(i)}) for i in range(model._SHARED_LIMIT * 2 + 3)]
    assert len(model._SHARED) <= model._SHARED_LIMIT
    assert [m["n"] for m in made] == [str(i) for i in range(len(made))]


def test_empty_members_are_one_set() -> None:
    assert model._frozen_members(()) is model._frozen_members(iter([]))
    assert model._frozen_members(["b", "a"]) == frozenset({"a", "b"})
    with pytest.raises(TypeError):
        model._frozen_members("ann")
