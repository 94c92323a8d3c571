"""VolumeSnapshots of the local CSI-style driver: what snapshot-controller and csi-snapshotter do on a real cluster.

One step per reconcile call, for snapshots whose VolumeSnapshotClass names our driver (others are
left alone, as csi-snapshotter leaves other drivers' snapshots):

1. The snapshot class: the named one must exist; with none named, the default class is written
   into `spec.volumeSnapshotClassName` (as snapshot-controller does) if it is ours.
2. The source claim must be Bound to a volume our driver provisioned (else: wait).
3. Finalizer `local.csi.volsync-addon.io/snapshot-protection` on the VolumeSnapshot.
4. VolumeSnapshotContent `snapcontent-<snapshot uid>` (status: not ready, restoreSize), then the
   snapshot's `status.boundVolumeSnapshotContentName`.
5. The copy: `<pool>/snapshots/snapcontent-<snapshot uid>`, filled under a staging name
   while holding the source volume's lock (so its reclaim cannot remove it meanwhile) and
   renamed into place when complete. A reflink copy in the pool (shared blocks, copy-on-write),
   a full copy in a plain directory; never hard links: later writes to the volume, even in
   place, never reach it.
6. Content status ready (creationTime, snapshotHandle = the directory); 7. snapshot status ready.

Deletion (deletionTimestamp and our finalizer): wait for restores that have started from the
snapshot (as the `volumesnapshot-as-source-protection` finalizer does), then with deletion policy
Delete remove the directory and the content, then drop the finalizer. Pre-provisioned snapshots
(`spec.source.volumeSnapshotContentName`) are not supported and say so in `status.error`.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from kubernetes.client.exceptions import ApiException

from kube import objects
from kube.rest import PVCS, PVS, VOLUME_SNAPSHOT_CLASSES, VOLUME_SNAPSHOT_CONTENTS, VOLUME_SNAPSHOTS, is_conflict
from localcluster.storage.common import (
    DEFAULT_SNAPSHOT_CLASS,
    DRIVER,
    NEXT_STEP,
    NORMAL,
    RETRY,
    SNAPSHOT_API_VERSION,
    SNAPSHOT_FINALIZER,
    WAIT,
    WARNING,
    Context,
    Obj,
    binary_quantity,
    dig,
    key,
    now,
    rfc3339_from_ns,
    to_bytes,
    with_rv,
)
from localcluster.storage.copying import copy_tree, populate, remove
from localcluster.storage.sources import volume_path

if TYPE_CHECKING:
    from localcluster.storage.provisioning import Provisioner

log = logging.getLogger(__name__)


class Snapshotter:
    def __init__(self, ctx: Context, provisioner: Provisioner) -> None:
        self.ctx = ctx
        self.kube = ctx.kube
        self.layout = ctx.layout
        self.provisioner = provisioner

    def reconcile_snapshot(self, namespace: str, name: str) -> float | None:
        with self.ctx.locks.hold(f"vs:{namespace}/{name}"):
            vs = self.kube.get(VOLUME_SNAPSHOTS, name, namespace)
            if vs is None:
                return None
            return self._delete_step(vs) if objects.is_deleting(vs) else self._create_step(vs)

    # -- creation -----------------------------------------------------------------------------------------
    def _create_step(self, vs: Obj) -> float | None:
        status = vs.get("status") or {}
        if status.get("readyToUse") and status.get("boundVolumeSnapshotContentName"):
            return None
        named = dig(vs, "spec", "volumeSnapshotClassName")
        klass = self.kube.get(VOLUME_SNAPSHOT_CLASSES, named) if named else None
        if klass is not None and klass.get("driver") != DRIVER:
            return None  # another driver's snapshot: not ours to take, nor to judge
        source = dig(vs, "spec", "source") or {}
        if source.get("volumeSnapshotContentName"):
            return self._failed(
                vs,
                "SnapshotContentUnsupported",
                f"pre-provisioned snapshots (spec.source.volumeSnapshotContentName "
                f"{source['volumeSnapshotContentName']!r}) are not supported by {DRIVER}: "
                "take the snapshot from a PersistentVolumeClaim (spec.source.persistentVolumeClaimName)",
                None,
            )
        pvc_name = source.get("persistentVolumeClaimName")
        if not pvc_name:
            return self._failed(vs, "SnapshotValidationError", "spec.source names no persistentVolumeClaimName", None)
        content_name = f"snapcontent-{objects.uid_of(vs)}"
        content = self.kube.get(VOLUME_SNAPSHOT_CONTENTS, content_name)
        if content is None:
            return self._start(vs, pvc_name, content_name)
        if dig(content, "spec", "volumeSnapshotRef", "uid") != objects.uid_of(vs):
            message = f"VolumeSnapshotContent {content_name} is bound to another snapshot"
            return self._failed(vs, "SnapshotContentMismatch", message, None)
        if SNAPSHOT_FINALIZER not in (objects.meta(vs).get("finalizers") or []):
            return self._add_finalizer(vs)
        if status.get("boundVolumeSnapshotContentName") != content_name:
            self._snapshot_status(
                vs, {"boundVolumeSnapshotContentName": content_name, "readyToUse": False, "error": None}
            )
            return NEXT_STEP
        cstatus = content.get("status") or {}
        if cstatus.get("error"):
            return None  # the snapshot cannot be taken any more; its status says why
        if cstatus.get("restoreSize") is None:  # created, then restarted before its status was written
            return self._size_content(vs, content)
        dest = self.layout.snapshot(content_name)
        if not os.path.lexists(dest):
            return self._take(vs, content, pvc_name)
        if not cstatus.get("readyToUse"):
            ready = {
                "readyToUse": True,
                "restoreSize": cstatus["restoreSize"],
                "creationTime": os.lstat(dest).st_ctime_ns,  # when the rename made the copy complete
                "snapshotHandle": str(dest),
                "error": None,
            }
            self._content_status(content, ready)
            return NEXT_STEP
        self._snapshot_status(
            vs,
            {
                "boundVolumeSnapshotContentName": content_name,
                "creationTime": rfc3339_from_ns(int(cstatus["creationTime"])),
                "readyToUse": True,
                "restoreSize": binary_quantity(int(cstatus["restoreSize"])),
                "error": None,
            },
        )
        self.ctx.record(vs, NORMAL, "SnapshotReady", f"Snapshot {key(vs)} is ready to use.")
        return None

    def _failed(self, vs: Obj, reason: str, message: str, delay: float | None) -> float | None:
        """A Warning event, and `status.error` (rewritten only when the message changes)."""
        self.ctx.record(vs, WARNING, reason, message)
        if dig(vs, "status", "error", "message") != message:
            self._snapshot_status(vs, {"readyToUse": False, "error": {"message": message, "time": now()}})
        return delay

    def _add_finalizer(self, vs: Obj) -> float:
        finalizers = [*(objects.meta(vs).get("finalizers") or []), SNAPSHOT_FINALIZER]
        self.kube.patch(
            VOLUME_SNAPSHOTS,
            objects.name_of(vs),
            with_rv(vs, {"metadata": {"finalizers": finalizers}}),
            objects.namespace_of(vs),
        )
        return NEXT_STEP

    def _snapshot_class(self, vs: Obj) -> Obj | float | None:
        """The snapshot's class, or (after saying why) when to try again."""
        name = dig(vs, "spec", "volumeSnapshotClassName")
        if name:
            found = self.kube.get(VOLUME_SNAPSHOT_CLASSES, name)
            if found is None:
                message = (
                    f"Failed to get snapshot class with error "
                    f'volumesnapshotclasses.snapshot.storage.k8s.io "{name}" not found'
                )
                return self._failed(vs, "GetSnapshotClassFailed", message, RETRY)
            return found
        defaults = [
            c
            for c in self.kube.list(VOLUME_SNAPSHOT_CLASSES)[0]
            if objects.annotations_of(c).get(DEFAULT_SNAPSHOT_CLASS) == "true"
        ]
        if len(defaults) > 1:
            defaults = [c for c in defaults if c.get("driver") == DRIVER] or defaults
        if len(defaults) == 1 and defaults[0].get("driver") != DRIVER:
            return None  # another driver's default: its snapshotter assigns it
        if len(defaults) != 1:
            problem = (
                "no default VolumeSnapshotClass" if not defaults else f"{len(defaults)} default VolumeSnapshotClasses"
            )
            message = (
                f"Failed to set default snapshot class with error: there are {problem}; "
                "name one in spec.volumeSnapshotClassName"
            )
            return self._failed(vs, "SetDefaultSnapshotClassFailed", message, RETRY)
        patch = with_rv(vs, {"spec": {"volumeSnapshotClassName": objects.name_of(defaults[0])}})
        self.kube.patch(VOLUME_SNAPSHOTS, objects.name_of(vs), patch, objects.namespace_of(vs))
        return NEXT_STEP

    def _source_volume(self, vs: Obj, pvc_name: str) -> tuple[Obj, Obj] | float | None:
        """The Bound source claim and its PersistentVolume, or when to try again."""
        pvc = self.kube.get(PVCS, pvc_name, objects.namespace_of(vs))
        if pvc is None:
            message = f'Failed to create snapshot content with error: persistentvolumeclaims "{pvc_name}" not found'
            return self._failed(vs, "SnapshotContentCreationFailed", message, WAIT)
        if objects.is_deleting(pvc):
            message = f"Failed to create snapshot content with error: persistentvolumeclaim {pvc_name} is being deleted"
            return self._failed(vs, "SnapshotContentCreationFailed", message, RETRY)
        volume = dig(pvc, "spec", "volumeName")
        if dig(pvc, "status", "phase") != "Bound" or not volume:
            log.debug("snapshot %s waits for claim %s to be bound", key(vs), pvc_name)
            return WAIT
        pv = self.kube.get(PVS, volume)
        if pv is None or volume_path(self.layout, pv, pvc) is None:
            message = (
                f"Failed to create snapshot content with error: claim {pvc_name} is bound to {volume}, "
                f"which {DRIVER} did not provision"
            )
            return self._failed(vs, "SnapshotContentCreationFailed", message, RETRY)
        return pvc, pv

    def _start(self, vs: Obj, pvc_name: str, content_name: str) -> float | None:
        klass = self._snapshot_class(vs)
        if not isinstance(klass, dict):
            return klass
        if klass.get("driver") != DRIVER:
            return None  # another driver's snapshot: not ours to take
        found = self._source_volume(vs, pvc_name)
        if not isinstance(found, tuple):
            return found
        _, pv = found
        if SNAPSHOT_FINALIZER not in (objects.meta(vs).get("finalizers") or []):
            return self._add_finalizer(vs)
        m = objects.meta(vs)
        body = {
            "apiVersion": SNAPSHOT_API_VERSION,
            "kind": "VolumeSnapshotContent",
            "metadata": {"name": content_name},
            "spec": {
                "deletionPolicy": klass.get("deletionPolicy") or "Delete",
                "driver": DRIVER,
                "source": {"volumeHandle": objects.name_of(pv)},
                "sourceVolumeMode": dig(pv, "spec", "volumeMode") or "Filesystem",
                "volumeSnapshotClassName": objects.name_of(klass),
                "volumeSnapshotRef": {
                    "apiVersion": SNAPSHOT_API_VERSION,
                    "kind": "VolumeSnapshot",
                    "namespace": m["namespace"],
                    "name": m["name"],
                    "uid": m["uid"],
                },
            },
        }
        try:
            content = self.kube.create(VOLUME_SNAPSHOT_CONTENTS, body)
        except ApiException as exc:
            if not is_conflict(exc):
                raise
            return NEXT_STEP
        return self._size_content(vs, content, pv)

    def _size_content(self, vs: Obj, content: Obj, pv: Obj | None = None) -> float | None:
        """restoreSize of the content: the source volume's capacity."""
        pv = pv or self.kube.get(PVS, dig(content, "spec", "source", "volumeHandle") or "")
        if pv is None:
            return self._content_failed(vs, content, "its source volume was deleted before the snapshot was taken")
        self._content_status(
            content, {"readyToUse": False, "restoreSize": to_bytes(dig(pv, "spec", "capacity", "storage"))}
        )
        return NEXT_STEP

    def _content_failed(self, vs: Obj, content: Obj, why: str) -> float | None:
        message = f"Failed to create snapshot: {why}"
        self._content_status(content, {"readyToUse": False, "error": {"message": message, "time": now()}})
        return self._failed(vs, "SnapshotCreationFailed", message, None)

    def _take(self, vs: Obj, content: Obj, pvc_name: str) -> float | None:
        """Copy the source volume into the content's directory, holding both directories' locks."""
        pv_name = dig(content, "spec", "source", "volumeHandle") or ""
        dest = self.layout.snapshot(objects.name_of(content))
        try:
            src = self.layout.volume(pv_name)
        except ValueError:
            return self._content_failed(vs, content, f"its source volume {pv_name!r} is not a volume of {DRIVER}")
        with self.ctx.locks.hold(f"dir:{src}", f"dir:{dest}"):
            pvc = self.kube.get(PVCS, pvc_name, objects.namespace_of(vs))
            pv = self.kube.get(PVS, pv_name)
            if pvc is None or dig(pvc, "spec", "volumeName") != pv_name or volume_path(self.layout, pv, pvc) != src:
                why = f"volume {pv_name} of claim {pvc_name} went away before the snapshot was taken"
                return self._content_failed(vs, content, why)
            if os.path.lexists(dest):
                return NEXT_STEP
            self.ctx.record(
                vs, NORMAL, "CreatingSnapshot", f"Waiting for a snapshot {key(vs)} to be created by {DRIVER}."
            )
            try:
                populate(dest, lambda tmp: copy_tree(src, tmp, reflink=self.layout.reflink))
            except OSError as exc:
                message = f"Failed to create snapshot: copying volume {pv_name} failed: {exc}"
                return self._failed(vs, "SnapshotCreationFailed", message, RETRY)
        self.ctx.record(vs, NORMAL, "SnapshotCreated", f"Snapshot {key(vs)} was successfully created by {DRIVER}.")
        return NEXT_STEP

    # -- deletion -----------------------------------------------------------------------------------------
    def _delete_step(self, vs: Obj) -> float | None:
        finalizers = list(objects.meta(vs).get("finalizers") or [])
        if SNAPSHOT_FINALIZER not in finalizers:
            return None
        restoring = self.provisioner.restoring(objects.namespace_of(vs), objects.name_of(vs))
        if restoring:
            log.info("snapshot %s is deleted once %s are restored from it", key(vs), [key(p) for p in restoring])
            return WAIT
        content_name = f"snapcontent-{objects.uid_of(vs)}"
        content = self.kube.get(VOLUME_SNAPSHOT_CONTENTS, content_name)
        if content is None or dig(content, "spec", "deletionPolicy") != "Retain":
            dest = self.layout.snapshot(content_name)
            with self.ctx.locks.hold(f"dir:{dest}"):
                try:
                    removed = remove(self.layout, dest)
                except OSError as exc:
                    return self._failed(
                        vs, "SnapshotDeleteError", f"Failed to delete snapshot data {dest}: {exc}", RETRY
                    )
            if removed:
                return NEXT_STEP
            if content is not None:
                self.kube.delete(VOLUME_SNAPSHOT_CONTENTS, content_name, preconditions={"uid": objects.uid_of(content)})
                return NEXT_STEP
        patch = with_rv(vs, {"metadata": {"finalizers": [f for f in finalizers if f != SNAPSHOT_FINALIZER]}})
        self.kube.patch(VOLUME_SNAPSHOTS, objects.name_of(vs), patch, objects.namespace_of(vs))
        return None

    def _snapshot_status(self, vs: Obj, status: Obj) -> None:
        self.kube.patch_status(VOLUME_SNAPSHOTS, objects.name_of(vs), status, objects.namespace_of(vs))

    def _content_status(self, content: Obj, status: Obj) -> None:
        self.kube.patch_status(VOLUME_SNAPSHOT_CONTENTS, objects.name_of(content), status)
