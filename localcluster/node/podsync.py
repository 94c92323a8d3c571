"""The kubelet's executor for one Pod: gather facts, ask the planner, apply its actions, write status.

`PodSync.sync(pod)` is called for every Pod bound to this node (and `sync_orphan(uid)` for Pods
the API no longer has): it reads the runtime's records from disk (so a restarted node adopts its
containers), attaches the Pod network, prepares the volumes, checks images, gets `plan_pod`'s
plan, executes it (`StartContainer`, `KillContainers`, `Finish`), records the Events kubelet
records, and writes the status with `patch_status` when it differs from what the Pod shows.
What it keeps in memory (SIGTERM sent, probe verdicts, image-pull failures) only refines timing;
everything else is derived again from the API and the disk after a restart.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Hashable, Mapping
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Any

from kubernetes.client.exceptions import ApiException

from kube.clock import Clock, parse_rfc3339
from kube.events import Recorder
from kube.rest import PODS, Kube
from localcluster.node.envvars import PodContext
from localcluster.node.exitwatch import ExitWatch
from localcluster.node.images import ImageError, ImageMap
from localcluster.node.layout import NodeLayout
from localcluster.node.netseam import PodNetwork
from localcluster.node.podlaunch import ConfigError, LaunchBuilder
from localcluster.node.podmemory import PodMemory, container_key, observe
from localcluster.node.podplans import (
    DEFAULT_GRACE,
    Finish,
    KillContainers,
    Next,
    Observed,
    PodFacts,
    PodPlan,
    StartContainer,
    plan_pod,
)
from localcluster.node.podstatus import StatusExtras, pod_status, status_patch
from localcluster.node.probes import Prober, ProbeTarget
from localcluster.node.runtime import ContainerRuntime
from localcluster.node.termination import termination_message
from localcluster.node.volumes import MountError, PodVolumes

log = logging.getLogger("localcluster.kubelet")
VOLUME_RESYNC_SECONDS = 60.0  # Secret/ConfigMap/downward API files follow their sources (kubelet: ~1 min)
Obj = dict[str, Any]


class PodSync:
    """Executes the planner's plans for this node's Pods (see the module docstring)."""

    def __init__(self, kube: Kube, containers: ContainerRuntime, layout: NodeLayout, network: PodNetwork,
                 images: ImageMap, volumes: PodVolumes, launches: LaunchBuilder, prober: Prober,
                 recorder: Recorder, clock: Clock, exits: ExitWatch | None = None) -> None:
        self.kube = kube
        self.exits = exits
        self.containers = containers
        self.layout = layout
        self.network = network
        self.images = images
        self.volumes = volumes
        self.launches = launches
        self.prober = prober
        self.recorder = recorder
        self.clock = clock
        self.memory: dict[str, PodMemory] = {}

    # -- facts ----------------------------------------------------------------------------------------
    def _image_errors(self, pod: Mapping[str, Any], mem: PodMemory) -> dict[str, str]:
        errors: dict[str, str] = {}
        spec = pod.get("spec") or {}
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            try:
                self.images.kind_of(str(c.get("image", "")))
            except ImageError as exc:
                errors[str(c.get("name"))] = exc.message
                mem.pull_failures[str(c.get("name"))] = mem.pull_failures.get(str(c.get("name")), 0) + 1
                self._once(pod, mem, f"pull/{c.get('name')}", "Warning", "Failed", exc.message)
        return errors

    def _prepare(self, pod: Mapping[str, Any], mem: PodMemory, uid: str) -> str:
        now = self.clock.now()
        fresh = mem.prepared_at is not None and (now - mem.prepared_at).total_seconds() < VOLUME_RESYNC_SECONDS
        if fresh and not self.volumes.tokens_due(uid, now):
            return ""
        assert mem.attachment is not None
        try:
            ctx = PodContext(pod_ip=mem.attachment.ip, host_ip=self.launches.host_ip, node_name=self.launches.node_name)
            self.volumes.prepare(pod, self.layout.pod_dir(uid), ctx)
        except (MountError, OSError) as exc:
            self.recorder.event(dict(pod), "Warning", "FailedMount", f"MountVolume.SetUp failed: {exc}")
            return str(exc)
        mem.prepared_at = now
        return ""

    def _once(self, pod: Mapping[str, Any], mem: PodMemory, tag: str, type_: str, reason: str, msg: str) -> None:
        if tag not in mem.reported:
            mem.reported.add(tag)
            self.recorder.event(dict(pod), type_, reason, msg)

    # -- sync -----------------------------------------------------------------------------------------
    def sync(self, key: Hashable, pod: Obj) -> float | None:
        """Bring one Pod bound to this node one step forward; seconds until the next look."""
        meta = pod.get("metadata") or {}
        uid = str(meta["uid"])
        mem = self.memory.setdefault(uid, PodMemory(key))
        mem.names = {c.get("name") for c in (pod.get("spec") or {}).get("containers") or []}
        grace = int(meta.get("deletionGracePeriodSeconds") or
                    (pod.get("spec") or {}).get("terminationGracePeriodSeconds") or DEFAULT_GRACE)
        mem.grace = grace if grace >= 0 else 1  # a negative period counts as 1, as the kubelet does
        view = {**pod, "status": {**(pod.get("status") or {}), **(mem.status or {})}}
        phase = str(view["status"].get("phase") or "Pending")
        deleting = bool(meta.get("deletionTimestamp"))
        if deleting:  # every sync: a shorter second delete moves deletionTimestamp earlier; a restart keeps it
            by_api = parse_rfc3339(meta.get("deletionTimestamp"))
            if by_api is not None:  # whole seconds, truncated: the grace period is never cut short
                by_api += timedelta(seconds=1)
            known = [d for d in (mem.term_deadline, by_api) if d is not None]
            mem.term_deadline = min(known) if known else self.clock.now() + timedelta(seconds=mem.grace)
        facts_extra: dict[str, Any] = {}
        errors: dict[str, str] = {}
        config_errors: dict[str, str] = {}
        if not deleting and phase not in ("Succeeded", "Failed"):
            if mem.attachment is None:
                mem.attachment = self.network.attach(uid)
            facts_extra["mount_error"] = self._prepare(pod, mem, uid)
            errors = self._image_errors(pod, mem)
        records = self._observed(key, pod, uid)
        running = {o.container_id for o in records if o.running}
        ready, started, unhealthy = self.prober.verdicts(running)
        facts = PodFacts(now=self.clock.now(), image_errors=errors, unhealthy=unhealthy, term_sent=mem.term_sent,
                         term_deadline=mem.term_deadline, **facts_extra)
        plan = plan_pod(view, records, facts)
        config_errors = self.execute(key, pod, plan, mem)
        if config_errors:
            facts = replace(facts, image_errors={**errors, **config_errors})
        if any(isinstance(a, Finish) for a in plan.actions):
            return None
        if any(isinstance(a, StartContainer) for a in plan.actions) or config_errors:
            records = self._observed(key, pod, uid)
            plan = plan_pod(view, records, replace(facts, now=self.clock.now()))
        self._track_probes(key, pod, mem, records)
        self._backoff_events(pod, mem, plan)
        extras = StatusExtras(now=self.clock.now(), pod_ip=mem.attachment.ip if mem.attachment else
                              str(view["status"].get("podIP") or ""), host_ip=self.launches.host_ip,
                              ready=ready, started=started, image_errors=errors,
                              image_pull_backoff=frozenset(n for n, c in mem.pull_failures.items() if c > 1),
                              mount_error=facts.mount_error, config_errors=config_errors)
        self.write_status(pod, mem, pod_status(view, plan, extras))
        if plan.phase in ("Succeeded", "Failed") and not running and mem.attachment is not None:
            self.network.detach(uid)
            mem.attachment = None
        return plan.requeue_after

    def _observed(self, key: Hashable, pod: Mapping[str, Any], uid: str) -> list[Observed]:
        """The runtime's records of the Pod, each with the image it runs as `local://<kind>/<image>` and,
        once ended, its termination message (`termination.py`); a running one's end will wake `key`."""
        spec = pod.get("spec") or {}
        ids: dict[str, str] = {}
        policies: dict[str, str] = {}
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            policies[str(c.get("name"))] = str(c.get("terminationMessagePolicy") or "File")
            try:
                ids[str(c.get("name"))] = f"local://{self.images.kind_of(str(c.get('image', '')))}/{c.get('image')}"
            except ImageError:
                continue
        observed = []
        for r in self.containers.containers(uid):
            if r.running and self.exits is not None:
                self.exits.watch(self.containers.shim_of(r), key)
            message = termination_message(r, self.layout.termination_log(uid, r.name, r.attempt),
                                          policies.get(r.name, "File"))
            observed.append(observe(r, ids.get(r.name, ""), message))
        return observed

    def execute(self, key: Hashable, pod: Obj, plan: PodPlan, mem: PodMemory) -> dict[str, str]:
        """Apply the plan's actions; returns containers that could not be configured (name -> why)."""
        uid = str(pod["metadata"]["uid"])
        config_errors: dict[str, str] = {}
        for action in plan.actions:
            match action:
                case StartContainer():
                    problem = self._start(pod, action, mem)
                    if problem:
                        config_errors[action.name] = problem
                case KillContainers():
                    self._kill(pod, uid, action, mem)
                case Finish():
                    self.finish(uid, pod if pod.get("metadata", {}).get("deletionTimestamp") else None)
        return config_errors

    def _start(self, pod: Obj, action: StartContainer, mem: PodMemory) -> str:
        uid = str(pod["metadata"]["uid"])
        key = "initContainers" if action.init else "containers"
        spec_c = next(c for c in pod["spec"].get(key) or [] if c.get("name") == action.name)
        assert mem.attachment is not None
        try:
            launch = self.launches.build(pod, spec_c, action.attempt, mem.attachment, self.layout.pod_dir(uid))
        except (ConfigError, MountError, ImageError) as exc:
            self._once(pod, mem, f"config/{action.name}/{exc}", "Warning", "Failed", f"Error: {exc}")
            return str(exc)
        image = spec_c.get("image", "")
        self.recorder.event(pod, "Normal", "Pulled", f'Container image "{image}" already present on machine')
        try:
            self.containers.start(launch)
        except (ValueError, RuntimeError, ImageError, OSError) as exc:
            if isinstance(exc, ValueError) and "exists" in str(exc):
                return ""  # a start that happened before a crash: the record is there, next sync sees it
            self.recorder.event(pod, "Warning", "Failed", f"Error: {exc}")
            return str(exc)
        self.recorder.event(pod, "Normal", "Created", f"Created container {action.name}")
        self.recorder.event(pod, "Normal", "Started", f"Started container {action.name}")
        return ""

    def _kill(self, pod: Obj, uid: str, action: KillContainers, mem: PodMemory) -> None:
        """SIGTERM once per container (a `Killing` event), SIGKILL when forced or once the grace is over."""
        now = self.clock.now()
        for rec in self.containers.containers(uid):
            cid = container_key(rec)
            if not rec.running or cid not in action.container_ids:
                continue
            deadline = mem.signalled.get(cid)
            if action.force or (deadline is not None and now >= deadline):
                self.containers.signal(rec, signal.SIGKILL)
            elif deadline is None:
                mem.signalled[cid] = now + timedelta(seconds=mem.grace)
                if pod.get("metadata", {}).get("name"):
                    message = f"Stopping container {rec.name}" if action.reason != "Unhealthy" else \
                        f"Container {rec.name} failed liveness probe, will be restarted"
                    self.recorder.event(pod, "Normal", "Killing", message)
                self.containers.signal(rec, signal.SIGTERM)
        if not action.force and action.reason != "Unhealthy":
            mem.term_sent = True

    def finish(self, uid: str, pod: Obj | None) -> None:
        """Every container is gone: release the network and the Pod's files, then the final delete."""
        self.prober.untrack_except(self.memory.get(uid, PodMemory("")).key, set())
        self.network.detach(uid)
        self.containers.remove_pod(uid)
        self.volumes.forget(uid)
        self.memory.pop(uid, None)
        if pod is not None:
            meta = pod["metadata"]
            body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                    "preconditions": {"uid": uid}}
            try:
                self.kube.request("DELETE", PODS.path(meta["namespace"], meta["name"]), body=body)
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise

    def sync_orphan(self, uid: str) -> float | None:
        """A Pod gone from the API whose containers are still on disk: stop them, then clean up."""
        mem = self.memory.setdefault(uid, PodMemory(""))
        records = [observe(r) for r in self.containers.containers(uid)]
        names = sorted({o.name for o in records})
        if mem.term_deadline is None:
            mem.term_deadline = self.clock.now() + timedelta(seconds=mem.grace)
        pod: Obj = {"metadata": {"uid": uid}, "spec": {"containers": [{"name": n} for n in names]}}
        facts = PodFacts(now=self.clock.now(), orphan=True, term_sent=mem.term_sent, term_deadline=mem.term_deadline)
        plan = plan_pod(pod, records, facts)
        self.execute(mem.key, pod, plan, mem)
        return None if any(isinstance(a, Finish) for a in plan.actions) else plan.requeue_after

    def _track_probes(self, key: Hashable, pod: Obj, mem: PodMemory, records: list[Observed]) -> None:
        running = {o.container_id: o for o in records if o.running}
        specs = {c.get("name"): c for c in (pod.get("spec") or {}).get("containers") or []}
        for cid, o in running.items():
            if o.name in specs and mem.attachment is not None:
                rec = next(r for r in self.containers.containers(str(pod["metadata"]["uid"]))
                           if container_key(r) == cid)
                self.prober.track(ProbeTarget(key, cid, specs[o.name], mem.attachment.netns_path, mem.attachment.ip,
                                              partial(self.containers.exec_argv, rec)))
        self.prober.untrack_except(key, set(running))

    def _backoff_events(self, pod: Obj, mem: PodMemory, plan: PodPlan) -> None:
        for v in plan.containers:
            if v.next is Next.BACKOFF and v.latest is not None:
                self._once(pod, mem, f"backoff/{v.name}/{v.latest.attempt}", "Warning", "BackOff",
                           f"Back-off restarting failed container {v.name} in pod {pod['metadata'].get('name')}"
                           f"_{pod['metadata'].get('namespace')}({pod['metadata'].get('uid')})")

    def write_status(self, pod: Obj, mem: PodMemory, desired: Obj) -> None:
        current = {**(pod.get("status") or {}), **(mem.status or {})}
        patch = status_patch(current, desired)
        if patch is None:
            return
        meta = pod["metadata"]
        try:
            # metadata.uid in a patch is a precondition: never the status of a new Pod of the same name
            written = self.kube.patch(PODS, meta["name"], {"metadata": {"uid": meta["uid"]}, "status": patch},
                                      meta["namespace"], subresource="status")
        except ApiException as exc:
            if exc.status in (404, 409):
                return
            raise
        if (written.get("metadata") or {}).get("uid") == meta.get("uid"):
            mem.status = written.get("status") or desired
