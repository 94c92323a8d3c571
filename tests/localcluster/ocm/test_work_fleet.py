"""The work agent in a real fleet: cluster1's process (`--hub-kubeconfig`, `--hub-context hub`) applies
a ManifestWork written on the hub, its node runs the Deployment's Pod, and `kubectl --context hub`
shows the work Applied/Available with the Deployment's feedback; scaling through the work moves the
feedback; deleting the work deletes what it applied.

One fleet (API server + the hub's and cluster1's processes) for the module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from support.fleet import LocalFleet, local_fleet
from support.waiting import eventually

pytestmark = pytest.mark.timeout(300)

NS = "work-e2e"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    with local_fleet(tmp_path_factory.mktemp("work-fleet"), ("hub", "cluster1"), hub="hub") as running:
        yield running


def work(replicas: int) -> str:
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
        "metadata": {"name": "web", "namespace": "cluster1"},
        "spec": {"workload": {"manifests": manifests}, "manifestConfigs": [{
            "resourceIdentifier": {"group": "apps", "resource": "deployments", "name": "web", "namespace": NS},
            "feedbackRules": [{"type": "WellKnownStatus"}]}]}})


def feedback(fleet: LocalFleet) -> dict[str, Any]:
    found = fleet.get("manifestwork", "web", "-n", "cluster1", context="hub")
    out: dict[str, Any] = {}
    for entry in ((found.get("status") or {}).get("resourceStatus") or {}).get("manifests") or []:
        for value in (entry.get("statusFeedback") or {}).get("values") or []:
            out[value["name"]] = value["fieldValue"].get("integer")
    return out


def columns(fleet: LocalFleet) -> list[str]:
    out = fleet.kubectl("get", "manifestwork", "web", "-n", "cluster1", "-o", "wide", context="hub").stdout
    return out.splitlines()[1].split()


def test_a_work_runs_its_deployment_and_reports_feedback(fleet: LocalFleet) -> None:
    eventually(lambda: fleet.kubectl("get", "namespace", "cluster1", context="hub", check=False).returncode == 0,
               60.0, what="cluster1 accepted (its namespace on the hub)")
    fleet.apply(work(1), context="hub")
    eventually(lambda: feedback(fleet).get("ReadyReplicas") == 1, 120.0, interval=0.2, what="Deployment ready")
    assert feedback(fleet) == {"ReadyReplicas": 1, "Replicas": 1, "AvailableReplicas": 1}
    assert columns(fleet)[1:3] == ["True", "True"]  # Applied, Available
    pods = fleet.get("pods", "-n", NS, "-l", "app=web", context="cluster1")["items"]
    assert [p["status"]["phase"] for p in pods] == ["Running"]

    fleet.apply(work(2), context="hub")
    eventually(lambda: feedback(fleet) == {"ReadyReplicas": 2, "Replicas": 2, "AvailableReplicas": 2}, 120.0,
               interval=0.2, what="scaled through the work")

    fleet.kubectl("delete", "manifestwork", "web", "-n", "cluster1", "--wait=true", "--timeout=120s", context="hub")
    gone = fleet.kubectl("get", "deployment", "web", "-n", NS, context="cluster1", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    eventually(lambda: fleet.kubectl("get", "namespace", NS, context="cluster1", check=False).returncode != 0,
               120.0, what="the work's namespace deleted")
    assert fleet.get("appliedmanifestworks", context="cluster1")["items"] == []
