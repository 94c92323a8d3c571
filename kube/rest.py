"""Dict-in, dict-out access to any Kubernetes resource through the official client's transport.

All of our Kubernetes I/O goes through `Kube`: it builds paths from a `Resource`, serialises with
the official `kubernetes` client's `ApiClient` (so kubeconfig, bearer tokens, TLS and proxies work
exactly as with the generated APIs), and raises the client's own `ApiException` subclasses
(`NotFoundException`, `ConflictException`, …) on errors. Watches yield `(type, object)` pairs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import kubernetes
from kubernetes.client.exceptions import ApiException

Obj = dict[str, Any]

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
            if subresource:
                base += f"/{subresource}"
        return base


NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
SECRETS = Resource("", "v1", "secrets", "Secret")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
SERVICES = Resource("", "v1", "services", "Service")
PVCS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
PVS = Resource("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False)
EVENTS = Resource("", "v1", "events", "Event")
PODS = Resource("", "v1", "pods", "Pod")
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
ENDPOINTS = Resource("", "v1", "endpoints", "Endpoints")
REPLICATION_CONTROLLERS = Resource("", "v1", "replicationcontrollers", "ReplicationController")
JOBS = Resource("batch", "v1", "jobs", "Job")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
REPLICA_SETS = Resource("apps", "v1", "replicasets", "ReplicaSet")
DAEMON_SETS = Resource("apps", "v1", "daemonsets", "DaemonSet")
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
STORAGE_CLASSES = Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False)
CSI_DRIVERS = Resource("storage.k8s.io", "v1", "csidrivers", "CSIDriver", namespaced=False)
CSI_STORAGE_CAPACITIES = Resource("storage.k8s.io", "v1", "csistoragecapacities", "CSIStorageCapacity")
VOLUME_SNAPSHOTS = Resource("snapshot.storage.k8s.io", "v1", "volumesnapshots", "VolumeSnapshot")
VOLUME_SNAPSHOT_CONTENTS = Resource(
    "snapshot.storage.k8s.io", "v1", "volumesnapshotcontents", "VolumeSnapshotContent", namespaced=False
)
VOLUME_SNAPSHOT_CLASSES = Resource(
    "snapshot.storage.k8s.io", "v1", "volumesnapshotclasses", "VolumeSnapshotClass", namespaced=False
)


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and exc.status == 404


def is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and exc.status == 409


class Kube:
    def __init__(self, api: kubernetes.client.ApiClient, *, field_manager: str = "kube-client") -> None:
        self.api = api
        self.field_manager = field_manager

    # -- transport ----------------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        body: Any,
        content_type: str,
        timeout: float | tuple[float, float] | None,
        accept: str = "application/json",
    ) -> Any:
        params = [(k, v) for k, v in (query or {}).items() if v is not None and v != ""]
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        serialized = self.api.param_serialize(
            method, path, query_params=params, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        return self.api.call_api(*serialized, _request_timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = 30.0,
    ) -> Obj:
        resp = self._send(method, path, query, body, content_type, timeout)
        data = resp.read()
        if not 200 <= resp.status <= 299:
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
            raise ApiException.from_response(http_resp=resp, body=text, data=None)
        decoded: Obj = json.loads(data) if data else {}
        return decoded

    def pod_log(self, name: str, namespace: str, *, container: str | None = None, tail_lines: int | None = None,
                limit_bytes: int | None = None, timeout: float = 30.0) -> str:
        """The log of a Pod's container (`pods/log`), as text: its last `tail_lines` lines (all when
        None), at most `limit_bytes` of them from their start; an ApiException (404, 403, ...) otherwise."""
        query = {"container": container, "tailLines": tail_lines, "limitBytes": limit_bytes}
        resp = self._send("GET", PODS.path(namespace, name, "log"), query, None, "application/json", timeout,
                          accept="*/*")
        data = resp.read()
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        if not 200 <= resp.status <= 299:
            raise ApiException.from_response(http_resp=resp, body=text, data=None)
        return text

    # -- verbs --------------------------------------------------------------------------------------
    def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj | None:
        try:
            return self.request("GET", res.path(namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[Obj], str]:
        items: list[Obj] = []
        token: str | None = None
        rv = ""
        while True:
            page = self.request(
                "GET",
                res.path(namespace),
                query={
                    "labelSelector": label_selector,
                    "fieldSelector": field_selector,
                    "limit": 500,
                    "continue": token,
                },
            )
            for item in page.get("items") or []:
                item.setdefault("apiVersion", res.api_version)
                item.setdefault("kind", res.kind)
                items.append(item)
            meta = page.get("metadata") or {}
            rv = rv or meta.get("resourceVersion", "")
            token = meta.get("continue")
            if not token:
                return items, rv

    def create(self, res: Resource, obj: Obj, namespace: str | None = None) -> Obj:
        body = {"apiVersion": res.api_version, "kind": res.kind, **obj}
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        return self.request("POST", res.path(ns), body=body, query={"fieldManager": self.field_manager})

    def replace(self, res: Resource, obj: Obj, *, subresource: str = "") -> Obj:
        meta = obj["metadata"]
        body = {"apiVersion": res.api_version, "kind": res.kind, **obj}
        return self.request(
            "PUT",
            res.path(meta.get("namespace"), meta["name"], subresource),
            body=body,
            query={"fieldManager": self.field_manager},
        )

    def patch(
        self,
        res: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        subresource: str = "",
        content_type: str = MERGE,
    ) -> Obj:
        return self.request(
            "PATCH",
            res.path(namespace, name, subresource),
            body=patch,
            content_type=content_type,
            query={"fieldManager": self.field_manager},
        )

    def patch_status(self, res: Resource, name: str, status: Obj, namespace: str | None = None) -> Obj:
        return self.patch(res, name, {"status": status}, namespace, subresource="status")

    def apply(self, res: Resource, obj: Obj, *, force: bool = True) -> Obj:
        meta = obj["metadata"]
        body = {"apiVersion": res.api_version, "kind": res.kind, **obj}
        return self.request(
            "PATCH",
            res.path(meta.get("namespace"), meta["name"]),
            body=body,
            content_type=APPLY,
            query={"fieldManager": self.field_manager, "force": "true" if force else None},
        )

    def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        preconditions: Obj | None = None,
        propagation: str = "Background",
    ) -> bool:
        """Delete; False when it was already gone."""
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if preconditions:
            body["preconditions"] = preconditions
        try:
            self.request("DELETE", res.path(namespace, name), body=body)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def watch(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        resource_version: str = "",
        timeout_seconds: int = 300,
        label_selector: str | None = None,
    ) -> Iterator[tuple[str, Obj]]:
        """Events until the server ends the stream; ERROR events raise ApiException (410 → relist)."""
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
            "labelSelector": label_selector,
        }
        resp = self._send("GET", res.path(namespace), query, None, "", (10.0, timeout_seconds + 30.0))
        if not 200 <= resp.status <= 299:
            data = resp.read()
            raise ApiException.from_response(http_resp=resp, body=data.decode("utf-8", "replace"), data=None)
        try:
            for line in kubernetes.watch.watch.iter_resp_lines(resp.response):  # type: ignore[no-untyped-call]
                if not line:
                    continue
                event = json.loads(line)
                kind, obj = event.get("type", ""), event.get("object") or {}
                if kind == "ERROR":
                    raise ApiException(
                        status=int(obj.get("code") or 500), reason=obj.get("reason"), body=json.dumps(obj)
                    )
                yield kind, obj
        finally:
            resp.response.release_conn()
