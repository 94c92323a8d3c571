"""Where a new volume's data comes from: nothing, a ready VolumeSnapshot of our driver (restore) or a Bound
claim of our driver (clone), named by `dataSourceRef` or `dataSource`, as external-provisioner checks them.

`DataSources.resolve` returns a `Source`, or (after a ProvisioningFailed event saying why) the seconds
after which to look again, or None when nothing will change it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kube import objects
from kube.rest import PVCS, PVS, VOLUME_SNAPSHOT_CONTENTS, VOLUME_SNAPSHOTS
from localcluster.storage.common import (
    DRIVER,
    PROVISIONED_BY,
    RETRY,
    SNAPSHOT_GROUP,
    WAIT,
    WARNING,
    Context,
    Obj,
    binary_quantity,
    dig,
    path_of,
    to_bytes,
)
from localcluster.storage.copying import Layout


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


class DataSources:
    """Resolves a claim's data source (see the module docstring)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.kube = ctx.kube
        self.layout = ctx.layout

    def _failed(self, pvc: Obj, message: str, delay: float | None) -> float | None:
        self.ctx.record(pvc, WARNING, "ProvisioningFailed", message)
        return delay

    def resolve(self, pvc: Obj, *, started: bool) -> Source | float | None:
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
