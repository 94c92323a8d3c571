"""Manifests and raw-HTTP helpers shared by the client and validation tests."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from support.apiserver import ApiServer

VOLSYNC = ("volsync.backube", "v1alpha1")
CLUSTER = ("cluster.open-cluster-management.io", "v1")
ADDON = "addon.open-cluster-management.io"

RS_PATH = "/apis/volsync.backube/v1alpha1/namespaces/{ns}/replicationsources"
MCL_PATH = "/apis/cluster.open-cluster-management.io/v1/managedclusters"


def unique(prefix: str) -> str:
    """A DNS-1123 name no other test uses (for cluster-scoped objects)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def replication_source(name: str, *, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return {
        "apiVersion": "volsync.backube/v1alpha1",
        "kind": "ReplicationSource",
        "metadata": meta,
        "spec": {"sourcePVC": "data", **spec},
    }


def replication_destination(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "volsync.backube/v1alpha1",
        "kind": "ReplicationDestination",
        "metadata": {"name": name},
        "spec": {"rsync": {"copyMethod": "Snapshot", "capacity": "1Gi", "accessModes": ["ReadWriteOnce"]}, **spec},
    }


def managed_cluster(name: str, *, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return {
        "apiVersion": "cluster.open-cluster-management.io/v1",
        "kind": "ManagedCluster",
        "metadata": meta,
        "spec": {"hubAcceptsClient": True},
    }


def managed_cluster_addon(name: str, version: str = "v1alpha1") -> dict[str, Any]:
    return {
        "apiVersion": f"{ADDON}/{version}",
        "kind": "ManagedClusterAddOn",
        "metadata": {"name": name},
        "spec": {"installNamespace": "open-cluster-management-agent-addon"},
    }


def http(apiserver: ApiServer, context: str = "hub", **kwargs: Any) -> httpx.Client:
    """An httpx client rooted at one cluster's URL (use it as a context manager)."""
    return httpx.Client(base_url=apiserver.cluster_url(context), timeout=kwargs.pop("timeout", 30.0), **kwargs)


def assert_status(resp: httpx.Response, code: int, reason: str) -> dict[str, Any]:
    """The response is a Kubernetes failure `Status` with this code and reason; returns the body."""
    assert resp.status_code == code, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body["kind"] == "Status", body
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["reason"] == reason, body
    assert body["code"] == code
    assert body["message"]
    return body
