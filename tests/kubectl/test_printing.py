"""What `kubectl get` prints: server-side Tables with the CRDs' printer columns, -A, -o wide/yaml/jsonpath.

kubectl asks the server for `meta.k8s.io/v1` Tables and prints the cells as they come, so these
tests pin the columns users see in the seed procedure's output (OCM's HUB ACCEPTED / JOINED /
AVAILABLE, the addon's AVAILABLE / DEGRADED / PROGRESSING, VolSync's LAST SYNC / DURATION).
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from support import manifests
from support.apiserver import ApiServer

pytestmark = pytest.mark.kubectl


def table(apiserver: ApiServer, *args: str, context: str = "hub") -> list[list[str]]:
    """`kubectl get <args>` split into rows of cells (cells must not contain blanks)."""
    return [row.split() for row in apiserver.kubectl("get", *args, context=context).stdout.splitlines()]


def set_status(apiserver: ApiServer, kind: str, name: str, *ns: str, context: str = "hub", **status: object) -> None:
    apiserver.kubectl("patch", kind, name, *ns, "--subresource=status", "--type=merge",
                      "-p", manifests.status_patch(**status), context=context)


def test_managed_cluster_columns(apiserver: ApiServer, namespace: str) -> None:
    apiserver.apply_yaml(manifests.managed_cluster(namespace))
    header = apiserver.kubectl("get", "mcl", namespace).stdout.splitlines()[0]
    assert re.split(r"\s{2,}", header.strip()) == [
        "NAME", "HUB ACCEPTED", "MANAGED CLUSTER URLS", "JOINED", "AVAILABLE", "AGE"
    ]
    assert table(apiserver, "mcl", namespace)[1][:2] == [namespace, "true"]

    set_status(apiserver, "managedcluster", namespace, conditions=[
        manifests.condition("HubAcceptedManagedCluster"),
        manifests.condition("ManagedClusterJoined"),
        manifests.condition("ManagedClusterConditionAvailable", "Unknown"),
    ])
    apiserver.kubectl("patch", "mcl", namespace, "--type=merge",
                      "-p", json.dumps({"spec": {"managedClusterClientConfigs": [{"url": "https://c1:6443"}]}}))
    rows = table(apiserver, "mcl", namespace)
    assert rows[1][:5] == [namespace, "true", "https://c1:6443", "True", "Unknown"]


def test_managed_cluster_addons_across_namespaces(apiserver: ApiServer, namespace: str) -> None:
    other = f"{namespace}-b"
    apiserver.kubectl("create", "ns", other)
    for ns in (namespace, other):
        apiserver.apply_yaml(manifests.managed_cluster_addon(ns))
    set_status(apiserver, "managedclusteraddon", "volsync", "-n", namespace, conditions=[
        manifests.condition("Available"), manifests.condition("Degraded", "False"),
        manifests.condition("Progressing", "False"),
    ])

    rows = table(apiserver, "managedclusteraddon", "-A")
    assert rows[0] == ["NAMESPACE", "NAME", "AVAILABLE", "DEGRADED", "PROGRESSING", "AGE"]
    mine = {row[0]: row[1:5] for row in rows[1:] if row[0] in (namespace, other)}
    assert mine[namespace] == ["volsync", "True", "False", "False"]
    assert mine[other][0] == "volsync"
    assert len(mine[other]) == 2  # no conditions yet: empty cells, then AGE

    # In one namespace there is no NAMESPACE column.
    rows = table(apiserver, "mca", "-n", namespace)
    assert rows[0] == ["NAME", "AVAILABLE", "DEGRADED", "PROGRESSING", "AGE"]
    assert rows[1][:4] == ["volsync", "True", "False", "False"]


def test_replication_columns(apiserver: ApiServer, namespace: str) -> None:
    rs = manifests.replication_source("source", namespace, pvc="database", address="a.example", ssh_keys="keys")
    apiserver.apply_yaml(rs, context="cluster1")
    set_status(apiserver, "replicationsource", "source", "-n", namespace, context="cluster1",
               lastSyncTime="2026-01-02T03:00:00Z", lastSyncDuration="1m2.3s")
    rows = table(apiserver, "replicationsources", "-n", namespace, context="cluster1")
    assert rows[0] == ["NAME", "SOURCE", "LAST", "SYNC", "DURATION", "NEXT", "SYNC"]
    name, pvc, last, duration = rows[1]
    assert (name, pvc, last, duration) == ("source", "database", "2026-01-02T03:00:00Z", "1m2.3s")  # as VolSync


def test_wide_output_shows_priority_columns(apiserver: ApiServer, namespace: str) -> None:
    work = {"apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
            "metadata": {"name": "volsync", "namespace": namespace}, "spec": {"workload": {"manifests": []}}}
    apiserver.apply_yaml(yaml.safe_dump(work))
    set_status(apiserver, "manifestwork", "volsync", "-n", namespace,
               conditions=[manifests.condition("Applied"), manifests.condition("Available", "False")])
    assert table(apiserver, "manifestwork", "-n", namespace)[0] == ["NAME", "AGE"]
    rows = table(apiserver, "manifestwork", "-n", namespace, "-o", "wide")
    assert rows[0] == ["NAME", "APPLIED", "AVAILABLE", "AGE"]  # the CRD's column order
    assert rows[1][:3] == ["volsync", "True", "False"]


def test_structured_output(apiserver: ApiServer, namespace: str) -> None:
    apiserver.apply_yaml(manifests.replication_destination("dest", namespace), context="cluster2")

    as_yaml = yaml.safe_load(apiserver.kubectl("get", "replicationdestination", "dest", "-n", namespace, "-o", "yaml",
                                               context="cluster2").stdout)
    assert as_yaml["kind"] == "ReplicationDestination"
    assert as_yaml["apiVersion"] == "volsync.backube/v1alpha1"
    assert as_yaml["spec"]["rsync"]["capacity"] == "2Gi"

    listed = yaml.safe_load(apiserver.kubectl("get", "replicationdestinations", "-n", namespace, "-o", "yaml",
                                              context="cluster2").stdout)
    assert listed["kind"] == "List"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["dest"]

    path = apiserver.kubectl("get", "replicationdestination", "dest", "-n", namespace,
                             "-o", "jsonpath={.spec.rsync.accessModes[0]} {.metadata.generation}",
                             context="cluster2").stdout
    assert path == "ReadWriteOnce 1"
    names = apiserver.kubectl("get", "replicationdestinations", "-n", namespace, "-o", "name", context="cluster2")
    assert names.stdout.strip() == "replicationdestination.volsync.backube/dest"
    columns = "custom-columns=N:.metadata.name,CM:.spec.rsync.copyMethod"
    custom = table(apiserver, "replicationdestinations", "-n", namespace, "-o", columns, context="cluster2")
    assert custom == [["N", "CM"], ["dest", "Snapshot"]]


def test_missing_objects_and_empty_lists(apiserver: ApiServer, namespace: str) -> None:
    missing = apiserver.kubectl("get", "replicationdestination", "nope", "-n", namespace, check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        'Error from server (NotFound): replicationdestinations.volsync.backube "nope" not found'
    )
    empty = apiserver.kubectl("get", "replicationdestinations", "-n", namespace)
    assert empty.stdout == ""
    assert empty.stderr.strip() == f"No resources found in {namespace} namespace."
