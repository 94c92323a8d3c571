"""The hub's REST limits: per-cluster caps on replications (429) and report size (413), fresh heartbeats,
and paged lists (`limit` / `continue`, the next token in the X-Continue header)."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from hubkit import AppClient, Hub, report, until_not_busy
from prometheus_client import CollectorRegistry

from hub.limits import RestLimits
from hub.rest import create_app
from kube.clock import rfc3339


def capped(hub: Hub, **limits: Any) -> AppClient:
    app = create_app(hub.fleet, hub.token_store, clock=hub.clock, metrics_registry=CollectorRegistry(),
                     limits=RestLimits(**limits))
    return AppClient(app)


def send(client: AppClient, hub: Hub, *reports: dict[str, Any], cluster: str = "cluster1") -> Any:
    return client.post(f"/api/v1/agents/{cluster}/reports", json={"agentId": "a", "reports": list(reports)},
                       headers=hub.auth(cluster))


def names(hub: Hub, cluster: str = "cluster1") -> list[str]:
    return [r["name"] for r in hub.get("/api/v1/replications", cluster=cluster).json()]


def test_a_cluster_cannot_store_more_replications_than_its_cap(hub: Hub) -> None:
    client = capped(hub, max_replications=3)
    assert send(client, hub, report("a", 1), report("b", 1)).json() == {"accepted": 2, "stale": 0}
    refused = send(client, hub, report("a", 2), report("c", 1), report("d", 1), report("e", 1))
    assert refused.status_code == 429, refused.text
    errors = refused.json()["detail"]
    assert [e["loc"] for e in errors] == [["body", "reports", 2], ["body", "reports", 3]]
    assert all(e["type"] == "too_many_replications" and "at most 3 per cluster" in e["msg"] for e in errors)
    assert names(hub) == ["a", "b"]  # the whole batch was refused: nothing stored
    # the agent sends the rest again: an update and one new replication fit
    assert send(client, hub, report("a", 2), report("c", 1)).json() == {"accepted": 2, "stale": 0}
    assert send(client, hub, report("d", 1)).status_code == 429
    assert send(client, hub, report("a", 3)).status_code == 200  # updates are never refused by the count
    # a deletion frees its place, in the same batch too
    assert send(client, hub, report("b", 2, deleted=True), report("d", 1)).json() == {"accepted": 2, "stale": 0}
    assert names(hub) == ["a", "c", "d"]
    # another cluster has its own cap
    assert send(client, hub, report("x", 1), report("y", 1), report("z", 1), cluster="cluster2").status_code == 200


def test_concurrent_batches_of_one_cluster_cannot_pass_its_cap_together(hub: Hub) -> None:
    client = capped(hub, max_replications=3)
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: until_not_busy(lambda: send(client, hub, report(f"r{i}", 1))).status_code,
                              range(16)))
    assert sorted(codes) == [200] * 3 + [429] * 13, codes
    assert len(names(hub)) == 3


def test_a_report_over_the_size_cap_is_413_and_nothing_is_stored(hub: Hub) -> None:
    client = capped(hub, max_report_bytes=2048)
    big = report("big", 1, status={"latestMoverStatus": {"result": "Failed", "logs": "x" * 4000}})
    refused = send(client, hub, report("small", 1), big)
    assert refused.status_code == 413, refused.text
    [error] = refused.json()["detail"]
    assert error["loc"] == ["body", "reports", 1] and error["type"] == "report_too_large"
    assert "source apps/big takes" in error["msg"] and "at most 2048 per report" in error["msg"]
    assert names(hub) == []
    assert send(client, hub, report("small", 1)).status_code == 200


def test_the_default_caps_allow_a_thousand_replications_per_cluster() -> None:
    limits = RestLimits()
    assert limits.max_replications == 1000 and limits.max_report_bytes == 64 * 1024
    with pytest.raises(ValueError):
        RestLimits(max_report_bytes=10 * 1024 * 1024)  # beyond what a ConfigMap can hold


@pytest.mark.parametrize(("offset", "expected"), [(0, 200), (-299, 200), (299, 200), (-301, 422), (3600, 422)])
def test_a_heartbeat_must_be_fresh(shared_hub: Hub, offset: int, expected: int) -> None:
    hub = shared_hub
    sent = rfc3339(hub.clock.now() + timedelta(seconds=offset))
    r = hub.client.post("/api/v1/agents/cluster1/heartbeat", json={"agentId": "a", "sentAt": sent},
                        headers=hub.auth("cluster1"))
    assert r.status_code == expected, r.text
    if expected == 422:
        [error] = r.json()["detail"]
        assert error["loc"] == ["body", "sentAt"] and "at most 300s are accepted" in error["msg"], error


def test_a_heartbeat_without_a_send_time_is_422(shared_hub: Hub) -> None:
    r = shared_hub.client.post("/api/v1/agents/cluster1/heartbeat", json={"agentId": "a"},
                               headers=shared_hub.auth("cluster1"))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "sentAt"]


def test_replications_page_in_a_stable_order(hub: Hub) -> None:
    batch = [report(f"r{i:02d}", 1, namespace=ns) for i in range(5) for ns in ("a", "b")]
    assert hub.send("cluster1", *batch).status_code == 200
    assert hub.send("cluster2", report("r00", 1, role="destination")).status_code == 200
    everything = hub.get("/api/v1/replications").json()
    assert "x-continue" not in hub.get("/api/v1/replications").headers  # no limit: the whole list, as before
    seen, token, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"continue": token} if token else {})
        r = hub.get("/api/v1/replications", **params)
        assert r.status_code == 200 and len(r.json()) <= 3
        seen += r.json()
        pages += 1
        token = r.headers.get("x-continue")
        if token is None:
            break
    assert seen == everything and len(seen) == 11 and pages == 4
    one = hub.get("/api/v1/replications", limit=4, cluster="cluster1", namespace="b")
    assert [r["name"] for r in one.json()] == ["r00", "r01", "r02", "r03"]
    rest = hub.get("/api/v1/replications", limit=4, cluster="cluster1", namespace="b",
                   **{"continue": one.headers["x-continue"]})
    assert [r["name"] for r in rest.json()] == ["r04"] and "x-continue" not in rest.headers


def test_clusters_page_by_name(shared_hub: Hub) -> None:
    first = shared_hub.get("/api/v1/clusters", limit=1)
    assert [c["name"] for c in first.json()] == ["cluster1"]
    second = shared_hub.get("/api/v1/clusters", limit=1, **{"continue": first.headers["x-continue"]})
    assert [c["name"] for c in second.json()] == ["cluster2"] and "x-continue" not in second.headers


@pytest.mark.parametrize("limit", ["abc", "nan", "0", "-1", "1e3", "100001"])
def test_a_bad_limit_is_422(shared_hub: Hub, limit: str) -> None:
    for path in ("/api/v1/replications", "/api/v1/clusters"):
        r = shared_hub.get(path, limit=limit)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "limit"], r.text


def test_a_bad_continue_token_is_400(shared_hub: Hub) -> None:
    clusters_token = shared_hub.get("/api/v1/clusters", limit=1).headers["x-continue"]

    def forged(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    deep = [forged(b"[" * 3000), forged(b'{"v":1,"list":"replications","after":' + b"[" * 2900),
            forged(b'{"a":' * 600), forged(b'{"v":1,"list":"replications","after":[["a"]]}')]
    for token in ("garbage", "e30", "!!!", "x" * 5000, clusters_token, *deep):
        r = shared_hub.get("/api/v1/replications", limit=1, **{"continue": token})
        assert r.status_code in (400, 422) and isinstance(r.json()["detail"], str | list), (token[:20], r.text)
    r = shared_hub.get("/api/v1/replications", **{"continue": clusters_token})
    assert r.status_code == 400 and "not one of the replications list" in r.json()["detail"]
