"""The agent side: heartbeats become the cluster's Lease, reports become ConfigMaps, idempotently."""

from __future__ import annotations

import hashlib
import json
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hubkit import Hub, report, until_not_busy
from support.waiting import eventually

from api.hub import ReportBatch
from hub.fleet import FleetStore
from hub.reports import ANNOTATION_SEQUENCE, LABEL_REPORT, LABEL_ROLE, configmap_name
from kube.clock import parse_rfc3339
from kube.rest import CONFIGMAPS, LEASES


def stored(hub: Hub, cluster: str = "cluster1") -> dict[str, dict[str, Any]]:
    items, _ = hub.kube.list(CONFIGMAPS, cluster, label_selector=f"{LABEL_REPORT}=true")
    return {cm["metadata"]["name"]: cm for cm in items}


def test_heartbeat_creates_then_renews_the_lease(hub: Hub) -> None:
    r = hub.heartbeat("cluster1", agent_id="agent-a")
    assert r.status_code == 200
    assert r.json() == {"leaseDurationSeconds": 300, "renewIntervalSeconds": 60}
    lease = hub.kube.get(LEASES, "volsync", "cluster1")
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "agent-a"
    assert lease["spec"]["leaseDurationSeconds"] == 300
    assert parse_rfc3339(lease["spec"]["renewTime"]) == hub.clock.now()

    hub.clock.advance(61)
    assert hub.heartbeat("cluster1", agent_id="agent-b").status_code == 200
    renewed = hub.kube.get(LEASES, "volsync", "cluster1")
    assert renewed is not None
    assert renewed["metadata"]["uid"] == lease["metadata"]["uid"]
    assert renewed["spec"]["holderIdentity"] == "agent-b"
    assert parse_rfc3339(renewed["spec"]["renewTime"]) == hub.clock.now()
    assert renewed["spec"]["acquireTime"] == lease["spec"]["acquireTime"]
    assert hub.kube.get(LEASES, "volsync", "cluster2") is None


def test_a_report_becomes_a_configmap(hub: Hub) -> None:
    status = {"lastSyncTime": hub.ago(60), "lastSyncDuration": "12s", "latestMoverStatus": {"result": "Successful"}}
    r = hub.send("cluster1", report("db", 3, status=status), report("db", 1, role="destination", namespace="dr"))
    assert r.status_code == 200 and r.json() == {"accepted": 2, "stale": 0}
    maps = stored(hub)
    name = configmap_name("source", "apps", "db")
    assert set(maps) == {name, configmap_name("destination", "dr", "db")}
    cm = maps[name]
    assert cm["metadata"]["labels"] == {LABEL_REPORT: "true", LABEL_ROLE: "source"}
    assert cm["metadata"]["annotations"][ANNOTATION_SEQUENCE] == "3"
    body = json.loads(cm["data"]["report"])
    assert (body["role"], body["namespace"], body["name"], body["sequence"]) == ("source", "apps", "db", 3)
    assert body["status"] == status
    assert stored(hub, "cluster2") == {}


def test_configmap_name_is_the_documented_hash() -> None:
    digest = hashlib.sha256(b"source/apps/db").hexdigest()[:12]
    assert configmap_name("source", "apps", "db") == f"volsync-status-{digest}"


def test_sequences_are_idempotent(hub: Hub) -> None:
    assert hub.send("cluster1", report("db", 5)).json() == {"accepted": 1, "stale": 0}
    rv = stored(hub)[configmap_name("source", "apps", "db")]["metadata"]["resourceVersion"]
    # the same sequence again and a lower one change nothing on the API
    assert hub.send("cluster1", report("db", 5), report("db", 4)).json() == {"accepted": 0, "stale": 2}
    assert stored(hub)[configmap_name("source", "apps", "db")]["metadata"]["resourceVersion"] == rv
    # a higher one is written
    r = hub.send("cluster1", report("db", 6, status={"lastSyncTime": hub.ago(1)}))
    assert r.json() == {"accepted": 1, "stale": 0}
    cm = stored(hub)[configmap_name("source", "apps", "db")]
    assert cm["metadata"]["annotations"][ANNOTATION_SEQUENCE] == "6"
    # within one batch, order counts
    assert hub.send("cluster1", report("db", 8), report("db", 7), report("db", 8)).json() == {"accepted": 1, "stale": 2}


def test_idempotency_does_not_trust_a_lagging_cache(hub: Hub) -> None:
    """A store whose informers never ran (its cache is empty) still refuses stale reports: the API decides."""
    assert hub.send("cluster1", report("db", 5)).json() == {"accepted": 1, "stale": 0}
    cold = FleetStore(hub.kube, clock=hub.clock)

    def submit(*reports: dict[str, Any]) -> tuple[int, int]:
        reply = cold.submit("cluster1", ReportBatch.model_validate({"agentId": "a", "reports": list(reports)}))
        return reply.accepted, reply.stale

    assert submit(report("db", 5)) == (0, 1)
    assert submit(report("db", 6)) == (1, 0)
    assert hub.send("cluster1", report("db", 6)).json() == {"accepted": 0, "stale": 1}
    cold = FleetStore(hub.kube, clock=hub.clock)  # a delete with a stale sequence is refused too
    assert submit(report("db", 6, deleted=True)) == (0, 1)
    assert configmap_name("source", "apps", "db") in stored(hub)


def rows_eventually(hub: Hub, count: int) -> list[dict[str, Any]]:
    def rows() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = hub.get("/api/v1/replications").json()
        return found if len(found) == count else None

    return eventually(rows, what=f"{count} rows")


def test_deleted_report_removes_the_configmap_and_the_row(hub: Hub) -> None:
    hub.send("cluster1", report("db", 1), report("web", 1))
    rows_eventually(hub, 2)
    assert hub.send("cluster1", report("db", 2, deleted=True)).json() == {"accepted": 1, "stale": 0}
    assert set(stored(hub)) == {configmap_name("source", "apps", "web")}
    assert [r["name"] for r in rows_eventually(hub, 1)] == ["web"]
    # a late, older report does not bring it back; a newer one (the replication was re-created) does
    assert hub.send("cluster1", report("db", 1)).json() == {"accepted": 0, "stale": 1}
    assert hub.send("cluster1", report("db", 2, deleted=True)).json() == {"accepted": 0, "stale": 1}
    assert hub.send("cluster1", report("db", 3)).json() == {"accepted": 1, "stale": 0}
    assert configmap_name("source", "apps", "db") in stored(hub)
    # deleting what was never reported is fine
    assert hub.send("cluster1", report("ghost", 1, deleted=True)).json() == {"accepted": 1, "stale": 0}


def _errors(r: Any) -> list[dict[str, Any]]:
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, list) and detail
    assert all("input" not in e for e in detail)  # the request is not echoed back
    return list(detail)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"extra": 1}, "extra"),
        ({"role": "mirror"}, "role"),
        ({"namespace": "Not_A_Namespace"}, "namespace"),
        ({"namespace": "a" * 64}, "namespace"),
        ({"name": "x" * 254}, "name"),
        ({"sequence": -1}, "sequence"),
        ({"sequence": "seven"}, "sequence"),
        ({"observedAt": "yesterday"}, "observedAt"),
        ({"observedAt": "2026-01-01T00:00:00"}, "observedAt"),
        ({"status": {"lastSyncTime": "2026-01-01T00:00:00"}}, "status"),
        ({"status": {"lastSyncTime": 5}}, "status"),
        ({"status": {"conditions": [{"status": "True"}]}}, "status"),
        ({"status": {"conditions": "Synchronizing"}}, "status"),
        ({"status": {"latestMoverStatus": {"result": 1}}}, "status"),
        ({"spec": {"trigger": {"schedule": 5}}}, "spec"),
        ({"spec": []}, "spec"),
        ({"status": {"logs": "x" * 300_000}}, "reports"),
    ],
)
def test_malformed_reports_are_422_with_detail(shared_hub: Hub, change: dict[str, Any], where: str) -> None:
    hub = shared_hub
    bad = {**report("db", 1), **change}
    errors = _errors(hub.send("cluster1", bad))
    assert any(where in [str(p) for p in e["loc"]] for e in errors), errors
    assert all(isinstance(e["msg"], str) and e["msg"] for e in errors)
    assert stored(hub) == {}


def test_malformed_batches_and_heartbeats_are_422(shared_hub: Hub) -> None:
    hub = shared_hub
    headers = hub.auth("cluster1")
    post = hub.client.post
    _errors(post("/api/v1/agents/cluster1/reports", json={"reports": []}, headers=headers))
    _errors(post("/api/v1/agents/cluster1/reports", json={"agentId": "a", "reports": [{}] * 1001}, headers=headers))
    _errors(post("/api/v1/agents/cluster1/reports", content=b"{not json", headers=headers))
    _errors(post("/api/v1/agents/cluster1/heartbeat", json={"agentId": "", "sentAt": "x"}, headers=headers))
    _errors(post("/api/v1/agents/cluster1/heartbeat", json={"agentId": "a", "sentAt": "2026-01-01T00:00:00Z",
                                                            "color": "red"}, headers=headers))


def test_a_body_over_the_limit_is_413(shared_hub: Hub) -> None:
    hub = shared_hub
    r = hub.client.post("/api/v1/agents/cluster1/reports", content=b"x" * (33 * 1024 * 1024),
                        headers={**hub.auth("cluster1"), "Content-Type": "application/json"})
    assert r.status_code == 413 and "detail" in r.json()


def test_concurrent_reports_never_go_backwards(hub: Hub) -> None:
    sequences = list(range(1, 41))
    random.Random(7).shuffle(sequences)
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda seq: until_not_busy(lambda: hub.send("cluster1", report("db", seq))).json(),
                                sequences))
    assert sum(r["accepted"] + r["stale"] for r in replies) == 40
    assert sum(r["accepted"] for r in replies) >= 1
    cm = stored(hub)[configmap_name("source", "apps", "db")]
    assert cm["metadata"]["annotations"][ANNOTATION_SEQUENCE] == "40"
    assert json.loads(cm["data"]["report"])["sequence"] == 40


def test_a_damaged_report_configmap_is_ignored_then_overwritten(hub: Hub) -> None:
    name = configmap_name("source", "apps", "db")
    hub.kube.create(CONFIGMAPS, {
        "metadata": {"name": name, "namespace": "cluster1", "labels": {LABEL_REPORT: "true"}},
        "data": {"report": "{not json"},
    })
    assert hub.get("/api/v1/replications").json() == []
    assert hub.send("cluster1", report("db", 1)).json() == {"accepted": 1, "stale": 0}
    assert json.loads(stored(hub)[name]["data"]["report"])["sequence"] == 1
    assert [r["name"] for r in rows_eventually(hub, 1)] == ["db"]
