"""The official Python client's CustomObjectsApi against the shipped CRDs: namespaced VolSync
resources, the cluster-scoped ManagedCluster, and ManagedClusterAddOn served at two versions."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException, ConflictException, NotFoundException
from support.apiserver import ApiServer
from support.objects import (
    ADDON,
    CLUSTER,
    VOLSYNC,
    managed_cluster,
    managed_cluster_addon,
    replication_destination,
    replication_source,
    unique,
)


def test_replication_source_crud(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        body = replication_source("rs", labels={"app": "db"}, trigger={"schedule": "*/5 * * * *"})
        body["spec"]["rsync"] = {"copyMethod": "Snapshot", "address": "10.0.0.1"}
        created = co.create_namespaced_custom_object(*VOLSYNC, namespace, "replicationsources", body)
        meta = created["metadata"]
        assert created["apiVersion"] == "volsync.backube/v1alpha1"
        assert created["kind"] == "ReplicationSource"
        assert meta["namespace"] == namespace
        assert meta["uid"] and meta["creationTimestamp"] and meta["resourceVersion"]
        assert meta["generation"] == 1
        assert created["spec"]["trigger"] == {"schedule": "*/5 * * * *"}

        got = co.get_namespaced_custom_object(*VOLSYNC, namespace, "replicationsources", "rs")
        assert got == created

        listed = co.list_namespaced_custom_object(*VOLSYNC, namespace, "replicationsources")
        assert listed["kind"] == "ReplicationSourceList"
        assert listed["apiVersion"] == "volsync.backube/v1alpha1"
        assert [o["metadata"]["name"] for o in listed["items"]] == ["rs"]

        patched = co.patch_namespaced_custom_object(
            *VOLSYNC, namespace, "replicationsources", "rs", {"spec": {"paused": True}, "metadata": {"labels": None}}
        )
        assert patched["spec"]["paused"] is True
        assert patched["spec"]["rsync"]["address"] == "10.0.0.1"
        assert "labels" not in patched["metadata"]
        assert int(patched["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])

        patched["spec"]["sourcePVC"] = "other"
        replaced = co.replace_namespaced_custom_object(*VOLSYNC, namespace, "replicationsources", "rs", patched)
        assert replaced["spec"]["sourcePVC"] == "other"
        assert replaced["metadata"]["uid"] == meta["uid"]
        assert replaced["metadata"]["creationTimestamp"] == meta["creationTimestamp"]

        status = co.delete_namespaced_custom_object(*VOLSYNC, namespace, "replicationsources", "rs")
        assert status["kind"] == "Status"
        assert status["status"] == "Success"
        details = {"name": "rs", "group": "volsync.backube", "kind": "replicationsources", "uid": meta["uid"]}
        assert status["details"] == details
        with pytest.raises(NotFoundException) as err:
            co.get_namespaced_custom_object(*VOLSYNC, namespace, "replicationsources", "rs")
        assert err.value.status == 404
        assert co.list_namespaced_custom_object(*VOLSYNC, namespace, "replicationsources")["items"] == []


def test_replication_destination_crud(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client("cluster1") as api:
        co = client.CustomObjectsApi(api)
        created = co.create_namespaced_custom_object(
            *VOLSYNC, namespace, "replicationdestinations", replication_destination("rd")
        )
        assert created["spec"]["rsync"]["capacity"] == "1Gi"
        assert created["metadata"]["generation"] == 1
        # Defaults from the CRD's structural schema are filled in.
        assert created["spec"]["rsync"]["port"] == 22
        assert created["spec"]["rsync"]["serviceType"] == "ClusterIP"

        patched = co.patch_namespaced_custom_object(
            *VOLSYNC, namespace, "replicationdestinations", "rd", {"spec": {"rsync": {"capacity": "2Gi"}}}
        )
        assert patched["spec"]["rsync"] == {**created["spec"]["rsync"], "capacity": "2Gi"}
        assert patched["metadata"]["generation"] == 2

        # The object lives on cluster1 only.
        with apiserver.api_client("hub") as hub, pytest.raises(NotFoundException):
            client.CustomObjectsApi(hub).get_namespaced_custom_object(
                *VOLSYNC, namespace, "replicationdestinations", "rd"
            )

        co.delete_namespaced_custom_object(*VOLSYNC, namespace, "replicationdestinations", "rd")
        assert co.list_namespaced_custom_object(*VOLSYNC, namespace, "replicationdestinations")["items"] == []


def test_managed_cluster_is_cluster_scoped(apiserver: ApiServer) -> None:
    name = unique("mcl")
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        created = co.create_cluster_custom_object(*CLUSTER, "managedclusters", managed_cluster(name))
        assert "namespace" not in created["metadata"]
        assert created["spec"]["hubAcceptsClient"] is True

        got = co.get_cluster_custom_object(*CLUSTER, "managedclusters", name)
        assert got["metadata"]["uid"] == created["metadata"]["uid"]
        assert name in {
            o["metadata"]["name"] for o in co.list_cluster_custom_object(*CLUSTER, "managedclusters")["items"]
        }

        patched = co.patch_cluster_custom_object(
            *CLUSTER, "managedclusters", name, {"metadata": {"labels": {"tier": "gold"}}}
        )
        assert patched["metadata"]["labels"] == {"tier": "gold"}
        assert patched["metadata"]["generation"] == 1  # metadata-only change

        patched["spec"]["leaseDurationSeconds"] = 120
        replaced = co.replace_cluster_custom_object(*CLUSTER, "managedclusters", name, patched)
        assert replaced["spec"]["leaseDurationSeconds"] == 120
        assert replaced["metadata"]["generation"] == 2

        co.delete_cluster_custom_object(*CLUSTER, "managedclusters", name)
        with pytest.raises(NotFoundException):
            co.get_cluster_custom_object(*CLUSTER, "managedclusters", name)


def test_cluster_scoped_kind_has_no_namespaced_path(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        with pytest.raises(ApiException) as err:
            co.create_namespaced_custom_object(*CLUSTER, namespace, "managedclusters", managed_cluster(unique("mcl")))
        assert err.value.status == 404


def test_managed_cluster_addon_is_served_at_both_versions(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        created = co.create_namespaced_custom_object(
            ADDON, "v1alpha1", namespace, "managedclusteraddons", managed_cluster_addon("volsync")
        )
        assert created["apiVersion"] == f"{ADDON}/v1alpha1"

        beta = co.get_namespaced_custom_object(ADDON, "v1beta1", namespace, "managedclusteraddons", "volsync")
        assert beta["apiVersion"] == f"{ADDON}/v1beta1"
        assert beta["metadata"] == created["metadata"]
        assert beta["spec"] == created["spec"]

        listed = co.list_namespaced_custom_object(ADDON, "v1beta1", namespace, "managedclusteraddons")
        assert listed["apiVersion"] == f"{ADDON}/v1beta1"
        assert [o["apiVersion"] for o in listed["items"]] == [f"{ADDON}/v1beta1"]

        # A write through v1beta1 is visible through v1alpha1: it is one object.
        patched = co.patch_namespaced_custom_object(
            ADDON, "v1beta1", namespace, "managedclusteraddons", "volsync", {"metadata": {"labels": {"via": "beta"}}}
        )
        assert patched["apiVersion"] == f"{ADDON}/v1beta1"
        alpha = co.get_namespaced_custom_object(ADDON, "v1alpha1", namespace, "managedclusteraddons", "volsync")
        assert alpha["apiVersion"] == f"{ADDON}/v1alpha1"
        assert alpha["metadata"]["labels"] == {"via": "beta"}
        assert alpha["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]

        # Replace through v1beta1 with a v1beta1 body, then read it back at v1alpha1.
        beta = co.get_namespaced_custom_object(ADDON, "v1beta1", namespace, "managedclusteraddons", "volsync")
        beta["spec"]["installNamespace"] = "elsewhere"
        co.replace_namespaced_custom_object(ADDON, "v1beta1", namespace, "managedclusteraddons", "volsync", beta)
        alpha = co.get_namespaced_custom_object(ADDON, "v1alpha1", namespace, "managedclusteraddons", "volsync")
        assert alpha["spec"]["installNamespace"] == "elsewhere"

        # Creating the same name at the other version is the same object: AlreadyExists.
        with pytest.raises(ConflictException) as err:
            co.create_namespaced_custom_object(
                ADDON, "v1beta1", namespace, "managedclusteraddons", managed_cluster_addon("volsync", "v1beta1")
            )
        assert err.value.status == 409

        co.create_namespaced_custom_object(
            ADDON, "v1beta1", namespace, "managedclusteraddons", managed_cluster_addon("other", "v1beta1")
        )
        names = co.list_namespaced_custom_object(ADDON, "v1alpha1", namespace, "managedclusteraddons")["items"]
        assert sorted(o["metadata"]["name"] for o in names) == ["other", "volsync"]
        co.delete_namespaced_custom_object(ADDON, "v1beta1", namespace, "managedclusteraddons", "volsync")
        with pytest.raises(NotFoundException):
            co.get_namespaced_custom_object(ADDON, "v1alpha1", namespace, "managedclusteraddons", "volsync")


def test_list_cluster_custom_object_spans_namespaces(apiserver: ApiServer, namespace: str) -> None:
    second = unique("second")
    marker = unique("run")
    with apiserver.api_client() as api:
        client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=second)))
        co = client.CustomObjectsApi(api)
        for ns in (namespace, second):
            for name in ("a", "b"):
                co.create_namespaced_custom_object(
                    *VOLSYNC, ns, "replicationsources", replication_source(name, labels={"run": marker})
                )
        listed = co.list_cluster_custom_object(*VOLSYNC, "replicationsources", label_selector=f"run={marker}")
        assert listed["kind"] == "ReplicationSourceList"
        seen = sorted((o["metadata"]["namespace"], o["metadata"]["name"]) for o in listed["items"])
        assert seen == sorted([(namespace, "a"), (namespace, "b"), (second, "a"), (second, "b")])

        only_second = co.list_cluster_custom_object(
            *VOLSYNC, "replicationsources", field_selector=f"metadata.namespace={second}"
        )
        assert {o["metadata"]["namespace"] for o in only_second["items"]} == {second}
        assert len(only_second["items"]) == 2
        client.CoreV1Api(api).delete_namespace(second)
