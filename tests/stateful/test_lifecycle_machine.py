"""The whole lifecycle under random commands, compared with the reference model after every
step, for both built-in policies on the in-memory store and on SQLite."""

from __future__ import annotations

import tempfile
from pathlib import Path

import attrs
from hypothesis import settings

from account_lifecycle import AccountStore, Policy, SQLiteStore, SurveyOutcome, SurveyPolicy, policies
from account_lifecycle.testing.stateful import LifecycleStateMachine, TeamChangesMachine

STEPS = settings(max_examples=150, stateful_step_count=40)


class SmrtPhoneMemory(LifecycleStateMachine):
    policy = policies.SMRTPHONE


class AllClientsMemory(LifecycleStateMachine):
    policy = policies.ALLCLIENTS


class _OnSQLite(LifecycleStateMachine):
    def make_store(self) -> AccountStore:
        self._tmp = tempfile.TemporaryDirectory()
        return SQLiteStore(Path(self._tmp.name) / "accounts.db", synchronous="NORMAL")

    def close_store(self, store: AccountStore) -> None:
        super().close_store(store)
        self._tmp.cleanup()


class SmrtPhoneSQLite(_OnSQLite):
    policy = policies.SMRTPHONE


class AllClientsSQLite(_OnSQLite):
    policy = policies.ALLCLIENTS


class NoSurveyVariant(LifecycleStateMachine):
    policy: Policy = attrs.evolve(policies.ALLCLIENTS, name="no-survey", survey=SurveyPolicy("off", ()))


class KeepOrCancelVariant(LifecycleStateMachine):
    policy: Policy = attrs.evolve(
        policies.SMRTPHONE,
        name="keep-or-cancel",
        survey=SurveyPolicy("required", (SurveyOutcome.KEEP_ACCOUNT, SurveyOutcome.CANCEL)),
    )


TestSmrtPhoneMemory = SmrtPhoneMemory.TestCase
TestSmrtPhoneMemory.settings = STEPS
TestAllClientsMemory = AllClientsMemory.TestCase
TestAllClientsMemory.settings = STEPS
TestSmrtPhoneSQLite = SmrtPhoneSQLite.TestCase
TestSmrtPhoneSQLite.settings = settings(max_examples=50, stateful_step_count=30)
TestAllClientsSQLite = AllClientsSQLite.TestCase
TestAllClientsSQLite.settings = settings(max_examples=50, stateful_step_count=30)
TestNoSurveyVariant = NoSurveyVariant.TestCase
TestNoSurveyVariant.settings = settings(max_examples=50, stateful_step_count=30)
TestKeepOrCancelVariant = KeepOrCancelVariant.TestCase
TestKeepOrCancelVariant.settings = settings(max_examples=50, stateful_step_count=30)


class TeamAllClients(TeamChangesMachine):
    """AllClients with members who may ask for and withdraw a cancellation, so that a removed
    member visibly loses what it could do; members come and go between the other commands."""

    policy: Policy = attrs.evolve(
        policies.ALLCLIENTS,
        name="team",
        permissions={
            **{a.value: sorted(r.value for r in rs) for a, rs in policies.ALLCLIENTS.permissions.items()},
            "request_cancellation": ["member", "owner"],
            "withdraw": ["member", "owner"],
            "add_member": ["member", "owner"],
        },
    )


TestTeamAllClients = TeamAllClients.TestCase
TestTeamAllClients.settings = settings(max_examples=50, stateful_step_count=30)
