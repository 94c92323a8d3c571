"""The OCM work agent of an embedded managed cluster: ManifestWorks on the hub → objects on the cluster.

    agent = WorkAgent(hub=hub_kube, spoke=cluster_kube, cluster="cluster1", spoke_runtime=runtime)
    agent.start()   # returns at once; connects to the hub in the background, with back-off
    ...
    agent.stop()

It watches the ManifestWorks of namespace `<cluster>` on the hub (a `Runtime` of its own, scoped to
that namespace) and, per work: adds the finalizer `cluster.open-cluster-management.io/manifest-work-
cleanup` before applying anything, keeps an AppliedManifestWork `<hub hash>-<work>` on the cluster,
applies the manifests (`workapply`), records what it applied, deletes what the work no longer
applies, and writes the status (`workstatus`) to the hub's `/status` only when it changed. A deleted
work is cleaned up per its `deleteOption` (Foreground waits until every deleted object is gone), then
the AppliedManifestWork goes and the finalizer is removed. A work deleted while the agent was away is
found from its AppliedManifestWork once the hub's cache is synced, and cleaned up with the delete
option last seen (kept as an annotation on the AppliedManifestWork; `workrecord`).

Freshness: a change of an applied Deployment, DaemonSet, Job or Pod (the spoke Runtime's informers,
through `FeedbackTrigger`) requeues its work at once; such a pass only reads the objects again (for
availability and feedback) when the work's generation was applied without failure less than a resync
ago. Every work is applied again each `status_sync_seconds` (OCM's Poll scrape), which also puts
drifted objects back; a work with a manifest not applied (its namespace missing, a conflict) is
applied again after a back-off (0.5 s doubling up to the resync period), and so is a work whose
deleted objects are still terminating (a finalizer holds them).

Hub unreachable: the hub informer keeps its last cache, so the spoke side goes on (resync, drift);
status writes fail and are retried with a growing delay (at most the resync period); nothing raises
out of the agent. A hub unreachable at start is retried with back-off in the background thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kube import objects
from kube.clock import Clock, SystemClock, rfc3339
from kube.controller import Runtime, Watch
from kube.informing import Informer, WorkQueue
from kube.rest import DAEMON_SETS, DEPLOYMENTS, JOBS, PODS, Kube, Resource
from localcluster.ocm import workplan
from localcluster.ocm.resources import MANIFEST_WORKS, WORK_FINALIZER
from localcluster.ocm.workapply import Discovery, ManifestApplier, api_message
from localcluster.ocm.workrecord import AppliedRecords, last_delete_option
from localcluster.ocm.workstatus import ManifestOutcome, work_status

log = logging.getLogger("localcluster.ocm.work")

Obj = dict[str, Any]
TRIGGER_KINDS: tuple[Resource, ...] = (DEPLOYMENTS, DAEMON_SETS, JOBS, PODS)
CONNECT_BACKOFF = (1.0, 30.0)


@dataclass(frozen=True)
class _LastApply:
    """The last full apply of a work: its (uid, generation), when it began, what it gave."""

    stamp: tuple[str, int]
    at: float
    outcomes: tuple[ManifestOutcome, ...]


class WorkReconciler:
    """Reconciles one ManifestWork key `(cluster namespace, work name)` (see the module docstring)."""

    name = "work-agent"

    def __init__(self, agent: WorkAgent, works: Informer) -> None:
        self.agent = agent
        self.works = works
        self.watches: Sequence[Watch] = [Watch(MANIFEST_WORKS)]
        self._hub_failures: dict[Hashable, int] = {}  # status writes the hub refused or missed, per work
        self._apply_failures: dict[Hashable, int] = {}  # passes with a manifest not applied, per work
        self._deletions: dict[Hashable, int] = {}  # passes that found applied objects still being deleted
        self._last_apply: dict[Hashable, _LastApply] = {}

    def reconcile(self, key: Hashable) -> float | None:
        namespace, name = str(key[0]), str(key[1])  # type: ignore[index]
        work = self.works.get(namespace, name)
        agent = self.agent
        if work is None or objects.is_deleting(work):
            for per_work in (self._last_apply, self._apply_failures, self._hub_failures):
                per_work.pop(key, None)
        if work is None:
            amw = agent.records.get(name)
            if amw is None:
                return self._retry(self._deletions, key, False)
            return self._retry(self._deletions, key, not agent.clean_up(name, last_delete_option(amw)))
        if objects.is_deleting(work):
            if WORK_FINALIZER not in (objects.meta(work).get("finalizers") or []):
                return self._retry(self._deletions, key, False)
            if not agent.clean_up(name, (work.get("spec") or {}).get("deleteOption")):
                return self._retry(self._deletions, key, True)
            self._deletions.pop(key, None)
            agent.remove_finalizer(work)
            return None
        return self._apply(key, agent.ensure_finalizer(work))

    def _outcomes(self, key: Hashable, work: Obj) -> tuple[list[ManifestOutcome], bool]:
        """Apply the work, or only read its objects again when the same generation was applied
        without a failure less than a resync ago (a feedback change): (outcomes, deletions pending)."""
        agent = self.agent
        meta, spec = objects.meta(work), work.get("spec") or {}
        stamp = (str(meta.get("uid") or ""), int(meta.get("generation") or 0))
        last = self._last_apply.get(key)
        if last is not None and last.stamp == stamp and agent.clock.monotonic() - last.at < agent.status_sync_seconds:
            outcomes = agent.applier.refresh(last.outcomes)
            if all(o.live is not None for o in outcomes):
                return outcomes, False
        started = agent.clock.monotonic()
        amw = agent.records.ensure(objects.name_of(work), spec.get("deleteOption"))
        outcomes = agent.applier.apply_all(spec)
        pending = agent.records.record(amw, outcomes, spec.get("deleteOption"))
        agent.index_triggers(key, outcomes)
        if all(o.applied for o in outcomes) and not pending:
            self._last_apply[key] = _LastApply(stamp, started, tuple(outcomes))
        else:
            self._last_apply.pop(key, None)
        return outcomes, bool(pending)

    def _retry(self, failures: dict[Hashable, int], key: Hashable, failed: bool) -> float | None:
        """The back-off after a failure (0.5 s doubling up to the resync period), None after a success."""
        if not failed:
            failures.pop(key, None)
            return None
        count = failures[key] = failures.get(key, 0) + 1
        return float(min(0.5 * 2.0 ** min(count - 1, 10), self.agent.status_sync_seconds))

    def _apply(self, key: Hashable, work: Obj) -> float:
        agent = self.agent
        outcomes, pending = self._outcomes(key, work)
        status = work_status(work, outcomes, rfc3339(agent.clock.now()))
        # a manifest not applied (its namespace not there yet, a conflict) is tried again soon
        retry = self._retry(self._apply_failures, key, not all(o.applied for o in outcomes))
        # objects on their way out (a finalizer) are looked at again with the same back-off
        delay = self._retry(self._deletions, key, pending) or retry or agent.status_sync_seconds
        if status == work.get("status"):
            return delay
        try:
            agent.hub.patch_status(MANIFEST_WORKS, objects.name_of(work), status, objects.namespace_of(work))
        except Exception as exc:
            if getattr(exc, "status", None) == 409:
                raise
            log.warning("work %s: status not written to the hub (%s); retrying", key, api_message(exc))
            return min(delay, self._retry(self._hub_failures, key, True) or delay)
        self._retry(self._hub_failures, key, False)
        return delay


class FeedbackTrigger:
    """On the spoke Runtime: a change of an applied object requeues the works that applied it.

    It is added to the spoke Runtime before that starts; the agent it serves may come later
    (`attach`), e.g. once the hub's kubeconfig can be read: until then it maps nothing."""

    name = "work-agent-trigger"

    def __init__(self, agent: WorkAgent | None = None) -> None:
        self.agent = agent
        self.watches: Sequence[Watch] = [Watch(res, self._keys_for(res)) for res in TRIGGER_KINDS]

    def attach(self, agent: WorkAgent) -> None:
        self.agent = agent

    def _keys_for(self, res: Resource) -> Callable[[Obj], Iterable[Hashable]]:
        def keys(obj: Obj) -> list[Hashable]:
            agent = self.agent
            if agent is None:
                return []
            return list(agent.works_applying((res.group, res.kind, objects.namespace_of(obj), objects.name_of(obj))))
        return keys

    def reconcile(self, key: Hashable) -> float | None:
        if self.agent is not None:
            self.agent.requeue(key)
        return None


class WorkAgent:
    """The work agent's lifecycle and its spoke-side state (see the module docstring)."""

    def __init__(self, hub: Kube, spoke: Kube, cluster: str, *, spoke_runtime: Runtime | None = None,
                 trigger: FeedbackTrigger | None = None, status_sync_seconds: float = 30.0,
                 clock: Clock | None = None, agent_id: str | None = None) -> None:
        """`spoke_runtime` (not started yet) gets a `FeedbackTrigger` of this agent; or pass the
        `trigger` added to the spoke Runtime earlier. Without either, feedback follows the resync only."""
        self.hub = hub
        self.spoke = spoke
        self.cluster = cluster
        self.agent_id = agent_id or cluster
        self.status_sync_seconds = status_sync_seconds
        self.clock = clock or SystemClock()
        self.hub_hash = workplan.hub_hash(str(hub.api.configuration.host))
        self.applier = ManifestApplier(spoke, Discovery(spoke))
        self.records = AppliedRecords(spoke, self.applier, self.hub_hash, self.agent_id)
        self._lock = threading.Lock()
        self._triggers: dict[tuple[str, str, str, str], set[Hashable]] = {}
        self._queue: WorkQueue | None = None
        self._runtime: Runtime | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        if trigger is not None:
            trigger.attach(self)
        elif spoke_runtime is not None:
            spoke_runtime.add(FeedbackTrigger(self))

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> WorkAgent:
        self._thread = threading.Thread(target=self._connect, name="work-agent-connect", daemon=True)
        self._thread.start()
        return self

    @property
    def connected(self) -> bool:
        return self._runtime is not None

    def _connect(self) -> None:
        """Start a hub Runtime once the hub answers; back off (1 s doubling to 30 s) until it does."""
        delay = CONNECT_BACKOFF[0]
        while not self._stopping.is_set():
            try:
                started = self._start_runtime()
            except Exception as exc:  # Runtime.start stops what it started before it raises
                log.warning("work agent of %s: hub not reachable (%s); retrying in %.0fs", self.cluster,
                            api_message(exc), delay)
            else:
                if started:
                    log.info("work agent of %s: watching ManifestWorks on the hub", self.cluster)
                    self._requeue_orphans()
                return
            self._stopping.wait(delay)
            delay = min(delay * 2, CONNECT_BACKOFF[1])

    def _start_runtime(self) -> bool:
        """Start the hub Runtime (raises when the hub does not answer); False when stop() came first."""
        self.hub.request("GET", MANIFEST_WORKS.path(self.cluster), query={"limit": 1}, timeout=5.0)
        runtime = Runtime(self.hub, namespace=self.cluster, clock=self.clock)
        queue = runtime.add(WorkReconciler(self, runtime.cache(MANIFEST_WORKS)))
        with self._lock:
            if self._stopping.is_set():
                return False
            self._queue = queue
        runtime.start(timeout=30.0)
        with self._lock:
            self._runtime = runtime
            stopped = self._stopping.is_set()
        if stopped:  # stop() came while the runtime started: it stops it, or we do
            runtime.stop()
        return not stopped

    def _requeue_orphans(self) -> None:
        """Queue the works of our AppliedManifestWorks (a work deleted while we were away is cleaned up);
        retried with back-off while the cluster does not answer, on the Runtime already running."""
        delay = CONNECT_BACKOFF[0]
        while not self._stopping.is_set():
            try:
                work_names = self.records.work_names()
            except Exception as exc:
                log.warning("work agent of %s: AppliedManifestWorks not read (%s); retrying in %.0fs",
                            self.cluster, api_message(exc), delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, CONNECT_BACKOFF[1])
                continue
            for work_name in work_names:
                self.requeue((self.cluster, work_name))
            return

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            runtime = self._runtime
        if runtime is not None:
            runtime.stop()

    def requeue(self, key: Hashable) -> None:
        queue = self._queue
        if queue is not None:
            queue.add(key)

    # -- triggers ----------------------------------------------------------------------------------
    def works_applying(self, ident: tuple[str, str, str, str]) -> set[Hashable]:
        with self._lock:
            return set(self._triggers.get(ident, ()))

    def index_triggers(self, key: Hashable, outcomes: list[ManifestOutcome]) -> None:
        kinds = {(r.group, r.kind) for r in TRIGGER_KINDS}
        idents = {(o.ident.group, o.ident.kind, o.ident.namespace, o.ident.name) for o in outcomes
                  if (o.ident.group, o.ident.kind) in kinds}
        with self._lock:
            for ident, keys in list(self._triggers.items()):
                if ident not in idents:
                    keys.discard(key)
                    if not keys:
                        del self._triggers[ident]
            for ident in idents:
                self._triggers.setdefault(ident, set()).add(key)

    # -- the hub's ManifestWork --------------------------------------------------------------------
    def ensure_finalizer(self, work: Obj) -> Obj:
        finalizers = list(objects.meta(work).get("finalizers") or [])
        if WORK_FINALIZER in finalizers:
            return work
        meta = objects.meta(work)
        return self.hub.patch(MANIFEST_WORKS, meta["name"], {"metadata": {
            "finalizers": [*finalizers, WORK_FINALIZER], "resourceVersion": meta.get("resourceVersion")}},
            meta.get("namespace"))

    def remove_finalizer(self, work: Obj) -> None:
        meta = objects.meta(work)
        finalizers = [f for f in meta.get("finalizers") or [] if f != WORK_FINALIZER]
        self.hub.patch(MANIFEST_WORKS, meta["name"], {"metadata": {
            "finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}}, meta.get("namespace"))
        log.info("work %s/%s: cleaned up, finalizer removed", meta.get("namespace"), meta["name"])

    def applied_name(self, work_name: str) -> str:
        """The name of the AppliedManifestWork this agent keeps for `work_name`."""
        return self.records.name(work_name)

    def clean_up(self, work_name: str, delete_option: Obj | None) -> bool:
        """Remove what a deleted work applied; True once its record is gone (and its triggers)."""
        if not self.records.clean_up(work_name, delete_option):
            return False
        with self._lock:
            for keys in self._triggers.values():
                keys.discard((self.cluster, work_name))
        return True
