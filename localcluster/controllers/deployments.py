"""The Deployment controller: `deployplan.plan_deployment` over the ReplicaSets each Deployment owns."""

from __future__ import annotations

from collections.abc import Sequence

from kube import objects
from kube.rest import DEPLOYMENTS, REPLICA_SETS, Obj
from localcluster.controllers.deployplan import plan_deployment
from localcluster.controllers.plans import Plan
from localcluster.controllers.reconciling import OwnerReconciler


class DeploymentController(OwnerReconciler):
    """Rolls each Deployment out over the ReplicaSets it owns (`deployplan`); a same-named ReplicaSet
    it does not own is a hash collision."""

    name = "deployment-controller"
    owner_res = DEPLOYMENTS
    child_res = REPLICA_SETS

    def plan(self, owner: Obj, owned: Sequence[Obj]) -> Plan:
        ns, mine = objects.namespace_of(owner), {objects.name_of(rs) for rs in owned}
        return plan_deployment(owner, owned, self.clock.now(),
                               lambda name: name not in mine and self.children.get(ns, name) is not None)
