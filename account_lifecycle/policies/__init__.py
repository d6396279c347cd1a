"""The built-in policies, written from the two source documents and shipped as TOML files.

``SMRTPHONE`` and ``ALLCLIENTS`` are loaded once at import; ``load(name)`` reads any
shipped file by name and ``path(name)`` says where it is.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable

from account_lifecycle.policy import Policy

__all__ = ["ALLCLIENTS", "BUILTIN", "SMRTPHONE", "load", "path"]


def path(name: str) -> Traversable:
    """The shipped TOML file of built-in policy *name* (``"smrtphone"``, ``"allclients"``)."""
    if name not in ("smrtphone", "allclients"):
        raise KeyError(f"no built-in policy {name!r}; expected 'smrtphone' or 'allclients'")
    return resources.files(__name__).joinpath(f"{name}.toml")


def load(name: str) -> Policy:
    """Read built-in policy *name* from its shipped file."""
    return Policy.from_toml(path(name).read_text(encoding="utf-8"))


SMRTPHONE: Policy = load("smrtphone")
ALLCLIENTS: Policy = load("allclients")
BUILTIN: dict[str, Policy] = {"smrtphone": SMRTPHONE, "allclients": ALLCLIENTS}
