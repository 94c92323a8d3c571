"""When a replication should run: cron schedules, manual triggers, "always", and missed deadlines.

Pure functions of the spec, the status and the time. VolSync semantics:
- a schedule's next slot is the first one strictly after the *completion* of the last sync, so a
  sync that overruns skips slots instead of queueing them;
- a manual trigger runs whenever `spec.trigger.manual != status.lastManualSync`, and takes
  precedence over a schedule;
- no trigger means "always": the next iteration starts as soon as the previous one is cleaned up;
- a deadline is missed when the run due at next(L) has not completed by the slot after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

from api.volsync import REASON_WAITING_FOR_MANUAL, REASON_WAITING_FOR_SCHEDULE, Trigger

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


@dataclass(frozen=True)
class Decision:
    start: bool
    waiting_reason: str  # why not, when not starting (or "" for "always")
    next_sync: datetime | None  # schedule only


def decide(
    trigger: Trigger,
    *,
    last_sync: datetime | None,
    last_manual: str | None,
    now: datetime,
    initial: bool,
    created: datetime,
) -> Decision:
    """Should an idle replication start an iteration now?

    `initial` is True for an object that never synced and never started one: it syncs at once,
    whatever the trigger (VolSync's behaviour), unless the caller opted out. An object that opted
    out and never synced waits for the first slot after its creation time `created`.
    """
    if trigger.manual is not None:
        return Decision(initial or trigger.manual != last_manual, REASON_WAITING_FOR_MANUAL, None)
    if trigger.schedule is not None:
        nxt = next_slot(trigger.schedule, last_sync or created)
        return Decision(initial or now >= nxt, REASON_WAITING_FOR_SCHEDULE, nxt)
    return Decision(True, "", None)
