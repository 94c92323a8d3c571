"""The install label and the MCA on a real hub API: created if absent, never overwritten."""

from __future__ import annotations

import json
from typing import Any

from support.hub_controllers import Hub
from support.manifests import managed_cluster_addon

from hub import ocm

USER_MCA = """\
apiVersion: addon.open-cluster-management.io/v1alpha1
kind: ManagedClusterAddOn
metadata:
  name: volsync
  namespace: {cluster}
  annotations:
    drplacementcontrol.ramendr.openshift.io/owner: busybox-drpc
    operator-subscription-channel: stable-0.15
  labels:
    app: ramen
spec:
  installNamespace: volsync-system
"""


def without_status(obj: dict[str, Any]) -> dict[str, Any]:
    """The object minus what the addon controller legitimately writes (its status subresource)."""
    meta = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    return {k: v for k, v in obj.items() if k != "status"} | {"metadata": meta}


def test_cluster_management_addon_is_created_at_start(hub: Hub) -> None:
    hub.start()
    cma = hub.server.get("clustermanagementaddon", "volsync")
    assert cma["spec"]["addOnMeta"]["displayName"] == "VolSync"
    assert cma["spec"]["supportedConfigs"] == [{"group": "addon.open-cluster-management.io",
                                                "resource": "addondeploymentconfigs"}]
    assert cma["spec"]["installStrategy"]["type"] == "Manual"


def test_existing_cluster_management_addon_is_kept(hub: Hub) -> None:
    hub.server.apply_yaml("apiVersion: addon.open-cluster-management.io/v1alpha1\nkind: ClusterManagementAddOn\n"
                          "metadata:\n  name: volsync\nspec:\n  addOnMeta:\n    displayName: Mine\n")
    before = hub.server.get("clustermanagementaddon", "volsync")
    hub.start()
    assert hub.server.get("clustermanagementaddon", "volsync") == before


def test_label_creates_the_addon(hub: Hub) -> None:
    hub.start()
    hub.cluster("cluster1")
    hub.until(lambda: hub.addon("cluster1"), "MCA created")
    listing = hub.server.kubectl("get", "managedclusteraddon", "-A").stdout.splitlines()
    assert listing[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert [line.split()[:2] for line in listing[1:]] == [["cluster1", "volsync"]]
    mca = hub.addon("cluster1")
    assert mca is not None and mca["apiVersion"] == "addon.open-cluster-management.io/v1alpha1"
    assert mca["metadata"]["annotations"] == {"volsync-addon.io/created-by-hub": "true"}
    assert set(mca["spec"]) <= {"installNamespace"}  # `spec: {}` plus what the CRD defaults


def test_applied_mca_for_a_second_cluster(hub: Hub) -> None:
    hub.start()
    hub.cluster("cluster1")
    hub.cluster("cluster2", labelled=False)
    out = hub.server.apply_yaml(managed_cluster_addon("cluster2")).stdout.strip()
    assert out == "managedclusteraddon.addon.open-cluster-management.io/volsync created"
    hub.until(lambda: hub.work("cluster1") and hub.work("cluster2"), "both works")
    listing = hub.server.kubectl("get", "managedclusteraddon", "-A", "-o", "name").stdout.split()
    assert listing == ["managedclusteraddon.addon.open-cluster-management.io/volsync"] * 2
    assert ocm.CREATED_BY_HUB not in hub.addon("cluster2")["metadata"]["annotations"]  # type: ignore[index]
    assert hub.server.apply_yaml(managed_cluster_addon("cluster2")).stdout.strip().endswith("unchanged")


def test_user_addon_is_never_overwritten(hub: Hub) -> None:
    hub.cluster("cluster1", labelled=False)
    hub.server.apply_yaml(USER_MCA.format(cluster="cluster1"))
    before = hub.server.get("managedclusteraddon", "volsync", "-n", "cluster1")
    hub.start()
    hub.server.kubectl("label", "managedcluster", "cluster1", f"{ocm.INSTALL_LABEL}=true")
    hub.until(lambda: hub.work("cluster1"), "the user's MCA is deployed")
    hub.settle("cluster1")
    after = hub.server.get("managedclusteraddon", "volsync", "-n", "cluster1")
    assert json.dumps(without_status(after), sort_keys=True) == json.dumps(without_status(before), sort_keys=True)
    assert after["metadata"]["annotations"] == before["metadata"]["annotations"]
    # labelled again, relabelled, opted-in unlabelling: still never touched
    hub.server.kubectl("label", "managedcluster", "cluster1", f"{ocm.INSTALL_LABEL}-")
    hub.settle("cluster1")
    assert without_status(hub.server.get("managedclusteraddon", "volsync", "-n", "cluster1")) == without_status(before)


def test_label_removal_leaves_the_addon(hub: Hub) -> None:
    hub.start()
    hub.cluster("cluster1")
    uid = hub.until(lambda: hub.addon("cluster1"), "MCA created")["metadata"]["uid"]
    hub.server.kubectl("label", "managedcluster", "cluster1", f"{ocm.INSTALL_LABEL}-")
    hub.settle("cluster1")
    assert hub.addon("cluster1")["metadata"]["uid"] == uid  # type: ignore[index]
    assert hub.work("cluster1") is not None


def test_opt_in_unlabel_deletes_only_hub_made_addons(hub: Hub) -> None:
    hub.start(uninstall_on_unlabel=True)
    hub.cluster("cluster1")
    hub.cluster("cluster2", labelled=False)
    hub.server.apply_yaml(USER_MCA.format(cluster="cluster2"))
    hub.server.kubectl("label", "managedcluster", "cluster2", f"{ocm.INSTALL_LABEL}=true")
    hub.until(lambda: hub.work("cluster1") and hub.work("cluster2"), "both deployed")
    for name in ("cluster1", "cluster2"):
        hub.server.kubectl("label", "managedcluster", name, f"{ocm.INSTALL_LABEL}-")
    hub.until(lambda: hub.addon("cluster1") is None, "the hub-made MCA is deleted")
    hub.until(lambda: hub.work("cluster1") is None, "its work is garbage-collected")
    hub.settle("cluster2")
    assert hub.addon("cluster2") is not None and hub.work("cluster2") is not None


def test_deleting_cluster_gets_no_addon(hub: Hub) -> None:
    hub.start()
    hub.server.apply_yaml("apiVersion: cluster.open-cluster-management.io/v1\nkind: ManagedCluster\nmetadata:\n"
                          "  name: cluster1\n  finalizers: [example.io/hold]\n  labels:\n"
                          f"    {ocm.INSTALL_LABEL}: 'true'\nspec:\n  hubAcceptsClient: true\n")
    hub.server.kubectl("create", "namespace", "cluster1")
    hub.server.kubectl("delete", "managedcluster", "cluster1", "--wait=false")
    hub.settle("cluster1")
    assert hub.addon("cluster1") is None
    hub.server.kubectl("patch", "managedcluster", "cluster1", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
