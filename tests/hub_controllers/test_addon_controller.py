"""The addon controller on a real hub API: the ManifestWork, the token, and the MCA's conditions."""

from __future__ import annotations

import base64
from typing import Any

from support.hub_controllers import IMAGE, Hub
from support.waiting import eventually

from hub import ocm
from hub.deployers import DeployState
from hub.deployers.manifestwork import ManifestWorkDeployer
from kube.rest import SECRETS

ADC = """\
apiVersion: addon.open-cluster-management.io/v1alpha1
kind: AddOnDeploymentConfig
metadata:
  name: {name}
  namespace: {namespace}
spec:
  nodePlacement:
    nodeSelector:
      node-role.kubernetes.io/infra: ""
    tolerations:
    - key: node-role.kubernetes.io/infra
      operator: Exists
      effect: NoSchedule
  customizedVariables:
  - name: OPERAND_IMAGE_VOLSYNC
    value: quay.io/custom/volsync-agent:2.0
  registries:
  - source: quay.io/custom
    mirror: mirror.example.com:5000/custom
  resourceRequirements:
  - containerID: "*:*:*"
    resources:
      requests: {{cpu: 10m}}
  - containerID: "deployments:volsync-agent:*"
    resources:
      limits: {{memory: 512Mi}}
      requests: {{cpu: 50m, memory: 64Mi}}
  agentInstallNamespace: replication-agent
"""

REFERENCE = """\
apiVersion: addon.open-cluster-management.io/v1alpha1
kind: ManagedClusterAddOn
metadata:
  name: volsync
  namespace: {cluster}
spec:
  configs:
  - group: addon.open-cluster-management.io
    resource: addondeploymentconfigs
    namespace: {namespace}
    name: {name}
"""


def manifest(work: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(m for m in work["spec"]["workload"]["manifests"] if m["kind"] == kind)


def pod(work: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = manifest(work, "Deployment")["spec"]["template"]["spec"]
    return spec


def deployed(hub: Hub, cluster: str = "cluster1") -> dict[str, Any]:
    hub.start()
    hub.cluster(cluster)
    work: dict[str, Any] = hub.until(lambda: hub.work(cluster), "ManifestWork written")
    return work


def test_manifest_work(hub: Hub) -> None:
    work = deployed(hub)
    mca = hub.addon("cluster1")
    assert mca is not None
    assert work["metadata"]["labels"] == {"open-cluster-management.io/addon-name": "volsync"}
    (owner,) = work["metadata"]["ownerReferences"]
    assert owner == {"apiVersion": "addon.open-cluster-management.io/v1alpha1", "kind": "ManagedClusterAddOn",
                     "name": "volsync", "uid": mca["metadata"]["uid"], "controller": True,
                     "blockOwnerDeletion": True}
    kinds = [m["kind"] for m in work["spec"]["workload"]["manifests"]]
    assert kinds == ["Namespace", "CustomResourceDefinition", "CustomResourceDefinition", "ServiceAccount",
                     "ClusterRole", "ClusterRoleBinding", "Secret", "Deployment"]
    assert manifest(work, "Deployment")["metadata"]["namespace"] == "volsync-system"
    assert manifest(work, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    assert work["spec"]["manifestConfigs"][0]["resourceIdentifier"] == {
        "group": "apps", "resource": "deployments", "name": "volsync-agent", "namespace": "volsync-system"}
    assert work["spec"]["manifestConfigs"][0]["feedbackRules"] == [{"type": "WellKnownStatus"}]
    assert work["spec"]["deleteOption"]["propagationPolicy"] == "SelectivelyOrphan"
    rules = work["spec"]["deleteOption"]["selectivelyOrphans"]["orphaningRules"]
    assert {r["name"] for r in rules} == {"replicationsources.volsync.backube",
                                          "replicationdestinations.volsync.backube"}
    # the token Secret: labelled, owned by the MCA, and the one the agent's hub Secret carries
    token_secret = hub.kube.get(SECRETS, ocm.TOKEN_SECRET, "cluster1")
    assert token_secret is not None
    assert token_secret["metadata"]["labels"] == {"volsync-addon.io/agent-token": "true"}
    assert token_secret["metadata"]["ownerReferences"][0]["uid"] == mca["metadata"]["uid"]
    token = base64.b64decode(token_secret["data"]["token"]).decode()
    assert len(token) >= 43
    assert base64.b64decode(manifest(work, "Secret")["data"]["token"]).decode() == token
    # nothing changed: nothing is written again (no ManifestWork or token churn)
    hub.settle("cluster1")
    rv = hub.work("cluster1")["metadata"]["resourceVersion"]  # type: ignore[index]
    hub.manager.queue.add("cluster1")  # type: ignore[union-attr]
    hub.drain()
    assert hub.work("cluster1")["metadata"]["resourceVersion"] == rv  # type: ignore[index]
    assert hub.kube.get(SECRETS, ocm.TOKEN_SECRET, "cluster1")["data"] == token_secret["data"]  # type: ignore[index]


def test_existing_token_is_never_rotated(hub: Hub) -> None:
    hub.cluster("cluster1", labelled=False)
    hub.kube.create(SECRETS, {"metadata": {"name": ocm.TOKEN_SECRET, "namespace": "cluster1",
                                           "labels": {ocm.TOKEN_LABEL: "true"}},
                              "data": {"token": base64.b64encode(b"kept-token").decode()}})
    hub.start()
    hub.server.kubectl("label", "managedcluster", "cluster1", f"{ocm.INSTALL_LABEL}=true")
    work = hub.until(lambda: hub.work("cluster1"), "ManifestWork written")
    assert base64.b64decode(manifest(work, "Secret")["data"]["token"]) == b"kept-token"


def test_deployment_config_shapes_the_work(hub: Hub) -> None:
    hub.start()
    hub.cluster("cluster1", labelled=False)
    hub.server.apply_yaml(ADC.format(name="agent-config", namespace="cluster1"))
    hub.server.apply_yaml(REFERENCE.format(cluster="cluster1", namespace="cluster1", name="agent-config"))
    work = hub.until(lambda: hub.work("cluster1"), "ManifestWork written")
    spec = pod(work)
    assert spec["nodeSelector"] == {"node-role.kubernetes.io/infra": ""}
    assert spec["tolerations"] == [{"key": "node-role.kubernetes.io/infra", "operator": "Exists",
                                    "effect": "NoSchedule"}]
    (container,) = spec["containers"]
    assert container["image"] == "mirror.example.com:5000/custom/volsync-agent:2.0"
    assert container["resources"] == {"limits": {"memory": "512Mi"}, "requests": {"cpu": "50m", "memory": "64Mi"}}
    assert manifest(work, "Namespace")["metadata"]["name"] == "replication-agent"
    assert manifest(work, "Deployment")["metadata"]["namespace"] == "replication-agent"
    assert work["spec"]["manifestConfigs"][0]["resourceIdentifier"]["namespace"] == "replication-agent"
    # editing the ADC updates the same work in place
    uid = work["metadata"]["uid"]
    hub.server.kubectl("patch", "addondeploymentconfig", "agent-config", "-n", "cluster1", "--type=json", "-p",
                       '[{"op": "remove", "path": "/spec/nodePlacement"}]')
    work = hub.until(lambda: (lambda w: w if w and "nodeSelector" not in pod(w) else None)(hub.work("cluster1")),
                     "nodeSelector gone")
    assert work["metadata"]["uid"] == uid


def test_cluster_management_addon_default_config(hub: Hub) -> None:
    hub.start()
    hub.server.apply_yaml(ADC.format(name="fleet", namespace="default"))
    hub.server.kubectl("patch", "clustermanagementaddon", "volsync", "--type=merge", "-p",
                       '{"spec": {"supportedConfigs": [{"group": "addon.open-cluster-management.io", '
                       '"resource": "addondeploymentconfigs", "defaultConfig": {"namespace": "default", '
                       '"name": "fleet"}}]}}')
    hub.cluster("cluster1")
    work = hub.until(lambda: hub.work("cluster1"), "ManifestWork written")
    assert pod(work)["nodeSelector"] == {"node-role.kubernetes.io/infra": ""}
    # an MCA reference wins over the default
    hub.server.apply_yaml(ADC.format(name="mine", namespace="cluster1").replace(
        "agentInstallNamespace: replication-agent", "agentInstallNamespace: mine"))
    hub.server.apply_yaml(REFERENCE.format(cluster="cluster1", namespace="cluster1", name="mine"))
    hub.until(lambda: manifest(hub.work("cluster1") or {"spec": {"workload": {"manifests": []}}},
                               "Namespace")["metadata"]["name"] == "mine", "MCA config wins")


def test_missing_deployment_config_holds_the_deployment(hub: Hub) -> None:
    hub.start()
    hub.cluster("cluster1", labelled=False)
    hub.server.apply_yaml(REFERENCE.format(cluster="cluster1", namespace="cluster1", name="later"))
    applied = hub.until(lambda: hub.condition("cluster1", "ManifestApplied"), "ManifestApplied")
    assert (applied["status"], applied["reason"]) == ("False", "ManifestWorkApplyFailed")
    assert "cluster1/later" in applied["message"]
    assert hub.work("cluster1") is None
    hub.server.apply_yaml(ADC.format(name="later", namespace="cluster1"))
    work = hub.until(lambda: hub.work("cluster1"), "deployed once the config exists")
    assert manifest(work, "Namespace")["metadata"]["name"] == "replication-agent"


def test_deleting_the_addon_collects_the_work(hub: Hub) -> None:
    first = deployed(hub)
    assert hub.kube.get(SECRETS, ocm.TOKEN_SECRET, "cluster1") is not None
    hub.server.kubectl("delete", "managedclusteraddon.v1alpha1.addon.open-cluster-management.io", "volsync",
                       "-n", "cluster1")
    # the API server's garbage collector alone (the controller is not stepped): ownerReferences do it
    eventually(lambda: hub.work("cluster1") is None, what="ManifestWork garbage-collected")
    eventually(lambda: hub.kube.get(SECRETS, ocm.TOKEN_SECRET, "cluster1") is None, what="token garbage-collected")
    # the label still asks for the addon: the cluster controller installs it again, with a new token
    work = hub.until(lambda: hub.work("cluster1"), "reinstalled")
    assert work["metadata"]["uid"] != first["metadata"]["uid"]
    assert manifest(work, "Secret")["data"]["token"] != manifest(first, "Secret")["data"]["token"]


def test_removed_addon_label_goes(hub: Hub) -> None:
    deployed(hub)
    hub.server.kubectl("label", "managedcluster", "cluster1", f"{ocm.INSTALL_LABEL}-")
    hub.until(lambda: hub.feature_label("cluster1") == "unreachable", "feature label set")
    hub.server.kubectl("delete", "managedclusteraddon.v1alpha1.addon.open-cluster-management.io", "volsync",
                       "-n", "cluster1")
    hub.until(lambda: hub.feature_label("cluster1") is None, "feature label removed")
    hub.until(lambda: hub.work("cluster1") is None, "ManifestWork gone")


class FlakyDeployer:
    """The ManifestWork deployer behind a switch: fails while `broken`, and records removals."""

    def __init__(self, inner: ManifestWorkDeployer) -> None:
        self.inner = inner
        self.broken = True
        self.removed: list[str] = []

    def apply(self, cluster: str, mca: dict[str, Any], manifests: list[dict[str, Any]]) -> DeployState:
        if self.broken:
            raise OSError("agent binary not found")
        return self.inner.apply(cluster, mca, manifests)

    def remove(self, cluster: str) -> None:
        self.removed.append(cluster)
        self.inner.remove(cluster)


def test_deployer_failure_is_reported_and_retried(hub: Hub) -> None:
    deployer = FlakyDeployer(ManifestWorkDeployer(hub.kube))
    hub.start(deployer=deployer)
    hub.cluster("cluster1")
    applied = hub.until(lambda: hub.condition("cluster1", "ManifestApplied"), "ManifestApplied")
    assert (applied["status"], applied["reason"]) == ("False", "ManifestWorkApplyFailed")
    assert applied["message"] == "failed to deploy the agent: agent binary not found"
    assert hub.condition("cluster1", "Progressing")["status"] == "True"  # type: ignore[index]
    deployer.broken = False  # the retry (rate-limited, in real time) succeeds
    hub.until(lambda: hub.work("cluster1"), "deployed on retry")
    hub.until(lambda: hub.condition("cluster1", "ManifestApplied") is None, "stale False dropped")
    deployer.removed.clear()  # (a cluster seen before its label counts as removed once)
    # Unlabel first: an MCA deleted while the label is still on would be re-created by the hub (ACM's
    # behaviour), and the agent kept, whenever the hub reconciles between the two commands.
    hub.server.kubectl("label", "managedcluster", "cluster1", f"{ocm.INSTALL_LABEL}-")
    hub.server.kubectl("delete", "managedclusteraddon.v1alpha1.addon.open-cluster-management.io", "volsync",
                       "-n", "cluster1")
    hub.until(lambda: deployer.removed == ["cluster1"], "the deployer removes the agent")
    hub.settle("cluster1")
    assert deployer.removed == ["cluster1"]  # once, not on every later event


def test_drifted_work_is_put_back(hub: Hub) -> None:
    work = deployed(hub)
    hub.server.kubectl("patch", "manifestwork", ocm.WORK_NAME, "-n", "cluster1", "--type=json", "-p",
                       '[{"op": "remove", "path": "/spec/manifestConfigs"}]')
    hub.until(lambda: (hub.work("cluster1") or {}).get("spec") == work["spec"], "work spec restored")
