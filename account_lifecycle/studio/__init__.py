"""The policy studio: a local web page to edit a policy file, see its machine, prove its
invariants, simulate a sample account and compare it with a baseline (``docs/studio.md``).

``server.make_server`` builds the server (standard library only); ``command.studio`` is the
command line (extra ``cli``). The page's assets ship in ``assets/``: no CDN, no build step.
"""

from __future__ import annotations

from account_lifecycle.studio.server import MAX_BODY, RemoteRefused, Studio, StudioServer, make_server

__all__ = ["MAX_BODY", "RemoteRefused", "Studio", "StudioServer", "make_server"]
