"""The cluster manager's pure planner: acceptance, the cluster namespace and lease expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kube.clock import rfc3339
from kube.rest import NAMESPACES, Obj
from localcluster.controllers.plans import Create, Patch, Plan
from localcluster.ocm.leaseplan import (
    ACCEPTED,
    AVAILABLE,
    DENY_ACCEPT,
    JOINED,
    LEASE_STOPPED,
    grace_seconds,
    lease_seconds,
    plan_cluster,
)
from localcluster.ocm.resources import MANAGED_CLUSTERS

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def cluster(accepts: bool = True, lease: int | None = 10, conditions: list[Obj] | None = None,
            annotations: dict[str, str] | None = None) -> Obj:
    spec: Obj = {"hubAcceptsClient": accepts}
    if lease is not None:
        spec["leaseDurationSeconds"] = lease
    return {"metadata": {"name": "c1", "resourceVersion": "7", "annotations": annotations or {}},
            "spec": spec, "status": {"conditions": conditions or []}}


def cond(type_: str, status: str, when: datetime, reason: str = "R", message: str = "m") -> Obj:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": rfc3339(when)}


def joined(since: datetime, available: str = "True") -> list[Obj]:
    return [cond(ACCEPTED, "True", since, "HubClusterAdminAccepted", "Accepted by hub cluster admin"),
            cond(JOINED, "True", since), cond(AVAILABLE, available, since)]


def lease(renewed: datetime) -> Obj:
    return {"spec": {"renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "leaseDurationSeconds": 10}}


def status_patch(plan: Plan) -> Obj:
    patches = [a for a in plan.actions if isinstance(a, Patch) and a.status]
    assert len(patches) == 1, plan
    assert patches[0].patch["metadata"] == {"resourceVersion": "7"}
    status: Obj = patches[0].patch["status"]
    return status


def by_type(conditions: list[Obj], type_: str) -> Obj:
    return next(c for c in conditions if c["type"] == type_)


def test_lease_seconds_default_to_ocm_and_grace_is_five_times() -> None:
    assert lease_seconds(cluster(lease=None)) == 60
    assert lease_seconds(cluster(lease=0)) == 60
    assert grace_seconds(cluster(lease=None)) == 300
    assert grace_seconds(cluster(lease=10)) == 50


def test_a_new_cluster_is_accepted_by_patching_its_spec_only() -> None:
    plan = plan_cluster(cluster(accepts=False), None, False, NOW)
    assert plan == Plan((Patch(MANAGED_CLUSTERS, "", "c1", {"metadata": {"resourceVersion": "7"},
                                                            "spec": {"hubAcceptsClient": True}}),))


def test_an_accepted_cluster_gets_the_condition_and_its_namespace() -> None:
    plan = plan_cluster(cluster(), None, False, NOW)
    assert plan.actions[0] == Create(NAMESPACES, {"metadata": {"name": "c1"}})
    accepted = by_type(status_patch(plan)["conditions"], ACCEPTED)
    assert (accepted["status"], accepted["reason"], accepted["lastTransitionTime"]) == \
        ("True", "HubClusterAdminAccepted", rfc3339(NOW))
    assert plan.requeue is None  # not joined: no lease to expire


def test_a_cluster_with_the_deny_annotation_is_denied_and_gets_no_namespace() -> None:
    plan = plan_cluster(cluster(accepts=False, annotations={DENY_ACCEPT: "true"}), None, False, NOW)
    assert not any(isinstance(a, Create) for a in plan.actions)
    accepted = by_type(status_patch(plan)["conditions"], ACCEPTED)
    assert (accepted["status"], accepted["reason"]) == ("False", "HubClusterAdminDenied")


def test_a_fresh_lease_writes_nothing_and_requeues_when_it_would_expire() -> None:
    since = NOW - timedelta(minutes=5)
    plan = plan_cluster(cluster(conditions=joined(since)), lease(NOW - timedelta(seconds=20)), True, NOW)
    assert plan.actions == ()
    assert plan.requeue is not None and 30 < plan.requeue <= 30.1  # grace 50 s, renewed 20 s ago


def test_a_stale_lease_turns_available_unknown_once() -> None:
    since = NOW - timedelta(minutes=5)
    plan = plan_cluster(cluster(conditions=joined(since)), lease(NOW - timedelta(seconds=51)), True, NOW)
    conditions = status_patch(plan)["conditions"]
    available = by_type(conditions, AVAILABLE)
    assert (available["status"], available["reason"], available["lastTransitionTime"]) == \
        ("Unknown", LEASE_STOPPED, rfc3339(NOW))
    assert "51s ago" in available["message"] and "50s" in available["message"]
    assert by_type(conditions, JOINED)["status"] == "True"
    assert plan.requeue is None  # the renewal's lease event brings it back

    marked = cluster(conditions=conditions)
    again = plan_cluster(marked, lease(NOW - timedelta(seconds=51)), True, NOW + timedelta(seconds=30))
    assert again == Plan()


def test_a_joined_cluster_without_a_lease_counts_from_its_joined_transition() -> None:
    fresh = plan_cluster(cluster(conditions=joined(NOW - timedelta(seconds=10))), None, True, NOW)
    assert fresh.actions == () and fresh.requeue is not None and 40 < fresh.requeue <= 40.1
    stale = plan_cluster(cluster(conditions=joined(NOW - timedelta(seconds=60))), None, True, NOW)
    assert by_type(status_patch(stale)["conditions"], AVAILABLE)["status"] == "Unknown"


def test_a_deleting_cluster_is_left_alone() -> None:
    doomed = cluster(accepts=False)
    doomed["metadata"]["deletionTimestamp"] = rfc3339(NOW)
    assert plan_cluster(doomed, None, False, NOW) == Plan()
