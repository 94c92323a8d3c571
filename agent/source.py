"""ReplicationSource reconcile (pure): point-in-time copy, push with rsync over ssh, clean up.

Given the RS and what the agent observes (source PVC, the point-in-time copy objects, the key
Secret, leftovers from earlier iterations, the transfer of the current iteration) at time `now`,
`plan` returns what to do next. One step per call; every change to a watched object, transfer
completion, or timer calls it again.

copyMethod: `Direct`/`None` pushes the live PVC; `Clone` a PVC cloned from it; `Snapshot` a PVC
restored from a VolumeSnapshot taken at the start of the iteration. Temporaries carry the cleanup
label and are deleted when the iteration completes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agent import iterations, keysecrets
from agent.iterations import Context
from agent.plans import Action, CancelTransfer, Emit, Ensure, ForgetTransfer, Plan, StartTransfer
from api.volsync import REASON_ERROR
from kube import objects
from kube.rest import PVCS, VOLUME_SNAPSHOTS, Resource

Obj = dict[str, Any]

ROLE = "source"
DEFAULT_PORT = 22


@dataclass(frozen=True)
class TransferView:
    iteration: str
    running: bool
    succeeded: bool = False
    logs: str = ""
    exit_code: int = 0
    error: str | None = None  # why a running mover cannot start (its Pod's waiting reason and message)


@dataclass(frozen=True)
class SourceView:
    rs: Obj
    now: datetime
    source_pvc: Obj | None = None
    pit_snapshot: Obj | None = None
    pit_pvc: Obj | None = None
    secrets: dict[str, Obj | None] = field(default_factory=dict)
    leftovers: tuple[tuple[Resource, Obj], ...] = ()
    transfer: TransferView | None = None
    failures: int = 0  # consecutive failed transfers
    retry_at: datetime | None = None  # no new transfer before this time


def pit_name(rs_name: str) -> str:
    return objects.short_name(f"volsync-{rs_name}-src")


def _bound(pvc: Obj | None) -> bool:
    return pvc is not None and (pvc.get("status") or {}).get("phase") == "Bound" and not objects.is_deleting(pvc)


def _capacity(pvc: Obj) -> str | None:
    cap = ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
    req = ((pvc.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")
    return str(cap or req) if (cap or req) else None


def _pit(ctx: Context, v: SourceView) -> tuple[list[Any], str | None, str | None]:
    """(actions, name of the PVC to push once ready, what we wait for)."""
    assert ctx.spec.rsync is not None and v.source_pvc is not None
    opts = ctx.spec.rsync.volume
    method = opts.copy_method or "Direct"
    src = v.source_pvc
    src_name = objects.name_of(src)
    if method in ("Direct", "None"):
        return [], src_name, None
    name = pit_name(ctx.name)
    spec: Obj = {
        "accessModes": list(opts.access_modes or (src.get("spec") or {}).get("accessModes") or ["ReadWriteOnce"]),
        "storageClassName": opts.storage_class_name or (src.get("spec") or {}).get("storageClassName"),
        "volumeMode": (src.get("spec") or {}).get("volumeMode") or "Filesystem",
    }
    if spec["storageClassName"] is None:
        del spec["storageClassName"]
    if method == "Clone":
        if v.pit_pvc is None:
            spec["resources"] = {"requests": {"storage": opts.capacity or _capacity(src) or "1Gi"}}
            spec["dataSource"] = {"kind": "PersistentVolumeClaim", "name": src_name}
            return [Ensure(PVCS, ctx.owned(PVCS, name, cleanup=True, extra={"spec": spec}))], None, "clone"
        return ([], name, None) if _bound(v.pit_pvc) else ([], None, f"PVC {name} to bind")
    # Snapshot
    if v.pit_snapshot is None or objects.is_deleting(v.pit_snapshot):
        if v.pit_snapshot is not None:
            return [], None, f"the previous snapshot {name} to be deleted"
        vs_spec: Obj = {"source": {"persistentVolumeClaimName": src_name}}
        if opts.volume_snapshot_class_name:
            vs_spec["volumeSnapshotClassName"] = opts.volume_snapshot_class_name
        vs = ctx.owned(VOLUME_SNAPSHOTS, name, cleanup=True, extra={"spec": vs_spec})
        return (
            [
                Ensure(VOLUME_SNAPSHOTS, vs),
                Emit("Normal", "VolumeSnapshotCreated", f"created VolumeSnapshot {name} of PVC {src_name}"),
            ],
            None,
            "snapshot",
        )
    if not iterations.snapshot_ready(v.pit_snapshot):
        error = ((v.pit_snapshot.get("status") or {}).get("error") or {}).get("message")
        return [], None, f"VolumeSnapshot {name} to be ready" + (f" ({error})" if error else "")
    if v.pit_pvc is None:
        restore = (v.pit_snapshot.get("status") or {}).get("restoreSize")
        spec["resources"] = {
            "requests": {"storage": opts.capacity or (str(restore) if restore else None) or _capacity(src) or "1Gi"}
        }
        spec["dataSource"] = {"kind": "VolumeSnapshot", "apiGroup": "snapshot.storage.k8s.io", "name": name}
        return [Ensure(PVCS, ctx.owned(PVCS, name, cleanup=True, extra={"spec": spec}))], None, "restore"
    return ([], name, None) if _bound(v.pit_pvc) else ([], None, f"PVC {name} to bind")


def plan(v: SourceView) -> Plan:
    ctx = Context.of(v.rs, v.now, ROLE)
    if objects.is_deleting(v.rs):
        return Plan(before=[CancelTransfer(ctx.key)])
    if ctx.spec.movers == ("external",):
        return Plan()  # handed to an external replicator
    problem = (
        iterations.mover_error(ctx.spec)
        or iterations.schedule_error(ctx.spec)
        or iterations.copy_method_error(ctx.spec, ("Direct", "None", "Clone", "Snapshot"))
    )
    if problem:
        return iterations.error_plan(ctx, problem)
    rsync = ctx.spec.rsync
    assert rsync is not None
    if not rsync.address:
        return iterations.error_plan(
            ctx,
            "spec.rsync.address is required: the source pushes to the destination's "
            "address (status.rsync.address of the ReplicationDestination)",
        )
    key_actions, secret, problem = keysecrets.key_secret(ctx, v.secrets, ("source", "destination.pub"), 1)
    if problem:
        return iterations.error_plan(ctx, problem)
    if not ctx.spec.source_pvc:
        return iterations.error_plan(ctx, "spec.sourcePVC is required")
    if v.source_pvc is None:
        return iterations.error_plan(ctx, f"source PVC {ctx.spec.source_pvc!r} not found")
    extra_status: Obj = {}
    if not rsync.ssh_keys:
        extra_status["rsync"] = {"sshKeys": keysecrets.key_secret_names(ctx.role, ctx.name)[2]}
    if secret is None:
        return Plan(before=key_actions, status=extra_status or None).wait(1)

    if ctx.iteration is None:
        idle_plan = iterations.idle(ctx, v.leftovers)
        if idle_plan is not None:
            idle_plan.before[:0] = key_actions
            if v.transfer is not None:
                idle_plan.after.append(ForgetTransfer(ctx.key))
            if extra_status and idle_plan.status is not None:
                idle_plan.status.update(extra_status)
            return idle_plan
        started = iterations.start(ctx)
        started.before[:0] = key_actions
        assert started.status is not None
        started.status.update(extra_status)
        return started

    actions, data_pvc, waiting = _pit(ctx, v)
    actions[:0] = key_actions
    if data_pvc is None:
        if waiting and not _bound(v.source_pvc):
            waiting = f"source PVC {ctx.spec.source_pvc} to bind"
        status = iterations.condition_status(
            ctx, "SyncInProgress", f"Synchronization in-progress: waiting for {waiting}"
        )
        return Plan(before=actions, status=status).wait(2)
    t = v.transfer
    finished = t is not None and t.iteration == ctx.iteration and not t.running and t.succeeded
    if ctx.spec.paused and not finished:  # a transfer that already succeeded completes its iteration
        status = iterations.condition_status(ctx, "SyncInProgress", "Synchronization paused")
        status["nextSyncTime"] = None
        return Plan(before=[*actions, CancelTransfer(ctx.key)], status=status)
    port = rsync.port or DEFAULT_PORT
    if t is None or t.iteration != ctx.iteration:
        if t is not None:
            actions.append(CancelTransfer(ctx.key))
        if v.retry_at is not None and v.now < v.retry_at:
            return Plan(before=actions).wait((v.retry_at - v.now).total_seconds())
        actions += [
            StartTransfer(ctx.key, ctx.iteration, data_pvc, ctx.namespace, rsync.address, port, secret),
            Emit("Normal", "TransferStarted", f"starting transfer of PVC {data_pvc} to {rsync.address}:{port}"),
        ]
        return Plan(before=actions, status=iterations.condition_status(ctx, "SyncInProgress"))
    if t.running and t.error:  # e.g. the mover image cannot be pulled: say so, look again with backoff
        return Plan(before=actions, status=iterations.condition_status(ctx, REASON_ERROR, t.error), error=t.error)
    if t.running:
        return Plan(before=actions, status=iterations.condition_status(ctx, "SyncInProgress")).wait(60)
    if not t.succeeded:
        status = iterations.condition_status(ctx, "SyncInProgress")
        status["latestMoverStatus"] = {"result": "Failed", "logs": t.logs[-1024:]}
        delay = (retry_time(v.now, v.failures + 1) - v.now).total_seconds()
        emit = Emit(
            "Warning",
            "TransferFailed",
            f"transfer to {rsync.address}:{port} failed (exit {t.exit_code}); retrying in {delay:.0f}s",
        )
        retry: list[Action] = [iterations.failed_attempt(ctx, t.logs), ForgetTransfer(ctx.key, failed=True)]
        return Plan(before=[*actions, emit], status=status, after=retry).wait(delay)
    status, done = iterations.complete(ctx, extra_status, t.logs)
    # Observed once the status patch landed: a refused (409) patch is retried and must not count twice.
    after: list[Any] = [*done, ForgetTransfer(ctx.key), *iterations.cleanup_actions(v.leftovers)]
    return Plan(before=actions, status=status, after=after).wait(1)


def retry_time(now: datetime, failures: int) -> datetime:
    return now + timedelta(seconds=min(2.0 * (2 ** max(failures - 1, 0)), iterations.TRANSFER_RETRY_MAX))
