"""Retried requests apply once; a confirm is bound to the cancellation request it answers."""

from __future__ import annotations

import threading

import pytest
from world import OWNER, World

from account_lifecycle import InvalidTransition, MemoryStore, SQLiteStore, State, policies
from account_lifecycle.errors import StaleConfirmation


def test_retried_command_applies_once(sp: World) -> None:
    """The same idempotency key twice: one write, and the retry returns the current record."""
    sp.open()
    first = sp.lc.request_cancellation("acct-1", OWNER, idempotency_key="req-1")
    again = sp.lc.request_cancellation("acct-1", OWNER, idempotency_key="req-1")
    assert again == first
    assert [e.action for e in sp.lc.history("acct-1")] == ["open", "request_cancellation"]


def test_retried_confirm_does_not_run_the_purge_again(sp: World) -> None:
    """A confirm retried after its answer was lost returns the purged record, purging nothing twice."""
    sp.open()
    sp.to_pending_confirm()
    done = sp.lc.confirm("acct-1", OWNER, "CONFIRM", sp.acks, idempotency_key="k-confirm")
    again = sp.lc.confirm("acct-1", OWNER, "CONFIRM", sp.acks, idempotency_key="k-confirm")
    assert (done.state, again) == (State.PURGED, done)
    assert all(
        len(p.calls) == 1 for name, p in sp.purgers.items() if name not in ("crm_contacts", "crm_logs")
    )


def test_key_reused_for_another_command_is_refused(sp: World) -> None:
    """A key names one command; using it for another is a programming error."""
    sp.open()
    sp.lc.request_cancellation("acct-1", OWNER, idempotency_key="k")
    with pytest.raises(ValueError, match="already used for request_cancellation"):
        sp.lc.withdraw("acct-1", OWNER, idempotency_key="k")


def test_without_a_key_a_retry_is_a_second_command(sp: World) -> None:
    """No key, no deduplication: the retry is judged on its own (here it is invalid)."""
    sp.open()
    sp.lc.request_cancellation("acct-1", OWNER)
    with pytest.raises(InvalidTransition):
        sp.lc.request_cancellation("acct-1", OWNER)


def test_retried_open_returns_the_account(sp: World) -> None:
    """Opening with the same key twice returns the account instead of AccountExists."""
    first = sp.lc.open("acct-9", owner="owner", identity="x@example.com", idempotency_key="open-9")
    assert sp.lc.open("acct-9", owner="owner", identity="x@example.com", idempotency_key="open-9") == first


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_concurrent_retries_apply_once(tmp_path, clock, kind: str) -> None:
    """Eight threads send the same keyed request at once: exactly one write happens and every
    thread gets the record back."""
    store = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "a.db")
    world = World(policies.SMRTPHONE, store, clock)
    world.open()
    results: list[object] = []
    barrier = threading.Barrier(8)

    def send() -> None:
        barrier.wait()
        try:
            results.append(world.lc.request_cancellation("acct-1", OWNER, idempotency_key="same"))
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(getattr(r, "state", None) is State.SURVEYED for r in results), results
    assert [e.action for e in world.lc.history("acct-1")] == ["open", "request_cancellation"]


def test_stale_confirm_cannot_complete_a_later_request(sp: World) -> None:
    """A confirm rendered for a request that was withdrawn cannot complete the next request."""
    sp.open()
    first = sp.to_pending_confirm()
    old_request = first.cancellation_id
    assert old_request is not None
    sp.lc.withdraw("acct-1", OWNER)
    second = sp.to_pending_confirm()
    assert second.cancellation_id != old_request
    before = sp.snapshot()
    with pytest.raises(StaleConfirmation) as caught:
        sp.lc.confirm("acct-1", OWNER, "CONFIRM", sp.acks, request_id=old_request)
    assert (caught.value.given, caught.value.current) == (old_request, second.cancellation_id)
    assert isinstance(caught.value, InvalidTransition)
    assert sp.snapshot() == before
    done = sp.lc.confirm("acct-1", OWNER, "CONFIRM", sp.acks, request_id=second.cancellation_id)
    assert done.state is State.PURGED
    confirm_event = next(e for e in sp.lc.history("acct-1") if e.action == "confirm")
    assert confirm_event.details["cancellation_id"] == second.cancellation_id


def test_withdraw_closes_the_request(sp: World) -> None:
    """Withdrawing (or keeping the account in the survey) clears the open request."""
    sp.open()
    sp.lc.request_cancellation("acct-1", OWNER)
    assert sp.lc.withdraw("acct-1", OWNER).cancellation_id is None
    sp.lc.request_cancellation("acct-1", OWNER)
    assert sp.lc.submit_survey("acct-1", OWNER, "keep_account").cancellation_id is None
