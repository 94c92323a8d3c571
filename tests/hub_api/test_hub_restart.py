"""All state is on the hub API: a new store and app see what the old ones stored; /readyz waits for the informers."""

from __future__ import annotations

from hubkit import Hub, report
from support.waiting import eventually


def test_a_restarted_hub_has_lost_nothing(hub: Hub) -> None:
    assert hub.heartbeat("cluster1", agent_id="agent-x").status_code == 200
    status = {"lastSyncTime": hub.ago(30), "latestMoverStatus": {"result": "Successful"}}
    assert hub.send("cluster1", report("db", 4, status=status), report("gone", 1)).json()["accepted"] == 2
    assert hub.send("cluster2", report("dest", 2, role="destination")).json()["accepted"] == 1
    assert hub.send("cluster1", report("gone", 2, deleted=True)).json()["accepted"] == 1
    before = {
        path: hub.get(path).json()
        for path in ("/api/v1/replications", "/api/v1/clusters", "/api/v1/summary")
    }
    assert len(before["/api/v1/replications"]) == 2

    hub.restart()

    for path, expected in before.items():
        assert hub.get(path).json() == expected, path
    # idempotency survives too: the sequence is on the API, not in the old process
    assert hub.send("cluster1", report("db", 4)).json() == {"accepted": 0, "stale": 1}
    assert hub.send("cluster1", report("db", 5)).json() == {"accepted": 1, "stale": 0}
    assert hub.heartbeat("cluster1", agent_id="agent-y").status_code == 200
    assert hub.get("/api/v1/clusters/cluster1").json()["agentId"] == "agent-y"


def test_readyz_waits_for_the_informers(hub: Hub) -> None:
    fleet, tokens, _, client = hub.build(start=False)
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json() == {"detail": "informers not synced yet"}
    assert client.get("/healthz").json() == {"status": "ok"}
    fleet.start()
    assert fleet.wait_synced(15)
    assert client.get("/readyz").status_code == 503  # the token informer has not run yet
    tokens.start()
    eventually(lambda: client.get("/readyz").status_code == 200, what="ready")
    assert client.get("/readyz").json() == {"status": "ok"}
