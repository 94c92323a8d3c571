"""`kubernetes.watch.Watch().stream` against the server: initial events, live events, resuming
from a resourceVersion, label-selector transitions, timeouts, bookmarks and 410 Expired."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from support.apiserver import ApiServer
from support.objects import ADDON, VOLSYNC, managed_cluster_addon, replication_source

RS = "replicationsources"
Event = dict[str, Any]


@contextmanager
def watching(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[Iterator[Event]]:
    """A watch stream that is always stopped and closed, whatever the test does with it."""
    kwargs.setdefault("timeout_seconds", 15)
    w = watch.Watch()
    stream = w.stream(func, *args, **kwargs)
    try:
        yield stream
    finally:
        w.stop()
        stream.close()
        w._api_client.close()


def _summary(ev: Event) -> tuple[str, str]:
    return ev["type"], ev["raw_object"]["metadata"]["name"]


def test_initial_added_then_live_events(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api, apiserver.api_client() as writer_api:
        co, writer = client.CustomObjectsApi(api), client.CustomObjectsApi(writer_api)
        for name in ("a", "b"):
            writer.create_namespaced_custom_object(*VOLSYNC, namespace, RS, replication_source(name))
        with watching(co.list_namespaced_custom_object, *VOLSYNC, namespace, RS) as events:
            initial = [next(events), next(events)]
            assert sorted(_summary(e) for e in initial) == [("ADDED", "a"), ("ADDED", "b")]

            patched = writer.patch_namespaced_custom_object(*VOLSYNC, namespace, RS, "a", {"spec": {"paused": True}})
            ev = next(events)
            assert _summary(ev) == ("MODIFIED", "a")
            assert ev["raw_object"]["spec"]["paused"] is True
            assert ev["raw_object"]["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]

            writer.create_namespaced_custom_object(*VOLSYNC, namespace, RS, replication_source("c"))
            assert _summary(next(events)) == ("ADDED", "c")

            writer.delete_namespaced_custom_object(*VOLSYNC, namespace, RS, "b")
            ev = next(events)
            assert _summary(ev) == ("DELETED", "b")
            assert int(ev["raw_object"]["metadata"]["resourceVersion"]) > int(patched["metadata"]["resourceVersion"])


def test_typed_watch_on_builtin(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api, apiserver.api_client() as writer_api:
        v1, writer = client.CoreV1Api(api), client.CoreV1Api(writer_api)
        writer.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c")))
        with watching(v1.list_namespaced_config_map, namespace) as events:
            ev = next(events)
            assert ev["type"] == "ADDED"
            assert isinstance(ev["object"], client.V1ConfigMap)
            assert ev["object"].metadata.name == "c"
            writer.patch_namespaced_config_map("c", namespace, {"data": {"k": "v"}})
            ev = next(events)
            assert ev["type"] == "MODIFIED"
            assert ev["object"].data == {"k": "v"}


def test_namespaced_watch_ignores_other_namespaces(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api, apiserver.api_client() as writer_api:
        co, writer = client.CustomObjectsApi(api), client.CustomObjectsApi(writer_api)
        rv = co.list_namespaced_custom_object(*VOLSYNC, namespace, RS)["metadata"]["resourceVersion"]
        writer.create_namespaced_custom_object(*VOLSYNC, "default", RS, replication_source(f"elsewhere-{namespace}"))
        writer.create_namespaced_custom_object(*VOLSYNC, namespace, RS, replication_source("mine"))
        try:
            with watching(co.list_namespaced_custom_object, *VOLSYNC, namespace, RS, resource_version=rv) as events:
                assert _summary(next(events)) == ("ADDED", "mine")
            with watching(co.list_cluster_custom_object, *VOLSYNC, RS, resource_version=rv) as events:
                seen = {_summary(next(events)), _summary(next(events))}
                assert seen == {("ADDED", f"elsewhere-{namespace}"), ("ADDED", "mine")}
        finally:
            writer.delete_namespaced_custom_object(*VOLSYNC, "default", RS, f"elsewhere-{namespace}")


def _drain(events: Iterator[Event]) -> list[Event]:
    """Everything until the server ends the stream (the caller set a short timeout_seconds)."""
    return list(events)


def test_resume_replays_exactly_the_events_after_a_resource_version(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        created = co.create_namespaced_custom_object(*VOLSYNC, namespace, RS, replication_source("r"))
        start = created["metadata"]["resourceVersion"]
        rvs = []
        for i in range(3):
            out = co.patch_namespaced_custom_object(*VOLSYNC, namespace, RS, "r", {"spec": {"sourcePVC": f"p{i}"}})
            rvs.append(("MODIFIED", out["metadata"]["resourceVersion"]))
        co.delete_namespaced_custom_object(*VOLSYNC, namespace, RS, "r")

        with watching(
            co.list_namespaced_custom_object, *VOLSYNC, namespace, RS, resource_version=start, timeout_seconds=1
        ) as events:
            got = _drain(events)
        assert [(e["type"], e["raw_object"]["metadata"]["resourceVersion"]) for e in got[:3]] == rvs
        assert [e["raw_object"]["spec"]["sourcePVC"] for e in got[:3]] == ["p0", "p1", "p2"]
        assert [e["type"] for e in got] == ["MODIFIED", "MODIFIED", "MODIFIED", "DELETED"]
        assert int(got[3]["raw_object"]["metadata"]["resourceVersion"]) > int(rvs[-1][1])

        # From the middle: only what came after.
        with watching(
            co.list_namespaced_custom_object, *VOLSYNC, namespace, RS, resource_version=rvs[1][1], timeout_seconds=1
        ) as events:
            got = _drain(events)
        assert [e["type"] for e in got] == ["MODIFIED", "DELETED"]
        assert got[0]["raw_object"]["metadata"]["resourceVersion"] == rvs[2][1]


def test_label_selector_transitions(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api, apiserver.api_client() as writer_api:
        co, writer = client.CustomObjectsApi(api), client.CustomObjectsApi(writer_api)
        rv = co.list_namespaced_custom_object(*VOLSYNC, namespace, RS)["metadata"]["resourceVersion"]

        def label(name: str, value: str | None) -> None:
            writer.patch_namespaced_custom_object(
                *VOLSYNC, namespace, RS, name, {"metadata": {"labels": {"watched": value}}}
            )

        writer.create_namespaced_custom_object(*VOLSYNC, namespace, RS, replication_source("t"))  # not matching
        label("t", "yes")  # starts matching: ADDED
        writer.patch_namespaced_custom_object(*VOLSYNC, namespace, RS, "t", {"spec": {"paused": True}})  # MODIFIED
        label("t", "no")  # stops matching: DELETED
        writer.patch_namespaced_custom_object(*VOLSYNC, namespace, RS, "t", {"spec": {"paused": False}})  # unseen
        label("t", "yes")  # ADDED again
        writer.delete_namespaced_custom_object(*VOLSYNC, namespace, RS, "t")  # DELETED
        expected = ["ADDED", "MODIFIED", "DELETED", "ADDED", "DELETED"]

        with watching(
            co.list_namespaced_custom_object,
            *VOLSYNC,
            namespace,
            RS,
            label_selector="watched=yes",
            resource_version=rv,
            timeout_seconds=1,
        ) as events:
            replayed = _drain(events)
        assert [e["type"] for e in replayed] == expected
        # The DELETED for "stopped matching" carries the new (non-matching) state.
        assert replayed[2]["raw_object"]["metadata"]["labels"] == {"watched": "no"}

        # The same transitions, live.
        writer.create_namespaced_custom_object(*VOLSYNC, namespace, RS, replication_source("t"))
        with watching(co.list_namespaced_custom_object, *VOLSYNC, namespace, RS, label_selector="watched=yes") as ev:
            # Nothing matches yet, so there is no initial event to wait for; make a matching
            # object and use its ADDED as the sign that the watch is live.
            writer.create_namespaced_custom_object(
                *VOLSYNC, namespace, RS, replication_source("sync", labels={"watched": "yes"})
            )
            assert _summary(next(ev)) == ("ADDED", "sync")
            label("t", "yes")
            assert _summary(next(ev)) == ("ADDED", "t")
            label("t", "no")
            ev_deleted = next(ev)
            assert _summary(ev_deleted) == ("DELETED", "t")
            label("sync", "no")
            assert _summary(next(ev)) == ("DELETED", "sync")


def test_timeout_seconds_ends_the_stream(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        started = time.monotonic()
        with watching(co.list_namespaced_custom_object, *VOLSYNC, namespace, RS, timeout_seconds=1) as events:
            got = _drain(events)
        elapsed = time.monotonic() - started
        assert got == []
        assert 0.9 <= elapsed < 8


def test_bookmarks_when_allowed(fresh_apiserver: ApiServer) -> None:
    fresh_apiserver.extra_args = ["--bookmark-interval", "0.5"]
    server = fresh_apiserver.start()
    with server.api_client() as api:
        co = client.CustomObjectsApi(api)
        co.create_namespaced_custom_object(*VOLSYNC, "default", RS, replication_source("b"))
        rv = co.list_namespaced_custom_object(*VOLSYNC, "default", RS)["metadata"]["resourceVersion"]
        w = watch.Watch()
        stream = w.stream(
            co.list_namespaced_custom_object,
            *VOLSYNC,
            "default",
            RS,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=10,
        )
        try:
            started = time.monotonic()
            ev = next(stream)
            assert ev["type"] == "BOOKMARK"
            assert time.monotonic() - started < 5
            obj = ev["raw_object"]
            assert obj["kind"] == "ReplicationSource"
            assert obj["apiVersion"] == "volsync.backube/v1alpha1"
            assert obj["metadata"]["resourceVersion"] == rv
            assert w.resource_version == rv
            # Bookmarks keep coming while the stream is idle, and carry the newest rv after a write.
            out = co.patch_namespaced_custom_object(*VOLSYNC, "default", RS, "b", {"spec": {"paused": True}})
            types = []
            while len(types) < 3:
                ev = next(stream)
                types.append(ev["type"])
                if ev["type"] == "BOOKMARK" and "MODIFIED" in types:
                    assert ev["raw_object"]["metadata"]["resourceVersion"] == out["metadata"]["resourceVersion"]
            assert "MODIFIED" in types
            assert "BOOKMARK" in types
        finally:
            w.stop()
            stream.close()
            w._api_client.close()


def test_no_bookmarks_unless_asked(fresh_apiserver: ApiServer) -> None:
    fresh_apiserver.extra_args = ["--bookmark-interval", "0.2"]
    server = fresh_apiserver.start()
    with server.api_client() as api:
        co = client.CustomObjectsApi(api)
        rv = co.list_namespaced_custom_object(*VOLSYNC, "default", RS)["metadata"]["resourceVersion"]
        with watching(
            co.list_namespaced_custom_object, *VOLSYNC, "default", RS, resource_version=rv, timeout_seconds=1
        ) as events:
            assert _drain(events) == []


def test_resume_from_a_compacted_resource_version_is_410(fresh_apiserver: ApiServer) -> None:
    fresh_apiserver.extra_args = ["--history", "20"]
    server = fresh_apiserver.start()
    with server.api_client() as api:
        co = client.CustomObjectsApi(api)
        first = co.create_namespaced_custom_object(*VOLSYNC, "default", RS, replication_source("old"))
        old_rv = first["metadata"]["resourceVersion"]
        for i in range(45):
            co.patch_namespaced_custom_object(*VOLSYNC, "default", RS, "old", {"spec": {"sourcePVC": f"p{i}"}})

        with (
            pytest.raises(ApiException) as err,
            watching(
                co.list_namespaced_custom_object, *VOLSYNC, "default", RS, resource_version=old_rv, timeout_seconds=5
            ) as events,
        ):
            next(events)
        assert err.value.status == 410
        assert "Expired" in str(err.value.reason)

        # A recent resourceVersion still resumes.
        recent = co.list_namespaced_custom_object(*VOLSYNC, "default", RS)["metadata"]["resourceVersion"]
        co.patch_namespaced_custom_object(*VOLSYNC, "default", RS, "old", {"spec": {"paused": True}})
        with watching(
            co.list_namespaced_custom_object, *VOLSYNC, "default", RS, resource_version=recent, timeout_seconds=5
        ) as events:
            assert next(events)["type"] == "MODIFIED"


def test_selector_transitions_survive_a_restart(fresh_apiserver: ApiServer) -> None:
    """After a restart the history comes from the log on disk, and must still yield transitions."""
    server = fresh_apiserver.start()
    with server.api_client() as api:
        co = client.CustomObjectsApi(api)
        rv = co.list_namespaced_custom_object(*VOLSYNC, "default", RS)["metadata"]["resourceVersion"]
        co.create_namespaced_custom_object(*VOLSYNC, "default", RS, replication_source("t"))
        for patch in (
            {"metadata": {"labels": {"watched": "yes"}}},
            {"spec": {"paused": True}},
            {"metadata": {"labels": {"watched": "no"}}},
        ):
            co.patch_namespaced_custom_object(*VOLSYNC, "default", RS, "t", patch)
    server.stop()
    server.start()
    with server.api_client() as api:
        co = client.CustomObjectsApi(api)
        with watching(
            co.list_namespaced_custom_object,
            *VOLSYNC,
            "default",
            RS,
            label_selector="watched=yes",
            resource_version=rv,
            timeout_seconds=1,
        ) as events:
            assert [e["type"] for e in _drain(events)] == ["ADDED", "MODIFIED", "DELETED"]


def test_watch_at_a_second_served_version(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api, apiserver.api_client() as writer_api:
        co, writer = client.CustomObjectsApi(api), client.CustomObjectsApi(writer_api)
        writer.create_namespaced_custom_object(
            ADDON, "v1alpha1", namespace, "managedclusteraddons", managed_cluster_addon("volsync")
        )
        with watching(co.list_namespaced_custom_object, ADDON, "v1beta1", namespace, "managedclusteraddons") as events:
            ev = next(events)
            assert (ev["type"], ev["raw_object"]["apiVersion"]) == ("ADDED", f"{ADDON}/v1beta1")
            writer.patch_namespaced_custom_object(
                ADDON, "v1alpha1", namespace, "managedclusteraddons", "volsync", {"metadata": {"labels": {"a": "b"}}}
            )
            ev = next(events)
            assert (ev["type"], ev["raw_object"]["apiVersion"]) == ("MODIFIED", f"{ADDON}/v1beta1")
            assert ev["raw_object"]["metadata"]["labels"] == {"a": "b"}
