"""The built-in policies, written from the two source documents and shipped as TOML files.

``SMRTPHONE`` and ``ALLCLIENTS`` are loaded once, on first use; ``load(name)`` reads any
shipped file by name and ``path(name)`` says where it is.
"""

from __future__ import annotations

import pkgutil
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

    _check_name(name)
    return resources.files(__name__).joinpath(f"{name}.toml")


def load(name: str) -> Policy:
    """Read built-in policy *name* from its shipped file."""
    # The file's bytes through the package's loader (zip imports included), decoded as
    # ``path(name).read_text()`` would, without importing ``importlib.resources`` (pathlib,
    # zipfile, tempfile...) on the way to a first command.
    _check_name(name)
    data = pkgutil.get_data(__name__, f"{name}.toml")
    if data is None:  # pragma: no cover - a loader that cannot read files
        return Policy.from_toml(path(name).read_text(encoding="utf-8"))
    return Policy.from_toml(data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n"))


def _check_name(name: str) -> None:
    if name not in ("smrtphone", "allclients"):
        raise KeyError(f"no built-in policy {name!r}; expected 'smrtphone' or 'allclients'")


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
