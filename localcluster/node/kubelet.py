"""The kubelet of an embedded cluster's one node: `Node`, a `Reconciler` on the cluster's `Runtime`.

    node = Node(runtime, kube, name="cluster1", state_dir=..., network=pod_network)
    node.start()       # registers the Node + Lease (before runtime.start()), starts heartbeat/prober
    runtime.start()    # Pod informer synced -> every Pod is reconciled (adoption after kill -9)
    ...
    node.stop()        # leaves the Pods running for the next start (kill_pods=True stops them)

It acts as its cluster's scheduler too: a Pod with no `spec.nodeName` (and the default scheduler)
is bound to this node through `pods/binding`; a refused binding leaves it Pending with
`PodScheduled=False` reason `Unschedulable`. Pods bound here go to `PodSync`. A sweep (after the
cache synced, then every few seconds) stops and removes containers whose Pod the API no longer has.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from kube.clock import Clock, SystemClock, rfc3339
from kube.controller import Runtime, Watch
from kube.events import Recorder
from kube.rest import CONFIGMAPS, PODS, PVCS, PVS, SECRETS, SERVICES, Kube, Resource
from localcluster.node.exitwatch import ExitWatch
from localcluster.node.images import ImageMap
from localcluster.node.layout import NodeLayout
from localcluster.node.netseam import PodNetwork
from localcluster.node.noderegistry import HEARTBEAT_SECONDS, NodeRegistry
from localcluster.node.podlaunch import LaunchBuilder
from localcluster.node.podsync import PodSync
from localcluster.node.probes import Prober, ProbeTarget
from localcluster.node.runtime import ContainerRuntime
from localcluster.node.tokens import TokenIssuer
from localcluster.node.volumes import PodVolumes

log = logging.getLogger("localcluster.kubelet")
SWEEP_SECONDS = 5.0
STOP_SYNC_WAIT = 60.0  # seconds a full stop waits for the Pod syncs in progress
KINDS: dict[str, Resource] = {"Secret": SECRETS, "ConfigMap": CONFIGMAPS, "Service": SERVICES,
                              "PersistentVolumeClaim": PVCS, "PersistentVolume": PVS}
PROBE_NAMES = {"startupProbe": "Startup", "readinessProbe": "Readiness", "livenessProbe": "Liveness"}


class Node:
    """This cluster's node: registration, scheduling, Pod lifecycle (see the module docstring)."""

    def __init__(self, runtime: Runtime, kube: Kube, *, name: str, state_dir: Path, network: PodNetwork,
                 images: ImageMap | None = None, clock: Clock | None = None, hide: Sequence[Path] = ()) -> None:
        self.name = name
        self.kube = kube
        self.clock = clock or SystemClock()
        self.layout = NodeLayout(state_dir)
        self.network = network
        self.images = images or ImageMap()
        self.containers = ContainerRuntime(self.layout, self.images, hide=tuple(hide))
        self.registry = NodeRegistry(kube, name, state_dir, network.host_ip(), self.clock)
        self.recorder = Recorder(kube, "kubelet", host=name, clock=self.clock)
        self.pods = runtime.cache(PODS)
        self.watches: Sequence[Watch] = [Watch(PODS)]
        self.queue = runtime.add(self)
        self.prober = Prober(self.queue.add, self._unhealthy, self.clock.monotonic)
        tokens = TokenIssuer(kube, self.recorder, self.clock)
        self.volumes = PodVolumes(self._object, tokens.issue, self.registry.capacity)
        launches = LaunchBuilder(self.images, self.volumes, self._object, name, network.host_ip(),
                                 self.registry.capacity)
        self.exits = ExitWatch(self.queue.add)
        self.sync = PodSync(kube, self.containers, self.layout, network, self.images, self.volumes, launches,
                            self.prober, self.recorder, self.clock, self.exits)
        self._uids: dict[Hashable, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._syncing = threading.Condition()  # guards _in_sync: the Pod syncs running now
        self._in_sync = 0

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> Node:
        """Register the Node and Lease, start the heartbeat, the prober and the orphan sweep."""
        self.layout.pods_dir.mkdir(parents=True, exist_ok=True)
        self.registry.register()
        self.prober.start()
        self.exits.start()
        for target, label in ((self._heartbeats, "heartbeat"), (self._sweeps, "sweep")):
            t = threading.Thread(target=target, name=f"kubelet-{label}-{self.name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, kill_pods: bool = False) -> None:
        """Stop the node's threads. By default the Pods keep running for the next `start` to adopt;
        with `kill_pods` every container is SIGKILLed, its network detached and its files removed
        (the Pod objects stay in the API: call it after the cluster's Runtime stopped)."""
        self._stop.set()
        self.prober.stop()
        self.exits.stop()
        for t in self._threads:
            t.join(timeout=5)
        if kill_pods:
            # a sync in progress (a Runtime worker starting a container) would start it after the
            # kill below: no new sync begins once stopping, and the running ones are waited for
            with self._syncing:
                if not self._syncing.wait_for(lambda: self._in_sync == 0, timeout=STOP_SYNC_WAIT):
                    log.warning("node %s: %d Pod syncs still running after %ss", self.name, self._in_sync,
                                STOP_SYNC_WAIT)
            for uid in self._uids_on_disk():
                self._kill_now(uid)

    def set_kubelet_port(self, port: int) -> None:
        """The kubelet API's port (`status.daemonEndpoints.kubeletEndpoint.Port`), set by its server."""
        self.registry.kubelet_port = port
        try:
            self.registry.heartbeat()
        except (ApiException, OSError) as exc:
            log.warning("node %s: could not publish the kubelet port: %s", self.name, exc)

    def _heartbeats(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self.registry.heartbeat()
            except Exception as exc:  # a heartbeat lost is retried at the next beat
                log.warning("node %s: heartbeat failed: %s", self.name, exc)

    def _sweeps(self) -> None:
        while not self._stop.is_set() and not self.pods.wait_synced(1.0):
            pass
        while not self._stop.is_set():
            try:
                self.sweep()
            except Exception as exc:
                log.warning("node %s: orphan sweep failed: %s", self.name, exc)
            self._stop.wait(SWEEP_SECONDS)

    # -- reconcile ------------------------------------------------------------------------------------
    def reconcile(self, key: Hashable) -> float | None:
        with self._syncing:
            if self._stop.is_set():
                return None  # stopping: nothing starts any more
            self._in_sync += 1
        try:
            return self._reconcile(key)
        finally:
            with self._syncing:
                self._in_sync -= 1
                self._syncing.notify_all()

    def _reconcile(self, key: Hashable) -> float | None:
        assert isinstance(key, tuple)
        namespace, name = key
        pod = self.pods.get(namespace, name)
        if pod is None:
            with self._lock:
                uid = self._uids.pop(key, None)
            return self.sync.sync_orphan(uid) if uid and uid in self._uids_on_disk() else None
        spec = pod.get("spec") or {}
        if not spec.get("nodeName"):
            self.schedule(pod)
            return None
        if spec.get("nodeName") != self.name:
            return None
        with self._lock:
            self._uids[key] = str(pod["metadata"]["uid"])
        return self.sync.sync(key, pod)

    def sweep(self) -> None:
        """Containers on disk whose Pod is gone from the API (or replaced under the same name)."""
        known = {str(p["metadata"].get("uid")) for p in self.pods.items()
                 if (p.get("spec") or {}).get("nodeName") == self.name}
        for uid in self._uids_on_disk() - known:
            self.sync.sync_orphan(uid)

    def _uids_on_disk(self) -> set[str]:
        try:
            return {p.name for p in self.layout.pods_dir.iterdir() if p.is_dir()}
        except FileNotFoundError:
            return set()

    def _kill_now(self, uid: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while any(r.running for r in self.containers.containers(uid)):
            for rec in self.containers.containers(uid):
                if rec.running:
                    self.containers.signal(rec, signal.SIGKILL)
            if time.monotonic() >= deadline:
                log.warning("node %s: containers of Pod %s survived SIGKILL", self.name, uid)
                return
            time.sleep(0.05)  # poll the shims' exit files
        self.network.detach(uid)
        self.containers.remove_pod(uid)

    # -- scheduling -----------------------------------------------------------------------------------
    def schedule(self, pod: Mapping[str, Any]) -> None:
        """Bind an unscheduled Pod of the default scheduler to this node (`pods/binding`)."""
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        if (spec.get("schedulerName") or "default-scheduler") != "default-scheduler" or meta.get("deletionTimestamp"):
            return
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": meta["name"], "uid": meta.get("uid")},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": self.name}}
        try:
            self.kube.request("POST", PODS.path(meta["namespace"], meta["name"], "binding"), body=binding)
        except ApiException as exc:
            if exc.status in (404, 409) and self.pods.get(meta["namespace"], meta["name"]) is None:
                return
            self._unschedulable(pod, f"binding to node {self.name} refused ({exc.status}): {exc.reason}")
            return
        self.recorder.event(dict(pod), "Normal", "Scheduled",
                            f"Successfully assigned {meta['namespace']}/{meta['name']} to {self.name}")

    def _unschedulable(self, pod: Mapping[str, Any], message: str) -> None:
        meta = pod["metadata"]
        conds = (pod.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "PodScheduled" and c.get("message") == message for c in conds):
            return
        cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                "lastProbeTime": None, "lastTransitionTime": rfc3339(self.clock.now())}
        self.recorder.event(dict(pod), "Warning", "FailedScheduling", message)
        try:
            self.kube.patch_status(PODS, meta["name"], {"phase": "Pending", "conditions": [cond]}, meta["namespace"])
        except ApiException as exc:
            log.warning("pod %s/%s: could not write PodScheduled: %s", meta["namespace"], meta["name"], exc)

    # -- helpers --------------------------------------------------------------------------------------
    def _object(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.kube.get(KINDS[kind], name, namespace or None)

    def _unhealthy(self, target: ProbeTarget, kind: str, message: str) -> None:
        assert isinstance(target.pod_key, tuple)
        pod = self.pods.get(*target.pod_key)
        if pod is not None:
            self.recorder.event(pod, "Warning", "Unhealthy", f"{PROBE_NAMES.get(kind, kind)} probe failed: {message}")
