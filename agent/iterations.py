"""The iteration state machine shared by ReplicationSource and ReplicationDestination (pure).

VolSync keeps the whole state in `.status`, and so do we, so a restarted agent resumes:

    Idle ──(trigger fires)──► Synchronizing ──(mover done)──► CleaningUp ──► Idle
             lastSyncStartTime set           lastSyncTime set,                temporaries gone
                                             lastSyncStartTime cleared

- Synchronizing ⇔ `status.lastSyncStartTime` is set. The iteration's identity, which movers are
  keyed by, is `status.iteration.id` (`<number>-<uid prefix>`, unique per iteration; see
  `api.volsync.IterationRecord`), not the one-second `lastSyncStartTime` (used only for an
  iteration started before `status.iteration` existed, or on a cluster whose CRD prunes it: there
  no iteration starts in the second the previous one ended in, and the agent warns).
- CleaningUp ⇔ not synchronizing and objects labelled `volsync.backube/cleanup=<uid>` remain.
- A reconcile error (bad spec, missing Secret) sets `Synchronizing=False/Error` and is retried with
  backoff; the condition clears on the next clean pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent import triggers
from agent.plans import Action, Began, Delete, Emit, Observe, Plan
from api.volsync import (
    ANNOTATION_SKIP_INITIAL_SYNC,
    CONDITION_SYNCHRONIZING,
    LABEL_CLEANUP,
    LABEL_CREATED_BY,
    REASON_CLEANING_UP,
    REASON_ERROR,
    REASON_SYNC_IN_PROGRESS,
    REASON_TRIGGER_QUEUED,
    ReplicationSpec,
    ReplicationStatus,
    go_duration,
)
from kube import objects
from kube.clock import parse_rfc3339, rfc3339
from kube.rest import Resource

Obj = dict[str, Any]

CREATED_BY = "volsync"
REASON_ITERATION_PRUNED = "IterationFieldPruned"
TRANSFER_RETRY_MAX = 300.0
MESSAGES = {
    REASON_SYNC_IN_PROGRESS: "Synchronization in-progress",
    REASON_CLEANING_UP: "Cleaning up",
    "WaitingForSchedule": "Waiting for next scheduled synchronization",
    "WaitingForManual": "Waiting for manual trigger",
}


@dataclass(frozen=True)
class Context:
    """One object being reconciled, with its parsed spec and status and the current time."""

    obj: Obj
    spec: ReplicationSpec
    status: ReplicationStatus
    now: datetime
    role: str  # "source" | "destination"

    @classmethod
    def of(cls, obj: Obj, now: datetime, role: str) -> Context:
        return cls(obj, ReplicationSpec.parse(obj), ReplicationStatus.parse(obj), now, role)

    @property
    def name(self) -> str:
        return objects.name_of(self.obj)

    @property
    def namespace(self) -> str:
        return objects.namespace_of(self.obj)

    @property
    def uid(self) -> str:
        return objects.uid_of(self.obj)

    @property
    def key(self) -> str:
        return f"{self.role}/{self.namespace}/{self.name}"

    @property
    def iteration(self) -> str | None:
        """The running iteration's identity (None when idle)."""
        if self.status.last_sync_start_time is None:
            return None
        record = self.status.iteration
        if record.id and record.end_time is None:
            return record.id
        return self.status.last_sync_start_time  # started by an agent that predates status.iteration

    @property
    def iteration_number(self) -> int:
        return self.status.iteration.number if self.iteration == self.status.iteration.id else 0

    def owned(self, resource: Resource, name: str, *, cleanup: bool = False, extra: Obj | None = None) -> Obj:
        """The skeleton of an object this CR owns (labels, owner reference, namespace)."""
        labels = {LABEL_CREATED_BY: CREATED_BY}
        if cleanup:
            labels[LABEL_CLEANUP] = self.uid
        meta: Obj = {
            "name": name,
            "namespace": self.namespace,
            "labels": labels,
            "ownerReferences": [objects.owner_ref(self.obj)],
        }
        return {"apiVersion": resource.api_version, "kind": resource.kind, "metadata": meta, **(extra or {})}


def condition_status(ctx: Context, reason: str, message: str | None = None) -> Obj:
    """A status patch carrying the Synchronizing condition."""
    cond = {
        "type": CONDITION_SYNCHRONIZING,
        "status": "True" if reason == REASON_SYNC_IN_PROGRESS else "False",
        "reason": reason,
        "message": message or MESSAGES.get(reason, reason),
    }
    return {"conditions": objects.set_condition(list(ctx.status.conditions), cond, rfc3339(ctx.now))}


def error_plan(ctx: Context, message: str) -> Plan:
    return Plan(status=condition_status(ctx, REASON_ERROR, message), error=message)


def mover_error(spec: ReplicationSpec, enabled: tuple[str, ...] = ("rsync",)) -> str | None:
    if not spec.movers:
        return f"a replication method must be specified - enabled movers: {list(enabled)}"
    if len(spec.movers) > 1:
        return "only one replication method can be supplied"
    if spec.movers[0] not in enabled:
        return f"replication method {spec.movers[0]!r} is not supported by this agent - enabled movers: {list(enabled)}"
    return None


def copy_method_error(spec: ReplicationSpec, allowed: tuple[str, ...]) -> str | None:
    """VolSync refuses a missing or unusable copyMethod; so do we, before anything moves."""
    method = spec.rsync.volume.copy_method if spec.rsync is not None else None
    if method in allowed:
        return None
    choices = ", ".join(allowed)
    if method is None:
        return f"spec.rsync.copyMethod must be set: one of {choices}"
    return f"unsupported copyMethod {method!r} here: use one of {choices}"


def schedule_error(spec: ReplicationSpec) -> str | None:
    if spec.trigger.schedule is None:
        return None
    try:
        triggers.normalise(spec.trigger.schedule)
    except triggers.ScheduleError as exc:
        return str(exc)
    return None


def snapshot_ready(vs: Obj | None) -> bool:
    """A VolumeSnapshot is usable once it is bound to content *and* ready (VolSync waits only for
    the binding; we wait for both, so an image is never published before it can be restored)."""
    st = (vs or {}).get("status") or {}
    return bool(st.get("readyToUse")) and bool(st.get("boundVolumeSnapshotContentName"))


def cleanup_actions(leftovers: tuple[tuple[Resource, Obj], ...]) -> list[Delete]:
    return [
        Delete(res, objects.namespace_of(o), objects.name_of(o), objects.meta(o).get("resourceVersion", ""))
        for res, o in leftovers
        if not objects.is_deleting(o)
    ]


def idle(ctx: Context, leftovers: tuple[tuple[Resource, Obj], ...]) -> Plan | None:
    """The plan of an object between iterations, or None when an iteration should start now."""
    if leftovers:
        return Plan(before=list(cleanup_actions(leftovers)), status=condition_status(ctx, REASON_CLEANING_UP)).wait(2)
    created = parse_rfc3339(objects.meta(ctx.obj).get("creationTimestamp")) or ctx.now
    last_sync = parse_rfc3339(ctx.status.last_sync_time)
    skip_initial = objects.annotations_of(ctx.obj).get(ANNOTATION_SKIP_INITIAL_SYNC) == "true"
    initial = last_sync is None and not skip_initial
    decision = triggers.decide(
        ctx.spec.trigger,
        last_sync=last_sync,
        last_manual=ctx.status.last_manual_sync,
        now=ctx.now,
        initial=initial,
        created=created,
    )
    if decision.start and not ctx.spec.paused:
        hold = _same_second_hold(ctx)
        return None if hold is None else Plan(status=condition_status(ctx, REASON_SYNC_IN_PROGRESS)).wait(hold)
    reason = decision.waiting_reason or REASON_SYNC_IN_PROGRESS
    status = condition_status(ctx, reason, "Synchronization paused" if ctx.spec.paused else None)
    # paused: no nextSyncTime at all, rather than one that slips into the past while nothing runs
    status["nextSyncTime"] = rfc3339(decision.next_sync) if decision.next_sync and not ctx.spec.paused else None
    plan = Plan(status=status)
    if decision.next_sync is not None and not ctx.spec.paused:
        plan.wait(max((decision.next_sync - ctx.now).total_seconds(), 0.0))
    return plan


def _same_second_hold(ctx: Context) -> float | None:
    """Seconds to hold a start back, or None. Without `status.iteration` (pruned by a CRD that lacks
    it) the identity is the one-second `lastSyncStartTime`: an iteration started in the second the
    previous one ended in would share the previous one's identity (its completion signal counted as
    already handled: the destination would never publish again). Starting in a later second keeps
    the fallback identities strictly increasing."""
    if ctx.status.iteration.id or ctx.status.last_sync_time != rfc3339(ctx.now):
        return None
    return max(1.0 - ctx.now.microsecond / 1e6, 0.001)


def precise(when: datetime) -> str:
    """A time with microseconds (metav1.MicroTime's format), for durations not rounded to seconds."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _trigger(ctx: Context) -> str:
    if ctx.spec.trigger.manual is not None:
        return f"manual {ctx.spec.trigger.manual!r}"
    if ctx.status.last_sync_time is None:
        return "initial"
    return "schedule" if ctx.spec.trigger.schedule is not None else "continuous"


def start(ctx: Context) -> Plan:
    """Start an iteration with a new identity; the start is logged once the status patch landed."""
    number = ctx.status.iteration.number + 1
    ident = f"{number}-{(ctx.uid or 'nouid')[:8]}"
    status = condition_status(ctx, REASON_SYNC_IN_PROGRESS)
    status["lastSyncStartTime"] = rfc3339(ctx.now)
    status["iteration"] = {
        "number": number,
        "id": ident,
        "startTime": precise(ctx.now),
        "endTime": None,
        "manual": ctx.spec.trigger.manual,
    }
    return Plan(status=status, after=[Began(ident, _trigger(ctx))])


def failed_attempt(ctx: Context, logs: str) -> Observe:
    """The log record of a failed attempt (the iteration goes on and retries)."""
    return Observe(duration=_elapsed(ctx), missed=False, succeeded=False, iteration=ctx.iteration or "",
                   bytes=sent_bytes(logs), outcome="Failed")


def _elapsed(ctx: Context) -> float:
    started = parse_rfc3339(ctx.status.iteration.start_time if ctx.iteration_number else None)
    started = started or parse_rfc3339(ctx.status.last_sync_start_time) or ctx.now
    return max((ctx.now - started).total_seconds(), 0.0)


def sent_bytes(logs: str) -> int | None:
    """The bytes rsync sent, from its summary line ("sent 1,234 bytes  received ...")."""
    for line in reversed(logs.splitlines()):
        words = line.split()
        if len(words) >= 3 and words[0] == "sent" and words[2] == "bytes":
            digits = words[1].replace(",", "").replace(".", "")
            return int(digits) if digits.isdigit() else None
    return None


def complete(ctx: Context, extra: Obj, logs: str) -> tuple[Obj, list[Action]]:
    """The status patch, and the `after` actions (metrics, log line, Events), of an iteration that just
    completed successfully. `lastManualSync` becomes the trigger the iteration *started* for: a
    trigger changed while it ran is not done yet, so it runs next (and an Event says so)."""
    duration = _elapsed(ctx)
    status = condition_status(ctx, REASON_CLEANING_UP)
    record = ctx.status.iteration
    served = record.manual if ctx.iteration_number else ctx.spec.trigger.manual
    status.update(
        {
            "lastSyncTime": rfc3339(ctx.now),
            "lastSyncDuration": go_duration(duration),
            "lastSyncStartTime": None,
            # a merge patch: "logs": None drops the logs of an earlier failure
            "latestMoverStatus": {"result": "Successful", "logs": logs[-1024:] or None},
            "iteration": {"endTime": precise(ctx.now), "completed": record.completed + 1},
        }
    )
    missed = False
    # A manual trigger takes precedence over a schedule: no nextSyncTime, never a missed deadline.
    schedule = ctx.spec.trigger.schedule if ctx.spec.trigger.manual is None else None
    if schedule is not None:
        status["nextSyncTime"] = None if ctx.spec.paused else rfc3339(triggers.next_slot(schedule, ctx.now))
        missed = triggers.missed_deadline(schedule, parse_rfc3339(ctx.status.last_sync_time), ctx.now)
    else:
        status["nextSyncTime"] = None
    wanted = ctx.spec.trigger.manual
    status["lastManualSync"] = served if wanted is not None else None  # None (unset) drops a stale value
    status.update(extra)
    after: list[Action] = [Observe(duration=duration, missed=missed, succeeded=True, iteration=ctx.iteration or "",
                                   bytes=sent_bytes(logs))]
    if wanted is not None and served != wanted:
        after.append(Emit("Normal", REASON_TRIGGER_QUEUED, f"manual trigger {wanted!r} arrived while iteration "
                          f"{ctx.iteration} (for {served!r}) was running: it runs next"))
    return status, after


def pruned_iteration(sent: Obj, returned: Obj) -> str | None:
    """Why `status.iteration` is missing from the object a status patch returned although the patch
    set it (None when it is there, or was not set): the cluster serves a CRD without the field (e.g.
    VolSync's own), whose structural schema prunes it silently. Iterations then fall back to the
    one-second `lastSyncStartTime` as their identity."""
    if not sent.get("iteration") or (returned.get("status") or {}).get("iteration"):
        return None
    kind = returned.get("kind") or "replication"
    return (f"status.iteration was pruned by the API server: the {kind} CRD installed on this cluster does not "
            "declare it (VolSync's own CRD?). Iterations fall back to lastSyncStartTime as their identity, so "
            "two syncs started within one second may share an identity (a lost completion signal, a stale "
            "latestImage). Fix: install this project's CRDs (manifests/crds/).")
