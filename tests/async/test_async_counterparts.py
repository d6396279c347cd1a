"""The asyncio front end has everything the synchronous one has: every public method of
Lifecycle is a coroutine method of AsyncLifecycle with the same parameters, the constructors
take the same arguments, the async store protocols mirror ports.py, and the async stores have
every public method of the stores they run."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from account_lifecycle import AsyncLifecycle, Lifecycle, MemoryStore, SQLiteStore, ThreadedStore
from account_lifecycle.aio import ports as async_ports
from account_lifecycle.ports import AccountStore, BatchStore, OutboxStore, QueryStore

#: Public methods of Lifecycle that do no I/O, and whose AsyncLifecycle counterpart is therefore
#: a plain method (tested on its own below): ``using`` builds a lifecycle on another store.
NOT_COROUTINES = frozenset({"using"})


def public_methods(cls: type) -> list[str]:
    """The public methods *cls* defines or inherits (not those of ``object``), but those of
    ``NOT_COROUTINES``."""
    return sorted(
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and inspect.isfunction(member) and name not in NOT_COROUTINES
    )


def parameters(fn: Callable[..., Any]) -> list[tuple[str, object, object]]:
    """Name, kind and default of each parameter (annotations differ: a purger may be async)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def missing_counterparts(sync: type, asynchronous: type) -> list[str]:
    """Public methods of *sync* that *asynchronous* lacks, has as a plain function, or has with
    other parameters."""
    missing = []
    for name in public_methods(sync):
        counterpart = getattr(asynchronous, name, None)
        if (
            counterpart is None
            or not inspect.iscoroutinefunction(counterpart)
            or parameters(counterpart) != parameters(getattr(sync, name))
        ):
            missing.append(name)
    return missing


def test_lifecycle_has_the_commands_this_checks() -> None:
    """The scan sees the commands (it would pass on nothing otherwise)."""
    assert {"open", "confirm", "restore", "sweep", "claim_due", "run_claimed", "receipt"} <= set(
        public_methods(Lifecycle)
    )


def test_every_public_lifecycle_method_has_an_async_counterpart() -> None:
    """A method added to Lifecycle without its one line in AsyncLifecycle fails here."""
    assert missing_counterparts(Lifecycle, AsyncLifecycle) == []


def test_a_lifecycle_method_without_counterpart_is_reported() -> None:
    """The check finds a method AsyncLifecycle lacks, and one with other parameters."""

    class Grown(Lifecycle):
        def add_member(self, account_id: str, user: str) -> None:
            """A command AsyncLifecycle does not have."""

        def get(self, account_id: str, *, fresh: bool = False) -> Any:  # type: ignore[override]
            """Another parameter than AsyncLifecycle.get's."""

    assert missing_counterparts(Grown, AsyncLifecycle) == ["add_member", "get"]


def test_the_constructors_take_the_same_arguments() -> None:
    """Same names, kinds and defaults, in the same order."""
    assert parameters(AsyncLifecycle.__init__) == parameters(Lifecycle.__init__)


def test_async_counterparts_keep_the_docstrings() -> None:
    """The reference shows each async command with the sync command's docstring."""
    for name in public_methods(Lifecycle):
        assert getattr(AsyncLifecycle, name).__doc__ == getattr(Lifecycle, name).__doc__


@pytest.mark.parametrize(
    ("sync", "asynchronous"),
    [
        (AccountStore, async_ports.AsyncAccountStore),
        (BatchStore, async_ports.AsyncBatchStore),
        (OutboxStore, async_ports.AsyncOutboxStore),
        (QueryStore, async_ports.AsyncQueryStore),
    ],
)
def test_the_async_store_protocols_mirror_the_ports(sync: type, asynchronous: type) -> None:
    """Each store protocol of ports.py has its async twin: the same methods, coroutines, with the
    same parameters and annotations."""
    assert public_methods(asynchronous) == public_methods(sync)
    for name in public_methods(sync):
        method = getattr(asynchronous, name)
        assert inspect.iscoroutinefunction(method), name
        assert inspect.signature(method) == inspect.signature(getattr(sync, name)), name


@pytest.mark.parametrize("store_class", [MemoryStore, SQLiteStore])
def test_threaded_store_has_every_method_of_the_store_it_runs(store_class: type, tmp_path: Any) -> None:
    """Every public method of the wrapped store is a coroutine method of ThreadedStore (those
    it lacks stay missing: a feature test with hasattr sees the truth)."""
    inner = MemoryStore() if store_class is MemoryStore else SQLiteStore(tmp_path / "a.db")
    threaded = ThreadedStore(inner)
    try:
        for name in public_methods(store_class):
            assert inspect.iscoroutinefunction(getattr(threaded, name)), name
        assert not hasattr(threaded, "no_such_method")
    finally:
        if isinstance(inner, SQLiteStore):
            inner.close()


def test_async_postgres_store_has_every_method_of_postgres_store() -> None:
    """Every public method of PostgresStore, including ones added after AsyncPostgresStore was
    written, is a coroutine method of it (built without connecting)."""
    pytest.importorskip("psycopg")
    from account_lifecycle import AsyncPostgresStore, PostgresStore

    store = AsyncPostgresStore("postgresql://user@127.0.0.1:1/none", schema="never_used")
    for name in public_methods(PostgresStore):
        assert inspect.iscoroutinefunction(getattr(store, name)), name
    assert not hasattr(store, "no_such_method")


def test_using_is_a_plain_method_with_lifecycles_parameters() -> None:
    """``AsyncLifecycle.using`` builds (no I/O), as ``Lifecycle.using`` does, with its parameters."""
    assert not inspect.iscoroutinefunction(AsyncLifecycle.using)
    assert parameters(AsyncLifecycle.using) == parameters(Lifecycle.using)
