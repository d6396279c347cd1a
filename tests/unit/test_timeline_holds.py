"""preview() honours legal holds, and agrees with what a sweep then does (issue 16).

Under ``on_hold = "retain"`` a held category is listed as kept ("legal hold"), never as
erased; under ``"wait"`` its erasure waits (and so do the window-end erasures, when a held
cancel-time category keeps the account from moving on). A property test advances the clock
through random timelines with holds, releases, restores and sweeps, and after each step
compares the preview taken before it with what happened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from account_lifecycle import (
    Actor,
    Duration,
    KeptCategory,
    Lifecycle,
    ManualClock,
    MemoryStore,
    Policy,
    PurgeCategory,
    PurgePolicy,
    PurgeStatus,
    RecoveryPolicy,
    State,
    SurveyPolicy,
    Timeline,
)
from account_lifecycle.testing.fakes import recording_purgers

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
OWNER = Actor.user("owner")
SUPPORT = Actor.support("ann")
CATEGORIES = ("contacts", "files", "backups")


def make_policy(on_hold: str) -> Policy:
    return Policy(
        name="held",
        survey=SurveyPolicy("off"),
        recovery=RecoveryPolicy(Duration(30, "days"), reminders=(Duration(7, "days"),)),
        purge=PurgePolicy(
            (PurgeCategory("contacts"), PurgeCategory("files", "expiry"), PurgeCategory("backups", "expiry")),
            on_hold=on_hold,
        ),
    )


def make_lifecycle(on_hold: str) -> tuple[Lifecycle, ManualClock]:
    clock = ManualClock(START)
    policy = make_policy(on_hold)
    lc = Lifecycle(policy, store=MemoryStore(), purgers=list(recording_purgers(policy).values()), clock=clock)
    lc.open("acc-1", owner="owner")
    return lc, clock


def confirm(lc: Lifecycle) -> None:
    lc.request_cancellation("acc-1", OWNER)
    lc.confirm("acc-1", OWNER)


class TestPreviewWithHolds:
    def test_retained_category_is_kept_not_erased(self) -> None:
        lc, _ = make_lifecycle("retain")
        lc.place_hold("acc-1", SUPPORT, "contacts", "litigation")
        before = lc.preview("acc-1")
        assert "contacts" not in [e.category for e in before.erasures]
        assert KeptCategory("contacts", "legal hold") in before.kept
        confirm(lc)
        after = lc.preview("acc-1")
        assert KeptCategory("contacts", "legal hold") in after.kept
        assert lc.get("acc-1").purge["contacts"].status is not PurgeStatus.DONE

    def test_wait_hold_on_a_cancel_time_category_holds_everything_back(self) -> None:
        lc, _ = make_lifecycle("wait")
        lc.place_hold("acc-1", SUPPORT, "contacts", "litigation")
        timeline = lc.preview("acc-1")
        assert [(e.category, e.waits_for_hold) for e in timeline.erasures] == [
            ("contacts", True),
            ("files", True),
            ("backups", True),
        ]
        assert timeline.to_dict()["erasures"][0]["waits_for_hold"] is True

    def test_wait_hold_on_a_window_end_category_waits_alone(self) -> None:
        lc, _ = make_lifecycle("wait")
        lc.place_hold("acc-1", SUPPORT, "files", "litigation")
        timeline = lc.preview("acc-1")
        assert [(e.category, e.waits_for_hold) for e in timeline.erasures] == [
            ("contacts", False),
            ("files", True),
            ("backups", False),
        ]


def check_against(previous: Timeline, lc: Lifecycle) -> None:
    """What the sweep did agrees with *previous*, taken before the clock moved to now."""
    if previous.hypothetical:
        return  # nothing was confirmed: the moments were what-ifs
    record = lc.get("acc-1")
    now = lc.clock.now()
    for erasure in previous.erasures:
        erased = record.purge.get(erasure.category)
        done = erased is not None and erased.status is PurgeStatus.DONE
        if erasure.done:
            assert done
        elif erasure.waits_for_hold:
            assert not done, f"{erasure.category} was erased, but the preview said it waits for a hold"
        elif erasure.at <= now and record.state is not State.ACTIVE:
            assert done, f"{erasure.category} was due at {erasure.at} (now {now}) but not erased"
        elif erasure.at > now:
            assert not done, f"{erasure.category} was erased before {erasure.at}"
    for kept in previous.kept:
        erased = record.purge.get(kept.category)
        assert erased is None or erased.status is not PurgeStatus.DONE, f"{kept.category} said kept"


def erased(lc: Lifecycle, category: str) -> bool:
    progress = lc.get("acc-1").purge.get(category)
    return progress is not None and progress.status is PurgeStatus.DONE


STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(1, 20)),
        st.tuples(st.sampled_from(["hold", "release"]), st.sampled_from(CATEGORIES)),
        st.tuples(st.just("restore"), st.just("")),
    ),
    max_size=10,
)


@pytest.mark.parametrize("on_hold", ["wait", "retain"])
@given(steps=STEPS, hold_first=st.sampled_from([None, *CATEGORIES]))
def test_preview_agrees_with_what_happens(
    on_hold: str, steps: list[tuple[str, object]], hold_first: str | None
) -> None:
    lc, clock = make_lifecycle(on_hold)
    if hold_first is not None:
        lc.place_hold("acc-1", SUPPORT, hold_first, "audit")
    confirm(lc)
    for action, argument in steps:
        previous = lc.preview("acc-1")
        state = lc.get("acc-1").state
        if action == "advance":
            assert isinstance(argument, int)
            clock.advance(timedelta(days=argument))
            lc.sweep()
            check_against(previous, lc)
        elif state is State.PURGED:
            continue
        elif action == "hold" and argument not in lc.get("acc-1").holds and not erased(lc, str(argument)):
            lc.place_hold("acc-1", SUPPORT, str(argument), "audit")
        elif action == "release" and argument in lc.get("acc-1").holds:
            lc.release_hold("acc-1", SUPPORT, str(argument))
        elif (
            action == "restore"
            and state is State.RESTORABLE
            and clock.now() < lc.get("acc-1").restorable_until
        ):
            lc.restore("acc-1", OWNER)
