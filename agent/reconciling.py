"""The replication controller's I/O layer: informers in, plans applied, one status patch out.

Watches ReplicationSources and ReplicationDestinations and the objects they depend on (PVCs,
VolumeSnapshots, and, label-selected to what the agent created, Services, Secrets, mover Jobs and
their Pods; a key Secret the user names is read by name), queues the affected objects, builds the
observed views from the informer caches and the mover Jobs (`jobmovers.py`), asks the pure planners
(`source.plan`, `destination.plan`) what to do, and applies the plan: `before` actions, the status
patch (with a resourceVersion precondition, so a decision taken on a stale cache is refused with 409
and simply retried), then `after` actions. Each action is performed by `executing.PlanExecutor`.
A request the API server refuses for good — forbidden by the agent's RBAC (403), or invalid (400,
422: e.g. a mover Job whose `moverResources` request more than their limit) — becomes the
replication's `Synchronizing=False/Error` condition carrying the API server's message (which names
the denied verb and resource, or the invalid field), retried with backoff: it never stops a worker
or the process.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from kubernetes.client.exceptions import ApiException

from agent import destination, iterations, source, triggers
from agent.executing import PlanExecutor, labels
from agent.jobmovers import JobMovers
from agent.keysecrets import key_secret_names
from agent.kinds import REPLICATION_DESTINATIONS, REPLICATION_SOURCES
from agent.metrics import Metrics
from agent.plans import Plan
from agent.reporting import Reporter
from api.volsync import LABEL_CLEANUP, LABEL_CREATED_BY, REASON_ERROR, ReplicationSpec, ReplicationStatus
from kube import objects, patches
from kube.clock import Clock, SystemClock, parse_rfc3339
from kube.events import Recorder
from kube.informing import Informer, WorkQueue, drain_forever, reconcile_one, start_controller, stop_controller
from kube.rest import JOBS, PODS, PVCS, SECRETS, SERVICES, VOLUME_SNAPSHOTS, Kube, Resource

log = logging.getLogger("volsync.iterations")

Obj = dict[str, Any]
Key = tuple[str, str, str]  # (kind, namespace, name)
ROLES = {"source": REPLICATION_SOURCES, "destination": REPLICATION_DESTINATIONS}
_OWNER_ROLES = {"ReplicationSource": "source", "ReplicationDestination": "destination"}
REFUSED = (400, 403, 422)  # answers a retry alone does not change: the replication's Error condition
OURS = f"{LABEL_CREATED_BY}={iterations.CREATED_BY}"  # what the agent creates carries this label
# what the agent watches, and the label selector narrowing each informer (None: every object)
WATCHED: tuple[tuple[Resource, str | None], ...] = (
    (REPLICATION_SOURCES, None), (REPLICATION_DESTINATIONS, None), (PVCS, None), (VOLUME_SNAPSHOTS, None),
    (SERVICES, OURS), (SECRETS, OURS), (JOBS, OURS), (PODS, OURS),
)


class ReplicationController:
    """Reconciles ReplicationSources and ReplicationDestinations from one work queue, their movers
    running as Jobs of `mover_image`; `start` runs the informers and workers, `process` reconciles one key."""

    def __init__(
        self,
        kube: Kube,
        *,
        mover_image: str,
        rsync_retries: int | None = None,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        recorder: Recorder | None = None,
        workers: int = 4,
        reporter: Reporter | None = None,
    ) -> None:
        self.kube = kube
        self.clock = clock or SystemClock()
        self.metrics = metrics or Metrics()
        self.recorder = recorder or Recorder(kube, "volsync-agent", clock=self.clock)
        self.reporter = reporter  # the hub's view of each replication (None: no hub)
        self.queue = WorkQueue(self.clock)
        self.workers = workers
        self.informers: dict[str, Informer] = {
            res.plural: Informer(kube, res, self._handler(res), label_selector=selector) for res, selector in WATCHED}
        self._threads: list[threading.Thread] = []
        self.movers = JobMovers(kube, lambda ns, name: self.informers[JOBS.plural].get(ns, name),
                                lambda ns: self.informers[PODS.plural].items(ns), image=mover_image,
                                clock=self.clock, retries=rsync_retries)
        self.executor = PlanExecutor(kube, self.movers, self.metrics, self.recorder)
        # read your writes: key -> (resourceVersions our status patches superseded, the object the last returned)
        self._written: dict[Key, tuple[set[str], Obj]] = {}
        self._pruned_warned: set[str] = set()  # uids warned about a pruned status.iteration

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        """Start the informers and, once every cache is synced, the workers. A list the agent's RBAC
        refuses (403) fails the start at once with the API server's message (one `limit=1` list per
        resource first), so a missing list rule names itself; a cache that cannot sync for another
        reason fails it after `timeout`. Either way the process exits 1 and its supervisor restarts it
        with backoff."""
        denied = self._denied_lists(only_unsynced=False)
        if denied:
            raise RuntimeError("; ".join(denied))
        try:
            self._threads = start_controller(self.informers.values(), self._work, self.workers, "worker", timeout)
        except RuntimeError as exc:
            denied = self._denied_lists()
            raise RuntimeError(f"{exc}: {'; '.join(denied)}" if denied else str(exc)) from exc

    def stop(self) -> None:
        stop_controller(self.queue, self.informers.values(), self._threads)

    def _denied_lists(self, only_unsynced: bool = True) -> list[str]:
        """The 403 messages of a one-item list of each resource (of those whose informer has not synced)."""
        denied = []
        for informer in self.informers.values():
            if only_unsynced and informer.wait_synced(0):
                continue
            try:
                query = {"limit": 1, **({"labelSelector": informer.label_selector} if informer.label_selector else {})}
                self.kube.request("GET", informer.res.path(informer.namespace), query=query)
            except ApiException as exc:
                if exc.status == 403:
                    denied.append(forbidden_message(exc))
        return denied

    # -- event routing ------------------------------------------------------------------------------
    def _handler(self, res: Resource) -> Any:
        def handle(kind: str, obj: Obj, prev: Obj | None) -> None:
            ns, name = objects.namespace_of(obj), objects.name_of(obj)
            if res is REPLICATION_SOURCES:
                self.queue.add(("source", ns, name))
                return
            if res is REPLICATION_DESTINATIONS:
                self.queue.add(("destination", ns, name))
                return
            if not ns:
                return
            owners = self._owners(ns, obj)
            if owners:  # ours (a mover Job, its Pod, a Service, a key Secret, a claim): its replication only
                for key in owners:
                    self.queue.add(key)
                return
            # anything else a replication depends on (a user's PVC or Secret) lives in its namespace
            for role, r in ROLES.items():
                for owner in self.informers[r.plural].items(ns):
                    self.queue.add((role, ns, objects.name_of(owner)))

        return handle

    def _owners(self, ns: str, obj: Obj) -> list[Key]:
        """The replications that own `obj` by ownerReference, looking through a mover Pod to its Job."""
        keys: list[Key] = []
        for ref in objects.meta(obj).get("ownerReferences") or []:
            role = _OWNER_ROLES.get(str(ref.get("kind")))
            if role is not None:
                keys.append((role, ns, str(ref.get("name"))))
            elif ref.get("kind") == "Job" and ref.get("name"):
                job = self.informers[JOBS.plural].get(ns, str(ref["name"]))
                keys += self._owners(ns, job) if job is not None else []
        return keys

    # -- workers ------------------------------------------------------------------------------------
    def _work(self) -> None:
        drain_forever(self.queue, self.run_one)

    def run_one(self, key: Key) -> None:
        """Reconcile a key taken from the queue: errors requeue it, and it is marked done."""
        reconcile_one(self.queue, key, self.process, "/".join(key))

    def process(self, key: Key) -> None:
        kind, ns, name = key
        plan, obj = self._plan(kind, ns, name)
        if obj is not None:
            try:
                self._apply(key, kind, obj, plan)
            except ApiException as exc:
                if exc.status not in REFUSED:
                    raise
                self._refused(key, kind, exc)

    # -- views --------------------------------------------------------------------------------------
    def _cache(self, res: Resource, ns: str, name: str | None) -> Obj | None:
        return self.informers[res.plural].get(ns, name) if name else None

    def _leftovers(self, ns: str, uid: str) -> tuple[tuple[Resource, Obj], ...]:
        found: list[tuple[Resource, Obj]] = []
        for res in (VOLUME_SNAPSHOTS, PVCS):
            for obj in self.informers[res.plural].items(ns):
                if objects.labels_of(obj).get(LABEL_CLEANUP) == uid:
                    found.append((res, obj))
        return tuple(found)

    def _secrets(self, ns: str, names: list[str], named: str | None) -> dict[str, Obj | None]:
        """The key Secrets by name: generated ones from the (label-selected) cache, the one the user
        named in `spec.rsync.sshKeys` read from the API (the agent caches no Secret of the user's)."""
        return {n: (self.kube.get(SECRETS, n, ns) if n == named else self._cache(SECRETS, ns, n)) for n in names}

    def _plan(self, role: str, ns: str, name: str) -> tuple[Plan, Obj | None]:
        now = self.clock.now()
        key = f"{role}/{ns}/{name}"
        obj = self._newest((role, ns, name), self._cache(ROLES[role], ns, name))
        if obj is None:
            self.movers.forget(key)  # its Jobs go by garbage collection
            self.metrics.forget((name, ns, role, "rsync"))
            if self.reporter is not None:
                self.reporter.forget(role, ns, name)
            return Plan(), None
        spec = ReplicationSpec.parse(obj)
        uid = objects.uid_of(obj)
        rsync_keys = spec.rsync.ssh_keys if spec.rsync else None
        if role == "source":
            pit = source.pit_name(name)
            secret_names = [rsync_keys] if rsync_keys else list(key_secret_names("source", name))
            failures, retry_at = self.movers.retry_state(key)
            view = source.SourceView(
                rs=obj,
                now=now,
                source_pvc=self._cache(PVCS, ns, spec.source_pvc),
                pit_snapshot=self._owned(VOLUME_SNAPSHOTS, ns, pit, uid),
                pit_pvc=self._owned(PVCS, ns, pit, uid),
                secrets=self._secrets(ns, secret_names, rsync_keys),
                leftovers=self._leftovers(ns, uid),
                transfer=self.movers.transfer(obj),
                failures=failures,
                retry_at=retry_at,
            )
            return source.plan(view), obj
        secret_names = [rsync_keys] if rsync_keys else list(key_secret_names("destination", name))
        pvc = (spec.rsync.destination_pvc if spec.rsync else None) or objects.short_name(f"volsync-{name}-dst")
        dview = destination.DestinationView(
            rd=obj,
            now=now,
            service=self._owned(SERVICES, ns, destination.service_name(name), uid),
            pvc=self._cache(PVCS, ns, pvc),
            secrets=self._secrets(ns, secret_names, rsync_keys),
            snapshots={objects.name_of(s): s for s in self.informers[VOLUME_SNAPSHOTS.plural].items(ns)},
            leftovers=self._leftovers(ns, uid),
            server=self.movers.server(obj),
        )
        return destination.plan(dview), obj

    def _newest(self, key: Key, cached: Obj | None) -> Obj | None:
        """The cached object, or the one our last status patch returned while the informer has not
        delivered it yet: planning on the older copy would redo a step of an iteration that is already
        over (restart a completed transfer, re-open a closed destination iteration)."""
        written = self._written.get(key)
        if cached is None or written is None:
            self._written.pop(key, None)
            return cached
        superseded, latest = written
        if objects.meta(cached).get("resourceVersion") in superseded:
            return latest
        self._written.pop(key, None)  # the cache has our last write, or something newer
        return cached

    def _owned(self, res: Resource, ns: str, name: str, uid: str) -> Obj | None:
        obj = self._cache(res, ns, name)
        return obj if obj is not None and objects.owned_by(obj, uid) else None

    # -- applying -----------------------------------------------------------------------------------
    def _apply(self, key: Key, role: str, obj: Obj, plan: Plan) -> None:
        for action in plan.before:
            self.executor.act(role, obj, action)
        if plan.status is not None:
            current = obj.get("status") or {}
            if patches.changes(current, plan.status):
                updated = self._patch_status(key, role, obj, plan.status)
                self._warn_if_pruned(plan.status, updated)
                obj = updated
        if self.reporter is not None:
            self.reporter.observe(role, obj)  # queued only when changed; never waits for the hub
        for action in plan.after:
            self.executor.act(role, obj, action)
        self._gauge(role, obj)
        if plan.error is not None:
            self.queue.add_rate_limited(key)
            return
        self.queue.forget(key)
        if plan.requeue_after is not None:
            self.queue.add_after(key, plan.requeue_after)

    def _patch_status(self, key: Key, role: str, obj: Obj, status: Obj) -> Obj:
        """Patch the object's status, refused (409) if it changed since `obj`; remembers our write."""
        patch = {"metadata": {"resourceVersion": objects.meta(obj).get("resourceVersion")}, "status": status}
        updated = self.kube.patch(ROLES[role], objects.name_of(obj), patch, objects.namespace_of(obj),
                                  subresource="status")
        superseded = self._written.get(key, (set(), obj))[0]
        superseded.add(str(objects.meta(obj).get("resourceVersion")))
        self._written[key] = (superseded, updated)
        return updated

    def _refused(self, key: Key, role: str, exc: ApiException) -> None:
        """A request of the plan was refused (403: the agent's RBAC lacks a rule; 400/422: invalid): the
        replication gets `Synchronizing=False/Error` naming the refused request, as any reconcile error,
        and is retried with backoff; the worker and the process go on, and the next clean pass clears
        the condition."""
        _, ns, name = key
        obj = self._newest(key, self._cache(ROLES[role], ns, name))
        message = forbidden_message(exc)
        log.warning("%s %s/%s: %s", role, ns, name, message)
        if obj is not None:
            ctx = iterations.Context.of(obj, self.clock.now(), role)
            status = iterations.condition_status(ctx, REASON_ERROR, message)
            if patches.changes(obj.get("status") or {}, status):
                self._patch_status(key, role, obj, status)  # raising (e.g. 403 too): reconcile_one requeues
        self.queue.add_rate_limited(key)

    def _warn_if_pruned(self, sent: Obj, updated: Obj) -> None:
        """A WARNING line and a Warning Event, once per object, when the cluster's CRD drops
        `status.iteration` (the sync goes on, with one-second iteration identities)."""
        why = iterations.pruned_iteration(sent, updated)
        uid = objects.uid_of(updated)
        if why is None or uid in self._pruned_warned:
            return
        self._pruned_warned.add(uid)
        log.warning("%s %s/%s: %s", updated.get("kind"), objects.namespace_of(updated), objects.name_of(updated), why)
        self.recorder.event(updated, "Warning", iterations.REASON_ITERATION_PRUNED, why)

    def _gauge(self, role: str, obj: Obj) -> None:
        status = ReplicationStatus.parse(obj)
        last = parse_rfc3339(status.last_sync_time)
        trigger = ReplicationSpec.parse(obj).trigger
        schedule = trigger.schedule if trigger.manual is None else None
        late = last is None
        if last is not None and schedule is not None:
            try:
                late = triggers.missed_deadline(schedule, last, self.clock.now())
            except triggers.ScheduleError:
                late = False
        self.metrics.set_out_of_sync(labels(role, obj), late)


def forbidden_message(exc: ApiException) -> str:
    """The message of a refusal's Status body (a 403 in kube-apiserver's wording: `services is
    forbidden: User "..." cannot create resource "services" ...`; a 422: `Job "x" is invalid: ...`),
    else the exception's reason."""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    if message:
        return str(message)
    return f"forbidden: {exc.reason}" if exc.status == 403 else f"refused ({exc.status}): {exc.reason}"
