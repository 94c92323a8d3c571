"""The local platform's storage: what a CSI driver, external-provisioner and the snapshot controllers
provide on a real cluster, with host directories instead of disks, through the Kubernetes API only.

A PersistentVolumeClaim of any storage class is provisioned (the embedded default has no other
provisioner, so "gp2-csi" from the user's documents works as well as "local" or none), a
VolumeSnapshot of a Bound claim becomes an immutable point-in-time copy, and a claim with a
`dataSource` VolumeSnapshot (restore) or PersistentVolumeClaim (clone) starts as a copy of it.
Callers create claims and snapshots and wait for `Bound` / `readyToUse` exactly as on a real
cluster.

Layout of `data_root` (the storage keeps nothing else, no state files: its state is these
directories plus the API objects; other parts of the agent may use other subdirectories)::

    <data_root>/volumes/pvc-<claim uid>/             PersistentVolume pvc-<claim uid> (its hostPath)
    <data_root>/volumes/.pvc-<claim uid>.tmp/        the same while being filled (never referenced)
    <data_root>/snapshots/snapcontent-<vs uid>/      VolumeSnapshotContent snapcontent-<vs uid>
                                                     (its status.snapshotHandle); never written again
    <data_root>/snapshots/.snapcontent-<vs uid>.tmp/ the same while being copied

A directory appears under its final name only by a rename once complete, and only after the API
object that owns it exists (the PV; the snapshot's finalizer and content), so after a crash in
any state the next reconcile either finishes it or, if its owner is gone, removes it.

Reconciling (`reconcile_pvc`, `reconcile_volume_snapshot`, `reconcile_pv`) is level-triggered:
each call reads the object afresh, does the next step, and returns `None` when the object is
settled or else the seconds after which to call again (0.0: at once, there is another step).
Calls for different objects may run concurrently in threads; calls for the same object are
serialised here. API and filesystem errors do not raise: they are logged (and reported by an
Event or `status.error` where Kubernetes would) and a retry delay is returned.

What a controller must do: call `reconcile_pvc` / `reconcile_volume_snapshot` / `reconcile_pv` on
every event of a claim / snapshot / volume and for every object after a restart, and when a
claim is deleted call `reconcile_pv("pvc-<claim uid>")` (the PV exists from the first step on,
before the claim's `spec.volumeName` names it). One LocalStorage per data_root (one agent process):
the locks that keep a copy and a removal of the same directory apart live in this object.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from agent.storage.common import (
    DEFAULT_CLASS,
    DEFAULT_SNAPSHOT_CLASS,
    DEFAULT_STORAGE_CLASS,
    NEXT_STEP,
    PROVISIONER,
    RETRY,
    SNAPSHOT_API_VERSION,
    Context,
    Recorder,
)
from agent.storage.copying import KeyedLocks, Layout
from agent.storage.provisioning import Provisioner
from agent.storage.reclaiming import Reclaimer
from agent.storage.snapshotting import Snapshotter
from kube.events import Recorder as EventRecorder
from kube.rest import STORAGE_CLASSES, VOLUME_SNAPSHOT_CLASSES, Kube, is_conflict

log = logging.getLogger(__name__)


class LocalStorage:
    """Directories under data_root back PVCs; immutable copies back VolumeSnapshots."""

    PROVISIONER = PROVISIONER

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        data_root: Path,
        *,
        recorder: Callable[[dict[str, Any], str, str, str], None] | None = None,
    ) -> None:
        self._kube = Kube(api)
        layout = Layout(data_root)
        layout.ensure()
        record: Recorder = recorder or EventRecorder(self._kube, PROVISIONER, host=socket.gethostname()).event
        ctx = Context(kube=self._kube, layout=layout, locks=KeyedLocks(), record=record)
        self._provisioner = Provisioner(ctx)
        self._snapshotter = Snapshotter(ctx, self._provisioner)
        self._reclaimer = Reclaimer(ctx)
        self.data_root = layout.root

    def ensure_defaults(self) -> None:
        """Create the default StorageClass and VolumeSnapshotClass "local" unless they exist (never changed)."""
        storage_class = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": DEFAULT_CLASS, "annotations": {DEFAULT_STORAGE_CLASS: "true"}},
            "provisioner": PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        }
        snapshot_class = {
            "apiVersion": SNAPSHOT_API_VERSION,
            "kind": "VolumeSnapshotClass",
            "metadata": {"name": DEFAULT_CLASS, "annotations": {DEFAULT_SNAPSHOT_CLASS: "true"}},
            "driver": PROVISIONER,
            "deletionPolicy": "Delete",
        }
        for res, body in ((STORAGE_CLASSES, storage_class), (VOLUME_SNAPSHOT_CLASSES, snapshot_class)):
            try:
                self._kube.create(res, body)
            except ApiException as exc:
                if not is_conflict(exc):
                    raise

    def reconcile_pvc(self, namespace: str, name: str) -> float | None:
        return self._guard(
            f"PersistentVolumeClaim {namespace}/{name}", self._provisioner.reconcile_claim, namespace, name
        )

    def reconcile_volume_snapshot(self, namespace: str, name: str) -> float | None:
        return self._guard(f"VolumeSnapshot {namespace}/{name}", self._snapshotter.reconcile_snapshot, namespace, name)

    def reconcile_pv(self, name: str) -> float | None:
        return self._guard(f"PersistentVolume {name}", self._reclaimer.reconcile_volume, name)

    @staticmethod
    def _guard(what: str, step: Callable[..., float | None], *args: str) -> float | None:
        try:
            return step(*args)
        except ApiException as exc:
            if exc.status == 409:  # a write raced another writer: read again and redo the step
                log.info("%s: conflict (%s), retrying", what, exc.reason)
                return NEXT_STEP
            log.warning("%s: API error %s %s: %s", what, exc.status, exc.reason, exc.body)
            return RETRY
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            log.warning("%s: %s", what, exc, exc_info=True)
            return RETRY
