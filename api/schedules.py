"""Cron schedules as VolSync's API defines them: 5 fields or an `@hourly`-style descriptor.

Shared by the agent (when to sync) and the hub (whether a replication is late). A schedule's next
slot is the first one strictly after a time; a deadline is missed when the run due at next(L) has
not completed by the slot after it (VolSync's missed-interval rule).
"""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class ScheduleError(ValueError):
    pass


def normalise(schedule: str) -> str:
    """The 5-field form of a schedule; raises ScheduleError for anything else."""
    expr = _DESCRIPTORS.get(schedule.strip(), schedule.strip())
    if len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise ScheduleError(
            f"invalid cron schedule {schedule!r}: want 5 fields (minute hour day-of-month "
            "month day-of-week) or @hourly/@daily/@weekly/@monthly/@yearly"
        )
    try:
        croniter(expr, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except ValueError as exc:  # valid fields that no date ever matches, e.g. "0 0 31 2 *"
        raise ScheduleError(f"invalid cron schedule {schedule!r}: it never fires") from exc
    return expr


def next_slot(schedule: str, after: datetime) -> datetime:
    """The first slot strictly after `after`."""
    nxt: datetime = croniter(normalise(schedule), after).get_next(datetime)
    return nxt


def missed_deadline(schedule: str, last_sync: datetime | None, now: datetime) -> bool:
    """True when the sync due at next(last) has not completed by the following slot."""
    if last_sync is None:
        return False
    return next_slot(schedule, next_slot(schedule, last_sync)) < now
