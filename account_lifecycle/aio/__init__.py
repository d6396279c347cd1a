"""The asyncio front end (extra ``async``): ``AsyncLifecycle``, the async store protocols,
``ThreadedStore`` and, with the ``postgres`` extra, ``AsyncPostgresStore``. Every name is also
importable from ``account_lifecycle``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .lifecycle import AsyncLifecycle, TaskPool
from .ports import (
    AsyncAccountStore,
    AsyncBatchStore,
    AsyncEffectHook,
    AsyncListener,
    AsyncOutboxStore,
    AsyncPrerequisiteCheck,
    AsyncPurger,
    AsyncQueryStore,
)
from .threaded import ThreadedStore

if TYPE_CHECKING:  # imported lazily by __getattr__ below: it needs the postgres extra
    from .postgres import AsyncPostgresStore

__all__ = [
    "AsyncAccountStore",
    "AsyncBatchStore",
    "AsyncEffectHook",
    "AsyncLifecycle",
    "AsyncListener",
    "AsyncOutboxStore",
    "AsyncPostgresStore",
    "AsyncPrerequisiteCheck",
    "AsyncPurger",
    "AsyncQueryStore",
    "TaskPool",
    "ThreadedStore",
]


def __getattr__(name: str) -> Any:
    if name == "AsyncPostgresStore":
        from .postgres import AsyncPostgresStore

        return AsyncPostgresStore
    raise AttributeError(f"module 'account_lifecycle.aio' has no attribute {name!r}")
