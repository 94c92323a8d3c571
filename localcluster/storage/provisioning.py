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

Resolving the data source is `sources.py`'s; reclaiming the volume once its claim is gone is `reclaiming.py`'s.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

from kubernetes.client.exceptions import ApiException

from kube import objects
from kube.rest import PVCS, PVS, STORAGE_CLASSES, is_conflict
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
    WARNING,
    Context,
    Obj,
    dig,
    key,
    to_bytes,
)
from localcluster.storage.copying import copy_tree, populate
from localcluster.storage.sources import DataSources, Source, restores_from

log = logging.getLogger(__name__)

_BIND_ANNOTATIONS = {
    BIND_COMPLETED: "yes",
    BOUND_BY_CONTROLLER: "yes",
    STORAGE_PROVISIONER: DRIVER,
    BETA_STORAGE_PROVISIONER: DRIVER,
}


class Provisioner:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.kube = ctx.kube
        self.layout = ctx.layout
        self.sources = DataSources(ctx)

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
        source = self.sources.resolve(pvc, started=False)
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

    # -- the directory and the binding -----------------------------------------------------------------
    def _populate(self, pvc: Obj, pv: Obj) -> float | None:
        source = self.sources.resolve(pvc, started=True)
        if not isinstance(source, Source):
            return source
        pv_name = objects.name_of(pv)
        dest = self.layout.volume(pv_name)
        keys = [f"dir:{dest}"] + ([f"dir:{source.path}"] if source.path else [])
        with self.ctx.locks.hold(*keys):
            # Again under the locks: now nobody removes the source, the volume or the snapshot data meanwhile.
            again = self.sources.resolve(pvc, started=True)
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
