"""The work agent in a real fleet: cluster1's process (`--hub-kubeconfig`, `--hub-context hub`) applies
a ManifestWork written on the hub, its node runs the Deployment's Pod, and `kubectl --context hub`
shows the work Applied/Available with the Deployment's feedback; scaling through the work moves the
feedback; deleting the work deletes what it applied. The hub's own rendered addon work installs, and
its deletion removes the agent's objects but keeps VolSync's CRDs (SelectivelyOrphan). A cluster
process killed with SIGKILL comes back (the launcher restarts it) and its new work agent carries on
from the AppliedManifestWork: same objects, a work changed meanwhile applied.

One fleet (API server + the hub's and cluster1's processes) for the module."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from support.fleet import LocalFleet, local_fleet
from support.hub_controllers import HUB_URL, IMAGE
from support.waiting import eventually

from hub import ocm, rendering
from hub.deployers.manifestwork import desired_work

pytestmark = pytest.mark.timeout(300)

NS = "work-e2e"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    with local_fleet(tmp_path_factory.mktemp("work-fleet"), ("hub", "cluster1"), hub="hub") as running:
        yield running


def work(replicas: int, name: str = "web") -> str:
    labels = {"app": "web"}
    manifests = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS},
         "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels},
             "spec": {"containers": [{"name": "web", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}}},
    ]
    return json.dumps({
        "apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
        "metadata": {"name": name, "namespace": "cluster1"},
        "spec": {"workload": {"manifests": manifests}, "manifestConfigs": [{
            "resourceIdentifier": {"group": "apps", "resource": "deployments", "name": "web", "namespace": NS},
            "feedbackRules": [{"type": "WellKnownStatus"}]}]}})


def feedback(fleet: LocalFleet, name: str = "web") -> dict[str, Any]:
    found = fleet.get("manifestwork", name, "-n", "cluster1", context="hub")
    out: dict[str, Any] = {}
    for entry in ((found.get("status") or {}).get("resourceStatus") or {}).get("manifests") or []:
        for value in (entry.get("statusFeedback") or {}).get("values") or []:
            out[value["name"]] = value["fieldValue"].get("integer")
    return out


def test_a_work_runs_its_deployment_and_reports_feedback(fleet: LocalFleet) -> None:
    eventually(lambda: fleet.kubectl("get", "namespace", "cluster1", context="hub", check=False).returncode == 0,
               60.0, what="cluster1 accepted (its namespace on the hub)")
    fleet.apply(work(1), context="hub")
    eventually(lambda: feedback(fleet).get("ReadyReplicas") == 1, 120.0, interval=0.2, what="Deployment ready")
    assert feedback(fleet) == {"ReadyReplicas": 1, "Replicas": 1, "AvailableReplicas": 1}
    assert columns_of(fleet, "web")[1:3] == ["True", "True"]  # Applied, Available
    pods = fleet.get("pods", "-n", NS, "-l", "app=web", context="cluster1")["items"]
    assert [p["status"]["phase"] for p in pods] == ["Running"]

    fleet.apply(work(2), context="hub")
    eventually(lambda: fleet.get("deployment", "web", "-n", NS, context="cluster1")["status"].get(
        "availableReplicas") == 2, 120.0, interval=0.1, what="scaled through the work")
    # the feedback follows the Deployment's status through the spoke watch, not the 30 s poll
    eventually(lambda: feedback(fleet) == {"ReadyReplicas": 2, "Replicas": 2, "AvailableReplicas": 2}, 3.0,
               interval=0.1, what="the hub's feedback follows within seconds")

    fleet.kubectl("delete", "manifestwork", "web", "-n", "cluster1", "--wait=true", "--timeout=120s", context="hub")
    gone = fleet.kubectl("get", "deployment", "web", "-n", NS, context="cluster1", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    eventually(lambda: fleet.kubectl("get", "namespace", NS, context="cluster1", check=False).returncode != 0,
               120.0, what="the work's namespace deleted")
    assert fleet.get("appliedmanifestworks", context="cluster1")["items"] == []


def cluster1_has(fleet: LocalFleet, *what: str) -> bool:
    return fleet.kubectl("get", *what, context="cluster1", check=False).returncode == 0


def test_the_addons_rendered_work_installs_and_uninstalls_keeping_the_crds(fleet: LocalFleet) -> None:
    eventually(lambda: fleet.kubectl("get", "namespace", "cluster1", context="hub", check=False).returncode == 0,
               60.0, what="cluster1 accepted (its namespace on the hub)")
    mca = {"apiVersion": "addon.open-cluster-management.io/v1alpha1", "kind": "ManagedClusterAddOn",
           "metadata": {"name": ocm.ADDON, "namespace": "cluster1", "uid": "0"}}
    manifests = rendering.render("cluster1", mca, None, hub_url=HUB_URL, token="t", ca_bundle="", image=IMAGE)
    addon_work = desired_work("cluster1", mca, manifests)
    del addon_work["metadata"]["ownerReferences"]  # no MCA here: its GC would take the work
    fleet.apply(json.dumps(addon_work), context="hub")
    eventually(lambda: columns_of(fleet, ocm.WORK_NAME)[1:3] == ["True", "True"], 60.0, interval=0.2,
               what="the addon's work applied and available")
    agent_ns = ocm.DEFAULT_INSTALL_NAMESPACE
    assert cluster1_has(fleet, "deployment", ocm.AGENT, "-n", agent_ns)
    assert cluster1_has(fleet, "clusterrolebinding", ocm.AGENT)
    fleet.kubectl("delete", "manifestwork", ocm.WORK_NAME, "-n", "cluster1", "--timeout=120s", context="hub")
    assert not cluster1_has(fleet, "clusterrole", ocm.AGENT)
    assert not cluster1_has(fleet, "namespace", agent_ns)
    assert cluster1_has(fleet, "crd", "replicationsources.volsync.backube")
    assert cluster1_has(fleet, "crd", "replicationdestinations.volsync.backube")


def columns_of(fleet: LocalFleet, name: str) -> list[str]:
    out = fleet.kubectl("get", "manifestwork", name, "-n", "cluster1", "-o", "wide", context="hub").stdout
    return out.splitlines()[1].split()


def test_a_killed_cluster_process_carries_on_with_its_works(fleet: LocalFleet) -> None:
    eventually(lambda: fleet.kubectl("get", "namespace", "cluster1", context="hub", check=False).returncode == 0,
               60.0, what="cluster1 accepted (its namespace on the hub)")
    fleet.apply(work(1, "survivor"), context="hub")
    eventually(lambda: feedback(fleet, "survivor").get("ReadyReplicas") == 1, 120.0, interval=0.2,
               what="Deployment ready")
    uid = fleet.get("deployment", "web", "-n", NS, context="cluster1")["metadata"]["uid"]
    old = fleet.cluster_pid("cluster1")
    os.kill(old, signal.SIGKILL)
    fleet.apply(work(2, "survivor"), context="hub")  # changed while the agent is down
    eventually(lambda: fleet.cluster_pid("cluster1") != old, 30.0, what="cluster process restarted")
    eventually(lambda: feedback(fleet, "survivor") == {"ReadyReplicas": 2, "Replicas": 2, "AvailableReplicas": 2},
               120.0, interval=0.2, what="the change applied by the restarted agent")
    assert fleet.get("deployment", "web", "-n", NS, context="cluster1")["metadata"]["uid"] == uid
    amws = fleet.get("appliedmanifestworks", context="cluster1")["items"]
    assert [a["spec"]["manifestWorkName"] for a in amws] == ["survivor"]
    fleet.kubectl("delete", "manifestwork", "survivor", "-n", "cluster1", "--timeout=120s", context="hub")
    assert fleet.get("appliedmanifestworks", context="cluster1")["items"] == []
