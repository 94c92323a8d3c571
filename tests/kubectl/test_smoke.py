"""kubectl reaches every cluster of the embedded server and sees the shipped CRDs."""

from __future__ import annotations

from support.apiserver import ApiServer


def test_every_context_serves_the_shipped_crds(apiserver: ApiServer) -> None:
    for cluster in apiserver.clusters:
        out = apiserver.kubectl("get", "crd", "-o", "name", context=cluster).stdout.split()
        assert "customresourcedefinition.apiextensions.k8s.io/replicationsources.volsync.backube" in out
        assert "customresourcedefinition.apiextensions.k8s.io/managedclusters.cluster.open-cluster-management.io" in out


def test_namespace_fixture_creates_it_everywhere(apiserver: ApiServer, namespace: str) -> None:
    for cluster in apiserver.clusters:
        ns = apiserver.get("namespace", namespace, context=cluster)
        assert ns["status"]["phase"] == "Active"
        assert ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == namespace
