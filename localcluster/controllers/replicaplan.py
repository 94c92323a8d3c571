"""The ReplicaSet / ReplicationController planner: keep `replicas` active Pods, report their state.

Pure: the controller object and the Pods it owns in, a `Plan` out. Missing Pods are created from
the template (generateName `<name>-`), surplus ones deleted in upstream's order (unscheduled,
pending, not ready, most recently ready first); status `replicas`, `fullyLabeledReplicas`,
`readyReplicas`, `availableReplicas` (ready for `minReadySeconds`) and `observedGeneration`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from kube import objects
from kube.patches import changes
from kube.rest import PODS, Obj, Resource
from localcluster.controllers import pods as podfacts
from localcluster.controllers.plans import Action, Create, Delete, Patch, Plan, soonest

BURST = 500  # at most this many creations or deletions per reconcile (upstream's burstReplicas)


def replica_status(owner: Obj, pods: Sequence[Obj], now: datetime) -> tuple[Obj, float | None]:
    """The status of a ReplicaSet-like owner over its active Pods, and when availability next changes."""
    spec = owner.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    active = [p for p in pods if podfacts.is_active(p)]
    waits = [podfacts.available_in(p, min_ready, now) for p in active]
    status: Obj = {
        "replicas": len(active),
        "fullyLabeledReplicas": sum(1 for p in active
                                    if template_labels.items() <= objects.labels_of(p).items()),
        "readyReplicas": sum(1 for p in active if podfacts.is_ready(p)),
        "availableReplicas": sum(1 for w in waits if w == 0),
        "observedGeneration": objects.meta(owner).get("generation"),
    }
    return status, soonest(*(w for w in waits if w))


def plan_replicas(owner: Obj, res: Resource, pods: Sequence[Obj], now: datetime) -> Plan:
    """Create or delete Pods towards `spec.replicas`, then write the status if it changed."""
    if objects.is_deleting(owner):
        return Plan()
    spec = owner.get("spec") or {}
    ns, name = objects.namespace_of(owner), objects.name_of(owner)
    wanted = int(spec.get("replicas", 1))
    active = [p for p in pods if podfacts.is_active(p)]
    actions: list[Action] = []
    if len(active) < wanted:
        pod = podfacts.pod_from_template(spec.get("template") or {}, owner, generate_name=f"{name}-")
        actions += [Create(PODS, pod, announce=owner) for _ in range(min(wanted - len(active), BURST))]
    elif len(active) > wanted:
        doomed = podfacts.deletion_order(active)[: min(len(active) - wanted, BURST)]
        actions += [Delete(PODS, ns, objects.name_of(p), objects.uid_of(p), announce=owner) for p in doomed]
    status, requeue = replica_status(owner, pods, now)
    current = owner.get("status") or {}
    for key in ("conditions",):
        if key in current:
            status[key] = current[key]
    if changes(current, status):
        actions.insert(0, Patch(res, ns, name, {"status": status}, status=True))
    return Plan(tuple(actions), requeue)
