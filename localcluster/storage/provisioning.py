"""PersistentVolumeClaim provisioning by the local CSI-style driver: empty volumes, restores and clones.

What external-provisioner and kube-controller-manager's PV controller do on a real cluster, for the
claims whose StorageClass names our driver as its provisioner (a claim without `storageClassName`
gets the default class, as the retroactive default StorageClass assignment does; a claim of another
provisioner's class, or of a class that does not exist, is left alone and stays Pending). One step
per reconcile call:

1. PersistentVolume `pvc-<claim uid>` (phase Pending, `claimRef` to the claim, `spec.local.path`
   and a node affinity to this node): created *before* any directory, so a directory always has an
   owner whose reclaim removes it.
2. Its directory `<pool>/volumes/pvc-<claim uid>`: empty, or a (reflink) copy of the claim's data
   source (a ready VolumeSnapshot's content, or a Bound claim for a clone), filled under a
   staging name and renamed into place.
3. PV status Bound; 4. claim `spec.volumeName` and bind annotations; 5. claim status Bound.

Reclaiming the volume once its claim is gone is `reclaiming.py`'s.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from kubernetes.client.exceptions import ApiException

from kube import objects
from kube.rest import PVCS, PVS, STORAGE_CLASSES, VOLUME_SNAPSHOT_CONTENTS, VOLUME_SNAPSHOTS, is_conflict
from localcluster.storage.common import (
    BETA_STORAGE_PROVISIONER,
    BIND_COMPLETED,
    BOUND_BY_CONTROLLER,
    DEFAULT_STORAGE_CLASS,
    DRIVER,
    HOSTNAME_LABEL,
    NEXT_STEP,
    NORMAL,
    PROVISIONED_BY,
    PV_FINALIZER,
    RETRY,
    SNAPSHOT_GROUP,
    STORAGE_PROVISIONER,
    WAIT,
    WARNING,
    Context,
    Obj,
    binary_quantity,
    dig,
    key,
    path_of,
    to_bytes,
)
from localcluster.storage.copying import Layout, copy_tree, populate

log = logging.getLogger(__name__)

_BIND_ANNOTATIONS = {
    BIND_COMPLETED: "yes",
    BOUND_BY_CONTROLLER: "yes",
    STORAGE_PROVISIONER: DRIVER,
    BETA_STORAGE_PROVISIONER: DRIVER,
}


@dataclass(frozen=True)
class Source:
    """Where a new volume's data comes from: `path` is copied, None means an empty volume."""

    path: Path | None
    what: str


def volume_path(layout: Layout, pv: Obj | None, claim: Obj) -> Path | None:
    """The directory of `pv` if our driver provisioned it and it is bound to `claim`."""
    if pv is None or objects.annotations_of(pv).get(PROVISIONED_BY) != DRIVER:
        return None
    if dig(pv, "spec", "claimRef", "uid") != objects.uid_of(claim):
        return None
    try:
        path = layout.volume(objects.name_of(pv))
    except ValueError:
        return None
    return path if path_of(pv) == str(path) else None


def restores_from(pvc: Obj, kind: str, group: str, name: str) -> bool:
    ref = dig(pvc, "spec", "dataSourceRef") or dig(pvc, "spec", "dataSource") or {}
    return bool(ref.get("kind") == kind and (ref.get("apiGroup") or "") == group and ref.get("name") == name)


class Provisioner:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.kube = ctx.kube
        self.layout = ctx.layout

    # -- claims -----------------------------------------------------------------------------------------
    def reconcile_claim(self, namespace: str, name: str) -> float | None:
        with self.ctx.locks.hold(f"pvc:{namespace}/{name}"):
            return self._claim_step(namespace, name)

    def _claim_step(self, namespace: str, name: str) -> float | None:
        pvc = self.kube.get(PVCS, name, namespace)
        if pvc is None or objects.is_deleting(pvc):
            return None
        pv_name = f"pvc-{objects.uid_of(pvc)}"
        bound_to = dig(pvc, "spec", "volumeName")
        if bound_to and bound_to != pv_name:
            return None  # pre-bound to a volume our driver did not provision: not ours to bind
        if bound_to and dig(pvc, "status", "phase") == "Bound":
            return None
        pv = self.kube.get(PVS, pv_name)
        if pv is None and bound_to:
            return self._lost(pvc)
        if pv is None:
            klass = self._class_of(pvc)
            if klass is None or klass.get("provisioner") != DRIVER:
                return None  # another provisioner's claim, or its class does not exist (yet): not ours
            return self._create_volume(pvc, pv_name, klass)
        if dig(pv, "spec", "claimRef", "uid") != objects.uid_of(pvc):
            log.warning("PersistentVolume %s does not claim %s; leaving both alone", pv_name, key(pvc))
            return None
        if not os.path.lexists(self.layout.volume(pv_name)):
            return self._populate(pvc, pv)
        if dig(pv, "status", "phase") != "Bound":
            self._volume_status(pv, {"phase": "Bound"})
            return NEXT_STEP
        annotations = objects.annotations_of(pvc)
        if not bound_to or any(annotations.get(k) != v for k, v in _BIND_ANNOTATIONS.items()):
            self._bind(pvc, pv)
            return NEXT_STEP
        status = {
            "phase": "Bound",
            "accessModes": dig(pv, "spec", "accessModes"),
            "capacity": dig(pv, "spec", "capacity"),
        }
        self._claim_status(pvc, status)
        return None

    def _failed(self, pvc: Obj, message: str, delay: float | None) -> float | None:
        self.ctx.record(pvc, WARNING, "ProvisioningFailed", message)
        return delay

    def _request_problem(self, pvc: Obj) -> str | None:
        request = dig(pvc, "spec", "resources", "requests", "storage")
        try:
            to_bytes(request)
        except (ValueError, ArithmeticError, TypeError):
            return f"claim {key(pvc)} requests no valid size (spec.resources.requests.storage: {request!r})"
        if dig(pvc, "spec", "volumeMode") == "Block":
            return (
                f"volumeMode Block is not supported by {DRIVER}: its volumes are directories "
                "(use volumeMode Filesystem)"
            )
        return None

    def _create_volume(self, pvc: Obj, pv_name: str, klass: Obj) -> float | None:
        problem = self._request_problem(pvc)
        if problem:
            return self._failed(pvc, problem, None)
        source = self._source(pvc, started=False)
        if not isinstance(source, Source):
            return source
        policy = klass.get("reclaimPolicy") if klass.get("reclaimPolicy") in ("Delete", "Retain") else "Delete"
        self.ctx.record(
            pvc, NORMAL, "Provisioning", f'External provisioner is provisioning volume for claim "{key(pvc)}"'
        )
        m = objects.meta(pvc)
        spec: Obj = {
            "capacity": {"storage": dig(pvc, "spec", "resources", "requests", "storage")},
            "accessModes": dig(pvc, "spec", "accessModes") or ["ReadWriteOnce"],
            "local": {"path": str(self.layout.volume(pv_name))},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": HOSTNAME_LABEL, "operator": "In", "values": [self.ctx.node_name]}]}]}},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": m["namespace"],
                "name": m["name"],
                "uid": m["uid"],
            },
            "persistentVolumeReclaimPolicy": policy,
            "volumeMode": dig(pvc, "spec", "volumeMode") or "Filesystem",
            "storageClassName": objects.name_of(klass),
        }
        metadata: Obj = {"name": pv_name, "annotations": {PROVISIONED_BY: DRIVER}}
        if policy == "Delete":
            metadata["finalizers"] = [PV_FINALIZER]
        try:
            self.kube.create(PVS, {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": metadata, "spec": spec})
        except ApiException as exc:
            if not is_conflict(exc):
                raise
        return NEXT_STEP

    def _class_of(self, pvc: Obj) -> Obj | None:
        """The claim's StorageClass (the default one if it names none; `""` names none on purpose), if it exists."""
        name = dig(pvc, "spec", "storageClassName")
        if name is None:  # the newest default class wins, as in Kubernetes
            classes = self.kube.list(STORAGE_CLASSES)[0]
            defaults = [c for c in classes if objects.annotations_of(c).get(DEFAULT_STORAGE_CLASS) == "true"]
            defaults.sort(key=lambda c: (objects.meta(c).get("creationTimestamp") or "", objects.name_of(c)))
            return defaults[-1] if defaults else None
        return self.kube.get(STORAGE_CLASSES, name) if name else None

    # -- data sources -------------------------------------------------------------------------------------
    def _source(self, pvc: Obj, *, started: bool) -> Source | float | None:
        """What to fill the claim's volume with, or (after an event saying why) when to try again."""
        ref = dig(pvc, "spec", "dataSourceRef") or dig(pvc, "spec", "dataSource")
        if not ref:
            return Source(None, "an empty volume")
        kind, group, name = ref.get("kind"), ref.get("apiGroup") or "", ref.get("name") or ""
        if ref.get("namespace") not in (None, "", objects.namespace_of(pvc)):
            return self._failed(pvc, f"cross-namespace data sources are not supported by {DRIVER}", None)
        if kind == "VolumeSnapshot" and group == SNAPSHOT_GROUP:
            return self._snapshot_source(pvc, name, started)
        if kind == "PersistentVolumeClaim" and group == "":
            return self._clone_source(pvc, name)
        return self._failed(
            pvc,
            f"data source {kind} {name!r} (apiGroup {group!r}) is not supported by {DRIVER}: "
            f"use a VolumeSnapshot ({SNAPSHOT_GROUP}) or a PersistentVolumeClaim",
            None,
        )

    def _too_small(self, pvc: Obj, size: int, what: str) -> str | None:
        request = dig(pvc, "spec", "resources", "requests", "storage")
        if to_bytes(request) >= size:
            return None
        return (
            f"requested volume size {request} ({to_bytes(request)} bytes) is less than the size "
            f"{binary_quantity(size)} ({size} bytes) of the source {what}"
        )

    def _snapshot_source(self, pvc: Obj, name: str, started: bool) -> Source | float | None:
        vs = self.kube.get(VOLUME_SNAPSHOTS, name, objects.namespace_of(pvc))
        if vs is None:
            return self._failed(
                pvc, f'error getting snapshot {name}: volumesnapshots.{SNAPSHOT_GROUP} "{name}" not found', WAIT
            )
        if objects.is_deleting(vs) and not started:
            return self._failed(pvc, f"snapshot {name} is currently being deleted", RETRY)
        content_name = dig(vs, "status", "boundVolumeSnapshotContentName")
        if not dig(vs, "status", "readyToUse") or not content_name:
            return self._failed(pvc, f"snapshot {name} is not ready to use yet", WAIT)
        content = self.kube.get(VOLUME_SNAPSHOT_CONTENTS, content_name)
        if content is None or dig(content, "spec", "volumeSnapshotRef", "uid") != objects.uid_of(vs):
            return self._failed(pvc, f"snapshot {name} has no VolumeSnapshotContent of its own ({content_name})", RETRY)
        if dig(content, "spec", "driver") != DRIVER:
            driver = dig(content, "spec", "driver")
            return self._failed(pvc, f"snapshot {name} was taken by {driver}, not by {DRIVER}", RETRY)
        try:
            path: Path | None = self.layout.snapshot(content_name)
        except ValueError:
            path = None
        if path is None or dig(content, "status", "snapshotHandle") != str(path) or not path.is_dir():
            handle = dig(content, "status", "snapshotHandle")
            return self._failed(pvc, f"the data of snapshot {name} is missing (snapshotHandle {handle!r})", RETRY)
        try:
            restore_size = to_bytes(dig(vs, "status", "restoreSize") or dig(content, "status", "restoreSize") or 0)
        except ValueError:
            restore_size = 0
        problem = self._too_small(pvc, restore_size, f"snapshot {name}")
        if problem:
            return self._failed(pvc, problem, RETRY)
        return Source(path, f"snapshot {name}")

    def _clone_source(self, pvc: Obj, name: str) -> Source | float | None:
        src = self.kube.get(PVCS, name, objects.namespace_of(pvc))
        if src is None:
            return self._failed(
                pvc, f'error getting source claim {name}: persistentvolumeclaims "{name}" not found', WAIT
            )
        if objects.is_deleting(src):
            return self._failed(pvc, f"source claim {name} is being deleted", RETRY)
        volume = dig(src, "spec", "volumeName")
        if dig(src, "status", "phase") != "Bound" or not volume:
            return self._failed(pvc, f"source claim {name} is not bound yet", WAIT)
        path = volume_path(self.layout, self.kube.get(PVS, volume), src)
        if path is None or not path.is_dir():
            return self._failed(
                pvc, f"source claim {name} is bound to {volume}, which {DRIVER} did not provision", RETRY
            )
        problem = self._too_small(pvc, to_bytes(dig(src, "status", "capacity", "storage") or 0), f"volume {name}")
        if problem:
            return self._failed(pvc, problem, RETRY)
        return Source(path, f"volume {name}")

    # -- the directory and the binding -----------------------------------------------------------------
    def _populate(self, pvc: Obj, pv: Obj) -> float | None:
        source = self._source(pvc, started=True)
        if not isinstance(source, Source):
            return source
        pv_name = objects.name_of(pv)
        dest = self.layout.volume(pv_name)
        keys = [f"dir:{dest}"] + ([f"dir:{source.path}"] if source.path else [])
        with self.ctx.locks.hold(*keys):
            # Again under the locks: now nobody removes the source, the volume or the snapshot data meanwhile.
            again = self._source(pvc, started=True)
            if not isinstance(again, Source):
                return again
            current = self.kube.get(PVS, pv_name)
            claim = self.kube.get(PVCS, objects.name_of(pvc), objects.namespace_of(pvc))
            if current is None or claim is None or objects.uid_of(claim) != objects.uid_of(pvc):
                return NEXT_STEP
            if again.path != source.path:
                return NEXT_STEP
            if objects.is_deleting(current):
                log.warning("PersistentVolume %s is being deleted before %s was bound to it", pv_name, key(pvc))
                return RETRY
            if os.path.lexists(dest):
                return NEXT_STEP
            src = again.path

            def fill(tmp: Path) -> None:
                if src is not None:
                    copy_tree(src, tmp, reflink=self.layout.reflink)

            try:
                populate(dest, fill)
            except OSError as exc:
                return self._failed(pvc, f"failed to provision volume {pv_name} from {again.what}: {exc}", RETRY)
        self.ctx.record(pvc, NORMAL, "ProvisioningSucceeded", f"Successfully provisioned volume {pv_name}")
        return NEXT_STEP

    def _bind(self, pvc: Obj, pv: Obj) -> None:
        body = copy.deepcopy(pvc)
        spec = body.setdefault("spec", {})
        spec["volumeName"] = objects.name_of(pv)
        if spec.get("storageClassName") is None and dig(pv, "spec", "storageClassName") is not None:
            spec["storageClassName"] = dig(pv, "spec", "storageClassName")
        m = body["metadata"]
        m["annotations"] = {**(m.get("annotations") or {}), **_BIND_ANNOTATIONS}
        self.kube.replace(PVCS, body)

    def _lost(self, pvc: Obj) -> float | None:
        if dig(pvc, "status", "phase") != "Lost":
            self._claim_status(pvc, {"phase": "Lost"})
            self.ctx.record(
                pvc, WARNING, "ClaimLost", "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
            )
        return None

    def _claim_status(self, pvc: Obj, status: Obj) -> None:
        self.kube.patch_status(PVCS, objects.name_of(pvc), status, objects.namespace_of(pvc))

    def _volume_status(self, pv: Obj, status: Obj) -> None:
        self.kube.patch_status(PVS, objects.name_of(pv), status)

    # -- used by the snapshotter ----------------------------------------------------------------------------
    def restoring(self, namespace: str, snapshot: str) -> list[Obj]:
        """Claims whose restore from `snapshot` has started (their PV exists) but whose data is not complete."""
        found = []
        for pvc in self.kube.list(PVCS, namespace)[0]:
            if objects.is_deleting(pvc) or dig(pvc, "status", "phase") == "Bound":
                continue
            if not restores_from(pvc, "VolumeSnapshot", SNAPSHOT_GROUP, snapshot):
                continue
            pv_name = f"pvc-{objects.uid_of(pvc)}"
            if self.kube.get(PVS, pv_name) is not None and not os.path.lexists(self.layout.volume(pv_name)):
                found.append(pvc)
        return found
