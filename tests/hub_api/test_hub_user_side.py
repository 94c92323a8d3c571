"""The user side: rows with lag and RPO state at the clock's time, filters, clusters, summary, metrics."""

from __future__ import annotations

from typing import Any

import pytest
from hubkit import ADDON_CONDITIONS, Hub, report

HOURLY = "0 * * * *"


@pytest.fixture
def fleet(hub: Hub) -> Hub:
    """Seven replications on two clusters, one of each interesting kind; cluster1's agent heartbeats."""
    synced = {"type": "Synchronizing", "status": "False", "reason": "WaitingForSchedule", "message": "waiting"}
    failing = {"type": "Synchronizing", "status": "False", "reason": "Error", "message": "no PVC apps/data"}
    r1 = hub.send(
        "cluster1",
        report("hourly-ok", 1, schedule=HOURLY, status={
            "lastSyncTime": hub.ago(600), "lastSyncDuration": "20s", "nextSyncTime": "2026-01-01T01:00:00Z",
            "conditions": [synced], "latestMoverStatus": {"result": "Successful", "logs": "sent 1 MiB"},
        }),
        report("hourly-late", 1, schedule=HOURLY, status={"lastSyncTime": hub.ago(3 * 3600)}),
        report("failed", 1, status={
            "lastSyncTime": hub.ago(60), "latestMoverStatus": {"result": "Failed", "logs": "rsync: connection refused"},
        }),
        report("new", 1, role="destination", namespace="dr"),
        report("broken", 1, schedule=HOURLY, status={"conditions": [failing]}),
    )
    r2 = hub.send(
        "cluster2",
        report("manual", 1, status={"lastSyncTime": hub.ago(2 * 3600)}),
        report("dest", 1, role="destination", status={
            "lastSyncTime": hub.ago(2 * 3600),
            "latestImage": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap-1"},
        }),
    )
    assert r1.json() == {"accepted": 5, "stale": 0} and r2.json() == {"accepted": 2, "stale": 0}
    assert hub.heartbeat("cluster1", agent_id="agent-c1").status_code == 200
    return hub


def rows(hub: Hub, **params: Any) -> dict[str, dict[str, Any]]:
    r = hub.get("/api/v1/replications", **params)
    assert r.status_code == 200, r.text
    return {row["name"]: row for row in r.json()}


def test_rows_carry_lag_and_state(fleet: Hub) -> None:
    found = rows(fleet)
    assert {n: r["state"] for n, r in found.items()} == {
        "hourly-ok": "ok", "hourly-late": "late", "failed": "error", "new": "never", "broken": "error",
        "manual": "late", "dest": "ok",
    }
    ok = found["hourly-ok"]
    assert ok == {
        "cluster": "cluster1", "namespace": "apps", "name": "hourly-ok", "role": "source",
        "lastSyncTime": "2025-12-31T23:50:00Z", "lastSyncDuration": "20s", "nextSyncTime": "2026-01-01T01:00:00Z",
        "lagSeconds": 600.0, "state": "ok", "stateMessage": None, "rpoSeconds": None, "peer": None,
        "latestImage": None, "moverResult": "Successful",
        "moverMessage": "sent 1 MiB", "conditions": [ok["conditions"][0]], "reportedAt": "2026-01-01T00:00:00Z",
    }
    assert ok["conditions"][0]["reason"] == "WaitingForSchedule"
    assert (found["failed"]["moverResult"], found["failed"]["moverMessage"]) == ("Failed", "rsync: connection refused")
    assert found["new"]["lagSeconds"] is None and found["new"]["lastSyncTime"] is None
    assert found["dest"]["latestImage"]["name"] == "snap-1"


def test_state_moves_with_the_clock(fleet: Hub) -> None:
    fleet.clock.advance(2 * 3600)
    found = rows(fleet)
    assert found["hourly-ok"]["state"] == "late"  # the 01:00 run had not completed by 02:00
    assert found["hourly-ok"]["lagSeconds"] == 600.0 + 2 * 3600
    assert found["dest"]["state"] == "ok"  # an unscheduled destination is never late
    # a fresh report brings it back
    fresh = report("hourly-ok", 2, schedule=HOURLY, status={"lastSyncTime": fleet.ago(5)})
    assert fleet.send("cluster1", fresh).json() == {"accepted": 1, "stale": 0}
    assert rows(fleet)["hourly-ok"]["state"] == "ok"


FILTERS = [
    ({"cluster": "cluster2"}, {"manual", "dest"}),
    ({"namespace": "dr"}, {"new"}),
    ({"role": "destination"}, {"new", "dest"}),
    ({"state": "error"}, {"failed", "broken"}),
    ({"state": "late", "cluster": "cluster1"}, {"hourly-late"}),
    ({"cluster": "cluster2", "namespace": "apps", "role": "source", "state": "late"}, {"manual"}),
    ({"cluster": "nowhere"}, set()),
]


def test_filters(fleet: Hub) -> None:
    for params, names in FILTERS:
        assert set(rows(fleet, **params)) == names, params


@pytest.mark.parametrize("params", [{"state": "sad"}, {"role": "both"}, {"namespace": "n" * 64}])
def test_invalid_filters_are_422(shared_hub: Hub, params: dict[str, str]) -> None:
    r = shared_hub.get("/api/v1/replications", **params)
    assert r.status_code == 422 and r.json()["detail"]


def test_rows_are_sorted(fleet: Hub) -> None:
    listed = fleet.get("/api/v1/replications").json()
    keys = [(r["cluster"], r["namespace"], r["name"]) for r in listed]
    assert keys == sorted(keys)


def test_summary(fleet: Hub) -> None:
    assert fleet.get("/api/v1/summary").json() == {
        "replications": {"ok": 2, "late": 2, "never": 1, "error": 2, "paused": 0}, "pairs": 0,
        "sources": {"ok": 1, "late": 2, "never": 0, "error": 2, "paused": 0},
        "destinations": {"ok": 1, "late": 0, "never": 1, "error": 0, "paused": 0},
        "clusters": {"available": 1, "total": 2},
    }
    fleet.clock.advance(301)  # cluster1's Lease is now older than the stale period
    assert fleet.get("/api/v1/summary").json()["clusters"] == {"available": 0, "total": 2}


def test_clusters(fleet: Hub) -> None:
    listed = fleet.get("/api/v1/clusters").json()
    assert [c["name"] for c in listed] == ["cluster1", "cluster2"]
    one = fleet.get("/api/v1/clusters/cluster1").json()
    assert one == listed[0]
    assert one == {
        "name": "cluster1", "available": True, "lastHeartbeat": "2026-01-01T00:00:00Z", "agentId": "agent-c1",
        "addonConditions": ADDON_CONDITIONS, "replications": {"ok": 1, "late": 1, "never": 1, "error": 2, "paused": 0},
    }
    two = fleet.get("/api/v1/clusters/cluster2").json()
    assert (two["available"], two["lastHeartbeat"], two["addonConditions"]) == (False, None, [])
    assert two["replications"] == {"ok": 1, "late": 1, "never": 0, "error": 0, "paused": 0}
    fleet.clock.advance(300)
    assert fleet.get("/api/v1/clusters/cluster1").json()["available"] is True
    fleet.clock.advance(1)
    assert fleet.get("/api/v1/clusters/cluster1").json()["available"] is False
    missing = fleet.get("/api/v1/clusters/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_metrics(fleet: Hub) -> None:
    fleet.send("cluster1", report("hourly-late", 1))  # stale
    fleet.get("/api/v1/clusters/cluster1")
    text = fleet.client.get("/metrics").text
    for line in (
        'volsync_hub_reports_total{result="accepted"} 7.0',
        'volsync_hub_reports_total{result="stale"} 1.0',
        "volsync_hub_heartbeats_total 1.0",
        "volsync_hub_clusters 2.0",
        "volsync_hub_clusters_available 1.0",
        'volsync_hub_replications{state="error"} 2.0',
        'volsync_hub_replications{state="never"} 1.0',
        'volsync_hub_http_requests_total{code="200",method="POST",route="/api/v1/agents/{cluster}/reports"} 3.0',
        'volsync_hub_http_requests_total{code="200",method="GET",route="/api/v1/clusters/{name}"} 1.0',
    ):
        assert line in text, line
    assert 'volsync_hub_http_request_duration_seconds_count{method="POST",route="/api/v1/agents/{cluster}/reports"}' \
        in text
    fleet.client.get("/no/such/path")
    assert 'route="unmatched"' in fleet.client.get("/metrics").text
