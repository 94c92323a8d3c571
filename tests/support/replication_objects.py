"""Hand-built ReplicationSource/ReplicationDestination dicts, the objects around them, and plan helpers.

For the unit tests of the pure replication planners (`agent/source.py`, `agent/destination.py`,
`agent/iterations.py`, `agent/triggers.py`): everything is a plain dict with fixed UTC times, so
a test reads as "this is what the agent observed at `now`; this is what it must do".
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from agent.plans import Action, Ensure, Plan
from kube.clock import rfc3339
from kube.rest import Resource

Obj = dict[str, Any]
A = TypeVar("A")

NS = "apps"
RS_UID = "uid-rs-0001"
RD_UID = "uid-rd-0001"
# A Monday, 10:00 UTC: every test's "creation time" unless it says otherwise.
T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)


def at(seconds: float = 0, *, minutes: float = 0, hours: float = 0, base: datetime = T0) -> datetime:
    """A time relative to T0."""
    return base + timedelta(seconds=seconds, minutes=minutes, hours=hours)


def ts(when: datetime) -> str:
    return rfc3339(when)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _meta(
    name: str,
    namespace: str,
    *,
    uid: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    owner: Obj | None = None,
    deleting: bool = False,
    created: datetime | None = None,
    resource_version: str | None = None,
) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace}
    if uid is not None:
        meta["uid"] = uid
    if created is not None:
        meta["creationTimestamp"] = ts(created)
    if resource_version is not None:
        meta["resourceVersion"] = resource_version
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": owner.get("apiVersion", ""),
                "kind": owner.get("kind", ""),
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    if deleting:
        meta["deletionTimestamp"] = ts(T0)
        meta["finalizers"] = ["kubernetes"]
    return meta


def _replication(
    kind: str,
    name: str,
    namespace: str,
    uid: str,
    spec: Obj,
    *,
    schedule: str | None,
    manual: str | None,
    trigger: Obj | None,
    paused: bool,
    status: Obj | None,
    annotations: dict[str, str] | None,
    created: datetime,
    deleting: bool,
) -> Obj:
    if trigger is None and (schedule is not None or manual is not None):
        trigger = {}
        if schedule is not None:
            trigger["schedule"] = schedule
        if manual is not None:
            trigger["manual"] = manual
    if trigger is not None:
        spec["trigger"] = trigger
    if paused:
        spec["paused"] = True
    obj: Obj = {
        "apiVersion": "volsync.backube/v1alpha1",
        "kind": kind,
        "metadata": _meta(
            name,
            namespace,
            uid=uid,
            annotations=annotations,
            deleting=deleting,
            created=created,
            resource_version="7",
        ),
        "spec": spec,
    }
    if status is not None:
        obj["status"] = status
    return obj


def rs(
    name: str = "app",
    *,
    namespace: str = NS,
    uid: str = RS_UID,
    source_pvc: str | None = "data",
    copy_method: str | None = "Direct",
    address: str | None = "10.0.0.9",
    ssh_keys: str | None = "rs-keys",
    port: int | None = None,
    rsync: Obj | None = None,
    movers: Obj | None = None,
    schedule: str | None = None,
    manual: str | None = None,
    trigger: Obj | None = None,
    paused: bool = False,
    status: Obj | None = None,
    annotations: dict[str, str] | None = None,
    created: datetime = T0,
    deleting: bool = False,
    **rsync_fields: Any,
) -> Obj:
    """A ReplicationSource. `rsync` replaces the whole `spec.rsync`; `movers` replaces every mover section."""
    spec: Obj = {}
    if source_pvc is not None:
        spec["sourcePVC"] = source_pvc
    if movers is not None:
        spec.update(movers)
    else:
        if rsync is None:
            rsync = {}
            if copy_method is not None:
                rsync["copyMethod"] = copy_method
            if address is not None:
                rsync["address"] = address
            if ssh_keys is not None:
                rsync["sshKeys"] = ssh_keys
            if port is not None:
                rsync["port"] = port
            rsync.update(rsync_fields)
        spec["rsync"] = rsync
    return _replication(
        "ReplicationSource",
        name,
        namespace,
        uid,
        spec,
        schedule=schedule,
        manual=manual,
        trigger=trigger,
        paused=paused,
        status=status,
        annotations=annotations,
        created=created,
        deleting=deleting,
    )


def rd(
    name: str = "backup",
    *,
    namespace: str = NS,
    uid: str = RD_UID,
    copy_method: str | None = "Snapshot",
    capacity: str | None = "2Gi",
    access_modes: list[str] | None = None,
    ssh_keys: str | None = None,
    rsync: Obj | None = None,
    movers: Obj | None = None,
    schedule: str | None = None,
    manual: str | None = None,
    trigger: Obj | None = None,
    paused: bool = False,
    status: Obj | None = None,
    annotations: dict[str, str] | None = None,
    created: datetime = T0,
    deleting: bool = False,
    **rsync_fields: Any,
) -> Obj:
    """A ReplicationDestination (generated keys, ClusterIP, Snapshot by default)."""
    spec: Obj = {}
    if movers is not None:
        spec.update(movers)
    else:
        if rsync is None:
            rsync = {}
            if copy_method is not None:
                rsync["copyMethod"] = copy_method
            if capacity is not None:
                rsync["capacity"] = capacity
            rsync["accessModes"] = ["ReadWriteOnce"] if access_modes is None else access_modes
            if ssh_keys is not None:
                rsync["sshKeys"] = ssh_keys
            rsync.update(rsync_fields)
        spec["rsync"] = rsync
    return _replication(
        "ReplicationDestination",
        name,
        namespace,
        uid,
        spec,
        schedule=schedule,
        manual=manual,
        trigger=trigger,
        paused=paused,
        status=status,
        annotations=annotations,
        created=created,
        deleting=deleting,
    )


def pvc(
    name: str = "data",
    *,
    namespace: str = NS,
    bound: bool = True,
    capacity: str | None = "1Gi",
    request: str | None = "1Gi",
    storage_class: str | None = "fast",
    access_modes: list[str] | None = None,
    volume_mode: str | None = "Filesystem",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    owner: Obj | None = None,
    deleting: bool = False,
    resource_version: str = "11",
    uid: str | None = None,
) -> Obj:
    spec: Obj = {"accessModes": access_modes or ["ReadWriteOnce"]}
    if request is not None:
        spec["resources"] = {"requests": {"storage": request}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    if volume_mode is not None:
        spec["volumeMode"] = volume_mode
    status: Obj = {"phase": "Bound" if bound else "Pending"}
    if bound and capacity is not None:
        status["capacity"] = {"storage": capacity}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(
            name,
            namespace,
            uid=uid or f"uid-pvc-{name}",
            labels=labels,
            annotations=annotations,
            owner=owner,
            deleting=deleting,
            resource_version=resource_version,
        ),
        "spec": spec,
        "status": status,
    }


def snapshot(
    name: str,
    *,
    namespace: str = NS,
    source_pvc: str = "data",
    ready: bool = True,
    bound: bool | None = None,
    restore_size: str | None = None,
    error: str | None = None,
    labels: dict[str, str] | None = None,
    owner: Obj | None = None,
    deleting: bool = False,
    resource_version: str = "21",
) -> Obj:
    """A VolumeSnapshot; `bound` (a boundVolumeSnapshotContentName) defaults to `ready`."""
    bound = ready if bound is None else bound
    status: Obj = {"readyToUse": ready}
    if bound:
        status["boundVolumeSnapshotContentName"] = f"snapcontent-{name}"
    if restore_size is not None:
        status["restoreSize"] = restore_size
    if error is not None:
        status["error"] = {"message": error}
    return {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": _meta(
            name,
            namespace,
            uid=f"uid-vs-{name}",
            labels=labels,
            owner=owner,
            deleting=deleting,
            resource_version=resource_version,
        ),
        "spec": {"source": {"persistentVolumeClaimName": source_pvc}},
        "status": status,
    }


def secret(name: str, *, namespace: str = NS, keys: Iterable[str] = (), data: Obj | None = None) -> Obj:
    """A Secret holding `keys` (each with a valid base64 value) or exactly `data`."""
    payload = dict(data) if data is not None else {k: b64(f"value of {k}") for k in keys}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(name, namespace, uid=f"uid-secret-{name}"),
        "type": "Opaque",
        "data": payload,
    }


MAIN_KEYS = ("source", "source.pub", "destination", "destination.pub")
SOURCE_KEYS = ("source", "source.pub", "destination.pub")
DEST_KEYS = ("destination", "destination.pub", "source.pub")


def service(
    name: str,
    *,
    namespace: str = NS,
    type: str = "ClusterIP",
    cluster_ip: str | None = "10.96.0.20",
    ingress: list[Obj] | None = None,
    owner: Obj | None = None,
) -> Obj:
    spec: Obj = {"type": type, "ports": [{"name": "ssh", "port": 22, "targetPort": 8022}],
                 "selector": {"app.kubernetes.io/name": f"dst-{name.removeprefix('volsync-rsync-dst-')}",
                              "app.kubernetes.io/component": "rsync-mover",
                              "app.kubernetes.io/part-of": "volsync-addon"}}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    status: Obj = {"loadBalancer": {"ingress": ingress}} if ingress is not None else {}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, namespace, uid=f"uid-svc-{name}", owner=owner),
        "spec": spec,
        "status": status,
    }


# -- reading plans -------------------------------------------------------------------------------


def of_type(actions: Iterable[Action], kind: type[A]) -> list[A]:
    return [a for a in actions if isinstance(a, kind)]


def all_actions(plan: Plan) -> list[Action]:
    return [*plan.before, *plan.after]


def ensured(plan: Plan, resource: Resource) -> list[Obj]:
    """The objects a plan creates of `resource` (before or after)."""
    return [a.obj for a in of_type(all_actions(plan), Ensure) if a.resource is resource]


def condition(status: Obj | None) -> Obj:
    """The Synchronizing condition a status patch carries (fails the test when it carries none)."""
    assert status is not None, "the plan carries no status patch"
    found = [c for c in status.get("conditions") or [] if c.get("type") == "Synchronizing"]
    assert len(found) == 1, f"want exactly one Synchronizing condition, got {status.get('conditions')!r}"
    return dict(found[0])


def with_status(obj: Obj, patch: Obj | None) -> Obj:
    """The object after a status merge patch (RFC 7386, as the agent applies it): to chain plans."""

    def merge(base: Any, p: Any) -> Any:
        if not isinstance(p, dict):
            return p
        out = dict(base) if isinstance(base, dict) else {}
        for k, v in p.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = merge(out.get(k), v)
        return out

    if patch is None:
        return obj
    return {**obj, "status": merge(obj.get("status") or {}, patch)}
