"""`kubectl version`, `api-resources` and `api-versions`: what kubectl learns from /version and discovery."""

from __future__ import annotations

import json

import pytest
from support import manifests
from support.apiserver import ApiServer

pytestmark = pytest.mark.kubectl


def test_version(apiserver: ApiServer) -> None:
    out = apiserver.kubectl("version").stdout
    assert "Client Version: v1.32" in out
    assert "Server Version: v1.32.0" in out
    server = json.loads(apiserver.kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert (server["major"], server["minor"]) == ("1", "32")
    assert server["gitVersion"].startswith("v1.32.")


def test_api_resources_lists_our_kinds_with_short_names(apiserver: ApiServer) -> None:
    rows = {}
    for line in apiserver.kubectl("api-resources").stdout.splitlines()[1:]:
        cells = line.split()
        if len(cells) == 4:  # no SHORTNAMES
            cells.insert(1, "")
        rows[(cells[0], cells[2])] = (cells[1], cells[3], cells[4])
    assert rows[("managedclusters", "cluster.open-cluster-management.io/v1")] == (
        "mcl,mcls", "false", "ManagedCluster")
    assert rows[("managedclusteraddons", "addon.open-cluster-management.io/v1beta1")] == (
        "mca,mcas", "true", "ManagedClusterAddOn")
    assert rows[("replicationdestinations", "volsync.backube/v1alpha1")] == ("", "true", "ReplicationDestination")
    assert rows[("replicationsources", "volsync.backube/v1alpha1")] == ("", "true", "ReplicationSource")
    assert rows[("volumesnapshots", "snapshot.storage.k8s.io/v1")] == ("vs", "true", "VolumeSnapshot")
    assert rows[("namespaces", "v1")] == ("ns", "false", "Namespace")
    assert rows[("persistentvolumeclaims", "v1")] == ("pvc", "true", "PersistentVolumeClaim")
    assert rows[("customresourcedefinitions", "apiextensions.k8s.io/v1")] == (
        "crd,crds", "false", "CustomResourceDefinition")
    # Subresources are not resources of their own.
    assert not any("/" in name for name, _ in rows)


def test_short_names_and_categories_resolve(apiserver: ApiServer, namespace: str) -> None:
    apiserver.apply_yaml(manifests.managed_cluster_addon(namespace))
    for short in ("mca", "mcas", "managedclusteraddon", "managedclusteraddons.addon.open-cluster-management.io"):
        out = apiserver.kubectl("get", short, "-n", namespace, "-o", "name").stdout
        assert out.strip() == "managedclusteraddon.addon.open-cluster-management.io/volsync"
    names = apiserver.kubectl("api-resources", "--categories=ocm", "-o", "name").stdout.split()
    assert "managedclusters.cluster.open-cluster-management.io" in names
    assert "managedclusteraddons.addon.open-cluster-management.io" in names
    # A category works as a resource name on get.
    out = apiserver.kubectl("get", "ocm", "-n", namespace, "-o", "name").stdout.split()
    assert "managedclusteraddon.addon.open-cluster-management.io/volsync" in out


def test_api_versions(apiserver: ApiServer) -> None:
    versions = apiserver.kubectl("api-versions").stdout.split()
    for gv in ("v1", "addon.open-cluster-management.io/v1alpha1", "addon.open-cluster-management.io/v1beta1",
               "cluster.open-cluster-management.io/v1", "volsync.backube/v1alpha1", "snapshot.storage.k8s.io/v1",
               "apiextensions.k8s.io/v1"):
        assert gv in versions
