"""Canonical forms of identities and identifiers (issue 15): spellings of one address collide."""

from __future__ import annotations

import unicodedata

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from account_lifecycle import AccountExists, Lifecycle, ManualClock, MemoryStore, Policy, PolicyError
from account_lifecycle.identity import (
    canonical_email,
    canonical_identifier,
    canonical_phone,
    canonical_text,
)

POLICY = """
name = "ids"

[survey]
mode = "off"

[identity]
email = "never"
phone = "never"
username = "never"
"""


def lifecycle(extra: str = "") -> Lifecycle:
    from datetime import UTC, datetime

    policy = Policy.from_toml(POLICY + extra)
    return Lifecycle(policy, store=MemoryStore(), clock=ManualClock(datetime(2026, 1, 31, tzinfo=UTC)))


def test_email_case_collides_when_the_local_part_is_case_insensitive() -> None:
    lc = lifecycle('email_local_part = "case_insensitive"\n')
    record = lc.open("a-1", owner="u-1", identifiers={"email": "Ann@Example.com"})
    assert record.identifiers["email"].value == "ann@example.com"
    with pytest.raises(AccountExists) as caught:
        lc.open("a-2", owner="u-2", identifiers={"email": "ann@example.com"})
    assert caught.value.kind == "email"
    assert "ann@example.com" not in str(caught.value)
    with pytest.raises(AccountExists):
        lc.open("a-3", owner="u-3", identifiers={"email": "  ANN@EXAMPLE.COM "})


def test_case_insensitive_is_the_default() -> None:
    policy = Policy.from_toml(POLICY)
    assert policy.email_local_part == "case_insensitive"
    assert "email_local_part" not in policy.to_toml()
    lc = lifecycle()
    lc.open("a-1", owner="u-1", identifiers={"email": "Ann@Example.com"})
    with pytest.raises(AccountExists):
        lc.open("a-2", owner="u-2", identifiers={"email": "ann@example.com"})


def test_case_sensitive_local_parts_stay_apart_but_domains_do_not() -> None:
    lc = lifecycle('email_local_part = "case_sensitive"\n')
    assert lc.policy.email_local_part == "case_sensitive"
    assert Policy.from_toml(lc.policy.to_toml()) == lc.policy
    first = lc.open("a-1", owner="u-1", identifiers={"email": "Ann@Example.COM"})
    assert first.identifiers["email"].value == "Ann@example.com"
    lc.open("a-2", owner="u-2", identifiers={"email": "ann@example.com"})  # another mailbox
    with pytest.raises(AccountExists):
        lc.open("a-3", owner="u-3", identifiers={"email": "Ann@EXAMPLE.com"})  # same, other domain case


def test_nfc_and_nfd_forms_collide() -> None:
    nfc, nfd = "josé@exämple.com", unicodedata.normalize("NFD", "josé@exämple.com")
    assert nfc != nfd
    lc = lifecycle()
    lc.open(
        "a-1",
        owner="u-1",
        identity=nfd,
        identifiers={"email": nfd, "username": unicodedata.normalize("NFD", "zoë")},
    )
    with pytest.raises(AccountExists) as email:
        lc.open("a-2", owner="u-2", identifiers={"email": nfc})
    assert email.value.kind == "email"
    with pytest.raises(AccountExists) as username:
        lc.open("a-3", owner="u-3", identifiers={"username": "zoë"})
    assert username.value.kind == "username"
    with pytest.raises(AccountExists) as single:
        lc.open("a-4", owner="u-4", identity=nfc)
    assert single.value.kind is None
    assert lc.get("a-1").identity == nfc


@pytest.mark.parametrize(
    "written",
    [
        "+1 (555) 010-0100",
        "+15550100100",
        "+1.555.010.0100",
        " +1 555 010 0100 ",
        "\uff0b\uff11 \uff15\uff15\uff15 \uff10\uff11\uff10 \uff10\uff11\uff10\uff10",
    ],
)
def test_phone_formats_collide(written: str) -> None:
    lc = lifecycle()
    record = lc.open("a-1", owner="u-1", identifiers={"phone": "+1 555-010-0100"})
    assert record.identifiers["phone"].value == "+15550100100"
    with pytest.raises(AccountExists) as caught:
        lc.open("a-2", owner="u-2", identifiers={"phone": written})
    assert caught.value.kind == "phone"


@pytest.mark.parametrize(
    "bad",
    [
        "555 010 0100",
        "+1 555 CALL NOW",
        "+1 555 010 0100 ext. 7",
        "+0 555 010 0100",
        "+123",
        "+1234567890123456",
        "+",
        "call-me",
    ],
)
def test_an_implausible_phone_number_is_a_value_error_naming_no_value(bad: str) -> None:
    lc = lifecycle()
    with pytest.raises(ValueError, match="identifier 'phone'") as caught:
        lc.open("a-1", owner="u-1", identifiers={"phone": bad})
    assert bad.strip() not in str(caught.value)
    assert lc.store.account_ids() == ()


def test_an_unknown_local_part_option_names_the_key() -> None:
    with pytest.raises(PolicyError, match=r"identity\.email_local_part"):
        Policy.from_toml(POLICY + 'email_local_part = "sometimes"\n')
    with pytest.raises(PolicyError, match=r"identity\.email_local_part"):
        Policy.from_toml(POLICY + "email_local_part = 3\n")
    with pytest.raises(PolicyError, match=r"identity\.email_local_part"):
        attrs.evolve(Policy.from_toml(POLICY), email_local_part="CASE_INSENSITIVE")


def test_errors_about_an_identity_never_quote_it() -> None:
    lc = lifecycle()
    with pytest.raises(ValueError) as caught:
        lc.open("a-1", owner="u-1", identity="ann\x00@example.com")
    assert "ann" not in str(caught.value)
    with pytest.raises(ValueError) as long:
        lc.open("a-1", owner="u-1", identifiers={"email": "ann" * 100 + "@example.com"})
    assert "annann" not in str(long.value)


def test_sharp_s_is_not_folded_into_ss() -> None:
    """Lower-casing, not full case folding: straße@ and strasse@ are two mailboxes."""
    assert canonical_email("Straße@Example.com") == "straße@example.com"
    assert canonical_email("STRASSE@example.com") == "strasse@example.com"


_texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)


@given(_texts)
def test_canonical_forms_are_idempotent(value: str) -> None:
    for kind in ("email", "username"):
        once = canonical_identifier(kind, value)
        assert canonical_identifier(kind, once) == once
    assert canonical_text(value) == unicodedata.normalize("NFC", value).strip()


@given(st.integers(10**6, 10**15 - 1), st.lists(st.sampled_from([" ", "-", ".", "(", ")"]), max_size=5))
def test_phone_canonical_form_is_the_digits(number: int, separators: list[str]) -> None:
    digits = str(number)
    written = "+" + "".join(s + d for s, d in zip(separators + [""] * len(digits), digits, strict=False))
    assert canonical_phone(written) == f"+{digits}"
    assert canonical_phone(canonical_phone(written)) == f"+{digits}"
