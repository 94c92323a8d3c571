"""The hub end to end: a real `volsync-hub` process (the embedded fleet; agents delivered as
ManifestWork and run as Pods by each cluster's work agent and node; the REST API), real kubectl,
the seed procedure section 1 and then replication status over REST.

Timings are shortened (`--stale-seconds 4 --renew-seconds 0.5`) so the addon lease's expiry takes seconds.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from support.hubprocess import Hub, pod_processes, wait_available
from support.waiting import eventually

pytestmark = pytest.mark.timeout(300)

MCAO = """\
apiVersion: addon.open-cluster-management.io/v1alpha1
kind: ManagedClusterAddOn
metadata:
  name: volsync
  namespace: {cluster}
spec: {{}}
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = Hub(tmp_path_factory.mktemp("hub") / "run").start()
    yield h
    h.stop()


def test_label_and_mcao_yaml_deploy_agents_that_become_available(hub: Hub) -> None:
    clusters = hub.kubectl("get", "managedclusters").stdout
    assert "cluster1" in clusters and "cluster2" in clusters
    hub.kubectl("label", "managedcluster", "cluster1", "addons.open-cluster-management.io/volsync=true")
    hub.kubectl("apply", "-f", "-", input=MCAO.format(cluster="cluster2"))
    for cluster in ("cluster1", "cluster2"):
        wait_available(hub, cluster)
        assert hub.addon_condition(cluster, "ManifestApplied")["reason"] == "AddonManifestApplied"
        assert hub.running_agent(cluster) is not None
    table = hub.kubectl("get", "managedclusteraddon", "-A").stdout
    assert "cluster1" in table and "cluster2" in table and "True" in table
    labels = hub.get("managedcluster", "cluster1")["metadata"]["labels"]
    assert labels["feature.open-cluster-management.io/addon-volsync"] == "available"
    # the agent's CRDs reached the managed cluster
    assert "replicationsources.volsync.backube" in hub.kubectl("get", "crd", context="cluster1").stdout
    rows = {c["name"]: c for c in hub.rest("/api/v1/clusters")}
    assert rows["cluster1"]["available"] and rows["cluster2"]["available"]


def test_user_made_addon_is_never_overwritten(hub: Hub) -> None:
    hub.kubectl("create", "ns", "cluster3")
    hub.kubectl("apply", "-f", "-", input="""\
apiVersion: cluster.open-cluster-management.io/v1
kind: ManagedCluster
metadata: {name: cluster3}
spec: {hubAcceptsClient: true}
""")
    hub.kubectl("apply", "-f", "-", input="""\
apiVersion: addon.open-cluster-management.io/v1alpha1
kind: ManagedClusterAddOn
metadata:
  name: volsync
  namespace: cluster3
  annotations: {ramendr.openshift.io/owner: "yes", custom: "kept"}
spec: {installNamespace: custom-ns}
""")
    before = hub.get("managedclusteraddon", "volsync", "-n", "cluster3")
    hub.kubectl("label", "managedcluster", "cluster3", "addons.open-cluster-management.io/volsync=true")
    # let the controller see the label (the MCA's status is written by the hub; spec and metadata are not)
    eventually(lambda: hub.get("managedclusteraddon", "volsync", "-n", "cluster3").get("status"), 30,
               what="the hub looked at cluster3")
    after = hub.get("managedclusteraddon", "volsync", "-n", "cluster3")
    assert after["spec"] == before["spec"]
    assert after["metadata"]["annotations"] == before["metadata"]["annotations"]
    assert "volsync-addon.io/created-by-hub" not in after["metadata"]["annotations"]


def _agent_pod_processes(hub: Hub, cluster: str) -> tuple[str, list[int]]:
    """The uid of `cluster`'s running agent Pod and the host processes of its containers."""
    pod = hub.running_agent(cluster)
    assert pod is not None, f"no running agent Pod on {cluster}"
    uid = pod["metadata"]["uid"]
    pids = pod_processes(hub.cluster_state(cluster), uid)
    assert pids, f"no process of agent Pod {uid} on {cluster}'s node"
    return uid, pids


def test_a_silent_agent_turns_available_false_and_back(hub: Hub) -> None:
    wait_available(hub, "cluster1")
    uid, pids = _agent_pod_processes(hub, "cluster1")
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)  # alive but silent: no heartbeats, and no restart by the kubelet
    try:
        cond = eventually(lambda: (lambda c: c if c.get("status") == "False" else None)(
            hub.addon_condition("cluster1", "Available")), 30, what="Available=False after the stale period")
        assert cond["reason"] == "ManagedClusterAddOnLeaseUpdateStopped"
        labels = hub.get("managedcluster", "cluster1")["metadata"]["labels"]
        assert labels["feature.open-cluster-management.io/addon-volsync"] == "unhealthy"
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    eventually(lambda: hub.addon_condition("cluster1", "Available").get("status") == "True", 30,
               what="Available again once heartbeats resume")
    assert [p["metadata"]["uid"] for p in hub.agent_pods("cluster1")] == [uid]


def test_stopped_agent_turns_unavailable_and_hub_restart_loses_nothing(hub: Hub) -> None:
    wait_available(hub, "cluster2")
    uids = {c: [p["metadata"]["uid"] for p in hub.agent_pods(c)] for c in ("cluster1", "cluster2")}
    assert all(len(u) == 1 for u in uids.values()), uids
    before = hub.rest("/api/v1/clusters")

    # hub killed with SIGKILL and restarted: the agent Pods are untouched (same uids), state is all there
    hub.stop(signal.SIGKILL)
    hub.start()
    assert {c: [p["metadata"]["uid"] for p in hub.agent_pods(c)] for c in uids} == uids
    after = {c["name"]: c for c in hub.rest("/api/v1/clusters")}
    assert {c["name"] for c in before} <= set(after)
    eventually(lambda: {c["name"]: c["available"] for c in hub.rest("/api/v1/clusters")}.get("cluster1"), 30,
               what="agents heartbeat to the restarted hub")

    # delete the addon: the work agent removes the agent; its lease goes stale and the REST view says unavailable
    hub.kubectl("delete", "managedclusteraddon", "volsync", "-n", "cluster2")
    eventually(lambda: not hub.agent_pods("cluster2"), 60, what="cluster2's agent Pod gone")
    eventually(lambda: not {c["name"]: c["available"] for c in hub.rest("/api/v1/clusters")}.get("cluster2", False),
               30, what="cluster2 unavailable after the stale period")
