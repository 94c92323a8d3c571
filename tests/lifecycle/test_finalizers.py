"""Finalizers: a delete only marks the object (deletionTimestamp, a MODIFIED watch event), the
object lives on until its last finalizer is removed (then DELETED), and no finalizer may be
added once the deletion has started."""

from __future__ import annotations

from typing import Any

import httpx
from support.objects import assert_status
from support.watch_stream import summary, watch_events

MERGE = {"content-type": "application/merge-patch+json"}


def cms(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}/configmaps"


def create(hub: httpx.Client, ns: str, name: str, finalizers: list[str]) -> dict[str, Any]:
    resp = hub.post(cms(ns), json={"metadata": {"name": name, "finalizers": finalizers}, "data": {"a": "1"}})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def test_delete_marks_the_object_and_removing_the_last_finalizer_deletes_it(hub: httpx.Client, ns: str) -> None:
    created = create(hub, ns, "held", ["example.com/a", "example.com/b"])
    path = f"{cms(ns)}/held"

    resp = hub.delete(path)
    # not done yet: the answer is the object (not a Status), with 200 as kube-apiserver sends unless
    # the client asked for orphanDependents=false
    assert resp.status_code == 200, resp.text
    marked = resp.json()
    assert marked["kind"] == "ConfigMap"
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 0
    assert marked["metadata"]["finalizers"] == ["example.com/a", "example.com/b"]
    assert int(marked["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert hub.get(path).json() == marked

    again = hub.delete(path)  # deleting a deleting object changes nothing
    assert again.status_code == 200
    assert again.json()["metadata"]["resourceVersion"] == marked["metadata"]["resourceVersion"]

    # the object is still writable while it waits, and the deletion mark cannot be undone
    update = hub.patch(path, json={"data": {"a": "2"}, "metadata": {"finalizers": ["example.com/b"]}}, headers=MERGE)
    assert update.status_code == 200, update.text
    assert update.json()["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]
    assert hub.get(path).status_code == 200  # one finalizer left

    last = hub.patch(path, json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert last.status_code == 200, last.text
    assert_status(hub.get(path), 404, "NotFound")

    events = watch_events(
        hub, cms(ns), created["metadata"]["resourceVersion"], lambda evs: evs[-1]["type"] == "DELETED"
    )
    assert summary(events) == [("MODIFIED", "held"), ("MODIFIED", "held"), ("DELETED", "held")]
    assert events[0]["object"]["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]
    assert events[2]["object"]["data"] == {"a": "2"}


def test_a_new_finalizer_cannot_be_added_to_a_deleting_object(hub: httpx.Client, ns: str) -> None:
    create(hub, ns, "held", ["example.com/a"])
    path = f"{cms(ns)}/held"
    marked = hub.delete(path).json()

    resp = hub.patch(path, json={"metadata": {"finalizers": ["example.com/a", "example.com/late"]}}, headers=MERGE)
    body = assert_status(resp, 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.finalizers"
    assert "no new finalizers can be added if the object is being deleted" in body["message"]
    assert hub.get(path).json()["metadata"]["resourceVersion"] == marked["metadata"]["resourceVersion"]

    put = {**marked, "metadata": {**marked["metadata"], "finalizers": ["example.com/late"]}}
    assert_status(hub.put(path, json=put), 422, "Invalid")


def test_the_deletion_timestamp_cannot_be_set_or_cleared_by_an_update(hub: httpx.Client, ns: str) -> None:
    created = create(hub, ns, "held", ["example.com/a"])
    path = f"{cms(ns)}/held"
    sneaky = hub.patch(path, json={"metadata": {"deletionTimestamp": "2020-01-01T00:00:00Z"}}, headers=MERGE)
    assert sneaky.status_code == 200, sneaky.text
    assert "deletionTimestamp" not in sneaky.json()["metadata"]
    assert sneaky.json()["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]  # a no-op

    marked = hub.delete(path).json()
    cleared = hub.patch(path, json={"metadata": {"deletionTimestamp": None}}, headers=MERGE)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]


def test_finalizers_hold_a_custom_resource_too(hub: httpx.Client, ns: str) -> None:
    path = f"/apis/volsync.backube/v1alpha1/namespaces/{ns}/replicationsources"
    body = {
        "apiVersion": "volsync.backube/v1alpha1",
        "kind": "ReplicationSource",
        "metadata": {"name": "rs", "finalizers": ["volsync.backube/cleanup"]},
        "spec": {"sourcePVC": "data"},
    }
    assert hub.post(path, json=body).status_code == 201
    resp = hub.request("DELETE", f"{path}/rs", json={"orphanDependents": False})
    assert resp.status_code == 202, resp.text  # the one case kube-apiserver answers 202 Accepted
    assert resp.json()["metadata"]["deletionTimestamp"]
    assert hub.get(f"{path}/rs").status_code == 200
    assert hub.patch(f"{path}/rs", json={"metadata": {"finalizers": []}}, headers=MERGE).status_code == 200
    assert hub.get(f"{path}/rs").status_code == 404
