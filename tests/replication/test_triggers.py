"""agent/triggers.py: cron normalisation, slots, missed deadlines and the start decision (VolSync §1.1, §4)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from support.replication_objects import T0, at

from agent import triggers
from agent.triggers import Decision, ScheduleError, decide, missed_deadline, next_slot, normalise
from api.volsync import REASON_WAITING_FOR_MANUAL, REASON_WAITING_FOR_SCHEDULE, Trigger

# ------------------------------------------------------------------------------------ normalise


@pytest.mark.parametrize(
    "schedule",
    ["*/3 * * * *", "0 0 1 1 *", "5 4 * * sun", "0 22 * * 1-5", "0 0 29 2 *", "15,45 */2 1-15 * *"],
)
def test_normalise_keeps_a_five_field_schedule(schedule: str) -> None:
    assert normalise(schedule) == schedule


def test_normalise_strips_surrounding_blanks() -> None:
    assert normalise("  */5 * * * *\n") == "*/5 * * * *"


@pytest.mark.parametrize(
    ("descriptor", "expr"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
    ],
)
def test_normalise_expands_descriptors(descriptor: str, expr: str) -> None:
    assert normalise(descriptor) == expr


@pytest.mark.parametrize(
    "schedule",
    [
        "",
        "   ",
        "* * * *",  # 4 fields
        "0 * * * * *",  # 6 fields (seconds): robfig's standard parser refuses them too
        "@every 5m",  # rejected by VolSync's CRD pattern
        "TZ=UTC 0 * * * *",
        "@reboot",
        "@fortnightly",
        "61 * * * *",
        "0 25 * * *",
        "0 0 32 * *",
        "0 0 * 13 *",
        "a b c d e",
    ],
)
def test_normalise_rejects_invalid_schedules_with_a_message(schedule: str) -> None:
    with pytest.raises(ScheduleError) as err:
        normalise(schedule)
    message = str(err.value)
    assert repr(schedule) in message
    assert "5 fields" in message


def test_schedule_error_is_a_value_error() -> None:
    assert issubclass(ScheduleError, ValueError)


def test_a_schedule_that_never_fires_is_invalid() -> None:
    """Feb 31st has valid fields but no date ever matches: an Error, not a crash on every reconcile."""
    with pytest.raises(ScheduleError, match="never"):
        normalise("0 0 31 2 *")
    with pytest.raises(ScheduleError):
        next_slot("0 0 30 2 *", T0)


# ------------------------------------------------------------------------------------ next_slot


def test_next_slot_is_strictly_after_a_time_on_a_slot() -> None:
    on_slot = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
    assert next_slot("0 * * * *", on_slot) == datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    assert next_slot("*/3 * * * *", datetime(2026, 3, 2, 10, 3, tzinfo=UTC)) == datetime(2026, 3, 2, 10, 6, tzinfo=UTC)


def test_next_slot_between_slots_is_the_following_slot() -> None:
    assert next_slot("0 * * * *", datetime(2026, 3, 2, 10, 0, 0, 1, tzinfo=UTC)) == datetime(
        2026, 3, 2, 11, 0, tzinfo=UTC
    )
    assert next_slot("0 * * * *", datetime(2026, 3, 2, 10, 59, 59, tzinfo=UTC)) == datetime(
        2026, 3, 2, 11, 0, tzinfo=UTC
    )
    assert next_slot("*/3 * * * *", datetime(2026, 3, 2, 10, 4, 30, tzinfo=UTC)) == datetime(
        2026, 3, 2, 10, 6, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("@hourly", datetime(2026, 3, 2, 11, 0, tzinfo=UTC)),
        ("@daily", datetime(2026, 3, 3, 0, 0, tzinfo=UTC)),
        ("@weekly", datetime(2026, 3, 8, 0, 0, tzinfo=UTC)),  # the next Sunday
        ("@monthly", datetime(2026, 4, 1, 0, 0, tzinfo=UTC)),
        ("@yearly", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
        ("0 0 29 2 *", datetime(2028, 2, 29, 0, 0, tzinfo=UTC)),  # the next leap day
    ],
)
def test_next_slot_of_descriptors(schedule: str, expected: datetime) -> None:
    assert next_slot(schedule, T0) == expected


def test_next_slot_keeps_utc() -> None:
    nxt = next_slot("@daily", T0)
    assert nxt.tzinfo is not None
    assert nxt.utcoffset() == UTC.utcoffset(None)


def test_next_slot_of_an_invalid_schedule_raises_schedule_error() -> None:
    with pytest.raises(ScheduleError):
        next_slot("@every 1h", T0)


# ------------------------------------------------------------------------------ missed_deadline


def test_never_synced_is_not_a_missed_deadline() -> None:
    assert missed_deadline("*/3 * * * *", None, at(hours=48)) is False


@pytest.mark.parametrize(
    ("now", "missed"),
    [
        (at(minutes=30), False),  # before next(L)
        (at(hours=1), False),  # next(L) itself
        (at(hours=1, minutes=59), False),  # the run due at 11:00 still has until 12:00
        (at(hours=2), False),  # exactly next(next(L)): not yet past
        (at(hours=2, seconds=1), True),  # past the following slot
        (at(hours=5), True),
    ],
)
def test_missed_deadline_after_two_periods(now: datetime, missed: bool) -> None:
    # L = 10:00, hourly: next(L) = 11:00, next(next(L)) = 12:00.
    assert missed_deadline("@hourly", T0, now) is missed


def test_missed_deadline_counts_from_the_completion_not_the_slot() -> None:
    # Completed at 10:59 on an hourly schedule: the due run is 11:00, its deadline 12:00.
    last = at(minutes=59)
    assert missed_deadline("0 * * * *", last, at(hours=1, minutes=59)) is False
    assert missed_deadline("0 * * * *", last, at(hours=2, minutes=1)) is True


# --------------------------------------------------------------------------------------- decide


def test_always_starts_without_a_trigger() -> None:
    for initial in (True, False):
        d = decide(Trigger(), last_sync=at(seconds=5), last_manual=None, now=at(seconds=6), initial=initial, created=T0)
        assert d == Decision(True, "", None)


def test_manual_starts_when_it_differs_from_last_manual_sync() -> None:
    d = decide(Trigger(manual="two"), last_sync=T0, last_manual="one", now=at(1), initial=False, created=T0)
    assert d.start is True
    assert d.waiting_reason == REASON_WAITING_FOR_MANUAL
    assert d.next_sync is None


def test_manual_equal_to_last_manual_sync_waits() -> None:
    d = decide(Trigger(manual="one"), last_sync=T0, last_manual="one", now=at(hours=100), initial=False, created=T0)
    assert d == Decision(False, REASON_WAITING_FOR_MANUAL, None)


def test_manual_takes_precedence_over_the_schedule() -> None:
    both = Trigger(schedule="*/3 * * * *", manual="one")
    # Hours past every slot: the schedule would fire, but manual decides, and it has been honoured.
    d = decide(both, last_sync=T0, last_manual="one", now=at(hours=3), initial=False, created=T0)
    assert d == Decision(False, REASON_WAITING_FOR_MANUAL, None)
    # A new manual value fires at once, long before the next slot.
    d = decide(both, last_sync=T0, last_manual="zero", now=T0, initial=False, created=T0)
    assert d.start is True
    assert d.next_sync is None


def test_schedule_waits_for_the_first_slot_after_the_last_sync() -> None:
    sched = Trigger(schedule="0 * * * *")
    last = at(minutes=5)  # 10:05 -> next slot 11:00
    before = decide(sched, last_sync=last, last_manual=None, now=at(minutes=59), initial=False, created=T0)
    assert before == Decision(False, REASON_WAITING_FOR_SCHEDULE, at(hours=1))
    on_slot = decide(sched, last_sync=last, last_manual=None, now=at(hours=1), initial=False, created=T0)
    assert on_slot.start is True
    assert on_slot.next_sync == at(hours=1)


def test_schedule_after_an_overrun_fires_once_not_per_skipped_slot() -> None:
    """The slot is computed from the completion time: passed slots are skipped, not queued."""
    sched = Trigger(schedule="*/3 * * * *")
    # The sync started at 10:00 and finished at 10:10: 10:03, 10:06, 10:09 went by.
    d = decide(
        sched, last_sync=at(minutes=10), last_manual=None, now=at(minutes=10, seconds=5), initial=False, created=T0
    )
    assert d == Decision(False, REASON_WAITING_FOR_SCHEDULE, at(minutes=12))


@pytest.mark.parametrize(
    "trigger",
    [Trigger(schedule="0 0 1 1 *"), Trigger(manual="x"), Trigger(schedule="@yearly", manual="x"), Trigger()],
    ids=["yearly", "manual", "both", "always"],
)
def test_initial_sync_at_creation_whatever_the_trigger(trigger: Trigger) -> None:
    # Even a manual value equal to lastManualSync (e.g. restored status) does not stop the first sync.
    d = decide(trigger, last_sync=None, last_manual="x", now=T0, initial=True, created=T0)
    assert d.start is True


def test_initial_sync_reports_the_next_slot_of_a_schedule() -> None:
    d = decide(Trigger(schedule="@daily"), last_sync=None, last_manual=None, now=T0, initial=True, created=T0)
    assert d == Decision(True, REASON_WAITING_FOR_SCHEDULE, datetime(2026, 3, 3, tzinfo=UTC))


def test_opted_out_object_waits_for_the_first_slot_after_creation() -> None:
    sched = Trigger(schedule="*/15 * * * *")
    created = at(minutes=1)  # 10:01 -> first slot 10:15
    waiting = decide(sched, last_sync=None, last_manual=None, now=at(minutes=14), initial=False, created=created)
    assert waiting == Decision(False, REASON_WAITING_FOR_SCHEDULE, at(minutes=15))
    due = decide(sched, last_sync=None, last_manual=None, now=at(minutes=15), initial=False, created=created)
    assert due.start is True
    late = decide(sched, last_sync=None, last_manual=None, now=at(hours=7), initial=False, created=created)
    assert late.start is True
    assert late.next_sync == at(minutes=15)


def test_decide_raises_for_an_invalid_schedule() -> None:
    with pytest.raises(triggers.ScheduleError):
        decide(Trigger(schedule="every hour"), last_sync=None, last_manual=None, now=T0, initial=False, created=T0)
