"""The policy studio: a local web page to edit a policy file, see its machine, prove its
invariants, simulate a sample account and compare it with a baseline (``docs/studio.md``).

``server.make_server`` builds the server (standard library only); ``command.studio`` is the
command line (extra ``cli``). The page's assets ship in ``assets/``: no CDN, no build step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from account_lifecycle import _lazy

if TYPE_CHECKING:  # imported on first use by __getattr__ below (PEP 562)
    from account_lifecycle.studio.server import MAX_BODY, RemoteRefused, Studio, StudioServer, make_server

__all__ = ["MAX_BODY", "RemoteRefused", "Studio", "StudioServer", "make_server"]

#: Every public name is the server module's: ``account-lifecycle --help`` registers the studio
#: command without importing the server.
_LAZY = dict.fromkeys(__all__, f"{__name__}.server")


def __getattr__(name: str) -> Any:
    return _lazy.resolve(globals(), _LAZY, name)


def __dir__() -> list[str]:
    return _lazy.listing(globals(), __all__)
