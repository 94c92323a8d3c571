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
from datetime import datetime

from api.schedules import ScheduleError, missed_deadline, next_slot, normalise
from api.volsync import REASON_WAITING_FOR_MANUAL, REASON_WAITING_FOR_SCHEDULE, Trigger

__all__ = ["Decision", "ScheduleError", "decide", "missed_deadline", "next_slot", "normalise"]

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
