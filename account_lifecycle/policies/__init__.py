"""The built-in policies, written from the two source documents and shipped as TOML files.

``SMRTPHONE`` and ``ALLCLIENTS`` are loaded once, on first use; ``load(name)`` reads any
shipped file by name and ``path(name)`` says where it is.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from account_lifecycle.policy import Policy

if TYPE_CHECKING:
    from importlib.abc import Traversable

    SMRTPHONE: Policy
    ALLCLIENTS: Policy
    BUILTIN: dict[str, Policy]

__all__ = ["ALLCLIENTS", "BUILTIN", "SMRTPHONE", "load", "path"]


def path(name: str) -> Traversable:
    """The shipped TOML file of built-in policy *name* (``"smrtphone"``, ``"allclients"``)."""
    from importlib import resources

    if name not in ("smrtphone", "allclients"):
        raise KeyError(f"no built-in policy {name!r}; expected 'smrtphone' or 'allclients'")
    return resources.files(__name__).joinpath(f"{name}.toml")


def load(name: str) -> Policy:
    """Read built-in policy *name* from its shipped file."""
    return Policy.from_toml(path(name).read_text(encoding="utf-8"))


_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    # Read on first use rather than at import, which keeps ``import account_lifecycle`` fast
    # (parsing and validating the files was the largest part of it). Loaded once, under a
    # lock, so every caller gets the same objects.
    if name not in ("SMRTPHONE", "ALLCLIENTS", "BUILTIN"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _lock:
        if "BUILTIN" not in globals():
            smrtphone, allclients = load("smrtphone"), load("allclients")
            globals().update(
                SMRTPHONE=smrtphone,
                ALLCLIENTS=allclients,
                BUILTIN={"smrtphone": smrtphone, "allclients": allclients},
            )
    return globals()[name]


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
