"""Reclaiming the local CSI-style driver's PersistentVolumes: what the PV controller and external-provisioner
do on a real cluster once a volume's claim is gone.

A PV whose claim no longer exists (deleted, or re-created under the same name with another uid)
becomes Released. With reclaim policy Delete its directory is removed (only ever an entry
directly under `<pool>/volumes/`, never through a symlink), then the PV is deleted and the
`external-provisioner.volume.kubernetes.io/finalizer` finalizer dropped; with Retain the data
stays. A PV that someone deletes while its claim still exists waits for the claim, as
`kubernetes.io/pv-protection` makes it. A PV whose path (`spec.local.path`, or `spec.hostPath.path`
of older volumes) is not where we put it
is never deleted: it becomes Failed with a Warning event.
"""

from __future__ import annotations

from pathlib import Path

from kubernetes.client.exceptions import ApiException

from kube import objects
from kube.rest import PVCS, PVS, is_not_found
from localcluster.storage.common import (
    DRIVER,
    NEXT_STEP,
    PROVISIONED_BY,
    PV_FINALIZER,
    RETRY,
    WARNING,
    Context,
    Obj,
    dig,
    path_of,
    with_rv,
)
from localcluster.storage.copying import remove


class Reclaimer:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.kube = ctx.kube
        self.layout = ctx.layout

    def reconcile_volume(self, name: str) -> float | None:
        with self.ctx.locks.hold(f"pv:{name}"):
            return self._volume_step(name)

    def _volume_step(self, name: str) -> float | None:
        pv = self.kube.get(PVS, name)
        if pv is None or objects.annotations_of(pv).get(PROVISIONED_BY) != DRIVER:
            return None
        ref = dig(pv, "spec", "claimRef") or {}
        if not ref.get("name"):
            return None
        claim = self.kube.get(PVCS, ref["name"], ref.get("namespace") or "")
        if claim is not None and objects.uid_of(claim) == ref.get("uid"):
            return None  # in use, or still being provisioned; a deleted PV waits for its claim to go
        if dig(pv, "status", "phase") not in ("Released", "Failed"):
            self._volume_status(pv, {"phase": "Released"})
            return NEXT_STEP
        finalizers = list(objects.meta(pv).get("finalizers") or [])
        if dig(pv, "spec", "persistentVolumeReclaimPolicy") != "Delete":
            if objects.is_deleting(pv) and PV_FINALIZER in finalizers:  # Retain: the data stays, the object may go
                self._drop_finalizer(pv, finalizers)
            return None
        try:
            dest: Path | None = self.layout.volume(name)
        except ValueError:
            dest = None
        if dest is None or path_of(pv) != str(dest):
            message = (
                f"refusing to delete volume {name}: its path {path_of(pv)!r} is not "
                f"{str(dest)!r} in {DRIVER}'s storage pool"
            )
            self.ctx.record(pv, WARNING, "VolumeFailedDelete", message)
            if dig(pv, "status", "phase") != "Failed":
                self._volume_status(pv, {"phase": "Failed", "message": message})
            return None
        with self.ctx.locks.hold(f"dir:{dest}"):
            try:
                removed = remove(self.layout, dest)
            except OSError as exc:
                self.ctx.record(pv, WARNING, "VolumeFailedDelete", f"failed to delete volume {name}: {exc}")
                return RETRY
        if removed:
            return NEXT_STEP
        if not objects.is_deleting(pv):
            self.kube.delete(PVS, name, preconditions={"uid": objects.uid_of(pv)})
            return NEXT_STEP
        if PV_FINALIZER in finalizers:
            self._drop_finalizer(pv, finalizers)
        return None

    def _drop_finalizer(self, pv: Obj, finalizers: list[str]) -> None:
        patch = with_rv(pv, {"metadata": {"finalizers": [f for f in finalizers if f != PV_FINALIZER]}})
        try:
            self.kube.patch(PVS, objects.name_of(pv), patch)
        except ApiException as exc:
            if not is_not_found(exc):
                raise

    def _volume_status(self, pv: Obj, status: Obj) -> None:
        self.kube.patch_status(PVS, objects.name_of(pv), status)
