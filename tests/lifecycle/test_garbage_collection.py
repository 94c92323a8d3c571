"""ownerReference garbage collection, as kube-controller-manager's garbage collector does it:
background by default, `Orphan` and `Foreground` propagation, several owners, dangling owners,
and cluster-scoped owners of namespaced dependents."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from support.objects import MCL_PATH, managed_cluster, unique
from support.waiting import eventually

MERGE = {"content-type": "application/merge-patch+json"}


def cms(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}/configmaps"


def ref(owner: dict[str, Any], **extra: Any) -> dict[str, Any]:
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"], "uid": meta["uid"], **extra}


def make_cm(hub: httpx.Client, ns: str, name: str, *owners: dict[str, Any], **meta: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": name, **meta}, "data": {"name": name}}
    if owners:
        body["metadata"]["ownerReferences"] = list(owners)
    resp = hub.post(cms(ns), json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def gone(hub: httpx.Client, path: str) -> bool:
    return hub.get(path).status_code == 404


def test_deleting_an_owner_collects_its_dependents_in_the_background(hub: httpx.Client, ns: str) -> None:
    owner = make_cm(hub, ns, "owner")
    child = make_cm(hub, ns, "child", ref(owner))
    make_cm(hub, ns, "grandchild", ref(child))
    bystander = make_cm(hub, ns, "bystander")

    resp = hub.delete(f"{cms(ns)}/owner")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "Success"  # the owner itself goes at once
    assert gone(hub, f"{cms(ns)}/owner")
    eventually(lambda: gone(hub, f"{cms(ns)}/child") and gone(hub, f"{cms(ns)}/grandchild"))
    assert hub.get(f"{cms(ns)}/bystander").json()["metadata"]["resourceVersion"] == bystander["metadata"][
        "resourceVersion"
    ]


def test_explicit_background_propagation_collects_dependents(hub: httpx.Client, ns: str) -> None:
    owner = make_cm(hub, ns, "owner")
    make_cm(hub, ns, "child", ref(owner, controller=True, blockOwnerDeletion=True))
    resp = hub.request("DELETE", f"{cms(ns)}/owner", json={"propagationPolicy": "Background"})
    assert resp.status_code == 200, resp.text
    eventually(lambda: gone(hub, f"{cms(ns)}/child"))


def test_a_dependent_with_two_owners_only_loses_the_reference_to_the_deleted_one(hub: httpx.Client, ns: str) -> None:
    first, second = make_cm(hub, ns, "first"), make_cm(hub, ns, "second")
    make_cm(hub, ns, "shared", ref(first), ref(second))

    assert hub.delete(f"{cms(ns)}/first").status_code == 200

    def reference_dropped() -> dict[str, Any] | None:
        obj = hub.get(f"{cms(ns)}/shared").json()
        return obj if len(obj["metadata"]["ownerReferences"]) == 1 else None

    shared = eventually(reference_dropped)
    assert shared["metadata"]["ownerReferences"] == [ref(second)]
    assert shared["data"] == {"name": "shared"}

    assert hub.delete(f"{cms(ns)}/second").status_code == 200  # the last owner takes it along
    eventually(lambda: gone(hub, f"{cms(ns)}/shared"))


def test_a_dependent_created_with_a_dangling_owner_reference_is_collected(hub: httpx.Client, ns: str) -> None:
    phantom = {"apiVersion": "v1", "kind": "ConfigMap", "name": "never-existed", "uid": str(uuid.uuid4())}
    created = hub.post(cms(ns), json={"metadata": {"name": "orphaned", "ownerReferences": [phantom]}})
    assert created.status_code == 201, created.text  # accepted: the collector, not admission, deals with it
    eventually(lambda: gone(hub, f"{cms(ns)}/orphaned"))


def test_a_reference_naming_a_live_object_with_another_uid_is_dangling(hub: httpx.Client, ns: str) -> None:
    owner = make_cm(hub, ns, "owner")
    impostor = {**ref(owner), "uid": str(uuid.uuid4())}  # same name, an earlier incarnation's uid
    make_cm(hub, ns, "stale", impostor)
    eventually(lambda: gone(hub, f"{cms(ns)}/stale"))
    assert hub.get(f"{cms(ns)}/owner").status_code == 200


def test_a_cluster_scoped_owner_collects_namespaced_dependents(hub: httpx.Client, ns: str) -> None:
    mcl_name = unique("gc-owner")
    created = hub.post(MCL_PATH, json=managed_cluster(mcl_name))
    assert created.status_code == 201, created.text
    owner = created.json()
    make_cm(hub, ns, "dep-1", ref(owner))
    make_cm(hub, ns, "dep-2", ref(owner))
    # the owner is alive: nothing is collected
    assert hub.get(f"{cms(ns)}/dep-1").status_code == 200

    assert hub.delete(f"{MCL_PATH}/{mcl_name}").status_code == 200
    eventually(lambda: gone(hub, f"{cms(ns)}/dep-1") and gone(hub, f"{cms(ns)}/dep-2"))


def test_orphan_propagation_keeps_dependents_and_removes_their_references(hub: httpx.Client, ns: str) -> None:
    owner = make_cm(hub, ns, "owner")
    other = make_cm(hub, ns, "other-owner")
    make_cm(hub, ns, "only-child", ref(owner, controller=True))
    make_cm(hub, ns, "two-parents", ref(owner), ref(other))

    resp = hub.request("DELETE", f"{cms(ns)}/owner", json={"propagationPolicy": "Orphan"})
    assert resp.status_code in (200, 202), resp.text
    eventually(lambda: gone(hub, f"{cms(ns)}/owner"))
    only_child = hub.get(f"{cms(ns)}/only-child").json()
    assert "ownerReferences" not in only_child["metadata"]
    assert only_child["data"] == {"name": "only-child"}
    assert hub.get(f"{cms(ns)}/two-parents").json()["metadata"]["ownerReferences"] == [ref(other)]


def test_orphan_via_the_query_parameter(hub: httpx.Client, ns: str) -> None:
    owner = make_cm(hub, ns, "owner")
    make_cm(hub, ns, "child", ref(owner))
    resp = hub.delete(f"{cms(ns)}/owner", params={"propagationPolicy": "Orphan"})
    assert resp.status_code in (200, 202), resp.text
    eventually(lambda: gone(hub, f"{cms(ns)}/owner"))
    assert "ownerReferences" not in hub.get(f"{cms(ns)}/child").json()["metadata"]


def test_foreground_deletion_keeps_the_owner_until_blocking_dependents_are_gone(hub: httpx.Client, ns: str) -> None:
    owner = make_cm(hub, ns, "owner")
    make_cm(hub, ns, "plain", ref(owner, blockOwnerDeletion=True))
    make_cm(hub, ns, "held", ref(owner, blockOwnerDeletion=True), finalizers=["example.com/hold"])

    resp = hub.request("DELETE", f"{cms(ns)}/owner", json={"propagationPolicy": "Foreground"})
    assert resp.status_code in (200, 202), resp.text
    body = resp.json()
    assert body["metadata"]["deletionTimestamp"]
    assert "foregroundDeletion" in body["metadata"]["finalizers"]

    eventually(lambda: gone(hub, f"{cms(ns)}/plain"))
    eventually(lambda: hub.get(f"{cms(ns)}/held").json()["metadata"].get("deletionTimestamp"))
    assert hub.get(f"{cms(ns)}/held").json()["metadata"]["finalizers"] == ["example.com/hold"]
    waiting = hub.get(f"{cms(ns)}/owner")
    assert waiting.status_code == 200  # held up by the dependent's finalizer
    assert waiting.json()["metadata"]["finalizers"] == ["foregroundDeletion"]

    released = hub.patch(f"{cms(ns)}/held", json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert released.status_code == 200, released.text
    eventually(lambda: gone(hub, f"{cms(ns)}/held") and gone(hub, f"{cms(ns)}/owner"))


def test_foreground_deletion_of_an_owner_without_dependents_completes(hub: httpx.Client, ns: str) -> None:
    make_cm(hub, ns, "lonely")
    resp = hub.request("DELETE", f"{cms(ns)}/lonely", json={"propagationPolicy": "Foreground"})
    assert resp.status_code in (200, 202), resp.text
    eventually(lambda: gone(hub, f"{cms(ns)}/lonely"))


def test_foreground_deletion_waits_for_grandchildren(hub: httpx.Client, ns: str) -> None:
    owner = make_cm(hub, ns, "owner")
    child = make_cm(hub, ns, "child", ref(owner, blockOwnerDeletion=True))
    make_cm(hub, ns, "grandchild", ref(child, blockOwnerDeletion=True), finalizers=["example.com/hold"])

    resp = hub.request("DELETE", f"{cms(ns)}/owner", json={"propagationPolicy": "Foreground"})
    assert resp.status_code in (200, 202), resp.text
    eventually(lambda: hub.get(f"{cms(ns)}/grandchild").json()["metadata"].get("deletionTimestamp"))
    # the child is deleted in the foreground too, so the whole chain waits for the grandchild
    assert hub.get(f"{cms(ns)}/child").status_code == 200
    assert hub.get(f"{cms(ns)}/owner").status_code == 200

    hub.patch(f"{cms(ns)}/grandchild", json={"metadata": {"finalizers": None}}, headers=MERGE)
    eventually(lambda: all(gone(hub, f"{cms(ns)}/{n}") for n in ("grandchild", "child", "owner")))


def test_foreground_deletion_is_not_held_by_a_non_blocking_dependent(hub: httpx.Client, ns: str) -> None:
    owner = make_cm(hub, ns, "owner")
    make_cm(hub, ns, "held", ref(owner), finalizers=["example.com/hold"])  # no blockOwnerDeletion

    resp = hub.request("DELETE", f"{cms(ns)}/owner", json={"propagationPolicy": "Foreground"})
    assert resp.status_code in (200, 202), resp.text
    eventually(lambda: gone(hub, f"{cms(ns)}/owner"))
    held = hub.get(f"{cms(ns)}/held").json()
    assert held["metadata"]["deletionTimestamp"]  # collected, waiting on its own finalizer
    hub.patch(f"{cms(ns)}/held", json={"metadata": {"finalizers": None}}, headers=MERGE)
    eventually(lambda: gone(hub, f"{cms(ns)}/held"))


def test_foreground_deletion_spares_a_dependent_with_another_live_owner(hub: httpx.Client, ns: str) -> None:
    owner, other = make_cm(hub, ns, "owner"), make_cm(hub, ns, "other")
    make_cm(hub, ns, "shared", ref(owner, blockOwnerDeletion=True), ref(other))

    resp = hub.request("DELETE", f"{cms(ns)}/owner", json={"propagationPolicy": "Foreground"})
    assert resp.status_code in (200, 202), resp.text
    eventually(lambda: gone(hub, f"{cms(ns)}/owner"))
    shared = hub.get(f"{cms(ns)}/shared").json()
    assert "deletionTimestamp" not in shared["metadata"]
    assert shared["metadata"]["ownerReferences"] == [ref(other)]
