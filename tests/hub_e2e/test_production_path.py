"""Issue 11's acceptance: the embedded default takes the production path end to end.

One real `volsync-hub` (the embedded fleet: API server, a cluster process per cluster with its OCM
registration and work agents, the hub cluster's cluster manager) serves the module; the tests run
in order, each starting from what the previous one left:

a. the hub delivers the agent as ManifestWork `addon-volsync-deploy-0`; the work agent applies it
   and reports Applied/Available and the Deployment's feedback; the agent runs as that
   Deployment's Pod (no agent process outside a Pod); the MCA's columns say Available;
b. a replication cluster1 → cluster2 runs through the agent Pods and is reported over REST;
c. cluster1 frozen (SIGSTOP of its cluster process and its descendants, and of its Pods' processes:
   found through the node's files, each container start's `shim.pid`/`sandbox.pid` and every process
   in that sandbox's PID namespace, `support.hubprocess.cluster_processes`; its ManagedCluster's lease
   shortened first): the ManagedCluster's and the addon's Available turn
   Unknown within OCM's grace period; d. the hub killed with SIGKILL meanwhile and started again
   on the same data dir adopts everything (same API server, same agent Pods, same ManifestWork,
   the reports of before); SIGCONT: both Available True again, the next sync arrives, nothing lost;
e. the ManagedClusterAddOn deleted: the work goes, and with it the agent's objects on the cluster;
   the VolSync CRDs and the user's replications and data stay.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.hubprocess import Hub, cluster_processes, descendants, replication_hub, replication_rows, trigger_manual
from support.seed import copy_secret, create_destination, create_pvc, create_source, latest_image, restore, status
from support.trees import assert_trees_equal, make_sample_tree
from support.waiting import eventually

pytestmark = pytest.mark.timeout(600)

WORK = "addon-volsync-deploy-0"
AGENT_NS = "volsync-system"
LEASE_SECONDS = 2  # cluster1's lease while it is frozen
GRACE = 5 * LEASE_SECONDS  # OCM's registration controller: 5 × leaseDurationSeconds
AGENT_KINDS = ("deployment/volsync-agent", "serviceaccount/volsync-agent", "secret/volsync-agent-hub")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = replication_hub(tmp_path_factory.mktemp("prodpath") / "run")
    yield h
    h.stop()


@pytest.fixture(scope="module")
def source_dir(hub: Hub) -> Path:
    """The source PVC's directory of the replication test b sets up (shared with c and d)."""
    return create_pvc(hub, "data", "src", "cluster1")


def table(hub: Hub, *args: str, context: str = "hub") -> list[dict[str, str]]:
    """`kubectl get` printed as a table, each row keyed by the header's columns (cut at the header's
    column starts, so names with spaces and empty cells read right)."""
    lines = hub.kubectl("get", *args, context=context).stdout.splitlines()
    header = lines[0]
    starts = [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")
              and not (i > 1 and header[i - 2] != " ")]
    names = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return [{n: line[a:b].strip() for n, a, b in zip(names, starts, [*starts[1:], None], strict=True)}
            for line in lines[1:]]


def addon_columns(hub: Hub, cluster: str) -> tuple[str, str, str]:
    """(AVAILABLE, DEGRADED, PROGRESSING) of `cluster`'s row in `kubectl get managedclusteraddon -A`."""
    row = next(r for r in table(hub, "managedclusteraddon", "-A") if r["NAMESPACE"] == cluster)
    return row["AVAILABLE"], row["DEGRADED"], row["PROGRESSING"]


def cluster_available(hub: Hub, cluster: str) -> dict[str, Any]:
    conditions = (hub.get("managedcluster", cluster).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "ManagedClusterConditionAvailable"), {})


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def deployment_feedback(work: dict[str, Any]) -> dict[str, Any]:
    """The agent Deployment's statusFeedback values in the work's status (name → value)."""
    for manifest in ((work.get("status") or {}).get("resourceStatus") or {}).get("manifests") or []:
        meta = manifest.get("resourceMeta") or {}
        if meta.get("resource") == "deployments" and meta.get("name") == "volsync-agent":
            out = {}
            for value in (manifest.get("statusFeedback") or {}).get("values") or []:
                field = value.get("fieldValue") or {}
                kind = str(field.get("type") or "")
                out[str(value.get("name"))] = field.get(kind[:1].lower() + kind[1:])
            return out
    return {}


def runs_agent(pid: int) -> bool:
    """The process runs the agent's entry point (`volsync-agent ...` or `python -m agent.main ...`)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(Path(a.decode(errors="replace")).name == "volsync-agent" for a in argv[:2]) or b"agent.main" in argv[:3]


def delivered_work(hub: Hub, cluster: str) -> dict[str, Any] | None:
    """`cluster`'s ManifestWork once Applied and Available with the Deployment's ReadyReplicas == Replicas == 1."""
    work: dict[str, Any] = hub.get("manifestwork", WORK, "-n", cluster)
    values = deployment_feedback(work)
    ok = (condition(work, "Applied").get("status") == "True" and condition(work, "Available").get("status") == "True"
          and values.get("ReadyReplicas") == values.get("Replicas") == 1)
    return work if ok else None


def test_a_the_agent_is_a_manifestwork_applied_by_the_work_agent(hub: Hub) -> None:
    for cluster in ("cluster1", "cluster2"):
        work = eventually(lambda c=cluster: delivered_work(hub, c), 60, 0.2,  # type: ignore[misc]
                          what=f"{cluster}'s work Applied, Available, ReadyReplicas 1")
        assert work is not None and work["metadata"]["ownerReferences"][0]["kind"] == "ManagedClusterAddOn"
        pod = eventually(lambda c=cluster: hub.running_agent(c), 60, 0.2,  # type: ignore[misc]
                         what=f"{cluster}'s agent Pod Running")
        assert pod is not None and pod["spec"]["serviceAccountName"] == "volsync-agent"
        assert pod["spec"]["nodeName"] == f"{cluster}-node"
        listing = hub.kubectl("get", "deploy,pods", "-n", AGENT_NS, context=cluster).stdout
        assert "deployment.apps/volsync-agent" in listing and "1/1" in listing and "Running" in listing, listing
        eventually(lambda c=cluster: addon_columns(hub, c) == ("True", "False", "False"), 60, 0.2,  # type: ignore[misc]
                   what=f"{cluster}'s addon row: AVAILABLE True, DEGRADED False, PROGRESSING False")
    # the agents are processes of the nodes' Pods; the hub process starts none
    for cluster in ("cluster1", "cluster2"):
        assert any(runs_agent(pid) for pid in cluster_processes(hub.cluster_state(cluster))), cluster
    assert hub.proc is not None
    assert not [pid for pid in descendants(hub.proc.pid) if runs_agent(pid)]
    rows = {r["NAME"]: r for r in table(hub, "managedclusters")}
    assert rows["cluster1"]["JOINED"] == rows["cluster1"]["AVAILABLE"] == "True"
    assert rows["cluster1"]["HUB ACCEPTED"] == "true"
    # c's short lease, set now: the registration agent sees the change within a second and renews under
    # it at once, so cluster1 stays available through b
    hub.kubectl("patch", "managedcluster", "cluster1", "--type=merge",
                "-p", json.dumps({"spec": {"leaseDurationSeconds": LEASE_SECONDS}}))


def test_b_a_replication_runs_through_the_agent_pods(hub: Hub, source_dir: Path) -> None:
    address, keys = create_destination(hub, "rd", "LoadBalancer")
    make_sample_tree(source_dir, large_size=1 << 20)
    copy_secret(hub, keys)
    create_source(hub, "rs", "data", address, keys, "manual: one")
    eventually(lambda: status(hub, "replicationsource", "rs", "src", "cluster1")
               .get("lastManualSync") == "one", 120, 0.2, what="the first sync")
    image = latest_image(hub, "rd")
    assert_trees_equal(source_dir, restore(hub, image, "restored-one"))

    def reported() -> bool:
        rows = replication_rows(hub)
        src, dst = rows.get(("cluster1", "source")), rows.get(("cluster2", "destination"))
        return bool(src and dst and src["state"] == dst["state"] == "ok" and src["lastSyncTime"])

    eventually(reported, 60, 0.2, what="both sides reported ok over REST")
    for cluster in ("cluster1", "cluster2"):
        eventually(lambda c=cluster: addon_columns(hub, c) == ("True", "False", "False"), 30, 0.2,  # type: ignore[misc]
                   what=f"{cluster}'s addon row after the replication: True, False, False")


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # ended meanwhile
            os.kill(pid, sig)


def _shortened_lease_in_force(hub: Hub) -> None:
    """cluster1's registration agent renews under the lease set at the end of a, and cluster1 is Available."""
    eventually(lambda: hub.get("lease", "managed-cluster-lease", "-n", "cluster1")["spec"]
               .get("leaseDurationSeconds") == LEASE_SECONDS, 90, 0.2,
               what="cluster1's registration agent renews with the shortened lease")
    eventually(lambda: cluster_available(hub, "cluster1").get("status") == "True", 30, 0.2,
               what="cluster1 Available with its renewals under the shortened lease")
    eventually(lambda: addon_columns(hub, "cluster1")[0] == "True", 30, 0.2, what="cluster1's addon Available")


def _snapshot(hub: Hub) -> dict[str, Any]:
    """What a restarted hub must find as it was: the API server's pid, cluster1's ManifestWork, the agent
    Pods' uids and the REST rows."""
    return {"api": json.loads((hub.data_dir / "api" / "apiserver.ready").read_text())["pid"],
            "work": hub.get("manifestwork", WORK, "-n", "cluster1"),
            "pods": {c: [p["metadata"]["uid"] for p in hub.agent_pods(c)] for c in ("cluster1", "cluster2")},
            "rows": replication_rows(hub)}


def _unknown_within_the_grace(hub: Hub, stopped_at: float) -> None:
    unknown = eventually(lambda: (c := cluster_available(hub, "cluster1")).get("status") == "Unknown" and c,
                         GRACE + 30, 0.2, what="cluster1 Available Unknown after the lease grace")
    assert isinstance(unknown, dict) and unknown["reason"] == "ManagedClusterLeaseUpdateStopped"
    assert time.monotonic() - stopped_at < GRACE + 15
    eventually(lambda: hub.addon_condition("cluster1", "Available").get("status") == "Unknown", 30, 0.2,
               what="cluster1's addon Available Unknown")
    assert addon_columns(hub, "cluster1")[0] == "Unknown"
    assert cluster_available(hub, "cluster2").get("status") == "True"


def _restart_adopts(hub: Hub, before: dict[str, Any]) -> None:
    """d: the hub killed with SIGKILL, started again on the same data dir: everything adopted as it was."""
    hub.stop(signal.SIGKILL)
    hub.start()
    after = _snapshot(hub)
    assert after["api"] == before["api"]
    assert after["pods"] == before["pods"] and all(len(uids) == 1 for uids in after["pods"].values())
    work, was = after["work"], before["work"]
    assert (work["metadata"]["uid"], work["metadata"]["generation"], work["spec"]) == (
        was["metadata"]["uid"], was["metadata"]["generation"], was["spec"])
    source = ("cluster1", "source")
    assert after["rows"][source]["lastSyncTime"] == before["rows"][source]["lastSyncTime"]


def test_c_d_a_frozen_cluster_turns_unknown_a_killed_hub_adopts_and_both_come_back(
        hub: Hub, source_dir: Path) -> None:
    _shortened_lease_in_force(hub)
    before = _snapshot(hub)
    frozen = cluster_processes(hub.cluster_state("cluster1"))
    assert len(frozen) >= 2, frozen  # the cluster process and at least the agent Pod's process
    _signal_all(frozen, signal.SIGSTOP)
    try:
        _unknown_within_the_grace(hub, time.monotonic())
        _restart_adopts(hub, before)  # while cluster1 is still frozen
        assert hub.addon_condition("cluster1", "Available").get("status") == "Unknown"
    finally:
        _signal_all(frozen, signal.SIGCONT)
    eventually(lambda: cluster_available(hub, "cluster1").get("status") == "True", 60, 0.2,
               what="cluster1 Available again")
    eventually(lambda: addon_columns(hub, "cluster1")[0] == "True", 60, 0.2, what="cluster1's addon Available again")
    assert _snapshot(hub)["pods"] == before["pods"]  # no duplicate agent, no replaced one
    first = latest_image(hub, "rd")
    (source_dir / "after-the-freeze.txt").write_text("written while the hub was restarted\n")
    trigger_manual(hub, "two")
    eventually(lambda: status(hub, "replicationsource", "rs", "src", "cluster1")
               .get("lastManualSync") == "two", 120, 0.2, what="the sync after the thaw")
    image = latest_image(hub, "rd", other_than=first)
    assert_trees_equal(source_dir, restore(hub, image, "restored-two"))
    old = before["rows"][("cluster1", "source")]["lastSyncTime"]
    eventually(lambda: replication_rows(hub)[("cluster1", "source")]["lastSyncTime"] > old, 60, 0.2,
               what="the new sync reported to the restarted hub")


def test_e_deleting_the_addon_removes_the_agent_and_keeps_crds_and_user_data(hub: Hub, source_dir: Path) -> None:
    hub.kubectl("delete", "managedclusteraddon", "volsync", "-n", "cluster1")
    eventually(lambda: hub.kubectl("get", "manifestwork", WORK, "-n", "cluster1", check=False).returncode != 0,
               60, 0.2, what="the ManifestWork deleted")

    def agent_gone() -> bool:
        for kind in (*AGENT_KINDS, "clusterrole/volsync-agent", "clusterrolebinding/volsync-agent"):
            ns = ["-n", AGENT_NS] if not kind.startswith("cluster") else []
            if hub.kubectl("get", kind, *ns, context="cluster1", check=False).returncode == 0:
                return False
        return not hub.agent_pods("cluster1")

    eventually(agent_gone, 90, 0.2, what="the agent's Deployment, Pod, ServiceAccount, Secret and RBAC gone")
    crds = hub.kubectl("get", "crd", "-o", "name", context="cluster1").stdout
    assert "replicationsources.volsync.backube" in crds and "replicationdestinations.volsync.backube" in crds
    assert hub.get("replicationsource", "rs", "-n", "src", context="cluster1")["metadata"]["name"] == "rs"
    assert (source_dir / "after-the-freeze.txt").read_text() == "written while the hub was restarted\n"
    assert hub.get("pvc", "data", "-n", "src", context="cluster1")["status"]["phase"] == "Bound"
    assert hub.running_agent("cluster2") is not None  # the other cluster's addon is untouched
    assert [r["NAMESPACE"] for r in table(hub, "managedclusteraddon", "-A")] == ["cluster2"]
