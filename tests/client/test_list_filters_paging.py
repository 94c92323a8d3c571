"""Lists through the official Python client: label selectors (every operator), field selectors
(metadata.name, metadata.namespace, events by involvedObject.*) and limit/continue paging."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from support.apiserver import ApiServer
from support.objects import VOLSYNC, replication_source

LABELS = {
    "a": {"env": "prod", "tier": "db"},
    "b": {"env": "dev", "tier": "web"},
    "c": {"env": "staging"},
    "d": {"tier": "db"},
    "e": {},
}


@pytest.fixture
def labelled(apiserver: ApiServer, namespace: str) -> str:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        for name, labels in LABELS.items():
            co.create_namespaced_custom_object(
                *VOLSYNC, namespace, "replicationsources", replication_source(name, labels=labels)
            )
    return namespace


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("env=prod", ["a"]),
        ("env==prod", ["a"]),
        ("env!=prod", ["b", "c", "d", "e"]),  # != also matches objects without the label
        ("env in (prod,dev)", ["a", "b"]),
        ("env notin (prod,dev)", ["c", "d", "e"]),
        ("env", ["a", "b", "c"]),
        ("!env", ["d", "e"]),
        ("tier=db,env", ["a"]),
        ("tier=db,!env", ["d"]),
        ("env in (prod,staging),tier notin (db)", ["c"]),
        ("env=nothing", []),
        ("", ["a", "b", "c", "d", "e"]),
    ],
)
def test_label_selector_operators(apiserver: ApiServer, labelled: str, selector: str, expected: list[str]) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        listed = co.list_namespaced_custom_object(*VOLSYNC, labelled, "replicationsources", label_selector=selector)
        assert sorted(o["metadata"]["name"] for o in listed["items"]) == expected


def test_label_selector_on_builtin_kind(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        v1 = client.CoreV1Api(api)
        for name, labels in LABELS.items():
            v1.create_namespaced_config_map(
                namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels or None))
            )
        got = v1.list_namespaced_config_map(namespace, label_selector="tier in (db),env notin (dev)")
        assert sorted(c.metadata.name for c in got.items) == ["a", "d"]


def test_malformed_label_selector_is_rejected(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        with pytest.raises(ApiException) as err:
            co.list_namespaced_custom_object(*VOLSYNC, namespace, "replicationsources", label_selector="env in (")
        assert err.value.status == 400


def test_field_selector_by_name_and_namespace(apiserver: ApiServer, labelled: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        by_name = co.list_namespaced_custom_object(
            *VOLSYNC, labelled, "replicationsources", field_selector="metadata.name=c"
        )
        assert [o["metadata"]["name"] for o in by_name["items"]] == ["c"]

        not_name = co.list_namespaced_custom_object(
            *VOLSYNC, labelled, "replicationsources", field_selector="metadata.name!=c"
        )
        assert sorted(o["metadata"]["name"] for o in not_name["items"]) == ["a", "b", "d", "e"]

        both = co.list_cluster_custom_object(
            *VOLSYNC, "replicationsources", field_selector=f"metadata.namespace={labelled},metadata.name==a"
        )
        assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in both["items"]] == [(labelled, "a")]

        combined = co.list_namespaced_custom_object(
            *VOLSYNC, labelled, "replicationsources", field_selector="metadata.name!=a", label_selector="tier=db"
        )
        assert [o["metadata"]["name"] for o in combined["items"]] == ["d"]


def test_unknown_field_selector_is_rejected(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        with pytest.raises(ApiException) as err:
            co.list_namespaced_custom_object(
                *VOLSYNC, namespace, "replicationsources", field_selector="spec.paused=true"
            )
        assert err.value.status == 400
        assert "spec.paused" in err.value.body


def _event(name: str, namespace: str, kind: str, obj_name: str, uid: str) -> client.CoreV1Event:
    return client.CoreV1Event(
        metadata=client.V1ObjectMeta(name=name),
        involved_object=client.V1ObjectReference(
            kind=kind, name=obj_name, namespace=namespace, uid=uid, api_version="volsync.backube/v1alpha1"
        ),
        reason="Synced",
        message=f"{kind} {obj_name} synced",
        type="Normal",
    )


def test_event_field_selectors_on_involved_object(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        v1 = client.CoreV1Api(api)
        v1.create_namespaced_event(namespace, _event("e1", namespace, "ReplicationSource", "src", "uid-1"))
        v1.create_namespaced_event(namespace, _event("e2", namespace, "ReplicationSource", "other", "uid-2"))
        v1.create_namespaced_event(namespace, _event("e3", namespace, "ReplicationDestination", "src", "uid-3"))

        def names(**kw: str) -> list[str]:
            return sorted(e.metadata.name for e in v1.list_namespaced_event(namespace, **kw).items)

        assert names(field_selector="involvedObject.name=src") == ["e1", "e3"]
        assert names(field_selector="involvedObject.kind=ReplicationSource") == ["e1", "e2"]
        assert names(field_selector="involvedObject.uid=uid-2") == ["e2"]
        # The query `kubectl describe` sends, across all namespaces.
        described = v1.list_event_for_all_namespaces(
            field_selector=(
                f"involvedObject.uid=uid-1,involvedObject.name=src,involvedObject.namespace={namespace},"
                "involvedObject.kind=ReplicationSource"
            )
        )
        assert [e.metadata.name for e in described.items] == ["e1"]
        assert names(field_selector="involvedObject.name=src,involvedObject.kind!=ReplicationSource") == ["e3"]
        assert names(field_selector="involvedObject.name=nothing") == []

        # A cluster-scoped object's events: `kubectl describe` asks for involvedObject.namespace=.
        v1.create_namespaced_event(namespace, _event("e4", "", "ManagedCluster", "cluster1", "uid-4"))
        assert names(field_selector="involvedObject.kind=ManagedCluster,involvedObject.namespace=") == ["e4"]


@pytest.mark.parametrize(("count", "sizes"), [(25, [10, 10, 5]), (20, [10, 10]), (3, [3]), (0, [0])])
def test_limit_and_continue_see_every_object_once(
    apiserver: ApiServer, namespace: str, count: int, sizes: list[int]
) -> None:
    with apiserver.api_client() as api:
        v1 = client.CoreV1Api(api)
        created = {f"cm-{i:02d}" for i in range(count)}
        for name in sorted(created, reverse=True):
            v1.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name)))

        seen: list[str] = []
        pages = []
        token = None
        while len(pages) < 10:
            page = v1.list_namespaced_config_map(namespace, limit=10, _continue=token)
            pages.append(page)
            seen += [c.metadata.name for c in page.items]
            token = page.metadata._continue
            if not token:
                break
        assert [len(p.items) for p in pages] == sizes
        assert len(seen) == len(set(seen)) == count
        assert set(seen) == created
        assert seen == sorted(seen)  # a stable order: by name within a namespace
        # Every page is served at the resourceVersion of the first.
        assert {p.metadata.resource_version for p in pages} == {pages[0].metadata.resource_version}


def test_paging_custom_objects_with_selector(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        for i in range(25):
            labels = {"parity": "even" if i % 2 == 0 else "odd"}
            co.create_namespaced_custom_object(
                *VOLSYNC, namespace, "replicationsources", replication_source(f"rs-{i:02d}", labels=labels)
            )
        seen: list[str] = []
        token = ""
        rounds = 0
        while True:
            kw = {"_continue": token} if token else {}
            page = co.list_namespaced_custom_object(
                *VOLSYNC, namespace, "replicationsources", limit=5, label_selector="parity=even", **kw
            )
            rounds += 1
            assert len(page["items"]) <= 5
            seen += [o["metadata"]["name"] for o in page["items"]]
            token = page["metadata"].get("continue", "")
            if not token:
                break
        assert seen == [f"rs-{i:02d}" for i in range(0, 25, 2)]
        assert rounds == 3


def test_bad_continue_token_is_rejected(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(api).list_namespaced_config_map(namespace, limit=1, _continue="not-a-token")
        assert err.value.status == 400


def test_continue_token_older_than_the_history_is_410(fresh_apiserver: ApiServer) -> None:
    fresh_apiserver.extra_args = ["--history", "20"]
    server = fresh_apiserver.start()
    with server.api_client() as api:
        v1 = client.CoreV1Api(api)
        for i in range(3):
            v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"c{i}")))
        first = v1.list_namespaced_config_map("default", limit=1)
        token = first.metadata._continue
        assert token
        # Within the history the token still works.
        second = v1.list_namespaced_config_map("default", limit=1, _continue=token)
        assert [c.metadata.name for c in second.items] == ["c1"]
        for i in range(45):
            v1.patch_namespaced_config_map("c0", "default", {"data": {"i": str(i)}})
        with pytest.raises(ApiException) as err:
            v1.list_namespaced_config_map("default", limit=1, _continue=token)
        assert err.value.status == 410
        body = json.loads(err.value.body)
        assert body["reason"] == "Expired"
        assert "continue" in body["message"]
