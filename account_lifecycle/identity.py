"""Canonical forms of identities and identifiers: one form per kind, applied before an identity
is compared with another or stored, so that two spellings of one address hold one account.

=========== ==================================================================================
kind        canonical form
=========== ==================================================================================
``email``   Unicode NFC, surrounding whitespace trimmed, the domain (after the last ``@``)
            lower-cased, and the local part (before it) lower-cased too unless the policy says
            ``[identity] email_local_part = "case_sensitive"``
``phone``   E.164: ``+`` and 7 to 15 digits, no separators (``+1 (555) 010-0100`` ->
            ``+15550100100``); a value that is not a plausible international number is a
            ``ValueError``
any other   Unicode NFC, surrounding whitespace trimmed (the single ``identity=`` too)
=========== ==================================================================================

Lower-casing is Unicode's ``str.lower``, not full case folding: folding turns ``ß`` into ``ss``,
and ``straße@`` and ``strasse@`` are two mailboxes. The module is pure (no I/O, no clock) and its
errors never quote the value: identities are personal data.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final, Literal

__all__ = [
    "DEFAULT_EMAIL_LOCAL_PART",
    "EMAIL_LOCAL_PART",
    "MAX_IDENTITY_LENGTH",
    "canonical_email",
    "canonical_identifier",
    "canonical_phone",
    "canonical_text",
    "checked_identity",
]

#: The values of the policy's ``[identity] email_local_part``.
EMAIL_LOCAL_PART: Final = ("case_insensitive", "case_sensitive")
#: The safer default: a false match refuses an ``open`` (visible, support can help); a false
#: difference would silently let ``Ann@`` hold a second account, or take an address while
#: ``ann@``'s account is still restorable or quarantined.
DEFAULT_EMAIL_LOCAL_PART: Final = "case_insensitive"

LocalPart = Literal["case_insensitive", "case_sensitive"]

# Separators people write inside phone numbers; anything else (letters, "ext.", "#") is refused.
_PHONE_SEPARATORS: Final = re.compile(r"[\s\-./()\u2010-\u2015\u2212]")
_DIGITS: Final = re.compile(r"[0-9]+")
_MIN_PHONE_DIGITS: Final = 7  # the shortest numbers in use (country code included)
_MAX_PHONE_DIGITS: Final = 15  # E.164's maximum


#: The longest identity or identifier accepted (the same bound as every id).
MAX_IDENTITY_LENGTH: Final = 255


def checked_identity(value: str, what: str) -> str:
    """*value*, an identity already in canonical form, if it is 1 to ``MAX_IDENTITY_LENGTH``
    printable characters of valid Unicode; ``ValueError`` naming *what* (never the value) if not."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if not value or len(value) > MAX_IDENTITY_LENGTH:
        raise ValueError(f"{what} must be 1 to {MAX_IDENTITY_LENGTH} characters, got {len(value)}")
    if not value.isprintable():
        raise ValueError(f"{what} must be printable text (no control characters or line breaks)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be valid Unicode text (it holds a lone surrogate)") from None
    return value


def canonical_text(value: str) -> str:
    """*value* in Unicode NFC with surrounding whitespace trimmed."""
    if not isinstance(value, str):
        raise TypeError(f"an identity must be a str, got {type(value).__name__}")
    return unicodedata.normalize("NFC", value).strip()


def canonical_email(value: str, *, local_part: LocalPart | str = DEFAULT_EMAIL_LOCAL_PART) -> str:
    """The canonical form of an e-mail address: NFC, trimmed, the domain lower-cased, the local
    part lower-cased when *local_part* is ``"case_insensitive"``. Without an ``@`` the whole
    value is the local part (the host validates addresses; this only compares them)."""
    if local_part not in EMAIL_LOCAL_PART:
        raise ValueError(f"local_part must be one of {', '.join(EMAIL_LOCAL_PART)}, got {local_part!r}")
    text = canonical_text(value)
    local, at, domain = text.rpartition("@")
    if not at:
        local, domain = text, ""
    if local_part == "case_insensitive":
        local = local.lower()
    return unicodedata.normalize("NFC", f"{local}{at}{domain.lower()}")


def canonical_phone(value: str) -> str:
    """The E.164 form of a phone number written in international form (``+44 20 7946 0000``,
    ``+1 (555) 010-0100``): ``+`` and its digits. ``ValueError`` (never quoting the value) for
    a number without its ``+`` and country code, with letters or an extension, or with fewer
    than 7 or more than 15 digits."""
    text = unicodedata.normalize("NFKC", canonical_text(value))  # full-width digits become 0-9
    if not text.startswith("+"):
        raise ValueError(
            "a phone number must be in international form: '+', the country code, then the number "
            "(e.g. +44 20 7946 0000)"
        )
    digits = _PHONE_SEPARATORS.sub("", text[1:])
    if digits and not _DIGITS.fullmatch(digits):
        raise ValueError(
            "a phone number may hold only digits, spaces, hyphens, dots, slashes and brackets "
            "after its '+' (no letters, no extension)"
        )
    if digits.startswith("0"):
        raise ValueError("a phone number's country code never starts with 0")
    if not _MIN_PHONE_DIGITS <= len(digits) <= _MAX_PHONE_DIGITS:
        raise ValueError(
            f"a phone number has {_MIN_PHONE_DIGITS} to {_MAX_PHONE_DIGITS} digits with its country "
            f"code (E.164), this one has {len(digits)}"
        )
    return f"+{digits}"


def canonical_identifier(
    kind: str, value: str, *, email_local_part: LocalPart | str = DEFAULT_EMAIL_LOCAL_PART
) -> str:
    """*value*, an identifier of *kind*, in its kind's canonical form (see the module's table)."""
    if kind == "email":
        return canonical_email(value, local_part=email_local_part)
    if kind == "phone":
        return canonical_phone(value)
    return canonical_text(value)
