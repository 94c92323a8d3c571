"""The OCM cluster manager of the embedded hub: runs in the hub cluster's process (`--ocm-hub`).

A `Reconciler` on the hub cluster's controller `Runtime`, keyed by ManagedCluster name. It watches
ManagedClusters, the clusters' `managed-cluster-lease` Leases and Namespaces (the cluster
namespace), reads them from the shared caches and applies what `leaseplan.plan_cluster` decides:
auto-acceptance, `HubAcceptedManagedCluster`, the cluster namespace, and lease expiry
(Available Unknown). It never touches ManagedClusterAddOns: the hub copies the cluster's Unknown
onto its addon.

    manager = register(runtime, kube)   # before runtime.start()
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

from kube.clock import Clock
from kube.controller import Runtime, Watch
from kube.objects import name_of, namespace_of
from kube.rest import NAMESPACES, Kube, Obj
from localcluster.controllers.plans import apply_plan
from localcluster.ocm.leaseplan import plan_cluster
from localcluster.ocm.resources import CLUSTER_LEASE, LEASES, MANAGED_CLUSTERS


def _lease_keys(lease: Obj) -> Iterable[Hashable]:
    """A cluster lease maps to its cluster (the namespace's name); any other Lease to nothing."""
    return [("", namespace_of(lease))] if name_of(lease) == CLUSTER_LEASE and namespace_of(lease) else []


def _namespace_keys(namespace: Obj) -> Iterable[Hashable]:
    return [("", name_of(namespace))]


class ClusterManager:
    """Accepts ManagedClusters, gives each its namespace and expires their leases (see the module docstring)."""

    name = "cluster-manager"

    def __init__(self, runtime: Runtime, kube: Kube, clock: Clock | None = None) -> None:
        self.kube = kube
        self.clock = clock or runtime.clock
        self.clusters = runtime.cache(MANAGED_CLUSTERS)
        self.leases = runtime.cache(LEASES)
        self.namespaces = runtime.cache(NAMESPACES)
        self.watches: Sequence[Watch] = (Watch(MANAGED_CLUSTERS), Watch(LEASES, _lease_keys),
                                         Watch(NAMESPACES, _namespace_keys))

    def reconcile(self, key: Hashable) -> float | None:
        assert isinstance(key, tuple)
        _, name = key
        cluster = self.clusters.get("", name)
        if cluster is None:
            return None
        lease = self.leases.get(name, CLUSTER_LEASE)
        namespace_exists = self.namespaces.get("", name) is not None
        plan = plan_cluster(cluster, lease, namespace_exists, self.clock.now())
        apply_plan(self.kube, plan)
        return plan.requeue


def register(runtime: Runtime, kube: Kube, clock: Clock | None = None) -> ClusterManager:
    """Build the cluster manager on `runtime` (before it starts) and add it."""
    manager = ClusterManager(runtime, kube, clock)
    runtime.add(manager)
    return manager
