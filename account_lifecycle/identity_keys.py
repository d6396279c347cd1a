"""Keyed digests of identities: no identity or identifier is stored in plain text.

An identity (``open(identity=...)``) or an identifier (``open(identifiers={kind: value})``) is
stored, compared and indexed as an HMAC-SHA-256 digest under a secret the host provides
(``Lifecycle(..., identity_keys=IdentityKeys(IdentityKey("k1", secret)))``). Two opens with
the same value give the same digest, so reuse and quarantine checks work on digests; nobody
who reads the store without the key can tell which address a digest names, even by hashing
a list of candidate addresses (a dictionary attack needs the key).

Rotation wraps rather than replaces. A digest records the chain of keys it was made with,
oldest first: ``"k1:<hex>"`` is ``HMAC(k1, kind NUL value)``; once ``k2`` is added,
``"k1+k2:<hex>"`` is ``HMAC(k2, <the k1 digest's hex>)``. So a stored digest is re-keyed to
the newest key *without* the plain value (``Lifecycle.rekey_identities``), and while that has
not reached every account, a lookup accepts the digest under every earlier chain too
(``IdentityKeys.aliases``). The older secrets stay in the configuration as inner layers; one
of them leaked on its own reveals nothing once the stored digests carry the newest key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from typing import Final

import attrs

__all__ = ["IDENTITY_KIND", "IdentityKey", "IdentityKeys", "is_digest"]

#: The kind the single ``open(identity=...)`` is digested under (identifiers use their own kind).
IDENTITY_KIND: Final = "identity"
_KEY_ID: Final = re.compile(r"[a-z0-9_-]{1,16}")
_DIGEST: Final = re.compile(r"([a-z0-9_-]{1,16}(?:\+[a-z0-9_-]{1,16})*):([0-9a-f]{64})")
MIN_SECRET_BYTES: Final = 32


def is_digest(value: str) -> bool:
    """Whether *value* has the form of a keyed digest (``"k1+k2:<64 hex>"``)."""
    return _DIGEST.fullmatch(value) is not None


def _secret(value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise TypeError(f"an identity key's secret must be bytes, got {type(value).__name__}")
    if len(value) < MIN_SECRET_BYTES:
        raise ValueError(
            f"an identity key's secret must be at least {MIN_SECRET_BYTES} random bytes, got {len(value)}; "
            "make one with secrets.token_bytes(32) and keep it in your secret store"
        )
    return bytes(value)


@attrs.frozen
class IdentityKey:
    """One HMAC key: a short public ``id`` (``[a-z0-9_-]{1,16}``, written into every digest it
    makes) and a ``secret`` of at least 32 random bytes, never shown in ``repr``."""

    id: str = attrs.field()
    secret: bytes = attrs.field(converter=_secret, repr=False)

    @id.validator
    def _check_id(self, _attribute: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or _KEY_ID.fullmatch(value) is None:
            raise ValueError(f"an identity key id is 1 to 16 of a-z, 0-9, '_' and '-', got {value!r}")

    @classmethod
    def generate(cls, key_id: str) -> IdentityKey:
        """A fresh random key (store its secret: digests made with it are useless without it)."""
        return cls(key_id, secrets.token_bytes(MIN_SECRET_BYTES))

    def mac(self, data: bytes) -> str:
        """HMAC-SHA-256 of *data* under this key, as hex."""
        return hmac.new(self.secret, data, hashlib.sha256).hexdigest()


def _previous(value: Iterable[IdentityKey]) -> tuple[IdentityKey, ...]:
    keys = tuple(value)
    for key in keys:
        if not isinstance(key, IdentityKey):
            raise TypeError(f"previous keys must be IdentityKey values, got {type(key).__name__}")
    return keys


@attrs.frozen
class IdentityKeys:
    """The keys of a deployment: ``current`` (the newest) and the ``previous`` ones, oldest
    first. Every digest is made with the whole chain, oldest key innermost; a lookup also
    accepts digests under each shorter chain (accounts not re-keyed yet)."""

    current: IdentityKey = attrs.field(validator=attrs.validators.instance_of(IdentityKey))
    previous: tuple[IdentityKey, ...] = attrs.field(default=(), converter=_previous)

    def __attrs_post_init__(self) -> None:
        ids = [k.id for k in self.chain]
        if len(set(ids)) != len(ids):
            raise ValueError(f"identity key ids must differ, got {', '.join(ids)}")

    @property
    def chain(self) -> tuple[IdentityKey, ...]:
        """Every key, oldest first: the order a digest applies them in."""
        return (*self.previous, self.current)

    @property
    def label(self) -> str:
        """The chain label of a current digest: ``"k1+k2"``."""
        return "+".join(k.id for k in self.chain)

    def _layers(self, kind: str, value: str) -> list[str]:
        """The digest of *value* under each prefix of the chain, shortest first."""
        out = []
        data = f"{kind}\x00{value}".encode("utf-8", "surrogatepass")
        ids: list[str] = []
        for key in self.chain:
            ids.append(key.id)
            hexdigest = key.mac(data)
            out.append(f"{'+'.join(ids)}:{hexdigest}")
            data = hexdigest.encode("ascii")
        return out

    def digest(self, kind: str, value: str) -> str:
        """The digest stored for *value* of *kind* (``"identity"`` or an identifier kind)."""
        return self._layers(kind, value)[-1]

    def aliases(self, kind: str, value: str) -> tuple[str, ...]:
        """The digests of *value* under the shorter chains (accounts not yet re-keyed): a
        lookup treats each as the digest itself."""
        return tuple(self._layers(kind, value)[:-1])

    def rekeyed(self, digest: str) -> str | None:
        """*digest* wrapped with the keys it lacks, so that it is the current digest of the same
        value; None if it is current already. ``ValueError`` for a digest that is not under a
        prefix of this chain (made with unknown keys, or not a digest: a plain identity)."""
        match = _DIGEST.fullmatch(digest)
        if match is None:
            raise ValueError("not a keyed digest (a plain identity, or damaged)")
        ids = match.group(1).split("+")
        chain = self.chain
        if ids != [k.id for k in chain[: len(ids)]]:
            raise ValueError(f"made with keys {'+'.join(ids)}, which are not a prefix of {self.label}")
        if len(ids) == len(chain):
            return None
        hexdigest = match.group(2)
        for key in chain[len(ids) :]:
            ids.append(key.id)
            hexdigest = key.mac(hexdigest.encode("ascii"))
        return f"{'+'.join(ids)}:{hexdigest}"
