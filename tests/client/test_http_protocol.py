"""The wire protocol below the Python client, checked with raw httpx: watch ERROR events, list
resourceVersions, Table responses, discovery (aggregated and legacy), OpenAPI, deletecollection
and delete preconditions."""

from __future__ import annotations

import json
from typing import Any

import httpx
from kubernetes import client
from support.apiserver import ApiServer
from support.objects import MCL_PATH, RS_PATH, assert_status, http, managed_cluster, replication_source, unique

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
KUBECTL_TABLE = f"{TABLE},application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
KUBECTL_DISCOVERY = (
    f"{AGGREGATED},application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)


def _create(h: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    resp = h.post(path, json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


# -- watch ---------------------------------------------------------------------------------------


def test_watch_error_event_is_an_expired_status(fresh_apiserver: ApiServer) -> None:
    fresh_apiserver.extra_args = ["--history", "20"]
    server = fresh_apiserver.start()
    path = RS_PATH.format(ns="default")
    with http(server) as h:
        old = _create(h, path, replication_source("w"))["metadata"]["resourceVersion"]
        for i in range(45):
            resp = h.patch(
                f"{path}/w",
                content=json.dumps({"spec": {"sourcePVC": f"p{i}"}}),
                headers={"Content-Type": "application/merge-patch+json"},
            )
            assert resp.status_code == 200, resp.text
        with h.stream("GET", path, params={"watch": "true", "resourceVersion": old, "timeoutSeconds": "5"}) as resp:
            assert resp.status_code == 200
            lines = [line for line in resp.iter_lines() if line]
        assert len(lines) == 1, lines
        event = json.loads(lines[0])
        assert event["type"] == "ERROR"
        status = event["object"]
        assert status["kind"] == "Status"
        assert status["apiVersion"] == "v1"
        assert status["status"] == "Failure"
        assert status["code"] == 410
        assert status["reason"] == "Expired"
        assert status["message"]


def test_watch_lines_are_json_events(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        created = _create(h, path, replication_source("line"))
        rv = created["metadata"]["resourceVersion"]
        h.delete(f"{path}/line").raise_for_status()
        params = {"watch": "1", "resourceVersion": str(int(rv) - 1), "timeoutSeconds": "1"}
        with h.stream("GET", path, params=params) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("application/json")
            events = [json.loads(line) for line in resp.iter_lines() if line]
        assert [e["type"] for e in events] == ["ADDED", "DELETED"]
        assert events[0]["object"]["metadata"]["resourceVersion"] == rv


def test_watch_as_table_sends_one_row_per_event(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        _create(h, path, replication_source("t1"))
        _create(h, path, replication_source("t2"))
        params = {"watch": "true", "timeoutSeconds": "1"}
        with h.stream("GET", path, params=params, headers={"Accept": KUBECTL_TABLE}) as resp:
            events = [json.loads(line) for line in resp.iter_lines() if line]
        assert [e["type"] for e in events] == ["ADDED", "ADDED"]
        for e in events:
            assert e["object"]["kind"] == "Table"
            assert len(e["object"]["rows"]) == 1
        assert events[0]["object"]["columnDefinitions"][0]["name"] == "Name"
        assert [e["object"]["rows"][0]["cells"][0] for e in events] == ["t1", "t2"]


# -- lists ---------------------------------------------------------------------------------------


def test_list_resource_version_is_the_newest_write(fresh_apiserver: ApiServer) -> None:
    server = fresh_apiserver.start()
    path = RS_PATH.format(ns="default")
    with http(server) as h:
        rvs = [int(_create(h, path, replication_source(f"o{i}"))["metadata"]["resourceVersion"]) for i in range(3)]
        listed = h.get(path).json()
        assert listed["kind"] == "ReplicationSourceList"
        assert int(listed["metadata"]["resourceVersion"]) == max(rvs)
        assert max(int(o["metadata"]["resourceVersion"]) for o in listed["items"]) == max(rvs)

        # A write elsewhere moves the list's resourceVersion (it is the store's, not the kind's).
        other = _create(h, MCL_PATH, managed_cluster("m"))
        assert int(h.get(path).json()["metadata"]["resourceVersion"]) == int(other["metadata"]["resourceVersion"])


def test_list_resource_version_covers_every_item(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        for i in range(3):
            _create(h, path, replication_source(f"o{i}"))
        listed = h.get(path).json()
        assert int(listed["metadata"]["resourceVersion"]) >= max(
            int(o["metadata"]["resourceVersion"]) for o in listed["items"]
        )


def test_table_list_and_get(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        _create(h, path, replication_source("tab", labels={"a": "b"}))
        resp = h.get(path, headers={"Accept": TABLE})
        assert resp.status_code == 200
        table = resp.json()
        assert table["kind"] == "Table"
        assert table["apiVersion"] == "meta.k8s.io/v1"
        assert table["metadata"]["resourceVersion"]
        names = [c["name"] for c in table["columnDefinitions"]]
        assert names[0] == "Name"
        assert table["columnDefinitions"][0]["format"] == "name"
        assert "Source" in names  # the CRD's additionalPrinterColumns
        assert len(table["rows"]) == 1
        row = table["rows"][0]
        assert len(row["cells"]) == len(names)
        assert row["cells"][0] == "tab"
        assert row["cells"][names.index("Source")] == "data"
        assert row["object"]["kind"] == "PartialObjectMetadata"
        assert row["object"]["metadata"]["labels"] == {"a": "b"}

        single = h.get(f"{path}/tab", headers={"Accept": KUBECTL_TABLE}).json()
        assert single["kind"] == "Table"
        assert [r["cells"][0] for r in single["rows"]] == ["tab"]

        cms = h.get(f"/api/v1/namespaces/{namespace}/configmaps", headers={"Accept": TABLE}).json()
        assert cms["kind"] == "Table"
        assert cms["columnDefinitions"][0]["name"] == "Name"
        assert cms["rows"] == []


def test_plain_json_when_table_is_not_asked_for(apiserver: ApiServer, namespace: str) -> None:
    with http(apiserver) as h:
        body = h.get(RS_PATH.format(ns=namespace), headers={"Accept": "application/json"}).json()
        assert body["kind"] == "ReplicationSourceList"


# -- discovery and OpenAPI -----------------------------------------------------------------------


def test_aggregated_discovery_content_type(apiserver: ApiServer) -> None:
    with http(apiserver) as h:
        for path in ("/api", "/apis"):
            for accept in (AGGREGATED + ",application/json", KUBECTL_DISCOVERY):
                resp = h.get(path, headers={"Accept": accept})
                assert resp.status_code == 200
                assert resp.headers["content-type"] == AGGREGATED
                body = resp.json()
                assert body["kind"] == "APIGroupDiscoveryList"
                assert body["apiVersion"] == "apidiscovery.k8s.io/v2"

        core = h.get("/api", headers={"Accept": KUBECTL_DISCOVERY}).json()
        assert len(core["items"]) == 1
        v1 = core["items"][0]["versions"][0]
        assert v1["version"] == "v1"
        resources = {r["resource"]: r for r in v1["resources"]}
        assert resources["namespaces"]["scope"] == "Cluster"
        assert resources["secrets"]["scope"] == "Namespaced"
        assert resources["secrets"]["responseKind"] == {"group": "", "version": "v1", "kind": "Secret"}

        groups = {
            g["metadata"]["name"]: g for g in h.get("/apis", headers={"Accept": KUBECTL_DISCOVERY}).json()["items"]
        }
        assert "volsync.backube" in groups
        addon_versions = [v["version"] for v in groups["addon.open-cluster-management.io"]["versions"]]
        assert set(addon_versions) == {"v1alpha1", "v1beta1"}
        rs = next(
            r for r in groups["volsync.backube"]["versions"][0]["resources"] if r["resource"] == "replicationsources"
        )
        assert rs["scope"] == "Namespaced"
        assert rs["singularResource"] == "replicationsource"
        assert [s["subresource"] for s in rs["subresources"]] == ["status"]
        assert "watch" in rs["verbs"]
        mcl = next(
            r
            for r in groups["cluster.open-cluster-management.io"]["versions"][0]["resources"]
            if r["resource"] == "managedclusters"
        )
        assert mcl["scope"] == "Cluster"
        assert "mcl" in mcl["shortNames"]


def test_legacy_discovery(apiserver: ApiServer) -> None:
    with http(apiserver) as h:
        api = h.get("/api", headers={"Accept": "application/json"})
        assert api.headers["content-type"] == "application/json"
        assert api.json()["kind"] == "APIVersions"
        assert api.json()["versions"] == ["v1"]

        apis = h.get("/apis").json()
        assert apis["kind"] == "APIGroupList"
        groups = {g["name"]: g for g in apis["groups"]}
        assert groups["volsync.backube"]["preferredVersion"]["groupVersion"] == "volsync.backube/v1alpha1"
        addon = groups["addon.open-cluster-management.io"]
        assert {v["version"] for v in addon["versions"]} == {"v1alpha1", "v1beta1"}

        core = h.get("/api/v1").json()
        assert core["kind"] == "APIResourceList"
        assert core["groupVersion"] == "v1"
        names = {r["name"]: r for r in core["resources"]}
        assert names["namespaces"]["namespaced"] is False
        assert names["secrets"]["kind"] == "Secret"
        assert "namespaces/status" in names

        beta = h.get("/apis/addon.open-cluster-management.io/v1beta1").json()
        assert beta["groupVersion"] == "addon.open-cluster-management.io/v1beta1"
        beta_names = {r["name"]: r for r in beta["resources"]}
        assert beta_names["managedclusteraddons"]["kind"] == "ManagedClusterAddOn"
        assert beta_names["managedclusteraddons"]["namespaced"] is True
        assert "managedclusteraddons/status" in beta_names
        assert "shortNames" not in beta_names["managedclusteraddons/status"]

        assert_status(h.get("/apis/volsync.backube/v9"), 404, "NotFound")


def test_version_and_openapi(apiserver: ApiServer) -> None:
    with http(apiserver) as h:
        version = h.get("/version").json()
        assert version["major"] and version["minor"] and version["gitVersion"].startswith("v")

        resp = h.get("/openapi/v2", headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
        assert resp.status_code == 200
        assert resp.content == b""
        assert "@" not in resp.headers["content-type"]
        assert h.get("/openapi/v3").status_code == 404


# -- deletes -------------------------------------------------------------------------------------


def test_delete_collection_with_label_selector(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
            _create(h, path, replication_source(name, labels={"team": team}))
        resp = h.delete(path, params={"labelSelector": "team=x"})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["kind"] == "ReplicationSourceList"
        assert sorted(o["metadata"]["name"] for o in body["items"]) == ["a", "b"]
        remaining = h.get(path).json()["items"]
        assert [o["metadata"]["name"] for o in remaining] == ["c"]

    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        co.delete_collection_namespaced_custom_object("volsync.backube", "v1alpha1", namespace, "replicationsources")
        assert (
            co.list_namespaced_custom_object("volsync.backube", "v1alpha1", namespace, "replicationsources")["items"]
            == []
        )


def test_delete_collection_leaves_other_namespaces(apiserver: ApiServer, namespace: str) -> None:
    with http(apiserver) as h:
        _create(h, f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": "mine"}})
        resp = h.delete(f"/api/v1/namespaces/{namespace}/configmaps")
        assert resp.status_code == 200
        assert h.get(f"/api/v1/namespaces/{namespace}/configmaps").json()["items"] == []
        assert h.get("/api/v1/namespaces/default/configmaps").status_code == 200


def test_delete_preconditions(apiserver: ApiServer) -> None:
    name = unique("pre")
    with http(apiserver) as h:
        created = _create(h, MCL_PATH, managed_cluster(name))
        meta = created["metadata"]

        wrong_uid = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "not-the-uid"}}
        body = assert_status(h.request("DELETE", f"{MCL_PATH}/{name}", json=wrong_uid), 409, "Conflict")
        assert "Precondition failed" in body["message"]
        assert "not-the-uid" in body["message"]

        stale_rv = {"preconditions": {"resourceVersion": str(int(meta["resourceVersion"]) - 1)}}
        assert_status(h.request("DELETE", f"{MCL_PATH}/{name}", json=stale_rv), 409, "Conflict")

        still = h.get(f"{MCL_PATH}/{name}")
        assert still.status_code == 200
        assert still.json()["metadata"]["resourceVersion"] == meta["resourceVersion"]

        matching = {"preconditions": {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]}}
        resp = h.request("DELETE", f"{MCL_PATH}/{name}", json=matching)
        assert resp.status_code == 200, resp.text
        status = resp.json()
        assert status["kind"] == "Status"
        assert status["status"] == "Success"
        assert status["details"]["uid"] == meta["uid"]
        assert_status(h.get(f"{MCL_PATH}/{name}"), 404, "NotFound")


def test_delete_returns_object_while_finalizers_pending(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    body = replication_source("fin")
    body["metadata"]["finalizers"] = ["example.com/keep"]
    with http(apiserver) as h:
        _create(h, path, body)
        resp = h.delete(f"{path}/fin")
        assert resp.status_code == 200  # 202 only for orphanDependents=false, as in kube-apiserver
        assert resp.json()["metadata"]["deletionTimestamp"]
        patched = h.patch(
            f"{path}/fin",
            content=json.dumps({"metadata": {"finalizers": []}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert patched.status_code == 200
        assert_status(h.get(f"{path}/fin"), 404, "NotFound")


def test_dry_run_create_stores_nothing(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        resp = h.post(path, params={"dryRun": "All"}, json=replication_source("dry"))
        assert resp.status_code == 201
        assert resp.json()["metadata"]["name"] == "dry"
        assert_status(h.get(f"{path}/dry"), 404, "NotFound")
        assert_status(h.post(path, params={"dryRun": "Some"}, json=replication_source("dry")), 400, "BadRequest")
