"""The DaemonSet controller: `daemonplan.plan_daemonset` over the Pods a DaemonSet owns and the Nodes."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

from kube import objects
from kube.controller import Runtime, Watch
from kube.rest import DAEMON_SETS, NODES, Obj
from localcluster.controllers.daemonplan import plan_daemonset
from localcluster.controllers.plans import Plan
from localcluster.controllers.reconciling import OwnerReconciler


class DaemonSetController(OwnerReconciler):
    """One Pod per eligible Node for each DaemonSet; every Node change looks at every DaemonSet again."""

    name = "daemonset-controller"
    owner_res = DAEMON_SETS

    def extra_watches(self, runtime: Runtime) -> Sequence[Watch]:
        self.nodes = runtime.cache(NODES)

        def every_daemonset(_node: Obj) -> Iterable[Hashable]:
            return [(objects.namespace_of(ds), objects.name_of(ds)) for ds in self.owners.items()]

        return (Watch(NODES, every_daemonset),)

    def plan(self, owner: Obj, owned: Sequence[Obj]) -> Plan:
        return plan_daemonset(owner, owned, self.nodes.items(), self.clock.now())
