"""The MCA's conditions and the cluster's feature label from work status, Lease, cluster and reports.

Tests play the work agent (ManifestWork status), the REST API (the Lease, report ConfigMaps) and the
registration controller (the ManagedCluster's availability); time is a FakeClock, stepped.
"""

from __future__ import annotations

import json
from datetime import timedelta

from support.hub_controllers import Hub

from kube.rest import CONFIGMAPS

READY = {"Replicas": 1, "ReadyReplicas": 1, "AvailableReplicas": 1}


def reason(hub: Hub, type_: str, cluster: str = "cluster1") -> tuple[str, str] | None:
    cond = hub.condition(cluster, type_)
    return (cond["status"], cond["reason"]) if cond else None


def deployed(hub: Hub, **options: object) -> None:
    hub.start(**options)
    hub.cluster("cluster1")
    hub.until(lambda: hub.work("cluster1"), "ManifestWork written")


def test_applied_work_and_fresh_lease_make_the_addon_available(hub: Hub) -> None:
    deployed(hub)
    hub.until(lambda: reason(hub, "Available") == ("Unknown", "WorkNotApplied"), "work not applied yet")
    assert reason(hub, "RegistrationApplied") == ("True", "NilRegistration")
    assert reason(hub, "ManifestApplied") is None  # nothing known yet
    assert reason(hub, "Progressing") == ("True", "Progressing")
    assert hub.feature_label("cluster1") == "unreachable"
    assert (hub.addon("cluster1") or {})["status"]["healthCheck"] == {"mode": "Customized"}

    hub.renew_lease("cluster1")  # a fresh heartbeat does not make up for the work's feedback
    hub.work_status("cluster1", feedback={"Replicas": 1})
    hub.until(lambda: reason(hub, "ManifestApplied") == ("True", "AddonManifestApplied"), "ManifestApplied")
    assert reason(hub, "Progressing") == ("True", "Progressing")  # 0/1 ready
    hub.until(lambda: reason(hub, "Available") == ("False", "ProbeUnavailable"), "probe unavailable")
    assert hub.condition("cluster1", "Available")["message"] == (  # type: ignore[index]
        "Deployment volsync-agent: 0/1 replicas ready")
    hub.until(lambda: hub.feature_label("cluster1") == "unhealthy", "label unhealthy")

    hub.work_status("cluster1", feedback=READY)
    hub.until(lambda: reason(hub, "Progressing") == ("False", "Completed"), "Completed")
    hub.until(lambda: reason(hub, "Available") == ("True", "ProbeAvailable"), "Available")
    hub.until(lambda: hub.feature_label("cluster1") == "available", "label available")
    assert reason(hub, "Degraded") == ("False", "ReplicationsHealthy")
    listing = hub.server.kubectl("get", "managedclusteraddons.v1alpha1.addon.open-cluster-management.io",
                                 "-n", "cluster1").stdout.splitlines()
    assert listing[1].split()[:4] == ["volsync", "True", "False", "False"]  # NAME AVAILABLE DEGRADED PROGRESSING


def test_work_not_applied(hub: Hub) -> None:
    deployed(hub)
    hub.work_status("cluster1", applied="False", available="False")
    hub.until(lambda: reason(hub, "ManifestApplied") == ("False", "AddonManifestAppliedFailed"), "applied False")
    assert hub.condition("cluster1", "ManifestApplied")["message"] == "Applied False"  # type: ignore[index]
    assert reason(hub, "Available") == ("False", "WorkNotApplied")
    assert hub.condition("cluster1", "Available")["message"] == "Applied False"  # type: ignore[index]


def test_stale_lease_turns_unavailable_on_time(hub: Hub) -> None:
    deployed(hub, stale_seconds=60)
    hub.work_status("cluster1", feedback=READY)
    hub.renew_lease("cluster1")
    hub.until(lambda: reason(hub, "Available") == ("True", "ProbeAvailable"), "Available")
    hub.settle("cluster1")
    before = hub.condition("cluster1", "Available")
    assert before is not None

    hub.clock.advance(59)
    hub.drain()
    assert reason(hub, "Available") == ("True", "ProbeAvailable")
    hub.clock.advance(2)  # past the stale period: no event at all, the controller's own recheck
    hub.drain()
    assert reason(hub, "Available") == ("False", "ManagedClusterAddOnLeaseUpdateStopped")
    assert hub.feature_label("cluster1") == "unhealthy"
    after = hub.condition("cluster1", "Available")
    assert after is not None and after["lastTransitionTime"] != before["lastTransitionTime"]
    assert after["message"] == "volsync add-on is not available."

    hub.renew_lease("cluster1")  # the agent is back
    hub.until(lambda: reason(hub, "Available") == ("True", "ProbeAvailable"), "available again")
    hub.until(lambda: hub.feature_label("cluster1") == "available", "label available again")


def test_renewals_of_a_fresh_lease_cost_no_reconcile_and_the_boundary_still_moves(hub: Hub) -> None:
    deployed(hub, stale_seconds=60)
    hub.work_status("cluster1", feedback=READY)
    hub.renew_lease("cluster1")
    hub.until(lambda: reason(hub, "Available") == ("True", "ProbeAvailable"), "Available")
    hub.settle("cluster1")
    manager = hub.manager
    assert manager is not None
    queued: list[object] = []
    original_add = manager.queue.add
    def add(key: str) -> None:
        queued.append(key)
        original_add(key)

    manager.queue.add = add  # type: ignore[method-assign]

    hub.clock.advance(30)
    hub.renew_lease("cluster1")  # fresh -> fresh: Available cannot change
    hub.settle("cluster1")
    assert "cluster1" not in queued

    hub.clock.advance(31)  # past the first lease's boundary: the re-check finds the renewed lease fresh
    hub.drain()
    assert reason(hub, "Available") == ("True", "ProbeAvailable")
    hub.clock.advance(30)  # past the renewed lease's boundary
    hub.drain()
    assert reason(hub, "Available") == ("False", "ManagedClusterAddOnLeaseUpdateStopped")
    hub.renew_lease("cluster1")  # stale -> fresh: reconciled at once
    hub.until(lambda: reason(hub, "Available") == ("True", "ProbeAvailable"), "available again")
    assert "cluster1" in queued


def test_lease_renewed_before_start_but_stale_by_now(hub: Hub) -> None:
    hub.cluster("cluster1")
    hub.renew_lease("cluster1", hub.clock.now() - timedelta(seconds=400))
    hub.start()
    hub.until(lambda: hub.work("cluster1"), "ManifestWork written")
    hub.work_status("cluster1", feedback=READY)  # the Deployment ready: the heartbeat decides
    hub.until(lambda: reason(hub, "Available") == ("False", "ManagedClusterAddOnLeaseUpdateStopped"), "stale")


def test_unknown_cluster_is_copied(hub: Hub) -> None:
    deployed(hub)
    hub.work_status("cluster1", feedback=READY)
    hub.renew_lease("cluster1")
    hub.until(lambda: reason(hub, "Available") == ("True", "ProbeAvailable"), "Available")
    status = {"conditions": [{"type": "ManagedClusterConditionAvailable", "status": "Unknown",
                              "reason": "ManagedClusterLeaseUpdateStopped",
                              "message": "Registration agent stopped updating its lease.",
                              "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    hub.server.kubectl("patch", "managedcluster", "cluster1", "--subresource=status", "--type=merge", "-p",
                       json.dumps({"status": status}))
    hub.until(lambda: reason(hub, "Available") == ("Unknown", "ManagedClusterLeaseUpdateStopped"), "Unknown copied")
    assert hub.condition("cluster1", "Available")["message"] == (  # type: ignore[index]
        "Registration agent stopped updating its lease.")
    hub.until(lambda: hub.feature_label("cluster1") == "unreachable", "label unreachable")


def test_failed_replication_degrades_the_addon(hub: Hub) -> None:
    deployed(hub)
    hub.until(lambda: reason(hub, "Degraded") == ("False", "ReplicationsHealthy"), "healthy")
    last = (hub.clock.now() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    hub.report("cluster1", "good", {"lastSyncTime": last}, {"trigger": {"schedule": "*/5 * * * *"}})
    hub.report("cluster1", "bad", {"lastSyncTime": last, "latestMoverStatus": {"result": "Failed", "logs": "x"}})
    hub.until(lambda: reason(hub, "Degraded") == ("True", "ReplicationsFailing"), "Degraded")
    message = hub.condition("cluster1", "Degraded")["message"]  # type: ignore[index]
    assert message == "1 of 2 replications failing: source apps/bad"
    hub.kube.delete(CONFIGMAPS, "volsync-status-bad", "cluster1")
    hub.until(lambda: reason(hub, "Degraded") == ("False", "ReplicationsHealthy"), "healthy again")


def test_late_replication_degrades_the_addon_as_time_passes(hub: Hub) -> None:
    deployed(hub, resync_seconds=30)
    last = (hub.clock.now() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    hub.report("cluster1", "hourly", {"lastSyncTime": last}, {"trigger": {"schedule": "0 * * * *"}})
    hub.until(lambda: reason(hub, "Degraded") == ("False", "ReplicationsHealthy"), "on time")
    hub.settle("cluster1")
    hub.clock.advance(3 * 3600)  # two slots missed, no event: the periodic recheck notices
    hub.drain()
    assert reason(hub, "Degraded") == ("True", "ReplicationsLate")
