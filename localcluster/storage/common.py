"""Names, annotations and small helpers shared by the local CSI-style driver's provisioner, snapshotter
and reclaimer."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from kubernetes.utils import quantity

from kube import objects
from kube.clock import rfc3339

if TYPE_CHECKING:
    from kube.rest import Kube
    from localcluster.storage.copying import KeyedLocks, Layout

Obj = dict[str, Any]
Recorder = Callable[[Obj, str, str, str], None]

DRIVER = "local.csi.volsync-addon.io"  # the CSIDriver, provisioner and snapshot driver name
DEFAULT_CLASS = "local-csi"  # the default StorageClass
DEFAULT_SNAPSHOT_CLASS_NAME = "local-csi-snapclass"  # the default VolumeSnapshotClass
HOSTNAME_LABEL = "kubernetes.io/hostname"  # the node label volumes and capacities are pinned by

SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
SNAPSHOT_API_VERSION = f"{SNAPSHOT_GROUP}/v1"

# Annotations and finalizers with the meaning Kubernetes gives them.
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
DEFAULT_STORAGE_CLASS = "storageclass.kubernetes.io/is-default-class"
DEFAULT_SNAPSHOT_CLASS = "snapshot.storage.kubernetes.io/is-default-class"
PV_FINALIZER = "external-provisioner.volume.kubernetes.io/finalizer"
SNAPSHOT_FINALIZER = "local.csi.volsync-addon.io/snapshot-protection"

NORMAL = "Normal"
WARNING = "Warning"

# What a reconcile returns when it is not settled: seconds until the caller should call it again.
NEXT_STEP = 0.0  # more to do right away (each call does one step)
WAIT = 2.0  # waiting for another object (a snapshot to become ready, a claim to be bound)
RETRY = 10.0  # something failed; the event / status says what


@dataclass(frozen=True)
class Context:
    """What the provisioner, snapshotter and reclaimer share: the API, the directories, the locks, the
    events, and the node the volumes live on."""

    kube: Kube
    layout: Layout
    locks: KeyedLocks
    record: Recorder
    node_name: str


def path_of(pv: Obj) -> str | None:
    """A PersistentVolume's directory: `spec.local.path`, or `spec.hostPath.path` of older volumes."""
    found = dig(pv, "spec", "local", "path") or dig(pv, "spec", "hostPath", "path")
    return found if isinstance(found, str) else None


def dig(obj: Any, *path: str) -> Any:
    """`obj[path[0]][path[1]]...`, or None where a step is missing or not a mapping."""
    cur = obj
    for step in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(step)
    return cur


def key(obj: Obj) -> str:
    """`namespace/name` (or `name` for cluster-scoped objects), as events and messages show it."""
    ns, name = objects.namespace_of(obj), objects.name_of(obj)
    return f"{ns}/{name}" if ns else name


def with_rv(obj: Obj, patch: Obj) -> Obj:
    """`patch` carrying `obj`'s resourceVersion: the server answers 409 if the object changed since it was read."""
    return {
        **patch,
        "metadata": {**(patch.get("metadata") or {}), "resourceVersion": objects.meta(obj)["resourceVersion"]},
    }


def to_bytes(value: Any) -> int:
    """A resource quantity ("2Gi", "500M", 1024) in bytes, rounded up; ValueError if it is not one."""
    if value is None or value == "":
        raise ValueError("no quantity")
    parse = cast(Callable[[Any], Decimal], quantity.parse_quantity)  # the client leaves it unannotated
    return int(math.ceil(parse(value)))


_BINARY = (("Ei", 1 << 60), ("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10))


def binary_quantity(size: int) -> str:
    """`size` bytes as Kubernetes prints a BinarySI quantity: 2147483648 -> "2Gi", 1500 -> "1500"."""
    for suffix, factor in _BINARY:
        if size and size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)


def now() -> str:
    return rfc3339(datetime.now(UTC))


def rfc3339_from_ns(ns: int) -> str:
    return rfc3339(datetime.fromtimestamp(ns / 1e9, UTC))
