"""The ReplicaSet and ReplicationController controllers: one planner (`replicaplan`), two selectors
(a LabelSelector; a v1 map selector, defaulting to the template's labels)."""

from __future__ import annotations

from collections.abc import Sequence

from kube.rest import REPLICA_SETS, REPLICATION_CONTROLLERS, Obj
from localcluster.controllers import pods as podfacts
from localcluster.controllers.plans import Plan
from localcluster.controllers.reconciling import OwnerReconciler
from localcluster.controllers.replicaplan import plan_replicas


class ReplicaSetController(OwnerReconciler):
    """Keeps `spec.replicas` Pods of each ReplicaSet (claiming matching orphans), and its status."""

    name = "replicaset-controller"
    owner_res = REPLICA_SETS

    def plan(self, owner: Obj, owned: Sequence[Obj]) -> Plan:
        return plan_replicas(owner, self.owner_res, owned, self.clock.now())


class ReplicationControllerController(ReplicaSetController):
    """The ReplicaSet controller for v1 ReplicationControllers (map selector, defaulting to the template's labels)."""

    name = "replicationcontroller-controller"
    owner_res = REPLICATION_CONTROLLERS

    def selector(self, owner: Obj) -> podfacts.Selector | None:
        spec = owner.get("spec") or {}
        labels = spec.get("selector") or ((spec.get("template") or {}).get("metadata") or {}).get("labels")
        return podfacts.map_selector(labels)
