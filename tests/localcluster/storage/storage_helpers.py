"""Helpers for the local platform's storage tests: reading and writing objects with the official
client (independently of the code under test) and driving reconciles. Directory trees come from
`support.trees`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from localcluster.storage.driver import StorageDriver

SNAP = ("snapshot.storage.k8s.io", "v1")
Obj = dict[str, Any]
NewDriver = Callable[..., StorageDriver]  # the `new_driver` fixture: a started driver (a new process) per call


def settle(fn: Callable[..., float | None], *args: str, timeout: float = 60.0, max_calls: int = 50) -> int:
    """Call a reconcile until it returns None (settled); returns how many calls that took. No sleeping:
    the tests make every dependency ready before settling, so a reconcile that keeps asking to be
    called again is a failure, reported with what it last returned."""
    deadline = time.monotonic() + timeout
    last: float | None = None
    for calls in range(1, max_calls + 1):
        last = fn(*args)
        if last is None:
            return calls
        assert time.monotonic() < deadline, f"{fn.__name__}{args} not settled within {timeout}s (last: {last})"
    raise AssertionError(f"{fn.__name__}{args} not settled after {max_calls} calls (last: {last})")


def steps(fn: Callable[..., float | None], *args: str, count: int) -> None:
    """Exactly `count` reconcile calls, each of which must leave more to do."""
    for i in range(count):
        result = fn(*args)
        assert result is not None, f"{fn.__name__}{args} settled after {i + 1} calls, expected more than {count}"


class Cluster:
    """One cluster through the official client, with plain dicts in and out."""

    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self.api = api
        self.core = kubernetes.client.CoreV1Api(api)
        self.storage = kubernetes.client.StorageV1Api(api)
        self.custom = kubernetes.client.CustomObjectsApi(api)

    def _dict(self, model: Any) -> Obj:
        out: Obj = self.api.sanitize_for_serialization(model)
        return out

    # claims and volumes
    def create_pvc(
        self,
        namespace: str,
        name: str,
        size: str = "1Gi",
        *,
        storage_class: str | None = "local-csi",
        data_source: Obj | None = None,
        data_source_ref: Obj | None = None,
        volume_mode: str | None = None,
    ) -> Obj:
        spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
        if storage_class is not None:
            spec["storageClassName"] = storage_class
        if data_source is not None:
            spec["dataSource"] = data_source
        if data_source_ref is not None:
            spec["dataSourceRef"] = data_source_ref
        if volume_mode is not None:
            spec["volumeMode"] = volume_mode
        body = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}
        return self._dict(self.core.create_namespaced_persistent_volume_claim(namespace, body))

    def pvc(self, namespace: str, name: str) -> Obj:
        return self._dict(self.core.read_namespaced_persistent_volume_claim(name, namespace))

    def delete_pvc(self, namespace: str, name: str) -> None:
        self.core.delete_namespaced_persistent_volume_claim(name, namespace)

    def pv(self, name: str) -> Obj | None:
        try:
            return self._dict(self.core.read_persistent_volume(name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def delete_pv(self, name: str) -> None:
        self.core.delete_persistent_volume(name)

    # snapshots
    def create_vs(self, namespace: str, name: str, pvc: str | None, *,
                  klass: str | None = "local-csi-snapclass") -> Obj:
        spec: Obj = {"source": {"persistentVolumeClaimName": pvc}}
        if klass is not None:
            spec["volumeSnapshotClassName"] = klass
        body = {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "metadata": {"name": name}}
        body["spec"] = spec
        out: Obj = self.custom.create_namespaced_custom_object(*SNAP, namespace, "volumesnapshots", body)
        return out

    def vs(self, namespace: str, name: str) -> Obj | None:
        try:
            out: Obj = self.custom.get_namespaced_custom_object(*SNAP, namespace, "volumesnapshots", name)
            return out
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def delete_vs(self, namespace: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(*SNAP, namespace, "volumesnapshots", name)

    def vsc(self, name: str) -> Obj | None:
        try:
            out: Obj = self.custom.get_cluster_custom_object(*SNAP, "volumesnapshotcontents", name)
            return out
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create_snapshot_class(self, name: str, deletion_policy: str = "Delete") -> None:
        body = {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotClass",
            "metadata": {"name": name},
            "driver": "local.csi.volsync-addon.io",
            "deletionPolicy": deletion_policy,
        }
        self.custom.create_cluster_custom_object(*SNAP, "volumesnapshotclasses", body)

    def delete_snapshot_class(self, name: str) -> None:
        self.custom.delete_cluster_custom_object(*SNAP, "volumesnapshotclasses", name)

    # events
    def events(self, obj: Obj) -> list[Obj]:
        """The Events about `obj` (by uid), in the order they were first recorded."""
        namespace = obj["metadata"].get("namespace") or "default"
        found = self.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.uid={obj['metadata']['uid']}"
        )
        events = [self._dict(e) for e in found.items]
        return sorted(events, key=lambda e: (e.get("firstTimestamp") or "", int(e["metadata"]["resourceVersion"])))

    def reasons(self, obj: Obj) -> list[str]:
        return [e["reason"] for e in self.events(obj)]

    def event(self, obj: Obj, reason: str) -> Obj:
        matching = [e for e in self.events(obj) if e["reason"] == reason]
        assert len(matching) == 1, f"events {reason} about {obj['metadata']['name']}: {self.events(obj)}"
        return matching[0]


def volume_dir(data_root: Path, pvc: Obj) -> Path:
    return data_root / "volumes" / f"pvc-{pvc['metadata']['uid']}"


def content_dir(data_root: Path, vs: Obj) -> Path:
    return data_root / "snapshots" / f"snapcontent-{vs['metadata']['uid']}"


def leftovers(data_root: Path) -> list[str]:
    """Staging directories left under data_root (there must be none once everything settled)."""
    return sorted(str(p) for sub in ("volumes", "snapshots") for p in (data_root / sub).glob(".*"))


def settle_concurrently(step: Callable[[str, str], float | None], namespace: str,
                        names: list[str]) -> list[BaseException]:
    """`settle(step, namespace, name)` for every name at once, one thread each; the errors they raised."""
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            settle(step, namespace, name)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
