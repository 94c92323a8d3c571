"""`kubectl apply -k manifests/hub` on the embedded hub cluster brings up a working hub Pod (issue 11,
deliverable 3): no `volsync-hub` process at all. The clusters are what a real OCM fleet gives: the
hub cluster runs the cluster manager, cluster1 its registration and work agents (`Fleet(hub=...)`).

The hub Pod runs in-cluster under ServiceAccount volsync-hub, waits for its LoadBalancer Service's
address and advertises it; labelling cluster1 makes it create the ManagedClusterAddOn and the
ManifestWork, cluster1's work agent runs the agent Pod, the agent reports to the hub Pod through
the load balancer, and the addon turns Available. The test reaches the REST API as a user on the
host would: `kubectl port-forward` to the hub Pod (fabric addresses are not reachable from the host),
verifying the serving certificate with the CA the hub gave its agents.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support.apiserver import ApiServer
from support.fleet import LocalFleet, local_fleet
from support.waiting import eventually

from api.images import REPOSITORY, default_image
from manifests import HUB_DIR

pytestmark = pytest.mark.timeout(600)

NS = "volsync-system"
HUB_LABELS = "app.kubernetes.io/name=volsync-hub"
AGENT_LABELS = "app.kubernetes.io/name=volsync-agent"
INSTALL_LABEL = "addons.open-cluster-management.io/volsync=true"
RENEW_SECONDS = 3


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    """The API server, and the cluster processes of an OCM fleet: `hub` manages, cluster1 joins it."""
    with local_fleet(tmp_path_factory.mktemp("install"), ("hub", "cluster1"), hub="hub") as running:
        yield running


@pytest.fixture(scope="module")
def installed(fleet: LocalFleet, tmp_path_factory: pytest.TempPathFactory) -> LocalFleet:
    """manifests/hub applied with kubectl, the hub Pod Running and Ready. The overlay pins the image to
    this version and, test tuning only, asks agents for a heartbeat every 3 s (the hub's --renew-seconds)."""
    eventually(lambda: _cluster_condition(fleet, "cluster1", "ManagedClusterConditionAvailable") == "True", 120, 0.5,
               what="cluster1 registered, accepted and available on the hub")
    overlay = tmp_path_factory.mktemp("overlay")
    tag = default_image().rsplit(":", 1)[1]
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(HUB_DIR, overlay)],
        "images": [{"name": REPOSITORY, "newTag": tag}],
        "patches": [{"target": {"kind": "Deployment", "name": "volsync-hub"}, "patch": json.dumps([
            {"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": flag}
            for flag in ("--renew-seconds", str(RENEW_SECONDS))])}]}))
    fleet.kubectl("apply", "-k", str(overlay), context="hub")
    eventually(lambda: _ready_hub_pod(fleet), 180, 1, what="the hub Pod Running and Ready")
    return fleet


def _cluster_condition(fleet: LocalFleet, name: str, kind: str) -> str | None:
    found = fleet.kubectl("get", "managedcluster", name, "-o", "json", context="hub", check=False)
    if found.returncode != 0:
        return None
    conditions = (json.loads(found.stdout).get("status") or {}).get("conditions") or []
    return next((c.get("status") for c in conditions if c.get("type") == kind), None)


def _ready_hub_pod(fleet: LocalFleet) -> dict[str, Any] | None:
    for pod in fleet.get("pods", "-n", NS, "-l", HUB_LABELS, context="hub")["items"]:
        status = pod.get("status") or {}
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
        if status.get("phase") == "Running" and ready and not pod["metadata"].get("deletionTimestamp"):
            return dict(pod)
    return None


def _addon_condition(fleet: LocalFleet, kind: str) -> str | None:
    found = fleet.kubectl("get", "managedclusteraddon", "volsync", "-n", "cluster1", "-o", "json", context="hub",
                          check=False)
    if found.returncode != 0:
        return None
    conditions = (json.loads(found.stdout).get("status") or {}).get("conditions") or []
    return next((c.get("status") for c in conditions if c.get("type") == kind), None)


def test_the_hub_runs_as_its_deployments_pod_under_its_service_account(installed: LocalFleet) -> None:
    pod = _ready_hub_pod(installed)
    assert pod is not None
    assert pod["spec"]["serviceAccountName"] == "volsync-hub"
    [container] = pod["spec"]["containers"]
    assert container["image"] == default_image()
    log = installed.kubectl("logs", "-n", NS, pod["metadata"]["name"], context="hub").stdout
    service = installed.get("service", "-n", NS, "volsync-hub", context="hub")
    ingress = service["status"]["loadBalancer"]["ingress"][0]["ip"]
    ready = json.loads(next(line for line in log.splitlines() if line.startswith("volsync-hub ready "))
                       .removeprefix("volsync-hub ready "))
    assert ready["kubeconfig"] is None and ready["embedded"] is False  # in-cluster, not the embedded default
    assert ready["hubUrl"] == f"https://{ingress}:443"  # what it advertises: its Service's load-balancer address


def test_the_applied_cluster_management_addon_is_the_one_that_holds(installed: LocalFleet) -> None:
    cma = installed.get("clustermanagementaddon", "volsync", context="hub")
    assert cma["metadata"]["generation"] == 1  # the hub, started after it, did not rewrite it
    assert cma["metadata"]["labels"]["app.kubernetes.io/part-of"] == "volsync"
    assert cma["spec"]["addOnMeta"]["displayName"] == "VolSync"
    [supported] = cma["spec"]["supportedConfigs"]
    assert supported["defaultConfig"] == {"name": "volsync-default", "namespace": NS}
    adc = installed.get("addondeploymentconfig", "volsync-default", "-n", NS, context="hub")
    assert adc["metadata"]["name"] == "volsync-default"


def test_a_labelled_cluster_gets_its_agent_from_the_hub_pod(installed: LocalFleet) -> None:
    installed.kubectl("label", "managedcluster", "cluster1", INSTALL_LABEL, context="hub")
    eventually(lambda: _addon_condition(installed, "Available") == "True", 240, 1,
               what="cluster1's addon Available: its agent reports to the hub Pod")
    work = installed.get("manifestwork", "addon-volsync-deploy-0", "-n", "cluster1", context="hub")
    conditions = {c["type"]: c["status"] for c in work["status"]["conditions"]}
    assert conditions.get("Applied") == "True", conditions
    agents = _agent_pods(installed)
    assert [p["status"]["phase"] for p in agents] == ["Running"]
    [container] = installed.get("deployment", "volsync-agent", "-n", NS, context="cluster1")["spec"]["template"][
        "spec"]["containers"]
    service = installed.get("service", "-n", NS, "volsync-hub", context="hub")
    ingress = service["status"]["loadBalancer"]["ingress"][0]["ip"]
    args = container["args"]
    assert args[args.index("--hub-url") + 1] == f"https://{ingress}:443"


def test_the_rest_api_answers_the_admin_through_a_port_forward(installed: LocalFleet, tmp_path: Path) -> None:
    eventually(lambda: _addon_condition(installed, "Available") == "True", 240, 1, what="cluster1's addon Available")
    pod = _ready_hub_pod(installed)
    assert pod is not None
    with _rest(installed, tmp_path) as http:
        assert http.get("/api/v1/clusters", headers={"Authorization": "Bearer wrong"}).status_code == 401
        _heartbeat_since(http, pod["status"]["startTime"])


def test_the_installed_default_config_reaches_the_agent(installed: LocalFleet) -> None:
    """The ClusterManagementAddOn's defaultConfig is the shipped AddOnDeploymentConfig: a variable set
    there is rendered into cluster1's agent, which the work agent rolls out."""
    patch = {"spec": {"customizedVariables": [{"name": "LOG_LEVEL", "value": "debug"}]}}
    installed.kubectl("patch", "addondeploymentconfig", "volsync-default", "-n", NS, "--type=merge",
                      "-p", json.dumps(patch), context="hub")

    def rolled_out() -> bool:
        pods = _agent_pods(installed)
        args = [p["spec"]["containers"][0]["args"] for p in pods if p["status"].get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")]
        return len(pods) == 1 and len(args) == 1 and "--log-level" in args[0] and "debug" in args[0]

    eventually(rolled_out, 120, 0.5, what="one agent Pod running with --log-level debug")
    eventually(lambda: _addon_condition(installed, "Available") == "True", 120, 0.5, what="the addon Available again")


def test_a_replaced_hub_pod_keeps_its_ca_and_its_agents(installed: LocalFleet, tmp_path: Path) -> None:
    """The data dir is a claim: the next Pod serves with the same CA, so the agent (which read its CA
    file once) reaches it as it is, and no new agent is rolled out."""
    old = _ready_hub_pod(installed)
    assert old is not None
    ca_before = _secret_value(installed, "cluster1", NS, "volsync-agent-hub", "ca.crt")
    [agent_before] = _agent_uids(installed)
    installed.kubectl("delete", "pod", "-n", NS, old["metadata"]["name"], "--wait=false", context="hub")

    def replaced() -> dict[str, Any] | None:
        pod = _ready_hub_pod(installed)
        return pod if pod is not None and pod["metadata"]["uid"] != old["metadata"]["uid"] else None

    new = eventually(replaced, 180, 1, what="a new hub Pod Running and Ready")
    assert new is not None
    with _rest(installed, tmp_path) as http:
        _heartbeat_since(http, new["status"]["startTime"])
    assert _secret_value(installed, "cluster1", NS, "volsync-agent-hub", "ca.crt") == ca_before
    assert _agent_uids(installed) == [agent_before]


def _agent_pods(fleet: LocalFleet) -> list[dict[str, Any]]:
    return list(fleet.get("pods", "-n", NS, "-l", AGENT_LABELS, context="cluster1")["items"])


def _agent_uids(fleet: LocalFleet) -> list[str]:
    return [p["metadata"]["uid"] for p in _agent_pods(fleet) if p["status"].get("phase") == "Running"]


@contextmanager
def _rest(fleet: LocalFleet, tmp_path: Path) -> Iterator[httpx.Client]:
    """A client of the hub Pod's REST API as its admin: a port-forward to the Pod, the admin token from
    its Secret, the serving certificate verified with the CA the hub gave its agents (from cluster1)."""
    token = _secret_value(fleet, "hub", NS, "volsync-hub-admin", "token").decode()
    ca = tmp_path / "hub-ca.crt"
    ca.write_bytes(_secret_value(fleet, "cluster1", NS, "volsync-agent-hub", "ca.crt"))
    with _port_forward(fleet.api) as local, httpx.Client(
            base_url=f"https://127.0.0.1:{local}", verify=ssl.create_default_context(cafile=str(ca)),
            trust_env=False, timeout=10, headers={"Authorization": f"Bearer {token}"}) as http:
        yield http


def _heartbeat_since(http: httpx.Client, since: str) -> None:
    """Wait until the REST API lists cluster1 available with a heartbeat after `since` (RFC 3339)."""
    start = datetime.fromisoformat(since)

    def fresh() -> bool:
        answer = http.get("/api/v1/clusters")
        assert answer.status_code == 200, answer.text
        found = [c for c in answer.json() if c["name"] == "cluster1"]
        beat = found[0].get("lastHeartbeat") if found and found[0]["available"] else None
        return beat is not None and datetime.fromisoformat(beat) > start

    eventually(fresh, 60, 0.5, what=f"a heartbeat of cluster1's agent after {since} in the REST API")


def _secret_value(fleet: LocalFleet, context: str, namespace: str, name: str, key: str) -> bytes:
    secret = fleet.get("secret", name, "-n", namespace, context=context)
    return base64.b64decode(secret["data"][key])


@contextmanager
def _port_forward(api: ApiServer) -> Iterator[int]:
    """`kubectl port-forward` to the hub Deployment's Pod on a free local port (yielded); stopped after."""
    argv = api.kubectl_argv("port-forward", "-n", NS, "deploy/volsync-hub", "--address", "127.0.0.1", ":8443",
                            context="hub")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=api.kubectl_env())
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # "Forwarding from 127.0.0.1:<local> -> 8443"
        assert first.startswith("Forwarding from 127.0.0.1:") and first.rstrip().endswith("-> 8443"), first
        yield int(first.split("127.0.0.1:", 1)[1].split()[0])
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
