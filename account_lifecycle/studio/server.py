"""The studio's web server: the standard library's ``ThreadingHTTPServer`` and a JSON API.

It listens on loopback unless told ``allow_remote``; it answers only requests addressed to
that loopback host (a page elsewhere cannot reach it by DNS rebinding) and only JSON posts
(a form on another site cannot post one without a CORS preflight, which it never grants).
Bodies are bounded and must be one JSON object with known fields. It writes one file: the
policy it was started with, never a path from the client; a save is atomic (a temporary
file, then ``os.replace``) and keeps the previous text as ``<file>.bak``. The log names the
method, the route and the status, never a body.

Routes: ``GET /`` and its two assets; ``GET /api/session``; ``POST /api/analyse``,
``/api/save``, ``/api/sim/reset``, ``/api/sim/act``, ``/api/sim/clock``,
``/api/sim/options``, ``/api/sim/replay``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, Final

from account_lifecycle.model import State
from account_lifecycle.policy import Policy
from account_lifecycle.studio.analysis import analyse, check_text
from account_lifecycle.studio.simulator import ACTORS, Simulator, SimulatorError

__all__ = ["MAX_BODY", "RemoteRefused", "Studio", "StudioServer", "make_server"]

#: The largest request body taken, in bytes (a policy file is a few kilobytes).
MAX_BODY: Final = 256 * 1024
_ASSETS: Final = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/studio.js": ("studio.js", "text/javascript; charset=utf-8"),
    "/studio.css": ("studio.css", "text/css; charset=utf-8"),
}
_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class RemoteRefused(ValueError):
    """Asked to listen beyond loopback without ``allow_remote``."""


class BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Studio:
    """The state behind the page: the file, its baseline, the last valid policy, the simulator."""

    def __init__(self, path: Path, baseline: Policy | None) -> None:
        self.path = path
        self.baseline = baseline
        self.lock = threading.Lock()
        text = path.read_text(encoding="utf-8")
        self.on_disk = _digest(text)
        policy, _ = check_text(text)
        self.policy = policy
        self.simulator = None if policy is None else Simulator(policy)

    # -- the file --------------------------------------------------------------------------

    def session(self) -> dict[str, Any]:
        return {
            "file": self.path.name,
            "text": self.path.read_text(encoding="utf-8"),
            "baseline": None if self.baseline is None else self.baseline.label,
            "actors": list(ACTORS),
            "states": [s.value for s in State],
            "max_body": MAX_BODY,
        }

    def analyse(self, text: str) -> dict[str, Any]:
        result = analyse(text, self.baseline)
        if result["valid"]:
            policy, _ = check_text(text)
            assert policy is not None
            if policy != self.policy or self.simulator is None:
                self.policy = policy
                self.simulator = Simulator(policy)
                result["simulator_restarted"] = True
        result["simulator"] = None if self.simulator is None else self.simulator.view()
        return result

    def save(self, text: str, overwrite: bool) -> dict[str, Any]:
        policy, errors = check_text(text)
        if policy is None:
            raise BadRequest(HTTPStatus.UNPROCESSABLE_ENTITY, f"not saved: {errors[0]['text']}")
        current = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
        if _digest(current) != self.on_disk and not overwrite:
            raise BadRequest(
                HTTPStatus.CONFLICT, f"not saved: {self.path.name} changed on disk since it was opened"
            )
        backup = self.path.with_name(self.path.name + ".bak")
        _write_atomically(backup, current)
        _write_atomically(self.path, text)
        self.on_disk = _digest(text)
        return {"saved": self.path.name, "backup": backup.name, "label": policy.label}

    # -- the simulator ---------------------------------------------------------------------

    def sim(self) -> Simulator:
        if self.simulator is None:
            raise BadRequest(HTTPStatus.CONFLICT, "the policy is not valid yet: fix it to simulate")
        return self.simulator

    def reset(self, state: str) -> dict[str, Any]:
        try:
            target = State(state)
        except ValueError:
            raise SimulatorError("state must be one of " + ", ".join(s.value for s in State)) from None
        fresh = Simulator(self.sim().policy)
        fresh.set_options(purgers_fail=False, prerequisites_pending=False)
        fresh.drive_to(target)
        self.simulator = fresh
        return {"simulator": fresh.view()}

    def replay(self, invariant: str) -> dict[str, Any]:
        from account_lifecycle.verify import verify_policy

        simulator = self.sim()
        report = verify_policy(simulator.policy)
        found = [r for r in report.results if r.id == invariant]
        if not found or found[0].counterexample is None:
            raise SimulatorError("that invariant has no counterexample to replay")
        counterexample = found[0].counterexample
        fresh = Simulator(simulator.policy)
        steps = fresh.replay(counterexample.to_dict()["path"])
        self.simulator = fresh
        return {
            "invariant": invariant,
            "conclusion": counterexample.conclusion,
            "steps": steps,
            "simulator": fresh.view(),
        }


def _write_atomically(path: Path, text: str) -> None:
    """Write *text* to a temporary file beside *path*, flush it to disk, then rename it over."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# -- request bodies ---------------------------------------------------------------------------


def _fields(body: dict[str, Any], required: dict[str, type], optional: dict[str, type]) -> dict[str, Any]:
    """*body*'s fields, each of its type; an unknown, missing or mistyped one is a 400."""
    unknown = sorted(set(body) - set(required) - set(optional))
    if unknown:
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"unknown field {unknown[0]!r}")
    for name, kind in {**required, **optional}.items():
        if name not in body:
            if name in required:
                raise BadRequest(HTTPStatus.BAD_REQUEST, f"missing field {name!r}")
            continue
        value = body[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"field {name!r} must be {kind.__name__}")
    return body


_Route = Callable[[Studio, dict[str, Any]], dict[str, Any]]


def _analyse(studio: Studio, body: dict[str, Any]) -> dict[str, Any]:
    return studio.analyse(_fields(body, {"text": str}, {})["text"])


def _save(studio: Studio, body: dict[str, Any]) -> dict[str, Any]:
    fields = _fields(body, {"text": str}, {"overwrite": bool})
    return studio.save(fields["text"], fields.get("overwrite", False))


def _reset(studio: Studio, body: dict[str, Any]) -> dict[str, Any]:
    return studio.reset(_fields(body, {"state": str}, {})["state"])


def _act(studio: Studio, body: dict[str, Any]) -> dict[str, Any]:
    fields = _fields(body, {"actor": str, "action": str}, {"inputs": dict})
    simulator = studio.sim()
    refused = simulator.act(fields["actor"], fields["action"], fields.get("inputs", {}))
    return {"refused": refused, "simulator": simulator.view()}


def _clock(studio: Studio, body: dict[str, Any]) -> dict[str, Any]:
    fields = _fields(body, {"amount": int, "unit": str}, {})
    simulator = studio.sim()
    simulator.move_clock(fields["amount"], fields["unit"])
    return {"simulator": simulator.view()}


def _options(studio: Studio, body: dict[str, Any]) -> dict[str, Any]:
    fields = _fields(body, {"purgers_fail": bool, "prerequisites_pending": bool}, {})
    simulator = studio.sim()
    simulator.set_options(
        purgers_fail=fields["purgers_fail"], prerequisites_pending=fields["prerequisites_pending"]
    )
    return {"simulator": simulator.view()}


def _replay(studio: Studio, body: dict[str, Any]) -> dict[str, Any]:
    return studio.replay(_fields(body, {"invariant": str}, {})["invariant"])


_POSTS: Final[dict[str, _Route]] = {
    "/api/analyse": _analyse,
    "/api/save": _save,
    "/api/sim/reset": _reset,
    "/api/sim/act": _act,
    "/api/sim/clock": _clock,
    "/api/sim/options": _options,
    "/api/sim/replay": _replay,
}


class _Handler(BaseHTTPRequestHandler):
    server: StudioServer
    server_version = "account-lifecycle-studio"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a connection may stall (a body promised and never sent) before it is dropped

    def log_message(self, format: str, *args: Any) -> None:
        pass  # log_request below says what is worth saying, and nothing from the request body

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if not self.server.quiet:
            route = self.path.split("?", 1)[0][:100]
            print(f"studio: {self.command} {route} {code}", file=sys.stderr)

    # -- replies ---------------------------------------------------------------------------

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in _HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: HTTPStatus, data: dict[str, Any]) -> None:
        body = json.dumps(data, ensure_ascii=True, sort_keys=True).encode("ascii")
        self._send(status, body, "application/json")

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json(status, {"error": status.phrase, "message": message})

    # -- checks every request passes ---------------------------------------------------------

    def _host_ok(self) -> bool:
        if self.server.allow_remote:
            return True
        host = self.headers.get("Host", "")
        return host in self.server.hosts

    def _body(self) -> dict[str, Any]:
        kind = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if kind != "application/json":
            raise BadRequest(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/json")
        if self.headers.get("Transfer-Encoding"):
            raise BadRequest(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length, not a chunked body")
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            raise BadRequest(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length")
        length = int(length_text)
        if length > MAX_BODY:
            raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"bodies are at most {MAX_BODY} bytes")
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        return body

    # -- methods ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._host_ok():
            self.close_connection = True
            return self._error(HTTPStatus.FORBIDDEN, "this studio answers only on its own address")
        route = self.path.split("?", 1)[0]
        if route in _ASSETS:
            name, content_type = _ASSETS[route]
            body = resources.files("account_lifecycle.studio").joinpath("assets", name).read_bytes()
            return self._send(HTTPStatus.OK, body, content_type)
        if route == "/api/session":
            with self.server.studio.lock:
                return self._json(HTTPStatus.OK, self.server.studio.session())
        return self._error(HTTPStatus.NOT_FOUND, "no such page")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        if not self._host_ok():
            self.close_connection = True
            return self._error(HTTPStatus.FORBIDDEN, "this studio answers only on its own address")
        origin = self.headers.get("Origin")
        if (
            origin is not None
            and not self.server.allow_remote
            and origin.split("://", 1)[-1] not in self.server.hosts
        ):
            self.close_connection = True
            return self._error(HTTPStatus.FORBIDDEN, "posts come only from the studio's own page")
        route = self.path.split("?", 1)[0]
        handler = _POSTS.get(route)
        try:
            body = self._body()
            if handler is None:
                raise BadRequest(HTTPStatus.NOT_FOUND, "no such route")
            with self.server.studio.lock:
                result = handler(self.server.studio, body)
        except BadRequest as bad:
            self.close_connection = True
            return self._error(bad.status, bad.message)
        except SimulatorError as exc:
            return self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except OSError as exc:
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"could not write the file: {exc.strerror}")
        return self._json(HTTPStatus.OK, result)

    def _refuse(self) -> None:
        self.close_connection = True
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "only GET and POST")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse


class StudioServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, studio: Studio, host: str, port: int, *, allow_remote: bool, quiet: bool) -> None:
        self.studio = studio
        self.allow_remote = allow_remote
        self.quiet = quiet
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)
        bound = self.server_address[1]
        self.hosts = frozenset({f"127.0.0.1:{bound}", f"localhost:{bound}", f"[::1]:{bound}"})

    @property
    def url(self) -> str:
        host = str(self.server_address[0])
        shown = "127.0.0.1" if host in ("127.0.0.1", "0.0.0.0") else host  # noqa: S104 - a display name
        return f"http://{shown}:{self.server_address[1]}/"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(
    path: Path,
    baseline: Policy | None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    allow_remote: bool = False,
    quiet: bool = False,
) -> StudioServer:
    """A studio server for the policy file *path* (not yet serving: call ``serve_forever``).
    ``RemoteRefused`` for a host beyond loopback without *allow_remote*."""
    if not is_loopback(host) and not allow_remote:
        raise RemoteRefused(
            f"refusing to listen on {host}: the studio serves this machine only (127.0.0.1); "
            "pass --allow-remote to listen beyond it"
        )
    return StudioServer(Studio(path, baseline), host, port, allow_remote=allow_remote, quiet=quiet)
