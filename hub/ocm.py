"""The OCM object contract the hub keeps: resources, names, labels and annotations.

Every name here is fixed by Open Cluster Management or by the volsync addon it replaces (see
`shared/reference/ocm-addon.md` §1-4): real klusterlets, the ACM console and RamenDR depend on
them, so they are spelled exactly once, here.
"""

from __future__ import annotations

from kube.rest import Resource

ADDON_GROUP = "addon.open-cluster-management.io"

MANAGED_CLUSTERS = Resource("cluster.open-cluster-management.io", "v1", "managedclusters", "ManagedCluster",
                            namespaced=False)
MANAGED_CLUSTER_ADDONS = Resource(ADDON_GROUP, "v1alpha1", "managedclusteraddons", "ManagedClusterAddOn")
CLUSTER_MANAGEMENT_ADDONS = Resource(ADDON_GROUP, "v1alpha1", "clustermanagementaddons", "ClusterManagementAddOn",
                                     namespaced=False)
ADDON_DEPLOYMENT_CONFIGS = Resource(ADDON_GROUP, "v1alpha1", "addondeploymentconfigs", "AddOnDeploymentConfig")
MANIFEST_WORKS = Resource("work.open-cluster-management.io", "v1", "manifestworks", "ManifestWork")

ADDON = "volsync"  # the CMA, every MCA and the Lease are named like the addon
ADC_RESOURCE = "addondeploymentconfigs"

# ManagedCluster labels
INSTALL_LABEL = "addons.open-cluster-management.io/volsync"  # "true": install the addon (create the MCA)
FEATURE_LABEL = "feature.open-cluster-management.io/addon-volsync"  # available | unhealthy | unreachable
CLUSTER_AVAILABLE = "ManagedClusterConditionAvailable"

# ManagedClusterAddOn
CREATED_BY_HUB = "volsync-addon.io/created-by-hub"  # "true" on the MCAs the cluster controller made

# ManifestWork and the manifests in it
ADDON_NAME_LABEL = "open-cluster-management.io/addon-name"
WORK_NAME = f"addon-{ADDON}-deploy-0"
DELETION_ORPHAN = "addon.open-cluster-management.io/deletion-orphan"
NAMESPACE_LABEL = "addon.open-cluster-management.io/namespace"

# What the hub keeps per cluster namespace
TOKEN_SECRET = "volsync-agent-token"
TOKEN_LABEL = "volsync-addon.io/agent-token"
LEASE = ADDON
REPORT_LABEL = "volsync-addon.io/report"

# The agent on the managed cluster
AGENT = "volsync-agent"
AGENT_CONTAINER = "agent"
AGENT_HUB_SECRET = "volsync-agent-hub"
DEFAULT_INSTALL_NAMESPACE = "volsync-system"
FRAMEWORK_INSTALL_NAMESPACE = "open-cluster-management-agent-addon"  # the ADC CRD's default
HUB_SECRET_MOUNT = "/var/run/volsync/hub"
