"""The cluster planner and the ManifestWork's shape and status reading (pure)."""

from __future__ import annotations

from typing import Any

from hub import clusters, ocm, rendering
from hub.deployers import DeployState
from hub.deployers.manifestwork import desired_work, resource_of, state_of

LABEL = {ocm.INSTALL_LABEL: "true"}


def cluster(labels: dict[str, str] | None = None, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "c1", "labels": labels or {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta}


def addon(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "volsync", "namespace": "c1", "uid": "u", "resourceVersion": "7",
                         "annotations": annotations or {}}}


HUB_MADE = addon({ocm.CREATED_BY_HUB: "true"})


def test_label_creates_a_missing_addon_only() -> None:
    assert clusters.plan("c1", cluster(LABEL), None) == [clusters.CreateAddon("c1")]
    assert clusters.plan("c1", cluster(LABEL), addon({"ramendr.openshift.io/x": "y"})) == []
    assert clusters.plan("c1", cluster({ocm.INSTALL_LABEL: "false"}), None) == []
    assert clusters.plan("c1", cluster(LABEL, deleting=True), None) == []
    assert clusters.plan("c1", None, None) == []
    created = clusters.new_addon("c1")
    assert created["metadata"] == {"name": "volsync", "namespace": "c1",
                                   "annotations": {"volsync-addon.io/created-by-hub": "true"}}
    assert created["spec"] == {} and created["apiVersion"] == "addon.open-cluster-management.io/v1alpha1"


def test_unlabel_deletes_only_when_opted_in_and_hub_made() -> None:
    assert clusters.plan("c1", cluster(), HUB_MADE) == []
    assert clusters.plan("c1", cluster(), HUB_MADE, uninstall_on_unlabel=True) == [
        clusters.DeleteAddon("c1", "u", "7")]
    assert clusters.plan("c1", cluster(), addon(), uninstall_on_unlabel=True) == []
    assert clusters.plan("c1", cluster(LABEL), HUB_MADE, uninstall_on_unlabel=True) == []
    # a labelled cluster being deleted does not uninstall either: its namespace takes the MCA along
    assert clusters.plan("c1", cluster(LABEL, deleting=True), HUB_MADE, uninstall_on_unlabel=True) == []


MCA = {"apiVersion": "addon.open-cluster-management.io/v1alpha1", "kind": "ManagedClusterAddOn",
       "metadata": {"name": "volsync", "namespace": "c1", "uid": "uid-1"}}
MANIFESTS = rendering.render("c1", MCA, None, hub_url="https://hub", token="t", ca_bundle="", image="img:1")


def test_desired_work() -> None:
    work = desired_work("c1", MCA, MANIFESTS)
    assert work["metadata"] == {
        "name": "addon-volsync-deploy-0", "namespace": "c1",
        "labels": {"open-cluster-management.io/addon-name": "volsync"},
        "ownerReferences": [{"apiVersion": "addon.open-cluster-management.io/v1alpha1", "kind": "ManagedClusterAddOn",
                             "name": "volsync", "uid": "uid-1", "controller": True, "blockOwnerDeletion": True}]}
    assert work["spec"]["workload"]["manifests"] == MANIFESTS
    assert work["spec"]["manifestConfigs"] == [{
        "resourceIdentifier": {"group": "apps", "resource": "deployments", "name": "volsync-agent",
                               "namespace": "volsync-system"},
        "feedbackRules": [{"type": "WellKnownStatus"}], "feedbackScrapeType": "Poll"}]
    assert work["spec"]["deleteOption"] == {"propagationPolicy": "SelectivelyOrphan", "selectivelyOrphans": {
        "orphaningRules": [
            {"group": "apiextensions.k8s.io", "resource": "customresourcedefinitions", "namespace": "",
             "name": "replicationdestinations.volsync.backube"},
            {"group": "apiextensions.k8s.io", "resource": "customresourcedefinitions", "namespace": "",
             "name": "replicationsources.volsync.backube"}]}}


def test_resource_of() -> None:
    assert resource_of({"apiVersion": "v1", "kind": "Namespace"}) == ("", "namespaces")
    assert resource_of({"apiVersion": "apps/v1", "kind": "Deployment"}) == ("apps", "deployments")
    assert resource_of({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy"}) == (
        "networking.k8s.io", "networkpolicies")


def work_with(conditions: dict[str, str], feedback: dict[str, int] | None = None, *, generation: int = 2,
              observed: int = 2, namespace: str = "volsync-system") -> dict[str, Any]:
    manifests = []
    if feedback is not None:
        manifests.append({"resourceMeta": {"resource": "deployments", "group": "apps", "name": "volsync-agent",
                                           "namespace": namespace},
                          "statusFeedback": {"values": [{"name": k, "fieldValue": {"type": "Integer", "integer": v}}
                                                        for k, v in feedback.items()]}})
    return {"metadata": {"generation": generation},
            "status": {"conditions": [{"type": t, "status": s, "observedGeneration": observed, "message": f"{t} {s}"}
                                      for t, s in conditions.items()],
                       "resourceStatus": {"manifests": manifests}}}


def test_state_of_work() -> None:
    def state(*args: Any, **kw: Any) -> tuple[bool | None, bool | None]:
        got = state_of(work_with(*args, **kw), MANIFESTS)
        assert isinstance(got, DeployState)
        return got.applied, got.available

    assert state({}) == (None, None)
    assert state({"Applied": "True"}, observed=1) == (None, None)  # status of an older spec
    assert state({"Applied": "False"}) == (False, None)
    assert state({"Applied": "True"}) == (True, None)
    assert state({"Applied": "True", "Available": "False"}) == (True, False)
    assert state({"Applied": "True", "Available": "True"}) == (True, None)  # no feedback: NoProbeResult
    both = {"Applied": "True", "Available": "True"}
    assert state(both, {"Replicas": 1}) == (True, False)  # ReadyReplicas absent: 0 ready
    assert state(both, {"Replicas": 2, "ReadyReplicas": 1}) == (True, False)
    assert state(both, {"Replicas": 1, "ReadyReplicas": 1, "AvailableReplicas": 1}) == (True, True)
    assert state(both, {"Replicas": 0}) == (True, True)  # scaled to zero counts as healthy, as VolSync's rule
    assert state(both, {"ReadyReplicas": 1}) == (True, False)
    assert state(both, {"Replicas": 1, "ReadyReplicas": 1}, namespace="elsewhere") == (True, None)
