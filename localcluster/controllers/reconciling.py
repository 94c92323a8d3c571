"""The reconciler shape the workload controllers share: read the owner and its candidates from the
caches, claim, plan (pure), apply the plan through the one executor.

A subclass names its resources and supplies `plan(owner, owned, now)`; everything else (keys,
expectations, ownership claims, writing) is here once.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from kube.clock import Clock
from kube.controller import Runtime, Watch, owner_keys
from kube.events import Recorder
from kube.rest import PODS, Kube, Obj, Resource
from localcluster.controllers import pods as podfacts
from localcluster.controllers.expectations import Expectations
from localcluster.controllers.plans import Plan, apply_plan


class OwnerReconciler:
    """Reconciles objects of `owner_res` that control objects of `child_res` (Pods by default)."""

    name = "owner-controller"
    owner_res: Resource
    child_res: Resource = PODS

    def __init__(self, runtime: Runtime, kube: Kube, clock: Clock | None = None) -> None:
        self.kube = kube
        self.clock = clock or runtime.clock
        self.owners = runtime.cache(self.owner_res)
        self.children = runtime.cache(self.child_res)
        self.watches: Sequence[Watch] = (Watch(self.owner_res), Watch(self.child_res, owner_keys(self.owner_res.kind)),
                                         *self.extra_watches(runtime))
        self.expectations = Expectations()
        self.recorder = Recorder(kube, self.name, clock=self.clock)

    def extra_watches(self, runtime: Runtime) -> Sequence[Watch]:
        return ()

    def selector(self, owner: Obj) -> podfacts.Selector | None:
        return (owner.get("spec") or {}).get("selector")

    def plan(self, owner: Obj, owned: Sequence[Obj]) -> Plan:
        raise NotImplementedError

    def reconcile(self, key: Hashable) -> float | None:
        assert isinstance(key, tuple)
        namespace, name = key
        owner = self.owners.get(namespace, name)
        if owner is None:
            self.expectations.forget(key)  # a deleted owner's expectations would otherwise stay forever
            return None
        owner = {"apiVersion": self.owner_res.api_version, "kind": self.owner_res.kind, **owner}
        wait = self.expectations.pending(key, lambda n: self.children.get(namespace, n))
        if wait is not None:
            return wait  # the watch events of our own writes bring the key back sooner
        claimed = podfacts.claim(self.children.items(namespace), owner, self.selector(owner), self.child_res)
        plan = self.plan(owner, claimed.owned)
        apply_plan(self.kube, Plan(claimed.patches + plan.actions, plan.requeue), self.expectations, key,
                   self.recorder)
        return plan.requeue
