"""Issue 15: no identity in plain text (keyed digests, rotation, re-keying) and personal data of
the audit trail held outside the hashed events (sealed, erased at purge, still verifiable)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from account_lifecycle import (
    AccountExists,
    Actor,
    ConfigurationError,
    HistoryTampered,
    IdentityKey,
    IdentityKeys,
    Lifecycle,
    ManualClock,
    MemoryStore,
    Policy,
    RedactedValue,
    SQLiteStore,
    State,
    SurveyOutcome,
    policies,
)
from account_lifecycle.identity_keys import is_digest
from account_lifecycle.sealed import commitment
from account_lifecycle.testing.fakes import fake_purgers

START = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
OWNER = Actor.user("u-1")
AGENT = Actor.support("agent")
K1 = IdentityKey("k1", bytes(range(32)))
K2 = IdentityKey("k2", bytes(range(1, 33)))
ANSWERS = {"why": "my landlord Ann Smith, flat 4"}

QUARANTINE = Policy.from_toml(
    'name = "quarantine"\n[survey]\nmode = "optional"\n'
    '[recovery]\nwindow = "30 days"\n'
    '[purge]\non_hold = "wait"\ncategories = [{ name = "files", at = "cancel" }]\n'
    '[identity]\nemail = "after 30 days"\nphone = "never"\n'
)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        yield MemoryStore()
    else:
        sqlite = SQLiteStore(tmp_path / "accounts.db")
        yield sqlite
        sqlite.close()


def lifecycle(
    store: Any, policy: Policy = policies.ALLCLIENTS, keys: IdentityKeys | None = None, **kw: Any
) -> Any:
    return Lifecycle(
        policy,
        store=store,
        purgers=fake_purgers(policy).values(),
        clock=kw.pop("clock", ManualClock(START)),
        identity_keys=keys if keys is not None else IdentityKeys(K1),
        **kw,
    )


def purge_allclients(lc: Lifecycle, account_id: str = "acc-1", answers: dict[str, str] | None = None) -> None:
    lc.request_cancellation(account_id, OWNER)
    lc.submit_survey(account_id, OWNER, SurveyOutcome.CANCEL, ANSWERS if answers is None else answers)
    lc.confirm(account_id, OWNER)
    lc.clock.advance(timedelta(days=100))  # type: ignore[attr-defined]
    assert lc.sweep().purged == (account_id,)


# -- keys and digests --------------------------------------------------------------------------


class TestIdentityKeys:
    def test_a_digest_is_the_hmac_of_kind_and_value_under_the_key_chain(self) -> None:
        import hashlib
        import hmac

        one = IdentityKeys(K1)
        expected = hmac.new(K1.secret, b"email\x00ann@example.com", hashlib.sha256).hexdigest()
        assert one.digest("email", "ann@example.com") == f"k1:{expected}"
        assert one.digest("phone", "ann@example.com") != one.digest("email", "ann@example.com")
        assert one.digest("email", "ann@example.com") != IdentityKeys(K2).digest("email", "ann@example.com")
        two = IdentityKeys(K2, previous=(K1,))
        wrapped = hmac.new(K2.secret, expected.encode(), hashlib.sha256).hexdigest()
        assert two.digest("email", "ann@example.com") == f"k1+k2:{wrapped}"
        assert two.aliases("email", "ann@example.com") == (f"k1:{expected}",)
        assert one.aliases("email", "ann@example.com") == ()

    def test_rekeyed_wraps_an_older_digest_into_the_current_one_without_the_value(self) -> None:
        one, two = IdentityKeys(K1), IdentityKeys(K2, previous=(K1,))
        old = one.digest("identity", "ann@example.com")
        assert two.rekeyed(old) == two.digest("identity", "ann@example.com")
        assert two.rekeyed(two.digest("identity", "ann@example.com")) is None
        with pytest.raises(ValueError, match="not a keyed digest"):
            two.rekeyed("ann@example.com")
        with pytest.raises(ValueError, match="not a prefix of k1\\+k2"):
            two.rekeyed(IdentityKeys(K2).digest("identity", "ann@example.com"))

    def test_bad_keys_are_refused_without_showing_the_secret(self) -> None:
        with pytest.raises(ValueError, match="at least 32 random bytes"):
            IdentityKey("k1", b"short")
        with pytest.raises(ValueError, match="key id"):
            IdentityKey("K 1", bytes(32))
        with pytest.raises(ValueError, match="must differ"):
            IdentityKeys(K1, previous=(IdentityKey("k1", bytes(32)),))
        with pytest.raises(TypeError):
            IdentityKey("k1", "a text secret of more than 32 characters....")  # type: ignore[arg-type]
        assert bytes(range(32)).hex() not in repr(IdentityKeys(K2, previous=(K1,)))
        assert repr(bytes(range(32))) not in repr(K1)
        assert IdentityKey.generate("k9").secret != IdentityKey.generate("k9").secret


# -- no identity in plain text -----------------------------------------------------------------


class TestNoPlainIdentity:
    def test_without_a_key_an_open_with_an_identity_is_refused_and_writes_nothing(self, store: Any) -> None:
        lc = Lifecycle(policies.ALLCLIENTS, store=store, purgers=fake_purgers(policies.ALLCLIENTS).values())
        with pytest.raises(ConfigurationError, match="identity_keys"):
            lc.open("acc-1", owner="u-1", identity="ann@example.com")
        assert store.account_ids() == ()
        lc.open("acc-2", owner="u-1")  # an account without an identity needs no key

    def test_a_policy_with_identifiers_needs_a_key_to_start(self, store: Any) -> None:
        with pytest.raises(ConfigurationError, match="email, phone"):
            Lifecycle(QUARANTINE, store=store, purgers=fake_purgers(QUARANTINE).values())

    def test_the_record_holds_the_digest_and_reuse_compares_digests(self, store: Any) -> None:
        keys = IdentityKeys(K1)
        lc = lifecycle(store, keys=keys)
        record = lc.open("acc-1", owner="u-1", identity="ann@example.com")
        assert record.identity == keys.digest("identity", "ann@example.com") == store.get("acc-1").identity
        assert lc.holds_identity("acc-1", "ann@example.com")
        assert not lc.holds_identity("acc-1", "bob@example.com")
        with pytest.raises(AccountExists) as caught:
            lc.open("acc-2", owner="u-2", identity="ann@example.com")
        assert "ann@example.com" not in str(caught.value)
        assert caught.value.identity == record.identity
        lc.open("acc-3", owner="u-3", identity="bob@example.com")

    def test_after_purge_no_trace_of_a_released_identity_is_left(self, store: Any) -> None:
        """ALLCLIENTS releases the identity at purge: the record drops its digest, and the
        identity opens a fresh account."""
        lc = lifecycle(store)
        lc.open("acc-1", owner="u-1", identity="ann@example.com")
        purge_allclients(lc)
        record = lc.get("acc-1")
        assert (record.state, record.identity, record.identity_released_at) == (
            State.PURGED,
            None,
            lc.clock.now(),
        )
        assert not lc.holds_identity("acc-1", "ann@example.com")
        assert lc.open("acc-2", owner="u-2", identity="ann@example.com").identity is not None

    def test_an_identity_never_released_keeps_its_digest_and_stays_refused(self, store: Any) -> None:
        never = Policy.from_toml(
            policies.ALLCLIENTS.to_toml().replace(
                'identity_reuse = "after_purge"', 'identity_reuse = "never"'
            )
        )
        lc = lifecycle(store, never)
        lc.open("acc-1", owner="u-1", identity="ann@example.com")
        purge_allclients(lc)
        assert is_digest(lc.get("acc-1").identity)
        with pytest.raises(AccountExists):
            lc.open("acc-2", owner="u-2", identity="ann@example.com")

    def test_quarantine_refuses_while_it_lasts_then_accepts_and_drops_the_digest(self, store: Any) -> None:
        clock = ManualClock(START)
        keys = IdentityKeys(K1)
        lc = lifecycle(store, QUARANTINE, keys, clock=clock)
        lc.open("acc-1", owner="u-1", identifiers={"email": "ann@example.com", "phone": "+15550100"})
        assert lc.get("acc-1").identifiers["email"].value == keys.digest("email", "ann@example.com")
        lc.request_cancellation("acc-1", OWNER)
        lc.skip_survey("acc-1", OWNER)
        lc.confirm("acc-1", OWNER)
        clock.advance(timedelta(days=30))
        assert lc.sweep().purged == ("acc-1",)
        purged_at = clock.now()

        clock.set(purged_at + timedelta(days=30) - timedelta(microseconds=1))
        with pytest.raises(AccountExists) as caught:
            lc.open("acc-2", owner="u-2", identifiers={"email": "ann@example.com"})
        assert caught.value.kind == "email"
        clock.set(purged_at + timedelta(days=30))
        lc.open("acc-2", owner="u-2", identifiers={"email": "ann@example.com"})
        with pytest.raises(AccountExists):  # "never"
            lc.open("acc-3", owner="u-3", identifiers={"phone": "+15550100"})


# -- rotation ----------------------------------------------------------------------------------


class TestRotation:
    def test_old_digests_are_honoured_during_a_rotation_and_rekeyed_by_the_command(self, store: Any) -> None:
        clock = ManualClock(START)
        before = lifecycle(store, QUARANTINE, IdentityKeys(K1), clock=clock)
        before.open("acc-1", owner="u-1", identity="ann@example.com", identifiers={"phone": "+15550100"})
        before.open("acc-2", owner="u-2")
        rotated = IdentityKeys(K2, previous=(K1,))
        after = lifecycle(store, QUARANTINE, rotated, clock=clock)

        # not re-keyed yet: the old digests still hold the identity and the phone
        with pytest.raises(AccountExists):
            after.open("acc-3", owner="u-3", identity="ann@example.com")
        with pytest.raises(AccountExists):
            after.open("acc-3", owner="u-3", identifiers={"phone": "+15550100"})
        assert after.holds_identity("acc-1", "ann@example.com")

        report = after.rekey_identities()

        assert (report.rekeyed, report.failed) == (("acc-1",), ())
        record = after.get("acc-1")
        assert record.identity == rotated.digest("identity", "ann@example.com")
        assert record.identifiers["phone"].value == rotated.digest("phone", "+15550100")
        assert [e.action for e in after.history("acc-1")][-1] == "identities_rekeyed"
        after.verify_history("acc-1")
        assert after.rekey_identities().rekeyed == ()  # nothing left to do
        with pytest.raises(AccountExists):
            after.open("acc-3", owner="u-3", identity="ann@example.com")
        with pytest.raises(AccountExists):
            after.open("acc-3", owner="u-3", identifiers={"phone": "+15550100"})
        # the first key alone no longer recognises anything
        assert not before.holds_identity("acc-1", "ann@example.com")

    def test_a_digest_under_unknown_keys_is_reported_and_the_others_rekeyed(self, store: Any) -> None:
        lc = lifecycle(store, keys=IdentityKeys(IdentityKey("x", bytes(32))))
        lc.open("stranger", owner="u-1", identity="ann@example.com")
        lifecycle(store, keys=IdentityKeys(K1)).open("acc-1", owner="u-2", identity="bob@example.com")

        report = lifecycle(store, keys=IdentityKeys(K2, previous=(K1,))).rekey_identities()

        assert report.rekeyed == ("acc-1",)
        assert [a for a, _ in report.failed] == ["stranger"]
        assert "ann@example.com" not in report.failed[0][1]


# -- sealed personal data in the audit trail ---------------------------------------------------


def survey_event(lc: Lifecycle, account_id: str = "acc-1") -> Any:
    return next(e for e in lc.history(account_id) if e.action == "submit_survey")


class TestSealedAnswers:
    def test_answers_are_sealed_outside_the_hashed_event(self, store: Any) -> None:
        lc = lifecycle(store)
        lc.open("acc-1", owner="u-1")
        lc.request_cancellation("acc-1", OWNER)
        lc.submit_survey("acc-1", OWNER, SurveyOutcome.CANCEL, ANSWERS)

        event = survey_event(lc)
        assert event.sealed_values["answers"].value == ANSWERS
        assert "answers" not in event.details
        salt = event.sealed_values["answers"].salt
        assert event.details["sealed"] == {"answers": commitment("answers", salt, ANSWERS)}
        assert "Ann Smith" not in repr(event)
        assert "Ann Smith" not in str(event.payload())
        lc.verify_history("acc-1")

    def test_purge_erases_them_and_the_chain_still_verifies(self, store: Any) -> None:
        """Survey answers and a hold's reason are erased at purge; the receipt lists them."""
        lc = lifecycle(store, QUARANTINE)
        lc.open("acc-1", owner="u-1")
        lc.place_hold("acc-1", AGENT, "files", "ticket 4711 of Ann Smith")
        lc.release_hold("acc-1", AGENT, "files")
        purge_allclients(lc)

        event = survey_event(lc)
        assert dict(event.sealed_values) == {}
        assert "answers" in event.details["sealed"]  # the commitment stays
        lc.verify_history("acc-1")
        receipt = lc.receipt("acc-1")
        placed = next(e for e in lc.history("acc-1") if e.action == "hold_placed")
        assert receipt.redacted == (
            RedactedValue(placed.seq, "hold_placed", "reason"),
            RedactedValue(event.seq, "submit_survey", "answers"),
        )
        assert '"redacted"' in receipt.to_json()

    def test_a_receipt_without_sealed_values_keeps_its_bytes(self, store: Any) -> None:
        lc = lifecycle(store)
        lc.open("acc-1", owner="u-1")
        purge_allclients(lc, answers={})
        assert lc.receipt("acc-1").redacted == ()
        assert "redacted" not in lc.receipt("acc-1").to_json()

    def test_a_restore_keeps_them(self, store: Any) -> None:
        lc = lifecycle(store)
        lc.open("acc-1", owner="u-1")
        lc.request_cancellation("acc-1", OWNER)
        lc.submit_survey("acc-1", OWNER, SurveyOutcome.CANCEL, ANSWERS)
        lc.confirm("acc-1", OWNER)
        lc.restore("acc-1", AGENT)
        assert survey_event(lc).sealed_values["answers"].value == ANSWERS
        lc.verify_history("acc-1")


class TestTamperingIsDetected:
    """On SQLite, where the rows can be edited as an attacker with the file would."""

    @pytest.fixture
    def db(self, tmp_path: Path) -> Any:
        path = tmp_path / "accounts.db"
        store = SQLiteStore(path)
        lc = lifecycle(store)
        lc.open("acc-1", owner="u-1")
        yield lc, path
        store.close()

    def _sql(self, path: Path, statement: str, *args: Any) -> None:
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute(statement, args)

    def test_an_altered_value_no_longer_matches_its_commitment(self, db: Any) -> None:
        lc, path = db
        lc.request_cancellation("acc-1", OWNER)
        lc.submit_survey("acc-1", OWNER, SurveyOutcome.CANCEL, ANSWERS)
        self._sql(path, "UPDATE sealed_values SET value = ?", '{"why":"it was cheap"}')
        with pytest.raises(HistoryTampered, match="answers value does not match its commitment"):
            lc.verify_history("acc-1")

    def test_a_value_removed_before_the_purge_is_detected(self, db: Any) -> None:
        lc, path = db
        lc.request_cancellation("acc-1", OWNER)
        lc.submit_survey("acc-1", OWNER, SurveyOutcome.CANCEL, ANSWERS)
        self._sql(path, "DELETE FROM sealed_values")
        with pytest.raises(HistoryTampered, match="missing though the account is not purged"):
            lc.verify_history("acc-1")

    def test_a_value_planted_on_an_event_that_sealed_none_is_detected(self, db: Any) -> None:
        lc, path = db
        lc.request_cancellation("acc-1", OWNER)
        self._sql(
            path, "INSERT INTO sealed_values VALUES ('acc-1', 2, 'answers', 'aa', '{\"why\":\"planted\"}')"
        )
        with pytest.raises(HistoryTampered, match="never sealed"):
            lc.verify_history("acc-1")

    @pytest.mark.parametrize("damage", ["edit", "remove", "reorder"])
    def test_edits_removals_and_reorders_are_still_detected_after_redaction(
        self, db: Any, damage: str
    ) -> None:
        lc, path = db
        purge_allclients(lc)
        lc.verify_history("acc-1")
        seq = survey_event(lc).seq
        if damage == "edit":
            self._sql(
                path,
                "UPDATE events SET body = replace(body, ?, ?) WHERE seq = ?",
                '"outcome":"cancel"',
                '"outcome":"keep_account"',
                seq,
            )
        elif damage == "remove":
            self._sql(path, "DELETE FROM events WHERE seq = ?", seq)
        else:
            self._sql(path, "UPDATE events SET seq = -1 WHERE seq = ?", seq)
            self._sql(path, "UPDATE events SET seq = ? WHERE seq = ?", seq, seq + 1)
            self._sql(path, "UPDATE events SET seq = ? WHERE seq = -1", seq + 1)
        with pytest.raises(HistoryTampered):
            lc.verify_history("acc-1")


def test_a_forged_commitment_is_caught_by_the_chain() -> None:
    """Replacing an event's commitment (to match a forged value) changes its hash."""
    store = MemoryStore()
    lc = lifecycle(store)
    lc.open("acc-1", owner="u-1")
    lc.request_cancellation("acc-1", OWNER)
    lc.submit_survey("acc-1", OWNER, SurveyOutcome.CANCEL, ANSWERS)
    event = survey_event(lc)
    forged = {"why": "forged"}
    salt = event.sealed_values["answers"].salt
    store._events["acc-1"][event.seq - 1] = attrs.evolve(
        event, details={**event.details, "sealed": {"answers": commitment("answers", salt, forged)}}
    )
    with pytest.raises(HistoryTampered, match="content does not match its hash"):
        lc.verify_history("acc-1")


def test_the_purge_drops_the_argument_digests_of_keys_that_carried_free_text() -> None:
    """The digest kept with a survey's or a hold's idempotency key hashes the answers or the
    reason (unkeyed): the purge keeps the key and its action only; other keys keep theirs."""
    lc = lifecycle(MemoryStore(), QUARANTINE)
    lc.open("acc-1", owner="u-1")
    lc.place_hold("acc-1", AGENT, "files", "ticket 1", idempotency_key="hold-1")
    lc.release_hold("acc-1", AGENT, "files", idempotency_key="release-1")
    lc.request_cancellation("acc-1", OWNER, idempotency_key="request-1")
    lc.submit_survey("acc-1", OWNER, SurveyOutcome.CANCEL, ANSWERS, idempotency_key="survey-1")
    lc.confirm("acc-1", OWNER, idempotency_key="confirm-1")
    before = {entry[0]: entry for entry in lc.get("acc-1").recent_keys}
    assert all(len(entry) == 3 for entry in before.values())

    lc.clock.advance(timedelta(days=30))
    assert lc.sweep().purged == ("acc-1",)

    after = {entry[0]: entry for entry in lc.get("acc-1").recent_keys}
    assert after["survey-1"] == ("survey-1", "submit_survey")
    assert after["hold-1"] == ("hold-1", "place_hold")
    for key in ("release-1", "request-1", "confirm-1"):
        assert after[key] == before[key]
    # a retry of the confirm is still a replay, bound to its arguments
    assert lc.confirm("acc-1", OWNER, idempotency_key="confirm-1").state is State.PURGED
