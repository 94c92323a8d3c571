"""The cluster controller: the install label turns into a ManagedClusterAddOn (pure planner + apply).

A ManagedCluster labelled `addons.open-cluster-management.io/volsync=true` and not being deleted
gets the MCA `volsync` in its namespace if it has none: v1alpha1, `spec: {}`, annotated
`volsync-addon.io/created-by-hub: "true"`. An existing MCA is never overwritten or touched, whoever
made it (a user's or RamenDR's pre-customised one stays byte-identical). Removing the label does
nothing, as in ACM; with `uninstall_on_unlabel` the MCA is deleted, but only one the hub created
(uid and resourceVersion preconditions, so a user's replacement is never caught).

`ensure_cluster_management_addon` creates the ClusterManagementAddOn `volsync` at start if absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from hub import ocm
from kube import objects
from kube.rest import Kube

Obj = dict[str, Any]


@dataclass(frozen=True)
class CreateAddon:
    """Create the MCA in `namespace` unless one exists (never overwrite)."""

    namespace: str


@dataclass(frozen=True)
class DeleteAddon:
    namespace: str
    uid: str
    resource_version: str


Action = CreateAddon | DeleteAddon


def new_addon(cluster: str) -> Obj:
    return {
        "apiVersion": ocm.MANAGED_CLUSTER_ADDONS.api_version,
        "kind": ocm.MANAGED_CLUSTER_ADDONS.kind,
        "metadata": {"name": ocm.ADDON, "namespace": cluster, "annotations": {ocm.CREATED_BY_HUB: "true"}},
        "spec": {},
    }


def wants_addon(cluster: Obj | None) -> bool:
    return (cluster is not None and objects.labels_of(cluster).get(ocm.INSTALL_LABEL) == "true"
            and not objects.is_deleting(cluster))


def plan(name: str, cluster: Obj | None, addon: Obj | None, *, uninstall_on_unlabel: bool = False) -> list[Action]:
    """What the label asks of the cluster `name` (its ManagedCluster, if any, and its MCA, if any)."""
    if cluster is None:
        return []  # a cluster that is gone takes its namespace, and the MCA, with it
    if wants_addon(cluster):
        return [] if addon is not None else [CreateAddon(name)]
    labelled = objects.labels_of(cluster).get(ocm.INSTALL_LABEL) == "true"
    if (uninstall_on_unlabel and not labelled and addon is not None and not objects.is_deleting(addon)
            and objects.annotations_of(addon).get(ocm.CREATED_BY_HUB) == "true"):
        return [DeleteAddon(name, objects.uid_of(addon), str(objects.meta(addon).get("resourceVersion") or ""))]
    return []


def apply(kube: Kube, actions: list[Action]) -> None:
    for action in actions:
        if isinstance(action, CreateAddon):
            try:
                kube.create(ocm.MANAGED_CLUSTER_ADDONS, new_addon(action.namespace))
            except ApiException as exc:
                if exc.status != 409:  # someone made one meanwhile: theirs stands
                    raise
        else:
            pre = {"uid": action.uid, "resourceVersion": action.resource_version or None}
            kube.delete(ocm.MANAGED_CLUSTER_ADDONS, ocm.ADDON, action.namespace,
                        preconditions={k: v for k, v in pre.items() if v})


def cluster_management_addon() -> Obj:
    return {
        "apiVersion": ocm.CLUSTER_MANAGEMENT_ADDONS.api_version,
        "kind": ocm.CLUSTER_MANAGEMENT_ADDONS.kind,
        "metadata": {"name": ocm.ADDON},
        "spec": {
            "addOnMeta": {"displayName": "VolSync",
                          "description": "Asynchronous volume replication between clusters (VolSync-compatible)"},
            "supportedConfigs": [{"group": ocm.ADDON_GROUP, "resource": ocm.ADC_RESOURCE}],
            "installStrategy": {"type": "Manual"},
        },
    }


def ensure_cluster_management_addon(kube: Kube) -> bool:
    """Create the ClusterManagementAddOn if absent; True when this call created it."""
    if kube.get(ocm.CLUSTER_MANAGEMENT_ADDONS, ocm.ADDON) is not None:
        return False
    try:
        kube.create(ocm.CLUSTER_MANAGEMENT_ADDONS, cluster_management_addon())
    except ApiException as exc:
        if exc.status != 409:
            raise
        return False
    return True
