"""Write semantics the Python client relies on: the status subresource split, metadata.generation,
resourceVersion preconditions and no-op writes, and deletion with finalizers."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException, ConflictException, NotFoundException
from support.apiserver import ApiServer
from support.objects import CLUSTER, VOLSYNC, managed_cluster, replication_source, unique

RS = "replicationsources"


def _create_rs(co: client.CustomObjectsApi, namespace: str, name: str = "rs", **extra: Any) -> dict[str, Any]:
    body = replication_source(name)
    body.update(extra)
    created: dict[str, Any] = co.create_namespaced_custom_object(*VOLSYNC, namespace, RS, body)
    return created


def test_create_drops_status(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        created = _create_rs(co, namespace, status={"lastSyncTime": "2026-01-01T00:00:00Z"})
        assert "status" not in created
        assert "status" not in co.get_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs")


def test_status_patch_changes_only_status(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        created = _create_rs(co, namespace)
        out = co.patch_namespaced_custom_object_status(
            *VOLSYNC,
            namespace,
            RS,
            "rs",
            {
                "status": {"lastSyncTime": "2026-01-01T00:00:00Z", "lastSyncDuration": "5s"},
                "spec": {"sourcePVC": "ignored"},
                "metadata": {"labels": {"ignored": "yes"}},
            },
        )
        assert out["status"] == {"lastSyncTime": "2026-01-01T00:00:00Z", "lastSyncDuration": "5s"}
        assert out["spec"] == created["spec"]
        assert "labels" not in out["metadata"]
        assert out["metadata"]["generation"] == 1
        assert int(out["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
        assert co.get_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs") == out


def test_status_replace_changes_only_status(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        created = _create_rs(co, namespace)
        body = dict(created)
        body["spec"] = {"sourcePVC": "ignored", "paused": True}
        body["status"] = {"lastSyncDuration": "1m"}
        out = co.replace_namespaced_custom_object_status(*VOLSYNC, namespace, RS, "rs", body)
        assert out["status"] == {"lastSyncDuration": "1m"}
        assert out["spec"] == created["spec"]
        assert out["metadata"]["generation"] == 1

        # Status replace also honours the resourceVersion precondition.
        body["status"] = {"lastSyncDuration": "2m"}
        with pytest.raises(ConflictException):
            co.replace_namespaced_custom_object_status(*VOLSYNC, namespace, RS, "rs", body)
        current = co.get_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs")
        assert current["status"] == {"lastSyncDuration": "1m"}
        assert current["metadata"]["resourceVersion"] == out["metadata"]["resourceVersion"]


def test_main_resource_writes_keep_status(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        _create_rs(co, namespace)
        with_status = co.patch_namespaced_custom_object_status(
            *VOLSYNC, namespace, RS, "rs", {"status": {"lastSyncDuration": "5s"}}
        )
        patched = co.patch_namespaced_custom_object(
            *VOLSYNC, namespace, RS, "rs", {"spec": {"paused": True}, "status": {"lastSyncDuration": "overwritten?"}}
        )
        assert patched["spec"]["paused"] is True
        assert patched["status"] == {"lastSyncDuration": "5s"}

        body = dict(patched)
        body.pop("status")
        body["spec"] = {"sourcePVC": "new"}
        replaced = co.replace_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs", body)
        assert replaced["spec"] == {"sourcePVC": "new"}
        assert replaced["status"] == with_status["status"]


def test_cluster_scoped_status_subresource(apiserver: ApiServer) -> None:
    name = unique("mcl")
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        co.create_cluster_custom_object(*CLUSTER, "managedclusters", managed_cluster(name))
        condition = {
            "type": "ManagedClusterConditionAvailable",
            "status": "True",
            "reason": "Available",
            "message": "ok",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
        out = co.patch_cluster_custom_object_status(
            *CLUSTER, "managedclusters", name, {"status": {"conditions": [condition]}}
        )
        assert out["status"]["conditions"] == [condition]
        got = co.get_cluster_custom_object_status(*CLUSTER, "managedclusters", name)
        assert got["status"]["conditions"] == [condition]
        co.delete_cluster_custom_object(*CLUSTER, "managedclusters", name)


def test_generation_bumps_only_on_spec_changes(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)

        def gen() -> int:
            obj = co.get_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs")
            return int(obj["metadata"]["generation"])

        _create_rs(co, namespace)
        assert gen() == 1
        co.patch_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs", {"metadata": {"labels": {"x": "1"}}})
        co.patch_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs", {"metadata": {"annotations": {"y": "2"}}})
        assert gen() == 1
        co.patch_namespaced_custom_object_status(*VOLSYNC, namespace, RS, "rs", {"status": {"lastSyncDuration": "1s"}})
        assert gen() == 1
        co.patch_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs", {"spec": {"paused": True}})
        assert gen() == 2
        co.patch_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs", {"spec": {"paused": True}})  # no-op
        assert gen() == 2
        co.patch_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs", {"spec": {"trigger": {"manual": "now"}}})
        assert gen() == 3


def test_stale_resource_version_on_replace_conflicts(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        stale = _create_rs(co, namespace)
        current = co.patch_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs", {"spec": {"paused": True}})

        stale["spec"]["sourcePVC"] = "lost-update"
        with pytest.raises(ConflictException) as err:
            co.replace_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs", stale)
        assert err.value.status == 409
        assert "the object has been modified" in err.value.body

        after = co.get_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs")
        assert after == current

        # A merge patch that carries a stale resourceVersion is a precondition too.
        with pytest.raises(ConflictException):
            co.patch_namespaced_custom_object(
                *VOLSYNC,
                namespace,
                RS,
                "rs",
                {"metadata": {"resourceVersion": stale["metadata"]["resourceVersion"]}, "spec": {"paused": False}},
            )
        assert co.get_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs") == current


def test_replace_of_custom_resource_requires_resource_version(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        created = _create_rs(co, namespace)
        body = dict(created)
        body["metadata"] = {k: v for k, v in created["metadata"].items() if k != "resourceVersion"}
        body["spec"] = {"sourcePVC": "x"}
        with pytest.raises(ApiException) as err:
            co.replace_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs", body)
        assert err.value.status == 422
        assert "metadata.resourceVersion" in err.value.body
        assert co.get_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs") == created


def test_builtin_replace_with_stale_resource_version_conflicts(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        v1 = client.CoreV1Api(api)
        stale = v1.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"), data={"k": "1"})
        )
        current = v1.patch_namespaced_config_map("c", namespace, {"data": {"k": "2"}})
        stale.data = {"k": "lost"}
        with pytest.raises(ConflictException):
            v1.replace_namespaced_config_map("c", namespace, stale)
        after = v1.read_namespaced_config_map("c", namespace)
        assert after.data == {"k": "2"}
        assert after.metadata.resource_version == current.metadata.resource_version


def test_no_op_writes_keep_resource_version(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        created = _create_rs(co, namespace)
        rv = created["metadata"]["resourceVersion"]

        replaced = co.replace_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs", created)
        assert replaced["metadata"]["resourceVersion"] == rv
        patched = co.patch_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs", {"spec": {"sourcePVC": "data"}})
        assert patched["metadata"]["resourceVersion"] == rv
        status = co.patch_namespaced_custom_object_status(*VOLSYNC, namespace, RS, "rs", {"status": None})
        assert status["metadata"]["resourceVersion"] == rv
        assert co.get_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs")["metadata"]["resourceVersion"] == rv

        v1 = client.CoreV1Api(api)
        cm = v1.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"), data={"k": "v"})
        )
        same = v1.replace_namespaced_config_map("c", namespace, cm)
        assert same.metadata.resource_version == cm.metadata.resource_version


def test_resource_versions_increase_across_writes(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        rvs = [int(_create_rs(co, namespace)["metadata"]["resourceVersion"])]
        for i in range(3):
            out = co.patch_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs", {"spec": {"sourcePVC": f"p{i}"}})
            rvs.append(int(out["metadata"]["resourceVersion"]))
        assert rvs == sorted(set(rvs))


def test_finalizer_holds_deletion_until_removed(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        body = replication_source("rs")
        body["metadata"]["finalizers"] = ["example.com/hold"]
        co.create_namespaced_custom_object(*VOLSYNC, namespace, RS, body)

        pending = co.delete_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs")
        assert pending["kind"] == "ReplicationSource"
        assert pending["metadata"]["deletionTimestamp"]
        still = co.get_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs")
        assert still["metadata"]["finalizers"] == ["example.com/hold"]
        assert still["metadata"]["deletionTimestamp"] == pending["metadata"]["deletionTimestamp"]

        with pytest.raises(ApiException) as err:  # no new finalizers while deleting
            co.patch_namespaced_custom_object(
                *VOLSYNC, namespace, RS, "rs", {"metadata": {"finalizers": ["example.com/hold", "another"]}}
            )
        assert err.value.status == 422

        co.patch_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs", {"metadata": {"finalizers": None}})
        with pytest.raises(NotFoundException):
            co.get_namespaced_custom_object(*VOLSYNC, namespace, RS, "rs")
