"""Background work interrupted by a crash is finished after the restart.

Garbage collection and namespace cleanup run right after the write that calls for them; a
`kill -9` between that write's commit and the collection leaves dependents of a deleted owner, or
a Terminating namespace with its contents, on disk. kube's garbage collector and namespace
controller rebuild their work from the stored state when they start, and so must the server. The
crash is recreated exactly: the server is stopped, and the commit it made just before dying is
appended to its log.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from support.apiserver import ApiServer
from support.store_db import append
from support.waiting import eventually

CM = "/api/v1/namespaces/default/configmaps"


def test_dependents_of_an_owner_deleted_just_before_a_crash_are_collected_after_restart(
    make_server: Callable[..., ApiServer],
) -> None:
    server = make_server().start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        owner = client.post(CM, json={"metadata": {"name": "owner"}}).json()
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
        for name in ("child-1", "child-2"):
            assert client.post(CM, json={"metadata": {"name": name, "ownerReferences": [ref]}}).status_code == 201
    assert server.stop() == 0
    append(server.data_dir / "hub.db", "/configmaps", "default", "owner", "DELETED", owner)

    server.start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        assert client.get(f"{CM}/owner").status_code == 404
        eventually(lambda: [o["metadata"]["name"] for o in client.get(CM).json()["items"]] == [])


def test_a_namespace_terminating_at_a_crash_finishes_after_restart(make_server: Callable[..., ApiServer]) -> None:
    server = make_server().start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        ns = client.post("/api/v1/namespaces", json={"metadata": {"name": "doomed"}}).json()
        for name in ("a", "b"):
            created = client.post("/api/v1/namespaces/doomed/configmaps", json={"metadata": {"name": name}})
            assert created.status_code == 201
    assert server.stop() == 0
    terminating = {
        **ns,
        "metadata": {**ns["metadata"], "deletionTimestamp": ns["metadata"]["creationTimestamp"]},
        "status": {"phase": "Terminating"},
    }
    append(server.data_dir / "hub.db", "/namespaces", "", "doomed", "MODIFIED", terminating)

    server.start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        eventually(lambda: client.get("/api/v1/namespaces/doomed").status_code == 404)
        assert client.get("/api/v1/namespaces/doomed/configmaps").json()["items"] == []


def test_an_orphaning_deletion_interrupted_by_a_crash_finishes_after_restart(
    make_server: Callable[..., ApiServer],
) -> None:
    server = make_server().start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        owner = client.post(CM, json={"metadata": {"name": "owner"}}).json()
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
        assert client.post(CM, json={"metadata": {"name": "child", "ownerReferences": [ref]}}).status_code == 201
    assert server.stop() == 0
    orphaning = {
        **owner,
        "metadata": {**owner["metadata"], "deletionTimestamp": owner["metadata"]["creationTimestamp"],
                     "deletionGracePeriodSeconds": 0, "finalizers": ["orphan"]},
    }  # fmt: skip
    append(server.data_dir / "hub.db", "/configmaps", "default", "owner", "MODIFIED", orphaning)

    server.start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        eventually(lambda: client.get(f"{CM}/owner").status_code == 404)
        child = client.get(f"{CM}/child").json()
        assert "ownerReferences" not in child["metadata"]
