"""The agent's manifests (pure): what a cluster gets, and how an AddOnDeploymentConfig shapes it."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from hub import ocm, rendering

MCA: dict[str, Any] = {"apiVersion": "addon.open-cluster-management.io/v1alpha1", "kind": "ManagedClusterAddOn",
                       "metadata": {"name": "volsync", "namespace": "cluster1", "uid": "u1"}, "spec": {}}
IMAGE = "quay.io/volsync-addon/agent:0.1.0"


def render(adc: dict[str, Any] | None = None, **kw: Any) -> list[dict[str, Any]]:
    options = {"hub_url": "https://hub:8443", "token": "s3cret", "ca_bundle": "PEM", "image": IMAGE} | kw
    return rendering.render("cluster1", MCA, adc, **options)


def adc(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "addon.open-cluster-management.io/v1alpha1", "kind": "AddOnDeploymentConfig",
            "metadata": {"name": "cfg", "namespace": "default"}, "spec": spec}


def by_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


def deployment(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = by_kind(manifests, "Deployment")
    return found


def container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any]
    (found,) = deployment(manifests)["spec"]["template"]["spec"]["containers"]
    return found


def test_default_manifests() -> None:
    manifests = render()
    assert [m["kind"] for m in manifests] == [
        "Namespace", "CustomResourceDefinition", "CustomResourceDefinition", "ServiceAccount", "ClusterRole",
        "ClusterRoleBinding", "Secret", "Deployment"]
    (ns,) = by_kind(manifests, "Namespace")
    assert ns["metadata"] == {"name": "volsync-system",
                              "labels": {"addon.open-cluster-management.io/namespace": "true"}}
    crds = by_kind(manifests, "CustomResourceDefinition")
    assert sorted(c["metadata"]["name"] for c in crds) == [
        "replicationdestinations.volsync.backube", "replicationsources.volsync.backube"]
    assert all(c["metadata"]["annotations"] == {"addon.open-cluster-management.io/deletion-orphan": ""} for c in crds)
    (secret,) = by_kind(manifests, "Secret")
    assert secret["metadata"]["name"] == "volsync-agent-hub" and secret["metadata"]["namespace"] == "volsync-system"
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "token": "s3cret", "url": "https://hub:8443", "ca.crt": "PEM"}
    (binding,) = by_kind(manifests, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "volsync-agent", "namespace": "volsync-system"}]
    agent = deployment(manifests)
    assert agent["metadata"]["name"] == "volsync-agent" and agent["metadata"]["namespace"] == "volsync-system"
    pod = agent["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "volsync-agent"
    assert "nodeSelector" not in pod and "tolerations" not in pod
    c = container(manifests)
    assert c["name"] == "agent" and c["image"] == IMAGE
    assert c["args"] == ["--cluster-name", "cluster1", "--mover-image", IMAGE, "--hub-url", "https://hub:8443",
                         "--hub-token-file", "/var/run/volsync/hub/token",
                         "--hub-ca-file", "/var/run/volsync/hub/ca.crt"]
    assert "resources" not in c and "env" not in c
    assert pod["volumes"] == [{"name": "hub", "secret": {"secretName": "volsync-agent-hub"}}]


def test_cluster_role_grants_what_the_agent_calls_and_nothing_more() -> None:
    (role,) = by_kind(render(), "ClusterRole")
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    informed = {"list", "watch"}
    expected = {
        *{("volsync.backube", r, v) for r in ("replicationsources", "replicationdestinations") for v in informed},
        ("volsync.backube", "replicationsources/status", "patch"),
        ("volsync.backube", "replicationdestinations/status", "patch"),
        ("volsync.backube", "replicationsources/finalizers", "update"),
        ("volsync.backube", "replicationdestinations/finalizers", "update"),
        *{("", "persistentvolumeclaims", v) for v in (*informed, "create", "patch", "delete")},
        *{("snapshot.storage.k8s.io", "volumesnapshots", v) for v in (*informed, "create", "patch", "delete")},
        *{("batch", "jobs", v) for v in (*informed, "create", "delete")},
        *{("", "pods", v) for v in informed},
        ("", "pods/log", "get"),
        *{("", "services", v) for v in (*informed, "create", "patch", "delete")},
        *{("", "secrets", v) for v in (*informed, "get", "create")},
        ("", "serviceaccounts", "create"),
        *{("rbac.authorization.k8s.io", r, "create") for r in ("roles", "rolebindings")},
        *{("", "events", v) for v in ("get", "create", "patch")},
    }
    assert granted == expected
    assert all("*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"] for rule in role["rules"])


def test_no_ca_bundle_no_ca_key() -> None:
    (secret,) = by_kind(render(ca_bundle=""), "Secret")
    assert set(secret["data"]) == {"token", "url"}
    assert "--hub-ca-file" not in container(render(ca_bundle=""))["args"]


def test_rendering_does_not_share_state() -> None:
    first = render()
    first[1]["metadata"]["annotations"]["x"] = "y"
    assert "x" not in render()[1]["metadata"]["annotations"]


def test_node_placement() -> None:
    tolerations = [{"key": "dedicated", "operator": "Equal", "value": "storage", "effect": "NoSchedule"}]
    pod = deployment(render(adc(nodePlacement={"nodeSelector": {"zone": "a"}, "tolerations": tolerations})))
    assert pod["spec"]["template"]["spec"]["nodeSelector"] == {"zone": "a"}
    assert pod["spec"]["template"]["spec"]["tolerations"] == tolerations


def test_image_override_then_mirror_and_movers_run_the_same_image() -> None:
    config = adc(customizedVariables=[{"name": "OPERAND_IMAGE_VOLSYNC", "value": "quay.io/me/agent:dev"}],
                 registries=[{"source": "quay.io/me", "mirror": "mirror.local:5000/me"}])
    agent = container(render(config))
    assert agent["image"] == "mirror.local:5000/me/agent:dev"
    assert agent["args"][agent["args"].index("--mover-image") + 1] == "mirror.local:5000/me/agent:dev"
    other = container(render(adc(customizedVariables=[{"name": "OTHER", "value": "x"}])))
    assert other["image"] == IMAGE and other["args"][other["args"].index("--mover-image") + 1] == IMAGE


def test_the_hub_defaults_to_the_project_image() -> None:
    from api import images
    from hub import main

    assert main.DEFAULT_IMAGE == images.default_image() == f"{images.REPOSITORY}:{images.package_version()}"
    assert main.parse_args([]).image == images.default_image()


@pytest.mark.parametrize(("registries", "image"), [
    ([], IMAGE),
    ([{"source": "quay.io/volsync-addon", "mirror": "mirror.local/va"}], "mirror.local/va/agent:0.1.0"),
    ([{"source": "docker.io", "mirror": "mirror.local"}], IMAGE),
    ([{"mirror": "mirror.local/all/"}], "mirror.local/all/agent:0.1.0"),
    ([{"source": "quay.io", "mirror": "first.local"}, {"source": "quay.io/volsync-addon", "mirror": "last.local"}],
     "last.local/agent:0.1.0"),
    ([{"source": "quay.io", "mirror": "only.local"}, {"source": "docker.io", "mirror": "never.local"}],
     "only.local/volsync-addon/agent:0.1.0"),
])
def test_registry_mirrors(registries: list[dict[str, str]], image: str) -> None:
    assert rendering.mirror_image(IMAGE, registries) == image


def test_resources_last_match_wins_with_wildcards() -> None:
    small = {"requests": {"cpu": "10m"}}
    big = {"limits": {"memory": "1Gi"}, "requests": {"cpu": "100m"}}
    config = adc(resourceRequirements=[
        {"containerID": "*:*:*", "resources": small},
        {"containerID": "deployments:volsync-*:agent", "resources": big},
        {"containerID": "deployments:other:*", "resources": {"requests": {"cpu": "9"}}},
    ])
    assert container(render(config))["resources"] == big
    only_wildcard = adc(resourceRequirements=[{"containerID": "*:*:*", "resources": small}])
    assert container(render(only_wildcard))["resources"] == small
    no_match = adc(resourceRequirements=[{"containerID": "daemonsets:*:*", "resources": small}])
    assert "resources" not in container(render(no_match))


def test_install_namespace() -> None:
    manifests = render(adc(agentInstallNamespace="replication"))
    assert {m["metadata"].get("namespace") for m in manifests if m["kind"] not in (
        "Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding")} == {"replication"}
    assert by_kind(manifests, "Namespace")[0]["metadata"]["name"] == "replication"
    assert by_kind(manifests, "ClusterRoleBinding")[0]["subjects"][0]["namespace"] == "replication"
    # the ADC CRD defaults the field to the framework's namespace: that means "ours"
    assert rendering.install_namespace(adc(agentInstallNamespace=ocm.FRAMEWORK_INSTALL_NAMESPACE)) == "volsync-system"
    assert rendering.install_namespace(adc(agentInstallNamespace="")) == "volsync-system"
    assert rendering.install_namespace(None) == "volsync-system"


def test_proxy_config_becomes_environment() -> None:
    config = adc(proxyConfig={"httpProxy": "http://proxy:3128", "httpsProxy": "http://proxy:3129",
                              "noProxy": "10.0.0.0/8,.svc"})
    assert container(render(config))["env"] == [
        {"name": "HTTP_PROXY", "value": "http://proxy:3128"}, {"name": "HTTPS_PROXY", "value": "http://proxy:3129"},
        {"name": "NO_PROXY", "value": "10.0.0.0/8,.svc"}]
    assert container(render(adc(proxyConfig={"httpsProxy": "http://p"})))["env"] == [
        {"name": "HTTPS_PROXY", "value": "http://p"}]


ADC_REF = {"group": "addon.open-cluster-management.io", "resource": "addondeploymentconfigs"}


def test_adc_reference_mca_wins_over_cma_default() -> None:
    cma = {"spec": {"supportedConfigs": [ADC_REF | {"defaultConfig": {"namespace": "defaults", "name": "fleet"}}]}}
    mca = MCA | {"spec": {"configs": [ADC_REF | {"namespace": "custom", "name": "mine"}]}}
    assert rendering.adc_reference(mca, cma) == ("custom", "mine")
    assert rendering.adc_reference(MCA, cma) == ("defaults", "fleet")
    assert rendering.adc_reference(MCA, None) is None
    assert rendering.adc_reference(MCA, {"spec": {"supportedConfigs": [ADC_REF]}}) is None
    # v1beta1-style defaults, and an MCA reference without a namespace (the cluster's)
    assert rendering.adc_reference(MCA, {"spec": {"defaultConfigs": [ADC_REF | {"namespace": "d", "name": "n"}]}}) \
        == ("d", "n")
    assert rendering.adc_reference(MCA | {"spec": {"configs": [ADC_REF | {"name": "local"}]}}, None) \
        == ("cluster1", "local")
    other = {"group": "example.io", "resource": "things", "namespace": "x", "name": "y"}
    assert rendering.adc_reference(MCA | {"spec": {"configs": [other]}}, cma) == ("defaults", "fleet")


def test_customized_variables_tune_the_agent() -> None:
    from hub.rendering import agent_flags

    adc = {"spec": {"customizedVariables": [{"name": "RSYNC_RETRIES", "value": "2"}, {"name": "LOG_LEVEL",
                                                                                      "value": "debug"},
                                            {"name": "OPERAND_IMAGE_VOLSYNC", "value": "x/y:z"},
                                            {"name": "RSYNC_RETRIES_TYPO", "value": "9"}]}}
    assert agent_flags(adc) == ["--rsync-retries", "2", "--log-level", "debug"]
    assert agent_flags(None) == []
    args = container(render(adc))["args"]
    assert args[-4:] == ["--rsync-retries", "2", "--log-level", "debug"] and args.count("--mover-image") == 1


def test_a_new_hub_ca_rolls_the_agent_out() -> None:
    """The agent reads the hub's CA once: a digest of it on the Pod template makes a changed CA a new
    rollout (a new Pod reading the new CA), and the same CA the same template."""
    def template(ca: str) -> dict[str, Any]:
        found: dict[str, Any] = deployment(render(ca_bundle=ca))["spec"]["template"]
        return found

    first, again, other = template("PEM-1"), template("PEM-1"), template("PEM-2")
    assert first == again
    assert first["metadata"]["annotations"][rendering.HUB_CA_ANNOTATION] != \
        other["metadata"]["annotations"][rendering.HUB_CA_ANNOTATION]
    assert first["spec"] == other["spec"]
    assert "annotations" not in template("")["metadata"]  # no CA (system CAs): nothing to follow
