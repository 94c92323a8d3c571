"""ReplicationDestination reconcile (pure): keys, Service, receiving PVC, sshd, image, clean up.

The destination publishes where and how a source may push (`status.rsync.address`,
`status.rsync.sshKeys`), receives each iteration into one PVC that is reused so only deltas move,
and preserves an image once the source signals completion (`status.latestImageSourceIteration`, our
addition, names the source iteration the image holds when the source's signal named it):

- `Direct`/`None`: `latestImage` is the receiving PVC itself;
- `Snapshot`: the snapshot name is pinned in the PVC's `volsync.backube/snapname` annotation,
  the VolumeSnapshot is created under it, and only once it is bound *and* ready does it become
  `latestImage`; the previous image is labelled for cleanup (unless `do-not-delete`) and deleted
  after the new one is published. A failed or partial transfer never becomes an image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent import iterations, jobs, keysecrets
from agent.iterations import Context
from agent.plans import Delete, Emit, EndIteration, Ensure, Patch, Plan, Serve, StopReceiving, StopServing
from api.volsync import ANNOTATION_ITERATION, ANNOTATION_SNAPNAME, LABEL_CLEANUP, LABEL_DO_NOT_DELETE
from kube import objects
from kube.rest import PVCS, SERVICES, VOLUME_SNAPSHOTS, Resource

Obj = dict[str, Any]

ROLE = "destination"
DEFAULT_PORT = jobs.DEFAULT_PORT
# the class an agent before mover Jobs gave its LoadBalancer Services (addresses of its own, which
# nothing serves any more): such a Service is replaced
RETIRED_LB_CLASS = "volsync-addon.io/agent-loopback"


@dataclass(frozen=True)
class ServerView:
    iteration: str | None  # the iteration the mover Job receives for (None: not serving)
    completion: int | None = None  # the exit code the source signalled, once the mover exited
    source_iteration: str | None = None  # the source's iteration id it named with the completion, if any
    error: str | None = None  # the mover cannot serve (a condition's message)


@dataclass(frozen=True)
class DestinationView:
    rd: Obj
    now: datetime
    service: Obj | None = None
    pvc: Obj | None = None
    secrets: dict[str, Obj | None] = field(default_factory=dict)
    snapshots: dict[str, Obj] = field(default_factory=dict)  # VolumeSnapshots of this namespace by name
    leftovers: tuple[tuple[Resource, Obj], ...] = ()
    server: ServerView | None = None


def service_name(rd_name: str) -> str:
    """The destination's Service: the name of its mover Job (`volsync-rsync-dst-<rd>`)."""
    return jobs.mover_name(ROLE, rd_name)


def pvc_name(ctx: Context) -> str:
    assert ctx.spec.rsync is not None
    return ctx.spec.rsync.destination_pvc or objects.short_name(f"volsync-{ctx.name}-dst")


def _address(svc: Obj | None) -> str | None:
    if svc is None:
        return None
    spec, status = svc.get("spec") or {}, svc.get("status") or {}
    if spec.get("type") == "LoadBalancer":
        for ingress in (status.get("loadBalancer") or {}).get("ingress") or []:
            if ingress.get("hostname") or ingress.get("ip"):
                return str(ingress.get("hostname") or ingress.get("ip"))
        return None
    ip = spec.get("clusterIP")
    return str(ip) if ip and ip != "None" else None


def _service(ctx: Context) -> Obj:
    """The Service in front of the destination's mover Pods (`agent.jobs` renders it)."""
    return jobs.destination_service(jobs.MoverView.of(ctx.obj, pvc="", secret=""))


def _service_actions(ctx: Context, svc: Obj | None) -> list[Any]:
    """Create the Service; fix the selector of one whose Pods it does not select (made by an agent of
    another version); replace one of the retired agent-loopback class (its class is immutable)."""
    wanted = _service(ctx)
    if svc is None:
        return [Ensure(SERVICES, wanted)]
    spec = svc.get("spec") or {}
    if spec.get("loadBalancerClass") == RETIRED_LB_CLASS:
        return [] if objects.is_deleting(svc) else [
            Delete(SERVICES, ctx.namespace, objects.name_of(svc), objects.meta(svc).get("resourceVersion", ""))]
    selector = wanted["spec"]["selector"]
    if spec.get("selector") != selector:
        return [Patch(SERVICES, ctx.namespace, objects.name_of(svc), {"spec": {"selector": selector}})]
    return []


def _pvc(ctx: Context) -> Obj:
    rsync = ctx.spec.rsync
    assert rsync is not None
    spec: Obj = {
        "accessModes": list(rsync.volume.access_modes),
        "resources": {"requests": {"storage": rsync.volume.capacity}},
        "volumeMode": rsync.volume_mode or "Filesystem",
    }
    if rsync.volume.storage_class_name:
        spec["storageClassName"] = rsync.volume.storage_class_name
    return ctx.owned(PVCS, pvc_name(ctx), cleanup=rsync.cleanup_temp_pvc, extra={"spec": spec})


def _preserve(ctx: Context, v: DestinationView, pvc: str) -> tuple[Plan | None, Obj]:
    """After a successful transfer: (a plan while the image is not ready yet, latestImage)."""
    rsync = ctx.spec.rsync
    assert rsync is not None and v.pvc is not None
    method = rsync.volume.copy_method or "Direct"
    if method in ("Direct", "None"):
        return None, {"apiGroup": "", "kind": "PersistentVolumeClaim", "name": pvc}
    if method != "Snapshot":
        return iterations.error_plan(
            ctx, f"unsupported copyMethod {method!r} for a destination: use Direct or Snapshot"
        ), {}
    snapname = objects.annotations_of(v.pvc).get(ANNOTATION_SNAPNAME)
    vs = v.snapshots.get(snapname) if snapname else None
    if not snapname or (vs is not None and not _taken_for(ctx, vs)):
        # A pin names a snapshot of this iteration only: a name taken by another snapshot (one the user
        # kept, or one made before our status was reset) is never published as this iteration's image.
        actions: list[Any] = []
        name = snapshot_name(ctx, pvc, clash=bool(snapname))
        if snapname:
            actions.append(Emit("Warning", "SnapshotNameTaken", f"VolumeSnapshot {snapname} exists and was not "
                                f"taken for iteration {ctx.iteration}: using {name} instead"))
        patch = {"metadata": {"annotations": {ANNOTATION_SNAPNAME: name}}}
        return Plan(before=[*actions, Patch(PVCS, ctx.namespace, pvc, patch)]).wait(1), {}
    if vs is None:
        spec: Obj = {"source": {"persistentVolumeClaimName": pvc}}
        if rsync.volume.volume_snapshot_class_name:
            spec["volumeSnapshotClassName"] = rsync.volume.volume_snapshot_class_name
        snap = ctx.owned(VOLUME_SNAPSHOTS, snapname, extra={"spec": spec})
        snap["metadata"]["annotations"] = {ANNOTATION_ITERATION: ctx.iteration}
        emit = Emit("Normal", "VolumeSnapshotCreated",
                    f"created VolumeSnapshot {snapname} of PVC {pvc} for iteration {ctx.iteration}")
        return Plan(before=[Ensure(VOLUME_SNAPSHOTS, snap), emit]).wait(1), {}
    if not iterations.snapshot_ready(vs):
        error = ((vs.get("status") or {}).get("error") or {}).get("message")
        message = f"Synchronization in-progress: waiting for VolumeSnapshot {snapname} to be ready"
        status = iterations.condition_status(ctx, "SyncInProgress", message + (f" ({error})" if error else ""))
        return Plan(status=status).wait(2), {}
    return None, {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snapname}


def snapshot_name(ctx: Context, pvc: str, *, clash: bool = False) -> str:
    """`<pvc>-<UTC stamp>-<iteration number>` (≤ 63 characters), unique per iteration; after a clash,
    the time's microseconds are added."""
    stamp = f"{ctx.now:%Y%m%d%H%M%S}" + (f"-{ctx.now:%f}" if clash else "")
    number = f"-{ctx.iteration_number}" if ctx.iteration_number else ""  # 0: an iteration of an older agent
    return objects.short_name(f"{pvc}-{stamp}{number}")


def _taken_for(ctx: Context, vs: Obj) -> bool:
    """Was this VolumeSnapshot taken for the running iteration? (An older agent did not say which.)"""
    taken = objects.annotations_of(vs).get(ANNOTATION_ITERATION)
    return taken == ctx.iteration or (taken is None and not ctx.iteration_number)


def _retire_previous(ctx: Context, v: DestinationView, new_image: Obj) -> list[Any]:
    """Mark the previous snapshot image for cleanup, or release it if the user pinned it."""
    prev = ctx.status.latest_image
    if prev is None or prev.kind != "VolumeSnapshot" or prev.name == new_image.get("name"):
        return []
    vs = v.snapshots.get(prev.name)
    if vs is None or not objects.owned_by(vs, ctx.uid):
        return []
    if LABEL_DO_NOT_DELETE in objects.labels_of(vs):
        refs = [r for r in objects.meta(vs).get("ownerReferences") or [] if r.get("uid") != ctx.uid]
        return [Patch(VOLUME_SNAPSHOTS, ctx.namespace, prev.name, {"metadata": {"ownerReferences": refs or None}})]
    return [Patch(VOLUME_SNAPSHOTS, ctx.namespace, prev.name, {"metadata": {"labels": {LABEL_CLEANUP: ctx.uid}}})]


def plan(v: DestinationView) -> Plan:
    ctx = Context.of(v.rd, v.now, ROLE)
    if objects.is_deleting(v.rd):
        return Plan(before=[StopServing(ctx.key)])
    if ctx.spec.movers == ("external",):
        return Plan()
    problem = (
        iterations.mover_error(ctx.spec)
        or iterations.schedule_error(ctx.spec)
        or iterations.copy_method_error(ctx.spec, ("Direct", "None", "Snapshot"))
    )
    if problem:
        return iterations.error_plan(ctx, problem)
    rsync = ctx.spec.rsync
    assert rsync is not None
    if not rsync.destination_pvc and (not rsync.volume.capacity or not rsync.volume.access_modes):
        return iterations.error_plan(
            ctx, "spec.rsync.capacity and spec.rsync.accessModes must be provided when spec.rsync.destinationPVC is not"
        )
    actions, secret, problem = keysecrets.key_secret(ctx, v.secrets, ("destination", "source.pub"), 2)
    if problem:
        return iterations.error_plan(ctx, problem)
    status: Obj = {}
    if not rsync.ssh_keys:
        status["rsync"] = {"sshKeys": keysecrets.key_secret_names(ctx.role, ctx.name)[1]}
    service_actions = _service_actions(ctx, v.service)
    actions += service_actions
    retiring = any(isinstance(a, Delete) for a in service_actions)
    address = None if retiring else _address(v.service)
    if address:
        status.setdefault("rsync", {})["address"] = address
    name = pvc_name(ctx)
    if v.pvc is None:
        if rsync.destination_pvc:
            return iterations.error_plan(ctx, f"destinationPVC {name!r} not found")
        if ctx.iteration is not None or not rsync.cleanup_temp_pvc:  # idle cleanup would delete a temp one
            actions.append(Ensure(PVCS, _pvc(ctx)))
    waiting = None
    if secret is None:
        waiting = "ssh keys"
    elif not address:
        waiting = "an address for Service " + service_name(ctx.name)
    elif v.pvc is None or (v.pvc.get("status") or {}).get("phase") != "Bound":
        waiting = f"PVC {name} to bind"

    if ctx.iteration is None:
        if v.pvc is not None and objects.annotations_of(v.pvc).get(ANNOTATION_SNAPNAME):
            # a pin the completing plan failed to remove: the next image must get a new name
            actions.append(Patch(PVCS, ctx.namespace, name, {"metadata": {"annotations": {ANNOTATION_SNAPNAME: None}}}))
        idle_plan = iterations.idle(ctx, v.leftovers)
        if idle_plan is None:
            idle_plan = iterations.start(ctx)
        idle_plan.before[:0] = actions
        if idle_plan.status is not None:
            idle_plan.status.update(status)
        return idle_plan if waiting is None else idle_plan.wait(1)

    if waiting is not None or secret is None or address is None:
        st = iterations.condition_status(ctx, "SyncInProgress", f"Synchronization in-progress: waiting for {waiting}")
        return Plan(before=actions, status={**st, **status}).wait(1)
    port = rsync.port or DEFAULT_PORT
    server = v.server
    if ctx.spec.paused:
        st = iterations.condition_status(ctx, "SyncInProgress", "Synchronization paused")
        return Plan(before=[*actions, StopReceiving(ctx.key, ctx.iteration)],
                    status={**st, **status, "nextSyncTime": None})
    serve = Serve(ctx.key, ctx.iteration, name, ctx.namespace, address, port, secret)
    if server is not None and server.error:
        # e.g. the address cannot be bound: say so, and try again on every backoff retry
        return Plan(
            before=[*actions, serve],
            status={**iterations.condition_status(ctx, "Error", server.error), **status},
            error=server.error,
        )
    if server is None or server.iteration != ctx.iteration:
        st = iterations.condition_status(ctx, "SyncInProgress")
        emit = Emit("Normal", "TransferStarted", f"listening on {address}:{port} to receive data into PVC {name}")
        return Plan(before=[*actions, serve, emit], status={**st, **status})
    if server.completion is None:
        return Plan(before=[*actions, serve], status={**iterations.condition_status(ctx, "SyncInProgress"), **status})
    if server.completion != 0:
        failed = {
            "latestMoverStatus": {
                "result": "Failed",
                "logs": f"the source signalled failure (code {server.completion})",
            }
        }
        emit = Emit("Warning", "TransferFailed", f"the source signalled failure (code {server.completion})")
        return Plan(
            before=[*actions, emit, EndIteration(ctx.key, ctx.iteration), serve],
            status={**iterations.condition_status(ctx, "SyncInProgress"), **status, **failed},
            after=[iterations.failed_attempt(ctx, "")],
        )
    actions.append(StopReceiving(ctx.key, ctx.iteration))
    waiting_plan, image = _preserve(ctx, v, name)
    if waiting_plan is not None:
        waiting_plan.before[:0] = actions
        if waiting_plan.status is None:
            waiting_plan.status = dict(status)
        else:
            waiting_plan.status.update(status)
        return waiting_plan
    status["latestImage"] = image
    # which source iteration the image holds, for the hub's exact `late` verdict (None: a merge patch drops a
    # previous image's value when the source named none)
    status["latestImageSourceIteration"] = server.source_iteration
    done, completed = iterations.complete(ctx, status, "")
    after: list[Any] = [*completed, EndIteration(ctx.key, ctx.iteration)]  # observed once the status landed
    if image.get("kind") == "VolumeSnapshot":
        after.append(Patch(PVCS, ctx.namespace, name, {"metadata": {"annotations": {ANNOTATION_SNAPNAME: None}}}))
    after += iterations.cleanup_actions(v.leftovers)
    return Plan(before=[*actions, *_retire_previous(ctx, v, image)], status=done, after=after).wait(1)
