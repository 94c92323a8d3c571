"""How a replication is doing against its recovery-point objective (pure).

The state of one replication side, from its latest report, its peer's (`hub/pairing.py`) and the time:
- `paused`: `spec.paused` is true: nothing is expected of it (its peer still is judged);
- `error`: the `Synchronizing` condition says Error, or the last mover result is Failed;
- `late`, the first of:
  - a destination that has not published an image of its source's last completed sync once
    `grace_seconds` have passed since that sync completed (RS `status.lastSyncTime`). Exactly, when
    both sides say which iteration: the image holds source iteration `n` of the RD's
    `status.latestImageSourceIteration` (`<n>-<uid prefix>`, the id the source named in its completion
    signal), the source's last completed iteration is its `status.iteration.number` once that has an
    `endTime`, else the number before (only a completion ends an iteration, in order), and the image is
    that sync's when `n` is no less, the uid prefixes being the same (the same source object).
    Otherwise (an older agent, VolSync's own CRDs, another source's id), by times: an image is that
    sync's when it was published (RD `status.iteration.endTime`, else `lastSyncTime`, set with
    `latestImage`) after the sync *began* (RS `status.iteration.startTime` of the completed iteration;
    without it `lastSyncStartTime` kept past the end, else `lastSyncTime - lastSyncDuration`, else
    `lastSyncTime`): the destination publishes after the source signals completion, which may be
    before the source's agent records its end, so the end is no bound;
  - a schedule's deadline was missed (the run due at next(last) had not completed by the slot after
    it, as VolSync's missed-interval metric defines it);
  - the lag exceeds the RPO: for a source without a schedule or manual trigger (continuous), and for
    any side annotated `volsync-addon.io/rpo-seconds`;
- `never`: it has not completed a sync yet;
- `ok`: otherwise.
Lag is `now - lastSyncTime`. The RPO is `volsync-addon.io/rpo-seconds` on the object (a positive
number of seconds) or the hub's `--rpo-seconds`; a bad annotation is reported in the verdict's
message and the default applies. Times of the two sides come from two clusters' clocks: an image
published up to `skew_seconds` (the hub's `--clock-skew-seconds`) before the sync began still counts
as that sync's; a time in whole seconds stands for any instant of its second.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from api.schedules import ScheduleError, next_slot
from kube.clock import parse_rfc3339

State = Literal["ok", "late", "never", "error", "paused"]
STATES: tuple[State, ...] = ("ok", "late", "never", "error", "paused")
SEVERITY: dict[State, int] = {"ok": 0, "paused": 1, "never": 2, "late": 3, "error": 4}  # a pair shows its worse side
DEFAULT_RPO_SECONDS = 3600.0
DEFAULT_GRACE_SECONDS = 300.0  # time a destination may take to publish the image of its source's sync
# How far the source's and the destination's clusters' clocks may disagree. Small: syncs may begin less than
# a second after the previous image (back to back, manual triggers a second apart), and a destination
# publishes a transfer's duration after its sync began, which covers most of a larger offset anyway.
DEFAULT_CLOCK_SKEW_SECONDS = 0.5
STEP_SECONDS = 0.001
MAX_RPO_SECONDS = 10 * 365 * 86400.0
ANNOTATION_RPO = "volsync-addon.io/rpo-seconds"
_ITERATION_ID = re.compile(r"([1-9][0-9]{0,17})-([A-Za-z0-9._-]{1,45})")  # `<number>-<uid prefix>`
_NUMBER = re.compile(r"[0-9]{1,12}(\.[0-9]{1,6})?")
_GO_DURATION = re.compile(r"(?:[0-9]{1,12}(?:\.[0-9]{0,9})?(?:ns|us|µs|μs|ms|s|m|h)){1,6}")
_GO_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
DEADLINE_CACHE = 1 << 17  # (schedule, lastSyncTime) pairs: more than one per replication of a large fleet


@dataclass(frozen=True)
class Verdict:
    state: State
    message: str | None = None  # why it is not plainly ok, or what was ignored (a bad annotation)
    rpo_seconds: float | None = None  # the lag threshold, when one applies
    changes_in: float | None = None  # seconds until the state changes by time alone (None: not by time)


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


def rpo_of(annotations: dict[str, str], default: float) -> tuple[float, bool, str | None]:
    """(the RPO, whether the object sets it, a problem with its annotation)."""
    raw = annotations.get(ANNOTATION_RPO)
    if raw is None:
        return default, False, None
    value = float(raw) if _NUMBER.fullmatch(raw) else math.nan
    if not 0 < value <= MAX_RPO_SECONDS:
        return default, False, (f"annotation {ANNOTATION_RPO}={raw[:40]!r} is not a number of seconds in "
                                f"(0, {MAX_RPO_SECONDS:.0f}]; the hub's {default:g}s applies")
    return value, True, None


def _posix(value: Any) -> float | None:
    when = parse_rfc3339(value)
    return None if when is None else when.timestamp()


def go_seconds(text: Any) -> float | None:
    """A Go `time.Duration` string (VolSync's `lastSyncDuration`, e.g. `1m2.5s`) in seconds; None if not one."""
    if text == "0":
        return 0.0
    if not isinstance(text, str) or not _GO_DURATION.fullmatch(text):
        return None
    return sum(float(number) * _GO_UNIT[unit] for number, unit in _GO_PART.findall(text))


def _record_of_last_sync(status: dict[str, Any]) -> dict[str, Any] | None:
    """`status.iteration` when it records the completed sync `lastSyncTime` names (written in one patch:
    `endTime` is `lastSyncTime` with microseconds); None while an iteration runs, or for another's record."""
    record, end = status.get("iteration"), _posix(status.get("lastSyncTime"))
    if not isinstance(record, dict) or end is None:
        return None
    recorded = _posix(record.get("endTime"))
    return record if recorded is not None and 0 <= recorded - end < 1 else None


def sync_began(source_status: dict[str, Any]) -> float | None:
    """When the source's last completed sync began (POSIX seconds): an image published after it may hold
    that sync's data. None when the source has not completed a sync."""
    end = _posix(source_status.get("lastSyncTime"))
    if end is None:
        return None
    record = _record_of_last_sync(source_status)
    if record is not None:
        start = _posix(record.get("startTime"))
        if start is not None and start <= (_posix(record.get("endTime")) or end):
            return start
    start = _posix(source_status.get("lastSyncStartTime"))
    if start is not None and start <= end:  # an agent that keeps it after the sync (ours clears it; VolSync too)
        return start
    took = go_seconds(source_status.get("lastSyncDuration"))  # also while the next iteration runs
    return end - took if took is not None else end


def published_at(status: dict[str, Any]) -> float | None:
    """The latest the destination may have published its newest image (POSIX seconds): the iteration's
    `endTime`, else the end of `lastSyncTime`'s second, or the start of the iteration that followed when
    sooner (a destination begins its next iteration after publishing); None when it has published none."""
    last = _posix(status.get("lastSyncTime"))
    if last is None:
        return None
    record = _record_of_last_sync(status)
    precise = _posix(record.get("endTime")) if record else None
    if precise is not None:
        return precise
    latest = last + (0.0 if last % 1 else 1.0)
    running = status.get("iteration")
    following = _posix(running.get("startTime")) if isinstance(running, dict) and not running.get("endTime") else None
    return following if following is not None and last <= following < latest else latest


def _numbered(ident: Any) -> tuple[int, str] | None:
    """(number, uid prefix) of an iteration id `<number>-<uid prefix>`; None for anything else."""
    m = _ITERATION_ID.fullmatch(ident) if isinstance(ident, str) else None
    return (int(m[1]), m[2]) if m else None


def last_completed(source_status: dict[str, Any]) -> tuple[int, str] | None:
    """(number, uid prefix) of the source's last completed iteration, from its `status.iteration`: the
    recorded one once it has ended, else the one before; None without a consistent record."""
    record = source_status.get("iteration")
    numbered = _numbered(record.get("id")) if isinstance(record, dict) else None
    if numbered is None or not isinstance(record, dict) or record.get("number") != numbered[0]:
        return None
    number, prefix = numbered
    return (number if record.get("endTime") else number - 1), prefix


def image_iterations(status: dict[str, Any], source_status: dict[str, Any]) -> tuple[int, int] | None:
    """(the source iteration the destination's newest image holds, the source's last completed one) when
    both sides name them and name the same source object; None: judge by times."""
    held, done = _numbered(status.get("latestImageSourceIteration")), last_completed(source_status)
    if held is None or done is None or held[1] != done[1]:
        return None
    return held[0], done[0]


def _stamp(posix: float) -> str:
    try:
        return datetime.fromtimestamp(posix, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    except (OverflowError, ValueError, OSError):
        return f"{posix:.3f} (POSIX)"


def _unpublished(status: dict[str, Any], source_status: dict[str, Any] | None, now: datetime,
                 grace: float, skew: float) -> tuple[str | None, float | None]:
    """A destination that has not published its source's last sync: (why late, or None; seconds until it is)."""
    source_status = source_status or {}
    began, synced = sync_began(source_status), _posix(source_status.get("lastSyncTime"))
    if began is None or synced is None:
        return None, None
    exact = image_iterations(status, source_status)
    published = published_at(status)
    by_time = published is not None and published >= began - skew
    if exact[0] >= exact[1] if exact is not None else by_time:
        return None, None
    overdue = now.timestamp() - synced - grace
    if overdue <= 0:
        return None, -overdue
    if exact is not None:
        return (f"its newest image holds its source's iteration {exact[0]}, older than its source's last completed "
                f"sync (iteration {exact[1]}, completed {_stamp(synced)}), not published within the {grace:g}s "
                "grace"), None
    newest = f"its newest image is from {_stamp(published)}" if published is not None else "it has published no image"
    return (f"{newest}, older than its source's last completed sync (begun {_stamp(began)}, completed "
            f"{_stamp(synced)}; {skew:g}s clock-skew tolerance), not published within the {grace:g}s grace"), None


def assess(role: str, spec: dict[str, Any], status: dict[str, Any], now: datetime, *,
           annotations: dict[str, str] | None = None, rpo_seconds: float = DEFAULT_RPO_SECONDS,
           source_status: dict[str, Any] | None = None, grace_seconds: float = DEFAULT_GRACE_SECONDS,
           skew_seconds: float = DEFAULT_CLOCK_SKEW_SECONDS) -> Verdict:
    """The verdict on one side; `source_status` is the paired source's status, for a destination."""
    rpo, explicit, problem = rpo_of(annotations or {}, rpo_seconds)
    verdict = _judge(role, spec, status, now, rpo, explicit, source_status, (grace_seconds, skew_seconds))
    if problem is None:
        return verdict
    return replace(verdict, message="; ".join(m for m in (verdict.message, problem) if m))


def _judge(role: str, spec: dict[str, Any], status: dict[str, Any], now: datetime, rpo: float, explicit: bool,
           source_status: dict[str, Any] | None, allowance: tuple[float, float]) -> Verdict:
    if spec.get("paused") is True:
        return Verdict("paused", "spec.paused is true", None)
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Synchronizing" and cond.get("reason") == "Error":
            return Verdict("error", cond.get("message") or "Synchronizing: Error")
    if ((status.get("latestMoverStatus") or {}).get("result")) == "Failed":
        return Verdict("error", "the last mover run failed")
    waits: list[float] = []
    if role == "destination":
        late, wait = _unpublished(status, source_status, now, *allowance)
        if late:
            return Verdict("late", late)
        waits += [wait] if wait is not None else []
    last = parse_rfc3339(status.get("lastSyncTime"))
    trigger = spec.get("trigger") or {}
    schedule = trigger.get("schedule") if not trigger.get("manual") else None
    lag_applies = explicit or (role == "source" and not trigger.get("manual") and not schedule)
    if last is None:
        return Verdict("never", None, rpo if lag_applies else None, _soonest(waits))
    if isinstance(schedule, str) and schedule:
        try:
            deadline = _deadline(schedule, status["lastSyncTime"])
        except ScheduleError as exc:
            return Verdict("error", f"spec.trigger.schedule: {exc}")
        if deadline < now:
            return Verdict("late", f"the run due after {last:%Y-%m-%dT%H:%M:%SZ} had not completed by "
                                   f"{deadline:%Y-%m-%dT%H:%M:%SZ}")
        waits.append((deadline - now).total_seconds())
    if lag_applies:
        lag = (now - last).total_seconds()
        if lag > rpo:
            return Verdict("late", f"last sync {lag:.0f}s ago, beyond the RPO of {rpo:g}s", rpo)
        waits.append(rpo - lag)
    return Verdict("ok", None, rpo if lag_applies else None, _soonest(waits))


def _soonest(waits: list[float]) -> float | None:
    """When the first of the time limits passes: just after it (a limit is exclusive, and a look-again timer
    of zero would spin)."""
    return min(waits) + STEP_SECONDS if waits else None


def worse(a: State, b: State) -> State:
    return a if SEVERITY[a] >= SEVERITY[b] else b
