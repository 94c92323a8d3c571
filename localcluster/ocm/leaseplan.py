"""The cluster manager's pure planner: one ManagedCluster, its lease and its namespace in, a `Plan` out.

What OCM's hub registration controllers decide for a cluster, as one function of what the caches
hold and the time:

- acceptance: the embedded default stands in for `clusteradm accept`: a cluster with
  `hubAcceptsClient: false` is accepted unless it carries `DENY_ACCEPT`; `hubAcceptsClient: true`
  gives `HubAcceptedManagedCluster` True (HubClusterAdminAccepted) and the cluster namespace,
  `false` gives it False (HubClusterAdminDenied);
- lease expiry (ocm `pkg/registration/hub/lease`): a joined cluster whose `managed-cluster-lease`
  was last renewed more than `GRACE_FACTOR` × `spec.leaseDurationSeconds` ago turns
  `ManagedClusterConditionAvailable` Unknown (ManagedClusterLeaseUpdateStopped). A joined cluster
  without a lease counts from its Joined transition. The plan asks to look again exactly when the
  lease would expire, so nothing polls.

Only the registration agent sets Available back to True (it renews the lease first).
"""

from __future__ import annotations

from datetime import datetime

from kube.clock import parse_rfc3339, rfc3339
from kube.objects import annotations_of, condition, is_deleting, name_of, set_condition
from kube.rest import NAMESPACES, Obj
from localcluster.controllers.plans import Action, Create, Patch, Plan
from localcluster.ocm.resources import MANAGED_CLUSTERS

GRACE_FACTOR = 5  # OCM: the hub marks a cluster Unknown after 5 × leaseDurationSeconds
DEFAULT_LEASE_SECONDS = 60
DENY_ACCEPT = "volsync-addon.io/deny-accept"  # the embedded hub's auto-accept leaves such a cluster alone

ACCEPTED = "HubAcceptedManagedCluster"
JOINED = "ManagedClusterJoined"
AVAILABLE = "ManagedClusterConditionAvailable"
LEASE_STOPPED = "ManagedClusterLeaseUpdateStopped"
_EXPIRY_SLACK = 0.05  # look again just after the expiry, not just before it


def lease_seconds(cluster: Obj) -> int:
    """`spec.leaseDurationSeconds`, OCM's default (60) when unset or not a positive number."""
    value = (cluster.get("spec") or {}).get("leaseDurationSeconds")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else DEFAULT_LEASE_SECONDS


def grace_seconds(cluster: Obj) -> int:
    return GRACE_FACTOR * lease_seconds(cluster)


def conditions_of(cluster: Obj) -> list[Obj]:
    value = (cluster.get("status") or {}).get("conditions")
    return list(value) if isinstance(value, list) else []


def plan_cluster(cluster: Obj, lease: Obj | None, namespace_exists: bool, now: datetime) -> Plan:
    """The Plan for `cluster` given its lease (None: missing) and whether its namespace exists."""
    if is_deleting(cluster):
        return Plan()
    name = name_of(cluster)
    rv = (cluster.get("metadata") or {}).get("resourceVersion")
    accepts = (cluster.get("spec") or {}).get("hubAcceptsClient") is True
    if not accepts and DENY_ACCEPT not in annotations_of(cluster):
        # auto-accept; the watch event of this write brings the cluster back for the rest
        return Plan((Patch(MANAGED_CLUSTERS, "", name, {"metadata": {"resourceVersion": rv},
                                                        "spec": {"hubAcceptsClient": True}}),))
    stamp = rfc3339(now)
    before = conditions_of(cluster)
    after = set_condition(before, _accepted(accepts), stamp)
    actions: list[Action] = []
    if accepts and not namespace_exists:
        actions.append(Create(NAMESPACES, {"metadata": {"name": name}}))
    requeue: float | None = None
    if accepts:
        after, requeue = _expire(cluster, after, lease, now)
    if conditions_differ(before, after):
        actions.append(Patch(MANAGED_CLUSTERS, "", name, {"metadata": {"resourceVersion": rv},
                                                          "status": {"conditions": after}}, status=True))
    return Plan(tuple(actions), requeue)


def conditions_differ(before: list[Obj], after: list[Obj]) -> bool:
    """Whether a condition of `after` is new or changed its status, reason or message (order and
    lastTransitionTime, which follows the status, do not count)."""
    for new in after:
        old = condition(before, new["type"])
        if old is None or any(old.get(k) != new.get(k) for k in ("status", "reason", "message")):
            return True
    return False


def _accepted(accepts: bool) -> Obj:
    if accepts:
        return {"type": ACCEPTED, "status": "True", "reason": "HubClusterAdminAccepted",
                "message": "Accepted by hub cluster admin"}
    return {"type": ACCEPTED, "status": "False", "reason": "HubClusterAdminDenied",
            "message": "Denied by hub cluster admin"}


def last_renewal(conditions: list[Obj], lease: Obj | None) -> datetime | None:
    """When the cluster last proved alive: its lease's renewTime, else its Joined transition."""
    if lease is not None:
        renewed = parse_rfc3339((lease.get("spec") or {}).get("renewTime"))
        if renewed is not None:
            return renewed
    joined = condition(conditions, JOINED)
    if joined is None or joined.get("status") != "True":
        return None
    return parse_rfc3339(joined.get("lastTransitionTime"))


def _expire(cluster: Obj, conditions: list[Obj], lease: Obj | None,
            now: datetime) -> tuple[list[Obj], float | None]:
    """Conditions with Available Unknown once the lease is past its grace, and when to look again."""
    renewed = last_renewal(conditions, lease)
    if renewed is None:
        return conditions, None  # not joined yet: nothing to expire
    grace = grace_seconds(cluster)
    age = (now - renewed).total_seconds()
    if age <= grace:
        return conditions, grace - age + _EXPIRY_SLACK
    available = condition(conditions, AVAILABLE)
    if available is not None and available.get("status") == "Unknown":
        return conditions, None  # already marked; a renewal (a lease event) brings the cluster back
    message = (f"Registration agent stopped updating its lease: last renewed {int(age)}s ago "
               f"(grace period {grace}s)")
    unknown = {"type": AVAILABLE, "status": "Unknown", "reason": LEASE_STOPPED, "message": message}
    return set_condition(conditions, unknown, rfc3339(now)), None
