"""A watch started before a restart resumes after it, from the resourceVersion it last saw.

The store's log is the watch history, so it survives the process: resuming from a remembered
resourceVersion replays exactly the later events (then carries on with live ones). With a small
`--history`, once the store has compacted past that resourceVersion the resumed watch gets one
ERROR event carrying a 410 Expired Status, which is what makes informers relist.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
from support.apiserver import ApiServer
from support.store_db import compacted
from support.watch_stream import summary, watch_events

CM = "/api/v1/namespaces/default/configmaps"
MERGE = {"content-type": "application/merge-patch+json"}


def _rv(resp: httpx.Response) -> int:
    assert resp.status_code in (200, 201), resp.text
    return int(resp.json()["metadata"]["resourceVersion"])


def _write_until_compacted(client: httpx.Client, server: ApiServer, name: str, limit: int = 20_000) -> int:
    """Update one ConfigMap until the store reports a compaction; returns the number of writes."""
    db = server.data_dir / "hub.db"
    writes = 0
    while writes < limit:
        for _ in range(250):
            _rv(client.patch(f"{CM}/{name}", json={"data": {"n": str(writes)}}, headers=MERGE))
            writes += 1
        if compacted(db):
            return writes
    raise AssertionError(f"no compaction after {writes} writes")


def test_watch_resumes_after_kill_9_and_continues_live(make_server: Callable[..., ApiServer]) -> None:
    server = make_server().start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        remembered = _rv(client.post(CM, json={"metadata": {"name": "a"}, "data": {"v": "1"}}))
        modified_a = _rv(client.patch(f"{CM}/a", json={"data": {"v": "2"}}, headers=MERGE))
        added_b = _rv(client.post(CM, json={"metadata": {"name": "b"}}))
        assert client.delete(f"{CM}/a").status_code == 200  # a Status: the DELETED rv is not in the answer
        modified_b = _rv(client.patch(f"{CM}/b", json={"data": {"v": "3"}}, headers=MERGE))
        _rv(client.post("/api/v1/namespaces/default/secrets", json={"metadata": {"name": "other-resource"}}))
    server.kill()
    server.start()
    url = server.cluster_url("hub")
    with httpx.Client(base_url=url, timeout=10.0) as client, httpx.Client(base_url=url, timeout=10.0) as writer:
        query = {"watch": "true", "resourceVersion": str(remembered), "timeoutSeconds": "10"}
        events = []
        with client.stream("GET", CM, params=query) as resp:
            assert resp.status_code == 200
            for line in resp.iter_lines():
                if not line:
                    continue
                events.append(json.loads(line))
                if len(events) == 4:  # the replay is complete: now a live write must follow it
                    created_rv = _rv(writer.post(CM, json={"metadata": {"name": "c"}}))
                if len(events) == 5:
                    break
    assert summary(events) == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a"), ("MODIFIED", "b"), ("ADDED", "c")]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == [modified_a, added_b, added_b + 1, modified_b, created_rv]
    assert events[0]["object"]["data"] == {"v": "2"}
    assert events[3]["object"]["data"] == {"v": "3"}


def test_watch_from_a_compacted_resource_version_gets_410_after_restart(
    make_server: Callable[..., ApiServer],
) -> None:
    server = make_server("--history", "20").start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        remembered = _rv(client.post(CM, json={"metadata": {"name": "hot"}}))
        _write_until_compacted(client, server, "hot")
        recent = _rv(client.get(CM)) - 5
    assert compacted(server.data_dir / "hub.db") > remembered
    server.kill()
    server.start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        expired = watch_events(client, CM, str(remembered), lambda evs: True)
        assert len(expired) == 1 and expired[0]["type"] == "ERROR", expired
        status = expired[0]["object"]
        assert status["kind"] == "Status" and status["code"] == 410 and status["reason"] == "Expired"
        # a resourceVersion inside the kept window still resumes after the restart
        replayed = watch_events(client, CM, str(recent), lambda evs: len(evs) == 5)
        assert [e["type"] for e in replayed] == ["MODIFIED"] * 5
        assert [int(e["object"]["metadata"]["resourceVersion"]) for e in replayed] == list(
            range(recent + 1, recent + 6)
        )


def test_watch_with_the_default_history_replays_thousands_of_events_after_restart(
    make_server: Callable[..., ApiServer],
) -> None:
    server = make_server().start()
    writes = 2_500
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        remembered = _rv(client.post(CM, json={"metadata": {"name": "hot"}}))
        for n in range(writes):
            _rv(client.patch(f"{CM}/hot", json={"data": {"n": str(n)}}, headers=MERGE))
    server.stop()
    server.start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        events = watch_events(client, CM, str(remembered), lambda evs: len(evs) == writes)
    assert len(events) == writes
    assert [e["object"]["data"]["n"] for e in events] == [str(n) for n in range(writes)]
    assert {e["type"] for e in events} == {"MODIFIED"}
