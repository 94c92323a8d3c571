"""The objects a CSI driver's installation brings: CSIDriver, StorageClasses, VolumeSnapshotClasses, and
the CSIStorageCapacity objects external-provisioner publishes for the pool's free space.

Classes are created once and never overwritten (an admin may edit them); kinds the API server does
not serve (404: `csidrivers`, `csistoragecapacities` on an older server) are skipped with a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kubernetes.client.exceptions import ApiException

from kube.rest import (
    CSI_DRIVERS,
    CSI_STORAGE_CAPACITIES,
    STORAGE_CLASSES,
    VOLUME_SNAPSHOT_CLASSES,
    Kube,
    Resource,
    is_conflict,
    is_not_found,
)
from localcluster.storage.common import (
    DEFAULT_CLASS,
    DEFAULT_SNAPSHOT_CLASS,
    DEFAULT_SNAPSHOT_CLASS_NAME,
    DEFAULT_STORAGE_CLASS,
    DRIVER,
    HOSTNAME_LABEL,
    SNAPSHOT_API_VERSION,
    Obj,
    binary_quantity,
)

log = logging.getLogger(__name__)

CAPACITY_NAMESPACE = "kube-system"


def driver_object() -> Obj:
    """The CSIDriver: no attach step, volumes are node-local and need no per-Pod info."""
    return {
        "metadata": {"name": DRIVER},
        "spec": {"attachRequired": False, "podInfoOnMount": False, "storageCapacity": True,
                 "volumeLifecycleModes": ["Persistent"], "fsGroupPolicy": "File"},
    }


def storage_class(name: str, *, default: bool) -> Obj:
    meta: Obj = {"name": name}
    if default:
        meta["annotations"] = {DEFAULT_STORAGE_CLASS: "true"}
    return {"metadata": meta, "provisioner": DRIVER, "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate", "allowVolumeExpansion": False}


def snapshot_class(name: str, *, default: bool) -> Obj:
    meta: Obj = {"name": name}
    if default:
        meta["annotations"] = {DEFAULT_SNAPSHOT_CLASS: "true"}
    return {"apiVersion": SNAPSHOT_API_VERSION, "kind": "VolumeSnapshotClass", "metadata": meta,
            "driver": DRIVER, "deletionPolicy": "Delete"}


def ensure_classes(kube: Kube, storage_classes: Iterable[str], snapshot_classes: Iterable[str]) -> None:
    """Create the CSIDriver and the classes that do not exist yet (the defaults first)."""
    _create(kube, CSI_DRIVERS, driver_object())
    for i, name in enumerate((DEFAULT_CLASS, *storage_classes)):
        _create(kube, STORAGE_CLASSES, storage_class(name, default=i == 0))
    for i, name in enumerate((DEFAULT_SNAPSHOT_CLASS_NAME, *snapshot_classes)):
        _create(kube, VOLUME_SNAPSHOT_CLASSES, snapshot_class(name, default=i == 0))


def _create(kube: Kube, res: Resource, body: Obj) -> None:
    try:
        kube.create(res, body)
    except ApiException as exc:
        if is_conflict(exc):
            return  # there already: never overwritten
        if is_not_found(exc):
            log.info("the API server does not serve %s; not creating %s", res.plural, body["metadata"]["name"])
            return
        raise


def capacity_name(class_name: str) -> str:
    return f"{DRIVER.split('.')[0]}-{class_name}"[:253]


def capacity_object(class_name: str, node_name: str, free: int, total: int) -> Obj:
    """A CSIStorageCapacity for `class_name` on this node: `capacity` the pool's free bytes."""
    return {
        "metadata": {"name": capacity_name(class_name), "namespace": CAPACITY_NAMESPACE,
                     "labels": {"csi.storage.k8s.io/drivername": DRIVER}},
        "storageClassName": class_name,
        "nodeTopology": {"matchLabels": {HOSTNAME_LABEL: node_name}},
        "capacity": binary_quantity(free),
        "maximumVolumeSize": binary_quantity(total),
    }


def publish_capacity(kube: Kube, class_names: Iterable[str], node_name: str, free: int, total: int) -> bool:
    """Create or update one CSIStorageCapacity per class; False when the kind is not served."""
    for name in class_names:
        body = capacity_object(name, node_name, free, total)
        try:
            current = kube.get(CSI_STORAGE_CAPACITIES, body["metadata"]["name"], CAPACITY_NAMESPACE)
            if current is None:
                kube.create(CSI_STORAGE_CAPACITIES, body)
            elif (current.get("capacity"), current.get("maximumVolumeSize")) != (body["capacity"],
                                                                                  body["maximumVolumeSize"]):
                kube.patch(CSI_STORAGE_CAPACITIES, body["metadata"]["name"],
                           {"capacity": body["capacity"], "maximumVolumeSize": body["maximumVolumeSize"]},
                           CAPACITY_NAMESPACE)
        except ApiException as exc:
            if is_not_found(exc) and current_is_unserved(kube):
                return False
            if not is_conflict(exc):
                raise
    return True


def current_is_unserved(kube: Kube) -> bool:
    """Whether `csistoragecapacities` is missing from the API (rather than one object being gone)."""
    try:
        kube.list(CSI_STORAGE_CAPACITIES, CAPACITY_NAMESPACE)
    except ApiException as exc:
        return is_not_found(exc)
    return False
