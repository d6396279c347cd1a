"""OpenTelemetry spans and metrics (extra ``otel``: the library calls ``opentelemetry-api`` only;
the host configures an SDK and its exporters). Without the extra, every function here does
nothing and records nothing.

Spans: ``account_lifecycle.command`` per command (``open`` and every user command),
``account_lifecycle.purge_step`` per purge step or effect hook run, ``account_lifecycle.sweep``
per sweep. Metrics: ``account_lifecycle.commands`` (by action and result),
``account_lifecycle.purge.steps`` and ``account_lifecycle.purge.step.duration`` (by category and
result), ``account_lifecycle.reminders.sent`` (through ``listener``), and, once ``observe_store``
is called, the gauges ``account_lifecycle.backlog``, ``account_lifecycle.backlog.oldest_age``
and ``account_lifecycle.purge.failed_steps``. Attributes carry account ids, actions, categories,
results and error types: never an identity, a survey answer or an error's message.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from account_lifecycle.errors import LifecycleError

if TYPE_CHECKING:
    from account_lifecycle.audit import AuditEvent
    from account_lifecycle.health import StatusSource, StoreStatus
    from account_lifecycle.ports import Clock

# The API (``opentelemetry.trace``, ``opentelemetry.metrics``) is imported by ``_api()`` on the
# first call that could record: importing it costs about a tenth of the library's own import,
# and until a provider is set it would record nothing.
_trace: Any = None
_metrics: Any = None
#: The API's stand-in until a meter provider is set (not exported by the API).
_ProxyMeterProvider: Any = None
_installed: bool | None = None  # whether the otel extra is installed, found on first ask

__all__ = [
    "METRICS",
    "SPANS",
    "enabled",
    "listener",
    "observe_store",
    "traced_command",
    "traced_open",
    "traced_step",
    "traced_sweep",
]

SCOPE: Final = "account_lifecycle"

SPAN_COMMAND: Final = "account_lifecycle.command"
SPAN_PURGE_STEP: Final = "account_lifecycle.purge_step"
SPAN_SWEEP: Final = "account_lifecycle.sweep"
#: Every span name this module starts.
SPANS: Final = (SPAN_COMMAND, SPAN_PURGE_STEP, SPAN_SWEEP)

COMMANDS: Final = "account_lifecycle.commands"
STEPS: Final = "account_lifecycle.purge.steps"
STEP_DURATION: Final = "account_lifecycle.purge.step.duration"
REMINDERS: Final = "account_lifecycle.reminders.sent"
BACKLOG: Final = "account_lifecycle.backlog"
OLDEST_DUE_AGE: Final = "account_lifecycle.backlog.oldest_age"
FAILED_STEPS: Final = "account_lifecycle.purge.failed_steps"
#: Every metric name this module records, with its kind and unit.
METRICS: Final = {
    COMMANDS: ("counter", "{command}"),
    STEPS: ("counter", "{step}"),
    STEP_DURATION: ("histogram", "s"),
    REMINDERS: ("counter", "{reminder}"),
    BACKLOG: ("gauge", "{account}"),
    OLDEST_DUE_AGE: ("gauge", "s"),
    FAILED_STEPS: ("gauge", "{step}"),
}

ACCOUNT: Final = "account_lifecycle.account_id"
ACTION: Final = "account_lifecycle.action"
CATEGORY: Final = "account_lifecycle.category"
RESULT: Final = "account_lifecycle.result"
ATTEMPT: Final = "account_lifecycle.attempt"
ERROR_TYPE: Final = "error.type"

F = TypeVar("F", bound=Callable[..., Any])
_instruments: dict[str, Any] = {}
_lock = threading.Lock()


def enabled() -> bool:
    """Whether ``opentelemetry-api`` is installed (the ``otel`` extra): found without importing it."""
    global _installed
    if _installed is None:
        try:
            _installed = find_spec("opentelemetry.trace") is not None
        except (ImportError, ValueError):  # ``opentelemetry`` unimportable, or blocked in sys.modules
            _installed = False
    return _installed


def _api() -> bool:
    """Import the API once (True if it is installed and imports)."""
    global _trace, _metrics, _ProxyMeterProvider, _installed
    if _trace is None and enabled():
        try:
            from opentelemetry import metrics, trace
        except ImportError:  # pragma: no cover - found but broken: record nothing
            _installed = False
            return False
        try:
            from opentelemetry.metrics import _internal
        except ImportError:  # pragma: no cover - moved by a later API: always record
            _internal = None  # type: ignore[assignment]
        _metrics, _ProxyMeterProvider = metrics, getattr(_internal, "_ProxyMeterProvider", None)
        _trace = trace
    return _trace is not None


_live = False  # a provider was seen: it stays (the API sets each provider once per process)


def _recording() -> bool:
    """Whether a span or a count made now could be recorded: a tracer or a meter provider is
    set (or named by the environment). Until one is, the API hands out proxies that record
    nothing (its no-op span carries the caller's context on, which the caller's own span
    already does), so the wrappers below call the method alone: a third of the CPU of an
    in-memory command (``bench/engine.py``). Asked at every call until a provider is seen,
    so one set later is followed at once, as the proxies would."""
    global _live
    if _live:
        return True
    if _unset() or not _api():
        return False
    if _ProxyMeterProvider is not None and (
        isinstance(_trace.get_tracer_provider(), _trace.ProxyTracerProvider)
        and isinstance(_metrics.get_meter_provider(), _ProxyMeterProvider)
    ):
        return False
    _live = True
    return True


_NAMED = any(name in os.environ for name in ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER"))
_UNSURE = object()


def _unset() -> bool:
    """A cheap "no provider set, none named by the environment", read from the API's module
    globals (0.1 us; asking the API for its providers costs 5-10 us); False when unsure, and
    the providers are then asked. A host that set a provider has imported the API's module,
    so an unimported module means none is set, and nothing is imported here."""
    if _NAMED:
        return False
    found = _modules.get("opentelemetry.trace")
    if found is not None and getattr(found, "_TRACER_PROVIDER", _UNSURE) is not None:
        return False
    found = _modules.get("opentelemetry.metrics._internal")
    return found is None or getattr(found, "_METER_PROVIDER", _UNSURE) is None


_modules = sys.modules


def _instrument(name: str) -> Any:
    """The counter or histogram *name*, made once (the API's proxies follow a provider set later)."""
    _api()
    with _lock:
        found = _instruments.get(name)
        if found is None:
            meter = _metrics.get_meter(SCOPE)
            kind, unit = METRICS[name]
            make = meter.create_histogram if kind == "histogram" else meter.create_counter
            found = _instruments[name] = make(name, unit=unit)
        return found


def _result_of(exc: BaseException) -> str:
    return "refused" if isinstance(exc, LifecycleError) else "error"


@contextmanager
def _command(action: str, account_id: str) -> Iterator[None]:
    tracer = _trace.get_tracer(SCOPE)
    attributes = {ACCOUNT: account_id, ACTION: action}
    with tracer.start_as_current_span(
        SPAN_COMMAND, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as span:
        try:
            yield
        except BaseException as exc:
            result = _result_of(exc)
            span.set_attributes({RESULT: result, ERROR_TYPE: type(exc).__name__})
            if result == "error":
                span.set_status(_trace.Status(_trace.StatusCode.ERROR, type(exc).__name__))
            _instrument(COMMANDS).add(1, {ACTION: action, RESULT: result, ERROR_TYPE: type(exc).__name__})
            raise
        span.set_attribute(RESULT, "ok")
        _instrument(COMMANDS).add(1, {ACTION: action, RESULT: "ok"})


#: Whether a command run now would be recorded (a span and a count): ``Lifecycle`` decides a
#: command through its express path only when it would not (the general path records it).
recording = _recording


def traced_command(method: F) -> F:
    """Wrap ``Lifecycle._apply(account_id, command, ...)``: a span and a count per command."""
    if not enabled():
        return method

    @functools.wraps(method)
    def run(self: Any, account_id: str, command: Any, *args: Any, **kwargs: Any) -> Any:
        if not _recording():
            return method(self, account_id, command, *args, **kwargs)
        with _command(str(command.action), account_id):
            return method(self, account_id, command, *args, **kwargs)

    return cast(F, run)


def traced_open(method: F) -> F:
    """Wrap ``Lifecycle.open(account_id, ...)``: a span and a count for the ``open`` command."""
    if not enabled():
        return method

    @functools.wraps(method)
    def run(self: Any, account_id: str, *args: Any, **kwargs: Any) -> Any:
        if not _recording():
            return method(self, account_id, *args, **kwargs)
        with _command("open", account_id):
            return method(self, account_id, *args, **kwargs)

    return cast(F, run)


def traced_step(method: F) -> F:
    """Wrap ``PurgeRunner._run_step(record, key)``: a span, a count and a duration per step; the
    result is ``done`` or ``failed`` (the purger's error type, never its message)."""
    if not enabled():
        return method

    @functools.wraps(method)
    def run(self: Any, record: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        if not _recording():
            return method(self, record, key, *args, **kwargs)
        tracer = _trace.get_tracer(SCOPE)
        attempt = getattr(record.purge.get(key), "attempts", 0) + 1
        attributes = {ACCOUNT: record.account_id, CATEGORY: key, ATTEMPT: attempt}
        start = time.perf_counter()
        with tracer.start_as_current_span(
            SPAN_PURGE_STEP, attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                outcome = method(self, record, key, *args, **kwargs)
            except BaseException as exc:
                labels = {CATEGORY: key, RESULT: "error", ERROR_TYPE: type(exc).__name__}
                span.set_attributes(labels)
                span.set_status(_trace.Status(_trace.StatusCode.ERROR, type(exc).__name__))
                _record_step(labels, start)
                raise
            error = getattr(outcome, "error", None)
            labels = {CATEGORY: key, RESULT: "done" if error is None else "failed"}
            if error is not None:
                # "TypeError: ..." as the runner describes it: the type only, never the message
                labels[ERROR_TYPE] = str(error).split(":", 1)[0][:100]
                span.set_status(_trace.Status(_trace.StatusCode.ERROR, labels[ERROR_TYPE]))
            span.set_attributes(labels)
            _record_step(labels, start)
            return outcome

    return cast(F, run)


def _record_step(labels: dict[str, str], start: float) -> None:
    _instrument(STEPS).add(1, labels)
    _instrument(STEP_DURATION).record(time.perf_counter() - start, labels)


def traced_sweep(method: F) -> F:
    """Wrap ``PurgeRunner.sweep``: one span with how many accounts were purged, failed and
    became restorable."""
    if not enabled():
        return method

    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _recording():
            return method(self, *args, **kwargs)
        tracer = _trace.get_tracer(SCOPE)
        with tracer.start_as_current_span(SPAN_SWEEP) as span:
            report = method(self, *args, **kwargs)
            span.set_attributes(
                {
                    "account_lifecycle.purged": len(report.purged),
                    "account_lifecycle.failed": len(report.failed),
                    "account_lifecycle.restorable": len(report.restorable),
                }
            )
            return report

    return cast(F, run)


def listener(event: AuditEvent) -> None:
    """A ``Listener`` for ``Lifecycle(listeners=[...])``: counts each reminder sent
    (``account_lifecycle.reminders.sent``). Does nothing without the extra."""
    if event.action == "reminder" and enabled():
        _instrument(REMINDERS).add(1)


class _Snapshot:
    """One ``status`` read per collection, shared by the three gauges (at most once a second)."""

    def __init__(self, store: StatusSource, clock: Clock | None) -> None:
        self.store, self.clock = store, clock
        self.read_at = -1.0
        self.status: StoreStatus | None = None
        self.lock = threading.Lock()

    def get(self) -> StoreStatus:
        with self.lock:
            if self.status is None or time.monotonic() - self.read_at > 1.0:
                now = datetime.now(UTC) if self.clock is None else self.clock.now()
                self.status = self.store.status(now=now)
                self.read_at = time.monotonic()
            return self.status


def observe_store(store: StatusSource, *, clock: Clock | None = None) -> None:
    """Register the backlog gauges for *store* (any store with ``status(now=...)``): accounts
    due, the age of the oldest due work in seconds, and failed steps by category. The store is
    read (read-only) only when a metric reader collects. Does nothing without the extra."""
    if not enabled():
        return
    if not _api():  # pragma: no cover - found but broken
        return
    from opentelemetry.metrics import CallbackOptions, Observation

    snapshot = _Snapshot(store, clock)
    meter = _metrics.get_meter(SCOPE)

    def backlog(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(snapshot.get().due)]

    def oldest(options: CallbackOptions) -> Iterable[Observation]:
        age = snapshot.get().oldest_due_age
        return [Observation(0.0 if age is None else age.total_seconds())]

    def failed(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, {CATEGORY: key}) for key, count in snapshot.get().failed.items()]

    meter.create_observable_gauge(BACKLOG, [backlog], unit=METRICS[BACKLOG][1])
    meter.create_observable_gauge(OLDEST_DUE_AGE, [oldest], unit=METRICS[OLDEST_DUE_AGE][1])
    meter.create_observable_gauge(FAILED_STEPS, [failed], unit=METRICS[FAILED_STEPS][1])
