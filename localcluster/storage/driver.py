"""The local CSI-style storage driver: what a CSI driver, external-provisioner, the snapshot controllers
and the PV controller provide on a real cluster, with directories in a reflink storage pool.

A PersistentVolumeClaim whose StorageClass's provisioner is `local.csi.volsync-addon.io` gets a
PersistentVolume (`spec.local.path`, pinned to this node), a VolumeSnapshot of such a claim whose
class names our driver becomes an immutable point-in-time copy, and a claim with a `dataSource` /
`dataSourceRef` VolumeSnapshot (restore) or PersistentVolumeClaim (clone) starts as a copy of it.
In the pool (see `pool.py`) a copy is a reflink copy: metadata, not data. Claims and snapshots of
other provisioners / drivers are left alone.

Layout of `root` (the driver keeps nothing else, no state files: its state is these directories
plus the API objects)::

    <root>/pool.img                                  the pool's XFS image (absent in plain-directory mode)
    <root>/pool/volumes/pvc-<claim uid>/             PersistentVolume pvc-<claim uid> (its local.path)
    <root>/pool/volumes/.pvc-<claim uid>.tmp/        the same while being filled (never referenced)
    <root>/pool/snapshots/snapcontent-<vs uid>/      VolumeSnapshotContent snapcontent-<vs uid>
                                                     (its status.snapshotHandle); never written again
    <root>/pool/snapshots/.snapcontent-<vs uid>.tmp/ the same while being copied

A directory appears under its final name only by a rename once complete, and only after the API
object that owns it exists, so after a crash in any state the next reconcile either finishes it or,
if its owner is gone, removes it.

    driver = StorageDriver(runtime, kube, state_dir / "storage", node_name="cluster1")
    driver.start()          # pool made or adopted, CSIDriver and classes ensured
    runtime.start()
    ...
    runtime.stop(); driver.stop(release=True)   # release=False keeps the pool mounted for a restart

The reconcilers (`claims`, `snapshots`, `volumes`, `capacity`) are registered on `runtime` in
`__init__`; each reconcile reads its object afresh from the API (writes carry resourceVersions) and
does one step; `reconcile_pvc` / `reconcile_volume_snapshot` / `reconcile_pv` drive them directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path

import urllib3
from kubernetes.client.exceptions import ApiException

from kube import objects
from kube.clock import Clock, SystemClock
from kube.controller import Runtime, Watch
from kube.events import Recorder as EventRecorder
from kube.rest import PVCS, PVS, STORAGE_CLASSES, VOLUME_SNAPSHOTS, Kube
from localcluster.storage import classes, pool
from localcluster.storage.common import DEFAULT_CLASS, DRIVER, NEXT_STEP, RETRY, Context, Obj, dig
from localcluster.storage.copying import KeyedLocks, Layout
from localcluster.storage.provisioning import Provisioner
from localcluster.storage.reclaiming import Reclaimer
from localcluster.storage.snapshotting import Snapshotter

log = logging.getLogger(__name__)

CAPACITY_PERIOD = 30.0  # seconds between updates of the published free space
_CAPACITY_KEY = "capacity"


def _claim_volume(obj: Obj) -> Iterable[Hashable]:
    """A claim's event concerns the volume provisioned for it (`pvc-<uid>`), bound yet or not."""
    uid = objects.uid_of(obj)
    return [("", f"pvc-{uid}")] if uid else []


class _Step:
    """One reconciler of the driver: a name, its watches and the step it runs for a key."""

    def __init__(self, name: str, watches: Sequence[Watch], step: Callable[[Hashable], float | None]) -> None:
        self.name = name
        self.watches = watches
        self._step = step

    def reconcile(self, key: Hashable) -> float | None:
        return self._step(key)


class StorageDriver:
    """The local CSI-style driver of one cluster (see the module docstring)."""

    DRIVER = DRIVER

    def __init__(self, runtime: Runtime, kube: Kube, root: Path, *, node_name: str, clock: Clock | None = None,
                 pool_size: int = 64 << 30, storage_classes: tuple[str, ...] = ("gp2-csi",),
                 snapshot_classes: tuple[str, ...] = ("csi-aws-vsc", "gp2-csi")) -> None:
        self.runtime = runtime
        self.kube = kube
        self.root = root
        self.node_name = node_name
        self.clock = clock or SystemClock()
        self.pool_size = pool_size
        self.storage_classes = storage_classes
        self.snapshot_classes = snapshot_classes
        self.pool: pool.Pool | None = None
        self._ctx: Context | None = None
        self._capacity_served = True
        runtime.add(_Step("storage-claims", [Watch(PVCS), Watch(STORAGE_CLASSES, self._pending_claims),
                                             Watch(PVCS, self._copies_of), Watch(VOLUME_SNAPSHOTS, self._copies_of)],
                          lambda k: self._namespaced(k, self.reconcile_pvc)))
        runtime.add(_Step("storage-snapshots", [Watch(VOLUME_SNAPSHOTS), Watch(PVCS, self._snapshots_of)],
                          lambda k: self._namespaced(k, self.reconcile_volume_snapshot)))
        runtime.add(_Step("storage-volumes", [Watch(PVS), Watch(PVCS, _claim_volume)],
                          lambda k: self._namespaced(k, lambda _ns, name: self.reconcile_pv(name))))
        runtime.add(_Step("storage-capacity", [Watch(STORAGE_CLASSES, lambda _obj: [_CAPACITY_KEY])],
                          lambda _k: self._publish_capacity()))

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> StorageDriver:
        """Make or adopt the pool, then create the CSIDriver and the classes that are missing."""
        self.pool = pool.open_pool(self.root, self.pool_size)
        layout = Layout(self.pool.path, reflink=self.pool.reflink)
        layout.ensure()
        recorder = EventRecorder(self.kube, DRIVER, host=self.node_name, clock=self.clock)
        self._ctx = Context(kube=self.kube, layout=layout, locks=KeyedLocks(), record=recorder.event,
                            node_name=self.node_name)
        self._provisioner = Provisioner(self._ctx)
        self._snapshotter = Snapshotter(self._ctx, self._provisioner)
        self._reclaimer = Reclaimer(self._ctx)
        classes.ensure_classes(self.kube, self.storage_classes, self.snapshot_classes)
        return self

    def stop(self, release: bool = True) -> None:
        """Release the pool (unmount, detach its loop device) unless `release` is False (a restart adopts it)."""
        if release and self.pool is not None:
            pool.release(self.pool)

    @property
    def layout(self) -> Layout:
        if self._ctx is None:
            raise RuntimeError("StorageDriver.start() was not called")
        return self._ctx.layout

    # -- reconciles -----------------------------------------------------------------------------------
    def reconcile_pvc(self, namespace: str, name: str) -> float | None:
        return self._guard(f"PersistentVolumeClaim {namespace}/{name}",
                           lambda: self._provisioner.reconcile_claim(namespace, name))

    def reconcile_volume_snapshot(self, namespace: str, name: str) -> float | None:
        return self._guard(f"VolumeSnapshot {namespace}/{name}",
                           lambda: self._snapshotter.reconcile_snapshot(namespace, name))

    def reconcile_pv(self, name: str) -> float | None:
        return self._guard(f"PersistentVolume {name}", lambda: self._reclaimer.reconcile_volume(name))

    def _publish_capacity(self) -> float | None:
        if self.pool is None or not self._capacity_served:
            return None
        ours = [objects.name_of(c) for c in self.runtime.cache(STORAGE_CLASSES).items()
                if c.get("provisioner") == DRIVER] or [DEFAULT_CLASS]
        total, free = pool.free_bytes(self.pool)
        served = self._guard("CSIStorageCapacity", lambda: 0.0 if classes.publish_capacity(
            self.kube, ours, self.node_name, free, total) else None)
        if served is None:
            log.info("the API server does not serve csistoragecapacities: the pool's free space is not published")
            self._capacity_served = False
            return None
        return CAPACITY_PERIOD

    @staticmethod
    def _namespaced(key: Hashable, step: Callable[[str, str], float | None]) -> float | None:
        namespace, name = key if isinstance(key, tuple) else ("", str(key))
        return step(str(namespace), str(name))

    def _guard(self, what: str, step: Callable[[], float | None]) -> float | None:
        if self._ctx is None:
            raise RuntimeError("StorageDriver.start() was not called")
        try:
            return step()
        except ApiException as exc:
            if exc.status == 409:  # a write raced another writer: read again and redo the step
                log.info("%s: conflict (%s), retrying", what, exc.reason)
                return NEXT_STEP
            log.warning("%s: API error %s %s: %s", what, exc.status, exc.reason, exc.body)
            return RETRY
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            log.warning("%s: %s", what, exc, exc_info=True)
            return RETRY

    # -- watch mappings ---------------------------------------------------------------------------------
    def _pending_claims(self, klass: Obj) -> Iterable[Hashable]:
        """A class appearing or changing concerns the claims still waiting for a volume."""
        return [(objects.namespace_of(c), objects.name_of(c)) for c in self.runtime.cache(PVCS).items()
                if dig(c, "status", "phase") != "Bound"]

    def _copies_of(self, source: Obj) -> Iterable[Hashable]:
        """A claim's or snapshot's change concerns the pending claims cloned or restored from it."""
        ns, name, kind = objects.namespace_of(source), objects.name_of(source), source.get("kind")
        if kind is None:
            kind = "VolumeSnapshot" if "source" in (source.get("spec") or {}) else "PersistentVolumeClaim"
        return [(ns, objects.name_of(c)) for c in self.runtime.cache(PVCS).items(ns)
                if dig(c, "status", "phase") != "Bound" and any(
                    (ref or {}).get("kind") == kind and (ref or {}).get("name") == name
                    for ref in (dig(c, "spec", "dataSource"), dig(c, "spec", "dataSourceRef")))]

    def _snapshots_of(self, claim: Obj) -> Iterable[Hashable]:
        """A claim's change concerns the snapshots taken of it (waiting for it to be bound)."""
        ns, name = objects.namespace_of(claim), objects.name_of(claim)
        return [(ns, objects.name_of(vs)) for vs in self.runtime.cache(VOLUME_SNAPSHOTS).items()
                if objects.namespace_of(vs) == ns and dig(vs, "spec", "source", "persistentVolumeClaimName") == name
                and not dig(vs, "status", "readyToUse")]
