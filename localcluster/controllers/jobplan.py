"""The Job controller's pure planner: one Job and its Pods in, a `Plan` out.

Follows kube-controller-manager's Job controller (NonIndexed, and Indexed through `jobindex.py`): Pods from the
template up to `parallelism` (0 creates none), `completions` (nil with a parallelism: done when one
Pod succeeded and none is active), `suspend` (active Pods deleted, condition `Suspended`),
`backoffLimit` over failed Pods with a back-off before each replacement (10 s doubling, capped at
6 min), `activeDeadlineSeconds`, `ttlSecondsAfterFinished`. A failing Job first gets
`FailureTarget` (its active Pods are deleted) and `Failed` once none is left terminating; a
succeeding one `SuccessCriteriaMet`, then `Complete`, as 1.31+ do.

Finished Pods are counted once, with the tracking finalizer every Pod is created with
(`jobtracking.py`): a Pod deleted before it succeeded counts as failed, so `kubectl delete pod` uses
up `backoffLimit` as upstream; `status.terminating` counts Pods being deleted. Pods removed for
suspension or a lower parallelism lose their finalizer first and are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from kube import objects
from kube.clock import parse_rfc3339, rfc3339
from kube.patches import changes
from kube.rest import JOBS, PODS, Obj
from localcluster.controllers import jobindex, jobtracking
from localcluster.controllers import pods as podfacts
from localcluster.controllers.conditions import put
from localcluster.controllers.plans import Action, Create, Delete, Emit, Patch, Plan, soonest

BACKOFF_BASE = 10.0
BACKOFF_MAX = 360.0
DEFAULT_BACKOFF_LIMIT = 6


def pod_labels(job: Obj) -> dict[str, str]:
    uid, name = objects.uid_of(job), objects.name_of(job)
    return {"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
            "batch.kubernetes.io/job-name": name, "job-name": name}


def selector(job: Obj) -> dict[str, Any]:
    """The Job's selector, or (before the API server defaulted one) its controller-uid label."""
    found = (job.get("spec") or {}).get("selector")
    return found if found else {"matchLabels": {"batch.kubernetes.io/controller-uid": objects.uid_of(job)}}


def backoff(failures: int) -> float:
    return float(min(BACKOFF_BASE * 2 ** max(failures - 1, 0), BACKOFF_MAX))


def _cond(type_: str, reason: str, message: str, status: str = "True") -> Obj:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def _is_true(conditions: list[Obj], type_: str) -> bool:
    found = objects.condition(conditions, type_)
    return found is not None and found.get("status") == "True"


def plan_job(job: Obj, pods: Sequence[Obj], now: datetime, last_failure: datetime | None = None) -> Plan:
    """The Plan for `job` given the Pods it owns (claimed already); `last_failure` is the latest Pod
    failure the controller remembers (a deleted Pod's is gone with it), the start of the back-off."""
    spec, status = job.get("spec") or {}, dict(job.get("status") or {})
    conditions: list[Obj] = list(status.get("conditions") or [])
    stamp = rfc3339(now)
    finished = _is_true(conditions, "Complete") or _is_true(conditions, "Failed")
    failing = _is_true(conditions, "FailureTarget")
    if finished:  # counted already: a leftover finalizer just goes (upstream's cleanupPodFinalizers)
        return _finished(job, conditions, status, pods, now)
    deleting = objects.is_deleting(job)
    count = jobtracking.tally(status, pods, indexed=jobindex.is_indexed(job), failing=failing,
                              release_all=deleting or failing or _is_true(conditions, "SuccessCriteriaMet"))
    totals = {p: count.total(p) for p in jobtracking.PHASES}
    active = [p for p in pods if podfacts.is_active(p)]
    indexes: set[int] | None = None
    if jobindex.is_indexed(job):
        succeeded = [p for p in pods if podfacts.phase(p) == "Succeeded"]
        indexes = jobindex.completed(status, succeeded, int(spec.get("completions") or 0))
        totals["succeeded"] = len(indexes)
    terminating = [p for p in pods if objects.is_deleting(p) and not podfacts.is_finished(p)]
    actions: list[Action] = []
    requeue: float | None = None
    if not deleting:
        last = max((t for t in (last_failure, jobtracking.last_failure(pods)) if t is not None), default=None)
        step, requeue = _progress(job, spec, status, conditions, totals,
                                  (active, len(terminating) + count.pending), last, indexes, now)
        actions += step.actions
        conditions = list(step.conditions)
        status.update(step.fields)
    new_status = {
        "active": len(active) - sum(1 for a in actions if isinstance(a, Delete) and a.res == PODS) or None,
        "ready": sum(1 for p in active if podfacts.is_ready(p)),
        "terminating": len(terminating),
        "succeeded": (totals["succeeded"] if indexes is not None else count.counters["succeeded"]) or None,
        "failed": count.counters["failed"] or None,
        "startTime": status.get("startTime"),
        "completionTime": status.get("completionTime"),
        "conditions": [{**c, "lastProbeTime": c.get("lastProbeTime", stamp)} for c in conditions] or None,
        **count.status(),
    }
    if indexes is not None:
        new_status["completedIndexes"] = jobindex.format_ranges(indexes)
    pod_actions = [*map(jobtracking.release, count.released), *actions]
    actions = [*_write_status(job, new_status, acting=bool(pod_actions)), *pod_actions]
    actions += _transitions(job, list((job.get("status") or {}).get("conditions") or []), conditions)
    return Plan(tuple(actions), requeue)


def _write_status(job: Obj, new_status: Obj, *, acting: bool) -> list[Action]:
    """The status write, guarded by the Job's resourceVersion: a decision taken on a stale Job (one
    that does not list the Pods counted last time yet) is a 409 and nothing after it happens. When
    the Job acts on Pods (`acting`), an unchanged status is still confirmed that way."""
    changed = changes(job.get("status") or {}, new_status)
    if not changed and not acting:
        return []
    rv = objects.meta(job).get("resourceVersion")
    return [Patch(JOBS, objects.namespace_of(job), objects.name_of(job),
                  {"metadata": {"resourceVersion": rv}, "status": new_status if changed else {}}, status=True)]


def _finished(job: Obj, conditions: list[Obj], status: Obj, pods: Sequence[Obj], now: datetime) -> Plan:
    """A finished Job: its leftover active Pods deleted (Failed), finalizers released, the TTL."""
    active = [p for p in pods if podfacts.is_active(p)]
    actions: list[Action] = [jobtracking.release(p) for p in pods if jobtracking.tracked(p)]
    if _is_true(conditions, "Failed"):
        actions += _delete_pods(active, job)
    ttl_action, requeue = _ttl(job, conditions, status, now)
    terminating = sum(1 for p in pods if objects.is_deleting(p) and not podfacts.is_finished(p))
    counts = {"active": len(active) - sum(1 for a in actions if isinstance(a, Delete)) or None,
              "ready": sum(1 for p in active if podfacts.is_ready(p)), "terminating": terminating}
    return Plan((*_write_status(job, counts, acting=False), *actions, *ttl_action), requeue)


class _Step:
    def __init__(self) -> None:
        self.actions: list[Action] = []
        self.conditions: list[Obj] = []
        self.fields: dict[str, Any] = {}


def _progress(job: Obj, spec: Obj, status: Obj, conditions: list[Obj], totals: dict[str, int],
              live: tuple[list[Obj], int], last_failure: datetime | None, indexes: set[int] | None,
              now: datetime) -> tuple[_Step, float | None]:
    """Conditions, Pods to create or delete; `live` is (active Pods, Pods terminating or not counted yet:
    the Job is not Complete or Failed before they are settled)."""
    step, stamp = _Step(), rfc3339(now)
    active, unsettled = live
    suspended = bool(spec.get("suspend"))
    start = parse_rfc3339(status.get("startTime"))
    if _is_true(conditions, "Suspended") and not suspended:
        conditions = put(conditions, _cond("Suspended", "JobResumed", "Job resumed", "False"), stamp)
        start = now
    if start is None and not suspended:
        start = now
    step.fields["startTime"] = rfc3339(start) if start else None
    requeue: float | None = None

    failure = _failure(spec, conditions, (totals["failed"], _restarts(spec, active)), start, now, suspended)
    if isinstance(failure, float):
        requeue, failure = failure, None
    completions = spec.get("completions", 1 if spec.get("parallelism") is None else None)
    if failure is not None:
        conditions = put(conditions, _cond("FailureTarget", *failure), stamp)
        step.actions += _delete_pods(active, job)
        if not unsettled and not active:
            conditions = put(conditions, _cond("Failed", *failure), stamp)
        step.conditions = conditions
        return step, None
    done = (totals["succeeded"] >= int(completions) if completions is not None
            else totals["succeeded"] > 0 and not active)
    if done:
        met = ("CompletionsReached", "Reached expected number of succeeded pods")
        conditions = put(conditions, _cond("SuccessCriteriaMet", *met), stamp)
        step.actions += _delete_pods(active, job)
        if not unsettled and not active:
            conditions = put(conditions, _cond("Complete", *met), stamp)
            step.fields["completionTime"] = stamp
            ttl = spec.get("ttlSecondsAfterFinished")
            requeue = float(ttl) if ttl is not None else None
        step.conditions = conditions
        return step, requeue

    if suspended:
        conditions = put(conditions, _cond("Suspended", "JobSuspended", "Job suspended"), stamp)
        want = 0
    elif completions is not None:
        want = max(min(int(spec.get("parallelism", 1)), int(completions) - totals["succeeded"]), 0)
    else:
        parallelism = int(spec.get("parallelism", 1))  # after a success: no new Pods, the active ones finish
        want = min(parallelism, len(active)) if totals["succeeded"] > 0 else parallelism
    step.conditions = conditions
    if len(active) > want:
        step.actions += _remove_pods(podfacts.deletion_order(active)[: len(active) - want], job)
    elif len(active) < want:
        wait = _backoff_left(totals["failed"], last_failure, now)
        if wait > 0:
            return step, soonest(requeue, wait)
        step.actions += [Create(PODS, pod, announce=job) for pod in _new_pods(job, want - len(active), active, indexes)]
    return step, requeue


def _new_pods(job: Obj, count: int, active: list[Obj], indexes: set[int] | None) -> list[Obj]:
    template = (job.get("spec") or {}).get("template") or {}
    if indexes is None:
        pod = podfacts.pod_from_template(template, job, generate_name=f"{objects.name_of(job)}-",
                                         extra_labels=pod_labels(job))
        return [jobtracking.with_finalizer(pod)] * count
    completions = int((job.get("spec") or {}).get("completions") or 0)
    return [jobtracking.with_finalizer(jobindex.indexed_pod(job, template, pod_labels(job), i))
            for i in jobindex.next_indexes(completions, indexes, active, count)]


def _failure(spec: Obj, conditions: list[Obj], failures: tuple[int, int], start: datetime | None, now: datetime,
             suspended: bool) -> tuple[str, str] | float | None:
    """(reason, message) when the Job has failed; else seconds until its deadline, or None. `failures`
    is (failed Pods, container restarts of active OnFailure Pods), judged apart as upstream does:
    failed Pods `> backoffLimit`, restarts `>= backoffLimit` (`> 0` with a limit of 0)."""
    target = objects.condition(conditions, "FailureTarget")
    if target is not None and target.get("status") == "True":
        return str(target.get("reason") or ""), str(target.get("message") or "")
    failed, restarts = failures
    limit = int(spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT))
    if failed > limit or (restarts > 0 and restarts >= limit):
        return "BackoffLimitExceeded", "Job has reached the specified backoff limit"
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is None or start is None or suspended:
        return None
    left = (start + timedelta(seconds=int(deadline)) - now).total_seconds()
    if left <= 0:
        return "DeadlineExceeded", "Job was active longer than specified deadline"
    return left


def _restarts(spec: Obj, active: Sequence[Obj]) -> int:
    """With `restartPolicy: OnFailure` the kubelet restarts failed containers in place: the restarts of
    the active Pods' containers, which upstream weighs against `backoffLimit` on their own."""
    policy = (((spec.get("template") or {}).get("spec") or {}).get("restartPolicy"))
    if policy != "OnFailure":
        return 0
    return sum(int(c.get("restartCount") or 0) for p in active
               for c in [*((p.get("status") or {}).get("initContainerStatuses") or []),
                         *((p.get("status") or {}).get("containerStatuses") or [])])


def _backoff_left(failures: int, last_failure: datetime | None, now: datetime) -> float:
    """Seconds before a replacement for failed Pods may be created (0: now)."""
    if failures <= 0 or last_failure is None:
        return 0.0
    return max((last_failure + timedelta(seconds=backoff(failures)) - now).total_seconds(), 0.0)


def _delete_pods(pods: Sequence[Obj], owner: Obj) -> list[Action]:
    """Delete Pods keeping their finalizer: a failing or finishing Job counts them (upstream's deleteActivePods)."""
    return [Delete(PODS, objects.namespace_of(p), objects.name_of(p), objects.uid_of(p), announce=owner) for p in pods]


def _remove_pods(pods: Sequence[Obj], owner: Obj) -> list[Action]:
    """Release, then delete Pods the Job no longer wants (suspended, lower parallelism): never counted
    as failures (upstream's deleteJobPods)."""
    return [a for p in pods for a in ([jobtracking.release(p)] if jobtracking.tracked(p) else [])
            + _delete_pods([p], owner)]


_ANNOUNCED = {"Complete": ("Normal", "Completed", "Job completed"),
              "Suspended": ("Normal", "Suspended", "Job suspended")}


def _transitions(job: Obj, before: list[Obj], after: list[Obj]) -> list[Action]:
    """Events for conditions that just turned True (and for a resumed Job), as upstream records them."""
    out: list[Action] = []
    for cond in after:
        if cond.get("status") == "True" and not _is_true(before, str(cond.get("type"))):
            if cond["type"] == "Failed":
                out.append(Emit(job, "Warning", str(cond.get("reason")), str(cond.get("message"))))
            elif cond["type"] in _ANNOUNCED:
                out.append(Emit(job, *_ANNOUNCED[cond["type"]]))
        elif cond.get("type") == "Suspended" and cond.get("status") == "False" and _is_true(before, "Suspended"):
            out.append(Emit(job, "Normal", "Resumed", "Job resumed"))
    return out


def _ttl(job: Obj, conditions: list[Obj], status: Obj, now: datetime) -> tuple[list[Action], float | None]:
    """Delete a finished Job (and, in the background, its Pods) once its TTL has passed."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is None:
        return [], None
    finished = parse_rfc3339(status.get("completionTime"))
    if finished is None:
        cond = objects.condition(conditions, "Failed") or {}
        finished = parse_rfc3339(cond.get("lastTransitionTime")) or now
    left = (finished + timedelta(seconds=int(ttl)) - now).total_seconds()
    if left > 0:
        return [], left
    return [Delete(JOBS, objects.namespace_of(job), objects.name_of(job), objects.uid_of(job))], None
