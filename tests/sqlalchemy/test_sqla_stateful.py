"""The whole lifecycle under random commands, compared with the reference model after every step
(account_lifecycle.testing.stateful), on SQLAlchemyStore: on its own transactions, and bound to a
host's Session that commits after each call (or rolls back when the call was refused)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import settings
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from account_lifecycle import AccountStore, policies
from account_lifecycle.adapters.sqlalchemy import SQLAlchemyStore
from account_lifecycle.testing.stateful import LifecycleStateMachine

STEPS = settings(max_examples=30, stateful_step_count=30)


class HostSessions:
    """Every call of the store made through ``store.bound(session)`` in a fresh host Session,
    committed when the call returns and rolled back when it raises: the host's transaction
    decides, as in a web request."""

    def __init__(self, store: SQLAlchemyStore) -> None:
        self.store = store

    def in_host_transaction(self) -> bool:
        """False: each call is committed when it returns (the bound store's own True would
        describe the session of one call, not when the lifecycle's writes are durable)."""
        return False

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or not callable(getattr(self.store, name, None)):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with Session(self.store.engine) as session:
                try:
                    result = getattr(self.store.bound(session), name)(*args, **kwargs)
                except BaseException:
                    session.rollback()
                    raise
                session.commit()
                return result

        return call


class _OnSQLAlchemy(LifecycleStateMachine):
    bound = False

    def make_store(self) -> AccountStore:
        self._tmp = tempfile.TemporaryDirectory()
        self._engine = create_engine(f"sqlite:///{Path(self._tmp.name) / 'accounts.db'}")
        store = SQLAlchemyStore(self._engine)
        store.migrate()
        return HostSessions(store) if self.bound else store  # type: ignore[return-value]

    def close_store(self, store: AccountStore) -> None:
        super().close_store(store)
        self._engine.dispose()
        self._tmp.cleanup()


class AllClientsSQLAlchemy(_OnSQLAlchemy):
    policy = policies.ALLCLIENTS


class SmrtPhoneSQLAlchemyInHostSessions(_OnSQLAlchemy):
    policy = policies.SMRTPHONE
    bound = True


TestAllClientsSQLAlchemy = AllClientsSQLAlchemy.TestCase
TestAllClientsSQLAlchemy.settings = STEPS
TestSmrtPhoneSQLAlchemyInHostSessions = SmrtPhoneSQLAlchemyInHostSessions.TestCase
TestSmrtPhoneSQLAlchemyInHostSessions.settings = STEPS
