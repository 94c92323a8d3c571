"""The Job controller: `jobplan.plan_job` for each Job, over the Pods it owns."""

from __future__ import annotations

from collections.abc import Sequence

from kube.rest import JOBS, Obj
from localcluster.controllers import jobplan
from localcluster.controllers import pods as podfacts
from localcluster.controllers.plans import Plan
from localcluster.controllers.reconciling import OwnerReconciler


class JobController(OwnerReconciler):
    """Runs each Job's Pods to completion or failure (`jobplan`), selecting them by its controller-uid selector."""

    name = "job-controller"
    owner_res = JOBS

    def selector(self, owner: Obj) -> podfacts.Selector | None:
        return jobplan.selector(owner)

    def plan(self, owner: Obj, owned: Sequence[Obj]) -> Plan:
        return jobplan.plan_job(owner, owned, self.clock.now())
