"""Malformed or conflicting requests get the Kubernetes error a client expects (400, 404, 405, 409,
415, 422), always as a `Status` body, and never store or change anything."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException, BadRequestException, ConflictException, NotFoundException
from support.apiserver import ApiServer
from support.objects import RS_PATH, VOLSYNC, assert_status, http, replication_source

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


def _created(h: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    resp = h.post(path, json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def _patch(h: httpx.Client, url: str, body: Any, content_type: str, **params: str) -> httpx.Response:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return h.patch(url, content=data, headers={"Content-Type": content_type}, params=params)


def _assert_unchanged(h: httpx.Client, url: str, before: dict[str, Any]) -> None:
    after = h.get(url)
    assert after.status_code == 200
    assert after.json() == before
    assert after.json()["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


# -- conflicts -----------------------------------------------------------------------------------


def test_stale_resource_version_on_put(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        stale = _created(h, path, replication_source("c"))
        current = _patch(h, f"{path}/c", {"spec": {"paused": True}}, MERGE).json()
        stale["spec"]["sourcePVC"] = "lost"
        body = assert_status(h.put(f"{path}/c", json=stale), 409, "Conflict")
        assert body["message"] == (
            'Operation cannot be fulfilled on replicationsources.volsync.backube "c": '
            "the object has been modified; please apply your changes to the latest version and try again"
        )
        assert body["details"] == {"name": "c", "group": "volsync.backube", "kind": "replicationsources"}
        _assert_unchanged(h, f"{path}/c", current)

        # The status subresource checks the same precondition.
        stale["status"] = {"lastSyncDuration": "1s"}
        assert_status(h.put(f"{path}/c/status", json=stale), 409, "Conflict")
        _assert_unchanged(h, f"{path}/c", current)


def test_create_twice_is_already_exists(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        first = _created(h, path, replication_source("twice"))
        again = replication_source("twice", paused=True)
        body = assert_status(h.post(path, json=again), 409, "AlreadyExists")
        assert body["message"] == 'replicationsources.volsync.backube "twice" already exists'
        assert body["details"]["name"] == "twice"
        _assert_unchanged(h, f"{path}/twice", first)

    with apiserver.api_client() as api:
        v1 = client.CoreV1Api(api)
        cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="once"), data={"a": "1"})
        v1.create_namespaced_config_map(namespace, cm)
        cm.data = {"a": "2"}
        with pytest.raises(ConflictException) as err:
            v1.create_namespaced_config_map(namespace, cm)
        assert json.loads(err.value.body)["reason"] == "AlreadyExists"
        assert v1.read_namespaced_config_map("once", namespace).data == {"a": "1"}


# -- malformed bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b'{"apiVersion": "volsync.backube/v1alpha1", "kind": ', b"not json at all", b"\xff\xfe", b"[1, 2", b""],
)
def test_malformed_json_body(apiserver: ApiServer, namespace: str, raw: bytes) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        resp = h.post(path, content=raw, headers={"Content-Type": "application/json"})
        assert_status(resp, 400, "BadRequest")
        assert h.get(path).json()["items"] == []


def test_body_that_is_not_an_object(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        for body in ([replication_source("x")], "a string", 42, None):
            resp = h.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})
            assert_status(resp, 400, "BadRequest")
        assert h.get(path).json()["items"] == []


def test_malformed_patch_bodies(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        before = _created(h, path, replication_source("p"))
        assert_status(_patch(h, f"{path}/p", "{not json", MERGE), 400, "BadRequest")
        assert_status(_patch(h, f"{path}/p", {"op": "add"}, JSON_PATCH), 400, "BadRequest")  # not a list
        _assert_unchanged(h, f"{path}/p", before)


def test_wrong_kind_in_body(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        body = replication_source("k")
        body["kind"] = "ReplicationDestination"
        out = assert_status(h.post(path, json=body), 400, "BadRequest")
        assert "ReplicationDestination" in out["message"]
        assert h.get(path).json()["items"] == []

        body = replication_source("k")
        body["apiVersion"] = "volsync.backube/v9"
        out = assert_status(h.post(path, json=body), 400, "BadRequest")
        assert "volsync.backube/v9" in out["message"]

        cms = f"/api/v1/namespaces/{namespace}/configmaps"
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k"}}
        assert_status(h.post(cms, json=secret), 400, "BadRequest")
        assert h.get(cms).json()["items"] == []

        # And on update: a PUT whose body names another kind changes nothing.
        before = _created(h, path, replication_source("k"))
        wrong = {**before, "kind": "ReplicationDestination"}
        assert_status(h.put(f"{path}/k", json=wrong), 400, "BadRequest")
        _assert_unchanged(h, f"{path}/k", before)


def test_namespace_mismatch(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        body = replication_source("n")
        body["metadata"]["namespace"] = "default"
        out = assert_status(h.post(path, json=body), 400, "BadRequest")
        assert "namespace" in out["message"]
        assert h.get(path).json()["items"] == []
        assert_status(h.get(f"{RS_PATH.format(ns='default')}/n"), 404, "NotFound")

        before = _created(h, path, replication_source("n"))
        moved = json.loads(json.dumps(before))
        moved["metadata"]["namespace"] = "default"
        assert_status(h.put(f"{path}/n", json=moved), 400, "BadRequest")
        assert_status(_patch(h, f"{path}/n", {"metadata": {"namespace": "default"}}, MERGE), 400, "BadRequest")
        _assert_unchanged(h, f"{path}/n", before)


def test_name_mismatch_on_update(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        before = _created(h, path, replication_source("right"))
        renamed = json.loads(json.dumps(before))
        renamed["metadata"]["name"] = "wrong"
        out = assert_status(h.put(f"{path}/right", json=renamed), 400, "BadRequest")
        assert "wrong" in out["message"]
        _assert_unchanged(h, f"{path}/right", before)
        assert_status(h.get(f"{path}/wrong"), 404, "NotFound")


# -- missing things ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/apis/volsync.backube/v1alpha1/namespaces/default/widgets",
        "/apis/nope.example.com/v1/things",
        "/apis/volsync.backube/v2/namespaces/default/replicationsources",
        "/api/v1/nonsense",
        "/api/v2/namespaces",
        "/apis/volsync.backube/v1alpha1/namespaces/default/replicationsources/x/scale",
        "/apis/volsync.backube/v1alpha1/namespaces/default/replicationsources/x/status/extra",
        "/api/v1/namespaces/default/configmaps/x/status",
        "/nothing/here",
    ],
)
def test_unknown_resource_path(apiserver: ApiServer, path: str) -> None:
    with http(apiserver) as h:
        body = assert_status(h.get(path), 404, "NotFound")
        assert body["message"] == "the server could not find the requested resource"
        assert_status(h.post(path, json={"metadata": {"name": "x"}}), 404, "NotFound")


def test_unknown_resource_path_through_the_client(apiserver: ApiServer) -> None:
    with apiserver.api_client() as api:
        with pytest.raises(NotFoundException) as err:
            client.CustomObjectsApi(api).list_cluster_custom_object("nope.example.com", "v1", "things")
        assert json.loads(err.value.body)["kind"] == "Status"


def test_missing_namespace(apiserver: ApiServer) -> None:
    path = RS_PATH.format(ns="no-such-namespace")
    with http(apiserver) as h:
        body = assert_status(h.post(path, json=replication_source("x")), 404, "NotFound")
        assert body["message"] == 'namespaces "no-such-namespace" not found'
        assert body["details"] == {"name": "no-such-namespace", "kind": "namespaces"}
        assert h.get(path).json()["items"] == []
        assert_status(h.get("/api/v1/namespaces/no-such-namespace"), 404, "NotFound")

        cms = "/api/v1/namespaces/no-such-namespace/configmaps"
        body = assert_status(h.post(cms, json={"metadata": {"name": "x"}}), 404, "NotFound")
        assert body["message"] == 'namespaces "no-such-namespace" not found'

    with apiserver.api_client() as api, pytest.raises(NotFoundException):
        client.CoreV1Api(api).create_namespaced_secret(
            "no-such-namespace", client.V1Secret(metadata=client.V1ObjectMeta(name="s"))
        )


def test_missing_object(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        ghost = {**replication_source("ghost"), "metadata": {"name": "ghost", "resourceVersion": "1"}}
        for resp in (
            h.get(f"{path}/ghost"),
            h.put(f"{path}/ghost", json=ghost),
            _patch(h, f"{path}/ghost", {"spec": {}}, MERGE),
            _patch(h, f"{path}/ghost/status", {"status": {}}, MERGE),
            h.delete(f"{path}/ghost"),
        ):
            body = assert_status(resp, 404, "NotFound")
            assert body["message"] == 'replicationsources.volsync.backube "ghost" not found'
        assert h.get(path).json()["items"] == []


def test_method_not_allowed(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        _created(h, path, replication_source("m"))
        assert_status(h.post(f"{path}/m", json=replication_source("m")), 405, "MethodNotAllowed")
        assert_status(h.put(path, json=replication_source("m")), 405, "MethodNotAllowed")
        assert_status(h.delete(f"{path}/m/status"), 405, "MethodNotAllowed")
        assert h.get(f"{path}/m").status_code == 200


# -- patch types ---------------------------------------------------------------------------------


def test_strategic_merge_patch_on_custom_resource(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        before = _created(h, path, replication_source("smp"))
        resp = _patch(h, f"{path}/smp", {"spec": {"paused": True}}, STRATEGIC)
        body = assert_status(resp, 415, "UnsupportedMediaType")
        assert "merge-patch" in body["message"]
        _assert_unchanged(h, f"{path}/smp", before)

        # Built-ins accept it.
        cms = f"/api/v1/namespaces/{namespace}/configmaps"
        _created(h, cms, {"metadata": {"name": "c"}, "data": {"a": "1"}})
        ok = _patch(h, f"{cms}/c", {"data": {"b": "2"}}, STRATEGIC)
        assert ok.status_code == 200
        assert ok.json()["data"] == {"a": "1", "b": "2"}


def test_unknown_patch_content_type(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        before = _created(h, path, replication_source("ct"))
        assert_status(_patch(h, f"{path}/ct", "<spec/>", "application/xml"), 415, "UnsupportedMediaType")
        resp = h.post(path, content=b"<x/>", headers={"Content-Type": "application/xml"})
        assert_status(resp, 415, "UnsupportedMediaType")
        _assert_unchanged(h, f"{path}/ct", before)


def test_json_patch_test_failure(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        before = _created(h, path, replication_source("jp"))
        ops = [
            {"op": "test", "path": "/spec/sourcePVC", "value": "something-else"},
            {"op": "replace", "path": "/spec/sourcePVC", "value": "changed"},
        ]
        assert_status(_patch(h, f"{path}/jp", ops, JSON_PATCH), 422, "Invalid")
        _assert_unchanged(h, f"{path}/jp", before)

        remove_missing = [{"op": "remove", "path": "/spec/doesNotExist"}]
        assert_status(_patch(h, f"{path}/jp", remove_missing, JSON_PATCH), 422, "Invalid")
        _assert_unchanged(h, f"{path}/jp", before)

        # The same patch with a passing test applies.
        ops[0]["value"] = "data"
        ok = _patch(h, f"{path}/jp", ops, JSON_PATCH)
        assert ok.status_code == 200, ok.text
        assert ok.json()["spec"]["sourcePVC"] == "changed"

    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        with pytest.raises(ApiException) as err:
            co.patch_namespaced_custom_object(
                *VOLSYNC,
                namespace,
                "replicationsources",
                "jp",
                [{"op": "test", "path": "/spec/sourcePVC", "value": "nope"}],
                _content_type=JSON_PATCH,
            )
        assert err.value.status == 422


def test_apply_patch_without_field_manager(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    manifest = json.dumps(replication_source("ssa"))
    with http(apiserver) as h:
        body = assert_status(_patch(h, f"{path}/ssa", manifest, APPLY), 400, "BadRequest")
        assert "fieldManager" in body["message"]
        assert_status(h.get(f"{path}/ssa"), 404, "NotFound")

        created = _patch(h, f"{path}/ssa", manifest, APPLY, fieldManager="tests")
        assert created.status_code == 201, created.text
        before = created.json()
        changed = json.dumps(replication_source("ssa", paused=True))
        assert_status(_patch(h, f"{path}/ssa", changed, APPLY), 400, "BadRequest")
        _assert_unchanged(h, f"{path}/ssa", before)


def test_bad_query_parameters(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        assert_status(h.post(path, params={"dryRun": "Nope"}, json=replication_source("q")), 400, "BadRequest")
        assert_status(h.get(path, params={"limit": "-1"}), 400, "BadRequest")
        assert_status(h.get(path, params={"labelSelector": "a in (b"}), 400, "BadRequest")
        assert_status(h.get(path, params={"fieldSelector": "spec.sourcePVC=x"}), 400, "BadRequest")
        assert h.get(path).json()["items"] == []
        before = _created(h, path, replication_source("q"))
        resp = h.request("DELETE", f"{path}/q", params={"propagationPolicy": "Sideways"})
        assert_status(resp, 400, "BadRequest")
        _assert_unchanged(h, f"{path}/q", before)


def test_client_raises_bad_request_for_400(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        body = replication_source("x")
        body["kind"] = "Wrong"
        with pytest.raises(BadRequestException) as err:
            co.create_namespaced_custom_object(*VOLSYNC, namespace, "replicationsources", body)
        assert err.value.status == 400
        assert json.loads(err.value.body)["reason"] == "BadRequest"
        assert co.list_namespaced_custom_object(*VOLSYNC, namespace, "replicationsources")["items"] == []


# -- built-in bodies that do not decode into their typed struct ----------------------------------


@pytest.mark.parametrize(
    ("resource", "body", "words"),
    [
        ("secrets", {"data": {"key": "not base64!"}}, ["Secret", "illegal base64"]),
        ("secrets", {"data": {"key": "YQ"}}, ["Secret", "illegal base64"]),
        ("secrets", {"data": {"key": 1}}, ["Secret", "Secret.data"]),
        ("secrets", {"stringData": {"key": ["a"]}}, ["Secret", "Secret.stringData"]),
        ("configmaps", {"data": {"key": 1}}, ["ConfigMap", "ConfigMap.data"]),
        ("configmaps", {"data": ["a"]}, ["ConfigMap", "ConfigMap.data"]),
        ("configmaps", {"binaryData": {"key": "%%%"}}, ["ConfigMap", "illegal base64"]),
    ],
)
def test_builtin_body_that_does_not_decode(
    apiserver: ApiServer, namespace: str, resource: str, body: dict[str, Any], words: list[str]
) -> None:
    path = f"/api/v1/namespaces/{namespace}/{resource}"
    with http(apiserver) as h:
        out = assert_status(h.post(path, json={"metadata": {"name": "typed"}, **body}), 400, "BadRequest")
        for w in words:
            assert w in out["message"]
        assert h.get(path).json()["items"] == []

        # The same on update: the stored object is untouched.
        before = _created(h, path, {"metadata": {"name": "typed"}})
        assert_status(_patch(h, f"{path}/typed", body, MERGE), 400, "BadRequest")
        _assert_unchanged(h, f"{path}/typed", before)


def test_valid_base64_with_line_breaks_is_accepted(apiserver: ApiServer, namespace: str) -> None:
    with http(apiserver) as h:
        resp = h.post(
            f"/api/v1/namespaces/{namespace}/secrets", json={"metadata": {"name": "s"}, "data": {"k": "YW\nJj"}}
        )
        assert resp.status_code == 201, resp.text
