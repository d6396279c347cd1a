"""Team and identity changes after ``open``: ``add_member``, ``remove_member`` and
``change_identity`` are audited commands, permitted by the policy, decided like the others."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from account_lifecycle import (
    AccountExists,
    Action,
    Actor,
    IdempotencyKeyReused,
    IdentityReuse,
    InvalidTransition,
    Lifecycle,
    ManualClock,
    MemoryStore,
    NotPermitted,
    Policy,
    Relation,
    SQLiteStore,
    State,
    policies,
)
from account_lifecycle.ports import AccountStore
from account_lifecycle.testing.fakes import fake_identity_keys, fake_purgers

OWNER = Actor.user("u-1")
MEMBER = Actor.user("u-2")
SUPPORT = Actor.support("agent-7")
START = datetime(2026, 3, 1, tzinfo=UTC)

#: ALLCLIENTS with identifiers and with members allowed to ask for and withdraw a cancellation
#: (so that losing membership visibly loses permissions).
TEAM_POLICY = attrs.evolve(
    policies.ALLCLIENTS,
    name="team",
    identity={"email": IdentityReuse("after_purge"), "phone": IdentityReuse.parse("after 30 days")},
    permissions={
        **{a.value: sorted(r.value for r in rs) for a, rs in policies.ALLCLIENTS.permissions.items()},
        "request_cancellation": ["owner", "member"],
        "withdraw": ["owner", "member"],
    },
)


def make(policy: Policy = TEAM_POLICY, store: AccountStore | None = None) -> Lifecycle:
    return Lifecycle(
        policy,
        store=store if store is not None else MemoryStore(),
        purgers=fake_purgers(policy).values(),
        clock=ManualClock(START),
        identity_keys=fake_identity_keys(),
    )


def unchanged(lc: Lifecycle, account_id: str, before: int) -> bool:
    """Nothing was written since version *before*: the version and the trail are as they were."""
    trail = lc.history(account_id)
    return lc.get(account_id).version == before and trail[-1].version == before


class TestPermissionsInThePolicy:
    def test_built_ins_grant_team_changes_to_the_owner(self) -> None:
        """Both built-ins let the owner, and only the owner, change the team and identity."""
        for policy in (policies.SMRTPHONE, policies.ALLCLIENTS):
            for action in (Action.ADD_MEMBER, Action.REMOVE_MEMBER, Action.CHANGE_IDENTITY):
                assert policy.permissions[action] == frozenset({Relation.OWNER})

    def test_toml_round_trip_and_a_file_without_them_keeps_the_team_frozen(self) -> None:
        """The keys round-trip; a file written before them grants them to nobody."""
        text = TEAM_POLICY.to_toml()
        assert 'add_member = ["owner"]' in text
        assert Policy.from_toml(text) == TEAM_POLICY
        old = Policy.from_toml('name = "old"\n[permissions]\nconfirm = ["owner"]\n')
        assert old.permissions[Action.ADD_MEMBER] == frozenset()
        assert old.permissions[Action.CHANGE_IDENTITY] == frozenset()

    def test_describe_and_diff_name_them(self) -> None:
        """``describe`` says who changes the team; the diff reports a changed grant as risky."""
        from account_lifecycle import describe_policy
        from account_lifecycle.verify import diff_policies

        text = "\n".join(describe_policy(policies.ALLCLIENTS))
        assert "members are added by the owner and removed by the owner" in text
        wider = attrs.evolve(
            policies.ALLCLIENTS,
            permissions={
                **policies.ALLCLIENTS.permissions,
                Action.CHANGE_IDENTITY: {Relation.OWNER, Relation.MEMBER},
            },
        )
        changes = diff_policies(policies.ALLCLIENTS, wider).changes
        assert [(c.keys, c.risky) for c in changes] == [(("permissions.change_identity",), True)]


class TestMembers:
    def test_add_then_remove_a_member_audited_by_id(self) -> None:
        """Each change is one audited write naming the user's id."""
        lc = make()
        lc.open("a", owner="u-1")
        assert lc.add_member("a", OWNER, "u-2").members == {"u-2"}
        assert lc.remove_member("a", OWNER, "u-2").members == frozenset()
        trail = lc.history("a")
        assert [(e.action, dict(e.details)) for e in trail[1:]] == [
            ("add_member", {"member": "u-2"}),
            ("remove_member", {"member": "u-2"}),
        ]
        assert [e.actor for e in trail[1:]] == [OWNER, OWNER]

    def test_a_removed_member_loses_every_permission_at_once(self) -> None:
        """The very next command of a removed member is refused, and nothing is offered to it."""
        lc = make()
        lc.open("a", owner="u-1", members=["u-2"])
        assert Action.REQUEST_CANCELLATION in lc.allowed_actions("a", MEMBER)
        lc.request_cancellation("a", MEMBER)
        lc.remove_member("a", OWNER, "u-2")
        assert lc.allowed_actions("a", MEMBER) == frozenset()
        version = lc.get("a").version
        with pytest.raises(NotPermitted) as caught:
            lc.withdraw("a", MEMBER)
        assert caught.value.relation is None
        assert unchanged(lc, "a", version)

    def test_a_removed_members_keyed_retry_is_not_replayed(self) -> None:
        """Permission before replay: a retried key of a removed member is refused."""
        lc = make()
        lc.open("a", owner="u-1", members=["u-2"])
        lc.request_cancellation("a", MEMBER, idempotency_key="k1")
        lc.remove_member("a", OWNER, "u-2")
        with pytest.raises(NotPermitted):
            lc.request_cancellation("a", MEMBER, idempotency_key="k1")

    @pytest.mark.parametrize(
        ("command", "user", "message"),
        [
            ("add_member", "u-1", "is the owner"),
            ("add_member", "u-2", "already a member"),
            ("remove_member", "u-1", "cannot be removed; transfer ownership"),
            ("remove_member", "u-9", "is not a member"),
        ],
    )
    def test_bad_team_changes_are_value_errors_that_write_nothing(
        self, command: str, user: str, message: str
    ) -> None:
        """Adding the owner or a member, removing the owner or a stranger: ``ValueError``."""
        lc = make()
        lc.open("a", owner="u-1", members=["u-2"])
        with pytest.raises(ValueError, match=message):
            getattr(lc, command)("a", OWNER, user)
        assert unchanged(lc, "a", 1)

    def test_only_the_permitted_relation_may_change_the_team(self) -> None:
        """Members, support and strangers get ``NotPermitted`` under the built-ins."""
        lc = make(policies.ALLCLIENTS)
        lc.open("a", owner="u-1", members=["u-2"])
        for actor in (MEMBER, SUPPORT, Actor.user("u-9"), Actor.system()):
            with pytest.raises(NotPermitted):
                lc.add_member("a", actor, "u-3")
            with pytest.raises(NotPermitted):
                lc.remove_member("a", actor, "u-2")
        assert unchanged(lc, "a", 1)

    def test_team_changes_stop_at_cancellation(self) -> None:
        """Allowed while pending confirmation; refused once cancelled (and after restore again)."""
        lc = make()
        lc.open("a", owner="u-1")
        lc.request_cancellation("a", OWNER)
        lc.add_member("a", OWNER, "u-2")  # SURVEYED
        lc.skip_survey("a", OWNER)
        lc.remove_member("a", OWNER, "u-2")  # PENDING_CONFIRM
        assert lc.confirm("a", OWNER).state is State.RESTORABLE
        version = lc.get("a").version
        for call in (
            lambda: lc.add_member("a", OWNER, "u-3"),
            lambda: lc.change_identity("a", OWNER, "new@example.com"),
        ):
            with pytest.raises(InvalidTransition):
                call()
        assert unchanged(lc, "a", version)
        assert Action.ADD_MEMBER not in lc.allowed_actions("a", OWNER)
        lc.restore("a", SUPPORT)
        assert lc.add_member("a", OWNER, "u-3").members == {"u-3"}

    def test_allowed_actions_offers_remove_only_with_members(self) -> None:
        """``remove_member`` is offered once there is someone to remove."""
        lc = make()
        lc.open("a", owner="u-1")
        offered = lc.allowed_actions("a", OWNER)
        assert Action.ADD_MEMBER in offered
        assert Action.CHANGE_IDENTITY in offered
        assert Action.REMOVE_MEMBER not in offered
        lc.add_member("a", OWNER, "u-2")
        assert Action.REMOVE_MEMBER in lc.allowed_actions("a", OWNER)

    def test_idempotent_retry_and_a_reused_key(self) -> None:
        """A retry with the same key writes nothing; the key with another user is refused."""
        lc = make()
        lc.open("a", owner="u-1")
        first = lc.add_member("a", OWNER, "u-2", idempotency_key="k")
        assert lc.add_member("a", OWNER, "u-2", idempotency_key="k") == first
        with pytest.raises(IdempotencyKeyReused):
            lc.add_member("a", OWNER, "u-3", idempotency_key="k")
        assert lc.get("a").version == first.version

    def test_bad_user_ids_are_typed_errors(self) -> None:
        """A user id that is not a sane id is refused before anything is read."""
        lc = make()
        lc.open("a", owner="u-1")
        with pytest.raises(TypeError):
            lc.add_member("a", OWNER, 7)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            lc.remove_member("a", OWNER, " u-2")
        assert unchanged(lc, "a", 1)

    @settings(max_examples=40, deadline=None)
    @given(
        st.lists(
            st.tuples(st.sampled_from(["add", "remove"]), st.sampled_from(["u-1", "u-2", "u-3", "u-4"])),
            max_size=12,
        )
    )
    def test_members_follow_a_set_model(self, steps: list[tuple[str, str]]) -> None:
        """Any sequence of changes: the record's members are the model's set, a refused change
        (owner, duplicate, non-member) is a ``ValueError`` exactly when the model says so."""
        lc = make()
        lc.open("a", owner="u-1")
        model: set[str] = set()
        for kind, user in steps:
            valid = user != "u-1" and ((user not in model) if kind == "add" else (user in model))
            call = lc.add_member if kind == "add" else lc.remove_member
            if valid:
                call("a", OWNER, user)
                model = model | {user} if kind == "add" else model - {user}
            else:
                with pytest.raises(ValueError):
                    call("a", OWNER, user)
            assert lc.get("a").members == model
        assert len(lc.history("a")) == lc.get("a").version


class TestIdentity:
    def test_change_identity_digests_the_canonical_form(self) -> None:
        """The new identity is held as a digest, in its canonical form; the old one is not."""
        lc = make()
        lc.open("a", owner="u-1", identity="old@example.com")
        record = lc.change_identity("a", OWNER, "New@Example.com")
        assert lc.holds_identity("a", "New@Example.com")
        assert not lc.holds_identity("a", "old@example.com")
        assert "example" not in str(record.identity)
        assert dict(lc.history("a")[-1].details) == {"identity": "changed"}

    def test_the_event_and_the_store_hold_no_plain_identity(self, tmp_path: object) -> None:
        """On SQLite, no plain identity or identifier is in the file after a change."""
        import pathlib

        path = pathlib.Path(str(tmp_path)) / "a.db"
        lc = make(store=SQLiteStore(str(path)))
        lc.open("a", owner="u-1", identity="old@example.com", identifiers={"email": "old@example.com"})
        lc.change_identity("a", OWNER, "fresh@example.org", identifiers={"phone": "+15550177"})
        events = lc.history("a")
        assert dict(events[-1].details) == {"identity": "changed", "identifiers": ("phone",)}
        lc.store.close()  # type: ignore[attr-defined]
        raw = b"".join(p.read_bytes() for p in path.parent.iterdir())
        for plain in (b"fresh@example.org", b"old@example.com", b"15550177"):
            assert plain not in raw

    @pytest.mark.parametrize("store", ["memory", "sqlite"])
    def test_an_identity_another_account_holds_is_refused(self, store: str, tmp_path: object) -> None:
        """``AccountExists`` from the store's compare-and-set; nothing written."""
        lc = make(store=MemoryStore() if store == "memory" else SQLiteStore(f"{tmp_path}/s.db"))
        lc.open("a", owner="u-1", identity="ann@example.com")
        lc.open("b", owner="u-2", identity="bob@example.com")
        with pytest.raises(AccountExists):
            lc.change_identity("b", Actor.user("u-2"), "ann@example.com")
        assert unchanged(lc, "b", 1)
        assert lc.holds_identity("b", "bob@example.com")

    def test_a_given_up_identity_is_free_at_once(self) -> None:
        """After a change the old identity may open another account."""
        lc = make()
        lc.open("a", owner="u-1", identity="ann@example.com", identifiers={"email": "ann@example.com"})
        lc.change_identity("a", OWNER, "ann2@example.com", identifiers={"email": "ann2@example.com"})
        lc.open("b", owner="u-2", identity="ann@example.com", identifiers={"email": "ann@example.com"})
        with pytest.raises(AccountExists):
            lc.open("c", owner="u-3", identifiers={"email": "ann2@example.com"})

    @pytest.mark.parametrize("store", ["memory", "sqlite"])
    def test_an_identifier_in_quarantine_is_refused(self, store: str, tmp_path: object) -> None:
        """A phone held by a purged account for 30 days cannot be taken by a change."""
        lc = make(store=MemoryStore() if store == "memory" else SQLiteStore(f"{tmp_path}/s.db"))
        clock = lc.clock
        assert isinstance(clock, ManualClock)
        lc.open("a", owner="u-1", identifiers={"phone": "+15550100"})
        lc.request_cancellation("a", OWNER)
        lc.skip_survey("a", OWNER)
        until = lc.confirm("a", OWNER).restorable_until
        assert until is not None
        clock.set(until)
        lc.sweep()
        assert lc.get("a").state is State.PURGED
        lc.open("b", owner="u-2", identifiers={"phone": "+15550111"})
        with pytest.raises(AccountExists) as caught:
            lc.change_identity("b", Actor.user("u-2"), identifiers={"phone": "+1 555 0100"})
        assert caught.value.kind == "phone"
        assert unchanged(lc, "b", 1)
        clock.advance(timedelta(days=30))
        lc.change_identity("b", Actor.user("u-2"), identifiers={"phone": "+15550100"})

    def test_bad_identity_changes_are_refused_before_anything_is_written(self) -> None:
        """Nothing to change, an unknown kind, the identity already held, or a stranger."""
        lc = make()
        lc.open("a", owner="u-1", identity="ann@example.com")
        with pytest.raises(ValueError, match="neither was given"):
            lc.change_identity("a", OWNER)
        with pytest.raises(ValueError, match="unknown kind"):
            lc.change_identity("a", OWNER, identifiers={"fax": "1"})
        with pytest.raises(ValueError, match="nothing changes"):
            lc.change_identity("a", OWNER, "ann@example.com")
        with pytest.raises(NotPermitted):
            lc.change_identity("a", Actor.user("u-9"), "x@example.com")
        assert unchanged(lc, "a", 1)

    def test_a_lifecycle_without_keys_cannot_change_an_identity(self) -> None:
        """Identities are stored as keyed digests only."""
        from account_lifecycle import ConfigurationError

        lc = Lifecycle(
            policies.ALLCLIENTS,
            store=MemoryStore(),
            purgers=fake_purgers(policies.ALLCLIENTS).values(),
        )
        lc.open("a", owner="u-1")
        with pytest.raises(ConfigurationError):
            lc.change_identity("a", OWNER, "x@example.com")
