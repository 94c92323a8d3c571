"""`kubernetes.dynamic.DynamicClient`, which finds resources through legacy discovery
(`/version`, `/api`, `/apis`, `/apis/<g>/<v>`), against a custom resource and a built-in."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
from support.apiserver import ApiServer
from support.objects import replication_source


def _dynamic(api: object, tmp_path: Path) -> DynamicClient:
    # A cache file of the test's own: the default one in /tmp is shared across servers and ports.
    return DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))


def test_dynamic_custom_resource(apiserver: ApiServer, namespace: str, tmp_path: Path) -> None:
    with apiserver.api_client() as api:
        dyn = _dynamic(api, tmp_path)
        rs = dyn.resources.get(api_version="volsync.backube/v1alpha1", kind="ReplicationSource")
        assert rs.namespaced is True
        assert rs.name == "replicationsources"
        assert rs.group == "volsync.backube"

        created = dyn.create(rs, body=replication_source("dyn", labels={"via": "dynamic"}), namespace=namespace)
        assert created.metadata.name == "dyn"
        assert created.metadata.namespace == namespace
        assert created.spec.sourcePVC == "data"

        got = rs.get(name="dyn", namespace=namespace)
        assert got.metadata.uid == created.metadata.uid

        listed = rs.get(namespace=namespace, label_selector="via=dynamic")
        assert listed.kind == "ReplicationSourceList"
        assert [i.metadata.name for i in listed.items] == ["dyn"]

        patched = rs.patch(
            name="dyn",
            namespace=namespace,
            body={"spec": {"paused": True}},
            content_type="application/merge-patch+json",
        )
        assert patched.spec.paused is True
        assert patched.metadata.generation == 2

        status = rs.status.patch(
            name="dyn",
            namespace=namespace,
            body={"status": {"lastSyncDuration": "3s"}},
            content_type="application/merge-patch+json",
        )
        assert status.status.lastSyncDuration == "3s"
        assert status.metadata.generation == 2

        rs.delete(name="dyn", namespace=namespace)
        with pytest.raises(NotFoundError):
            rs.get(name="dyn", namespace=namespace)


def test_dynamic_builtin_and_cluster_scoped(apiserver: ApiServer, namespace: str, tmp_path: Path) -> None:
    with apiserver.api_client("cluster2") as api:
        dyn = _dynamic(api, tmp_path)
        cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
        created = cms.create(
            body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dyn"}, "data": {"k": "v"}},
            namespace=namespace,
        )
        assert created.data.k == "v"
        listed = cms.get(namespace=namespace)
        assert [i.metadata.name for i in listed.items] == ["dyn"]
        assert cms.get(name="dyn", namespace=namespace).data.k == "v"

        namespaces = dyn.resources.get(api_version="v1", kind="Namespace")
        assert namespaces.namespaced is False
        assert namespace in {n.metadata.name for n in namespaces.get().items}

        mcl = dyn.resources.get(api_version="cluster.open-cluster-management.io/v1", kind="ManagedCluster")
        assert mcl.namespaced is False
        assert "mcl" in mcl.short_names

        addon_versions = {
            r.api_version
            for r in dyn.resources.search(group="addon.open-cluster-management.io", kind="ManagedClusterAddOn")
        }
        assert {"v1alpha1", "v1beta1"} <= addon_versions

        with pytest.raises(ResourceNotFoundError):
            dyn.resources.get(api_version="v1", kind="NoSuchKind")
