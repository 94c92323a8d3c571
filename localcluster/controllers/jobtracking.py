"""Job tracking with finalizers, pure: how the Job controller counts its finished Pods exactly once,
as kube-controller-manager does since 1.26.

Every Pod a Job creates carries the finalizer `batch.kubernetes.io/job-tracking`, so it cannot
disappear before it is counted. A Pod is *finished* once it Succeeded, Failed, or was deleted
before it succeeded (a `deletionTimestamp` with a non-Succeeded phase counts as failed: the
kubelet kills it, or it never had the chance to reach a terminal phase). Counting takes three
steps, each safe across a crash of the controller:

1. the finished Pod's uid goes to `status.uncountedTerminatedPods.{succeeded,failed}` (one status
   write, guarded by the Job's resourceVersion);
2. its finalizer is removed (only after that write succeeded: the Plan's actions run in order);
3. a uid in `uncountedTerminatedPods` whose Pod has no finalizer any more (or is gone) moves into
   `status.succeeded` / `status.failed`.

A restart between 1 and 2 finds the uid listed and the finalizer still there (it removes the
finalizer and counts nothing twice); between 2 and 3 it finds the uid listed and no finalizer (it
counts it). Indexed Jobs count successes by `status.completedIndexes` instead (`jobindex.py`).
A Job being deleted, or finishing, releases every Pod; so does a finished one, without counting; a
Pod whose Job is gone or that no Job controls any more is released without counting (upstream's
orphan Pod cleanup).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from kube import objects
from kube.clock import parse_rfc3339
from kube.rest import PODS, Obj
from localcluster.controllers import pods as podfacts
from localcluster.controllers.plans import Patch

FINALIZER = "batch.kubernetes.io/job-tracking"
UNCOUNTED = "uncountedTerminatedPods"
PHASES = ("succeeded", "failed")


def tracked(pod: Obj) -> bool:
    """Whether the Pod still carries the Job's tracking finalizer."""
    return FINALIZER in (objects.meta(pod).get("finalizers") or [])


def counts_as_failed(pod: Obj) -> bool:
    """Failed, or deleted before it succeeded (upstream's isPodFailed without a podFailurePolicy)."""
    phase = podfacts.phase(pod)
    return phase == "Failed" or (objects.is_deleting(pod) and phase != "Succeeded")


def failed_at(pod: Obj) -> datetime | None:
    """When a failed Pod failed: its containers' end, else when its deletion was asked for."""
    if podfacts.phase(pod) == "Failed":
        found = podfacts.finished_at(pod)
        if found is not None:
            return found
    meta = objects.meta(pod)
    deadline = parse_rfc3339(meta.get("deletionTimestamp"))
    if deadline is None:
        return None
    return deadline - timedelta(seconds=int(meta.get("deletionGracePeriodSeconds") or 0))


def last_failure(pods: Sequence[Obj]) -> datetime | None:
    """The latest failure among `pods` (the back-off before a replacement runs from it)."""
    times = [t for t in (failed_at(p) for p in pods if counts_as_failed(p)) if t is not None]
    return max(times) if times else None


def with_finalizer(pod: Obj) -> Obj:
    """A Pod to create, carrying the tracking finalizer."""
    meta = pod.setdefault("metadata", {})
    meta["finalizers"] = [*[f for f in meta.get("finalizers") or [] if f != FINALIZER], FINALIZER]
    return pod


def release(pod: Obj) -> Patch:
    """The patch removing the finalizer; the resourceVersion makes a stale cache's patch a 409."""
    meta = objects.meta(pod)
    rest = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
    return Patch(PODS, objects.namespace_of(pod), objects.name_of(pod),
                 {"metadata": {"finalizers": rest or None, "resourceVersion": meta.get("resourceVersion")}})


def orphaned(pod: Obj, job: Obj | None) -> bool:
    """A tracked Pod no Job will count: no controller, or a Job controller that is gone (`job` is
    the Job of the Pod's namespace and controller name, if any). A finished Job's own Pods are
    released by its plan."""
    if not tracked(pod):
        return False
    ref = podfacts.controller_of(pod)
    if ref is None:
        return True
    if ref.get("kind") != "Job" or ref.get("apiVersion") != "batch/v1":
        return False
    return job is None or objects.uid_of(job) != ref.get("uid")


@dataclass(frozen=True)
class Tally:
    """The Job's counters and uncounted uids after this reconcile, and the Pods whose finalizer goes."""

    counters: dict[str, int]
    uncounted: dict[str, list[str]]
    released: tuple[Obj, ...]

    def total(self, phase: str) -> int:
        return self.counters[phase] + len(self.uncounted[phase])

    @property
    def pending(self) -> int:
        """Pods finished but not yet in the counters."""
        return sum(len(v) for v in self.uncounted.values())

    def status(self) -> Obj:
        """The status fields the tally writes (merge-patch form: None removes)."""
        return {UNCOUNTED: {p: self.uncounted[p] or None for p in PHASES}}


def tally(status: Obj, pods: Sequence[Obj], *, release_all: bool, failing: bool, indexed: bool) -> Tally:
    """Steps 1 and 3 for one reconcile (step 2 is `released`). `release_all`: the Job is being deleted
    or finishing, every Pod goes; `failing`: it is failing, every Pod not Succeeded counts as failed;
    `indexed`: successes are counted by completion index, not by uid."""
    listed = status.get(UNCOUNTED) or {}
    uncounted = {p: [str(u) for u in listed.get(p) or []] for p in PHASES}
    counters = {p: int(status.get(p) or 0) for p in PHASES}
    holding = {objects.uid_of(p) for p in pods if tracked(p)}
    for phase in PHASES:  # step 3: their finalizer is gone, so they are counted now
        kept = [u for u in uncounted[phase] if u in holding]
        counters[phase] += len(uncounted[phase]) - len(kept)
        uncounted[phase] = kept
    released: list[Obj] = []
    for pod in pods:
        if not tracked(pod):
            continue
        failed, succeeded = counts_as_failed(pod), podfacts.phase(pod) == "Succeeded"
        if not (release_all or succeeded or failed):
            continue
        released.append(pod)
        uid = objects.uid_of(pod)
        if succeeded and uid not in uncounted["failed"]:
            if not indexed and uid not in uncounted["succeeded"]:
                uncounted["succeeded"].append(uid)
        elif (failed or failing) and uid not in uncounted["failed"]:
            uncounted["failed"].append(uid)
    return Tally(counters, uncounted, tuple(released))
