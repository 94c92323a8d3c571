"""Namespace deletion: the namespace turns Terminating, refuses new content with 403 Forbidden,
deletes what it holds, waits for objects with finalizers, and goes away once it is empty."""

from __future__ import annotations

import httpx
from support.objects import assert_status, replication_source
from support.waiting import eventually

MERGE = {"content-type": "application/merge-patch+json"}


def new_namespace(hub: httpx.Client, name: str) -> None:
    resp = hub.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert resp.status_code == 201, resp.text


def test_deleting_a_namespace_deletes_its_contents_and_then_itself(hub: httpx.Client, ns: str) -> None:
    victim = f"{ns}-x"
    new_namespace(hub, victim)
    for i in range(3):
        assert hub.post(f"/api/v1/namespaces/{victim}/configmaps", json={"metadata": {"name": f"cm-{i}"}}).is_success
    assert hub.post(f"/api/v1/namespaces/{victim}/secrets", json={"metadata": {"name": "s"}}).is_success
    rs_path = f"/apis/volsync.backube/v1alpha1/namespaces/{victim}/replicationsources"
    assert hub.post(rs_path, json=replication_source("rs")).is_success
    survivor = hub.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "cm-0"}}).json()

    resp = hub.delete(f"/api/v1/namespaces/{victim}")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["kind"] == "Namespace"
    assert body["status"]["phase"] == "Terminating"
    assert body["metadata"]["deletionTimestamp"]

    eventually(lambda: hub.get(f"/api/v1/namespaces/{victim}").status_code == 404)
    assert hub.get(f"/api/v1/namespaces/{victim}/configmaps").json()["items"] == []
    assert hub.get(f"/api/v1/namespaces/{victim}/secrets").json()["items"] == []
    assert hub.get(rs_path).json()["items"] == []
    # another namespace's object of the same name is untouched
    kept = hub.get(f"/api/v1/namespaces/{ns}/configmaps/cm-0").json()
    assert kept["metadata"]["resourceVersion"] == survivor["metadata"]["resourceVersion"]


def test_an_object_with_a_finalizer_holds_its_namespace_in_terminating(hub: httpx.Client, ns: str) -> None:
    victim = f"{ns}-x"
    new_namespace(hub, victim)
    cms = f"/api/v1/namespaces/{victim}/configmaps"
    assert hub.post(cms, json={"metadata": {"name": "plain"}}).is_success
    assert hub.post(cms, json={"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}).is_success

    assert hub.delete(f"/api/v1/namespaces/{victim}").status_code == 200
    eventually(lambda: hub.get(f"{cms}/plain").status_code == 404)
    held = hub.get(f"{cms}/held").json()
    assert held["metadata"]["deletionTimestamp"]
    terminating = hub.get(f"/api/v1/namespaces/{victim}").json()
    assert terminating["status"]["phase"] == "Terminating"
    assert terminating["spec"]["finalizers"] == ["kubernetes"]

    refused = hub.post(cms, json={"metadata": {"name": "latecomer"}})
    body = assert_status(refused, 403, "Forbidden")
    assert "because it is being terminated" in body["message"]
    assert hub.get(f"{cms}/latecomer").status_code == 404
    # updates of what is already there are still allowed (a controller must be able to finish)
    assert hub.patch(f"{cms}/held", json={"data": {"k": "v"}}, headers=MERGE).status_code == 200

    assert hub.patch(f"{cms}/held", json={"metadata": {"finalizers": None}}, headers=MERGE).status_code == 200
    eventually(lambda: hub.get(f"/api/v1/namespaces/{victim}").status_code == 404)


def test_a_namespace_can_be_recreated_once_it_is_gone(hub: httpx.Client, ns: str) -> None:
    victim = f"{ns}-x"
    new_namespace(hub, victim)
    first = hub.get(f"/api/v1/namespaces/{victim}").json()
    assert hub.post(f"/api/v1/namespaces/{victim}/configmaps", json={"metadata": {"name": "old"}}).is_success
    assert hub.delete(f"/api/v1/namespaces/{victim}").status_code == 200
    eventually(lambda: hub.get(f"/api/v1/namespaces/{victim}").status_code == 404)
    new_namespace(hub, victim)
    again = hub.get(f"/api/v1/namespaces/{victim}").json()
    assert again["metadata"]["uid"] != first["metadata"]["uid"]
    assert again["status"]["phase"] == "Active"
    assert hub.get(f"/api/v1/namespaces/{victim}/configmaps").json()["items"] == []
