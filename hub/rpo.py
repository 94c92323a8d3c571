"""How a replication is doing against its recovery-point objective (pure).

The state of one replication, from its latest report and the time:
- `error`: the `Synchronizing` condition says Error, or the last mover result is Failed;
- `never`: it has not completed a sync yet;
- `late`: a schedule's deadline was missed (the run due at next(last) had not completed by the slot
  after it, as VolSync's missed-interval metric defines it), or, for a source without a schedule,
  the lag exceeds the RPO (`rpo_seconds`);
- `ok`: otherwise.
Lag is `now - lastSyncTime`.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, Literal

from api.schedules import ScheduleError, next_slot
from kube.clock import parse_rfc3339

State = Literal["ok", "late", "never", "error"]
STATES: tuple[State, ...] = ("ok", "late", "never", "error")
DEFAULT_RPO_SECONDS = 3600.0
DEADLINE_CACHE = 1 << 17  # (schedule, lastSyncTime) pairs: more than one per replication of a large fleet


@functools.lru_cache(maxsize=DEADLINE_CACHE)
def _deadline(schedule: str, last_sync_time: str) -> datetime:
    """The slot after next(last sync): a sync not completed by then missed its deadline. Cached: parsing
    the cron expression costs ~0.3 ms, and the hub looks at every replication on every fleet query,
    /metrics scrape and reconcile of its cluster, while a replication's last sync changes once a sync."""
    last = parse_rfc3339(last_sync_time)
    if last is None:
        raise ValueError(f"not a time: {last_sync_time!r}")
    return next_slot(schedule, next_slot(schedule, last))


def lag_seconds(status: dict[str, Any], now: datetime) -> float | None:
    last = parse_rfc3339(status.get("lastSyncTime"))
    return None if last is None else max((now - last).total_seconds(), 0.0)


def state(role: str, spec: dict[str, Any], status: dict[str, Any], now: datetime,
          rpo_seconds: float = DEFAULT_RPO_SECONDS) -> State:
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Synchronizing" and cond.get("reason") == "Error":
            return "error"
    if ((status.get("latestMoverStatus") or {}).get("result")) == "Failed":
        return "error"
    last = parse_rfc3339(status.get("lastSyncTime"))
    if last is None:
        return "never"
    trigger = spec.get("trigger") or {}
    schedule = trigger.get("schedule") if not trigger.get("manual") else None
    if isinstance(schedule, str) and schedule:
        try:
            return "late" if _deadline(schedule, status["lastSyncTime"]) < now else "ok"
        except ScheduleError:
            return "error"
    if role == "source" and not trigger.get("manual") and (now - last).total_seconds() > rpo_seconds:
        return "late"
    return "ok"
