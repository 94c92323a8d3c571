"""The OCM object contract of the embedded clusters: resources and fixed names.

`localcluster` never imports the hub, so it keeps its own copy of the few OCM names both sides
use (`hub/ocm.py` is the hub's); every name is the one Open Cluster Management spells.
"""

from __future__ import annotations

from kube.rest import LEASES, Resource

WORK_GROUP = "work.open-cluster-management.io"
CLUSTER_GROUP = "cluster.open-cluster-management.io"

MANAGED_CLUSTERS = Resource(CLUSTER_GROUP, "v1", "managedclusters", "ManagedCluster", namespaced=False)
MANIFEST_WORKS = Resource(WORK_GROUP, "v1", "manifestworks", "ManifestWork")
# on the managed cluster: what a work agent applied for one ManifestWork of one hub
APPLIED_MANIFEST_WORKS = Resource(WORK_GROUP, "v1", "appliedmanifestworks", "AppliedManifestWork",
                                  namespaced=False)

__all__ = ["APPLIED_MANIFEST_WORKS", "CLUSTER_LEASE", "LEASES", "MANAGED_CLUSTERS", "MANIFEST_WORKS",
           "WORK_FINALIZER"]

CLUSTER_LEASE = "managed-cluster-lease"  # renewed by the registration agent in the cluster namespace
WORK_FINALIZER = "cluster.open-cluster-management.io/manifest-work-cleanup"
# the finalizer the work agent keeps on its AppliedManifestWork until the applied resources are gone
APPLIED_WORK_FINALIZER = "cluster.open-cluster-management.io/applied-manifest-work-cleanup"
WORK_AGENT = "work-agent"  # the default field manager of the applied manifests
