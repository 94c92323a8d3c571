"""The Job controller: `jobplan.plan_job` for each Job, over the Pods it owns, and the release of
tracking finalizers from Pods no Job will count any more (`jobtracking.orphaned`: the Job deleted
in the background, orphaned by `--cascade=orphan`, or replaced by a same-named Job)."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Sequence
from datetime import datetime

from kube import objects
from kube.clock import Clock
from kube.controller import Runtime, Watch, owner_keys
from kube.rest import JOBS, PODS, Kube, Obj
from localcluster.controllers import jobplan, jobtracking
from localcluster.controllers import pods as podfacts
from localcluster.controllers.plans import Plan, apply_plan
from localcluster.controllers.reconciling import OwnerReconciler

_job_keys = owner_keys("Job")


def pod_keys(pod: Obj) -> Iterable[Hashable]:
    """The Job controlling a Pod; for a tracked Pod no one controls, the Job named by its `job-name`
    label (so a restarted controller finds Pods orphaned while it was down)."""
    keys = list(_job_keys(pod))
    if not keys and podfacts.controller_of(pod) is None and jobtracking.tracked(pod):
        name = objects.labels_of(pod).get("batch.kubernetes.io/job-name", "")
        keys.append((objects.namespace_of(pod), name))
    return keys


class JobController(OwnerReconciler):
    """Runs each Job's Pods to completion or failure (`jobplan`), selecting them by its controller-uid
    selector; remembers each Job's latest Pod failure, which a deleted Pod takes with it."""

    name = "job-controller"
    owner_res = JOBS

    def __init__(self, runtime: Runtime, kube: Kube, clock: Clock | None = None) -> None:
        super().__init__(runtime, kube, clock)
        self.watches = (Watch(JOBS), Watch(PODS, pod_keys))
        self._failures: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def selector(self, owner: Obj) -> podfacts.Selector | None:
        return jobplan.selector(owner)

    def plan(self, owner: Obj, owned: Sequence[Obj]) -> Plan:
        uid = objects.uid_of(owner)
        seen = jobtracking.last_failure(owned)
        with self._lock:
            last = max((t for t in (self._failures.get(uid), seen) if t is not None), default=None)
            if last is not None:
                self._failures[uid] = last
        return jobplan.plan_job(owner, owned, self.clock.now(), last)

    def reconcile(self, key: Hashable) -> float | None:
        assert isinstance(key, tuple)
        namespace, name = key
        job = self.owners.get(namespace, name) if name else None
        orphans = [p for p in self.children.items(namespace)
                   if (podfacts.controller_of(p) or {}).get("name", name) == name and jobtracking.orphaned(p, job)]
        if orphans:
            apply_plan(self.kube, Plan(tuple(jobtracking.release(p) for p in orphans)))
        if job is None:  # forget the failures of Jobs that are gone
            live = {objects.uid_of(j) for j in self.owners.items()}
            with self._lock:
                self._failures = {u: t for u, t in self._failures.items() if u in live}
        return super().reconcile(key) if name else None
