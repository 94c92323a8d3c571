"""Other copy methods, agent restarts, and what the agent exposes (events, metrics).

- Source `Clone` and `Direct`, destination `Direct` (latestImage is the receiving PVC itself);
  the receiving PVC is reused across iterations (same UID), so only deltas move.
- An agent killed with SIGKILL and started again resumes: the next manual sync completes, nothing
  is lost; mover Pods deleted and agents killed in the middle of an iteration never publish a
  partial copy, and the iteration completes.
- `/metrics` carries VolSync's metric names and labels; Events show TransferStarted.
"""

from __future__ import annotations

import os
import signal

import httpx
import pytest
from support.agents import Fleet
from support.seed import (
    copy_secret,
    create_destination,
    create_pvc,
    create_source,
    latest_image,
    restore,
    seeded_pair,
    status,
    template,
    volume_dir,
)
from support.trees import assert_trees_equal, make_sample_tree, mutate_sample_tree, snapshot_tree
from support.waiting import eventually

pytestmark = pytest.mark.timeout(300)




def synced(fleet: Fleet, rs: str, value: str) -> bool:
    return bool(status(fleet, "replicationsource", rs, "src", "cluster1").get("lastManualSync") == value)


@pytest.mark.parametrize("source_method", ["Clone", "Direct"])
def test_direct_destination_reuses_its_pvc(fleet: Fleet, source_method: str) -> None:
    rd, rs, pvc = f"rd-{source_method.lower()}", f"rs-{source_method.lower()}", f"data-{source_method.lower()}"
    address, keys = create_destination(fleet, rd, "ClusterIP", copy_method="Direct")
    source_dir = create_pvc(fleet, pvc, "src", "cluster1")
    make_sample_tree(source_dir, large_size=1 << 20)
    copy_secret(fleet, keys)
    create_source(fleet, rs, pvc, address, keys, "manual: one", copy_method=source_method)
    eventually(lambda: synced(fleet, rs, "one"), 90, what="first sync")

    image = latest_image(fleet, rd)
    assert image == f"volsync-{rd}-dst"
    rd_status = status(fleet, "replicationdestination", rd, "dest", "cluster2")
    assert rd_status["latestImage"] == {"apiGroup": "", "kind": "PersistentVolumeClaim", "name": image}
    uid = template(fleet, "pvc", image, "dest", "{{.metadata.uid}}", "cluster2")
    assert_trees_equal(source_dir, volume_dir(fleet, image, "dest", "cluster2"))
    # the point-in-time clone is gone once the iteration is over
    if source_method == "Clone":
        eventually(lambda: fleet.kubectl("get", "pvc", f"volsync-{rs}-src", "-n", "src", context="cluster1",
                                         check=False).returncode != 0, 30, what="clone cleaned up")

    mutate_sample_tree(source_dir)
    fleet.kubectl("patch", "replicationsource", rs, "-n", "src", "--type=merge",
                  "-p", '{"spec":{"trigger":{"manual":"two"}}}', context="cluster1")
    eventually(lambda: synced(fleet, rs, "two"), 90, what="second sync")
    assert template(fleet, "pvc", image, "dest", "{{.metadata.uid}}", "cluster2") == uid
    eventually(lambda: assert_trees_equal(source_dir, volume_dir(fleet, image, "dest", "cluster2")) is None,
               30, what="destination equals the changed source")


def test_killed_agents_resume_and_metrics_are_exposed(fleet: Fleet) -> None:
    rd, rs = "rd-restart", "rs-restart"
    source_dir = seeded_pair(fleet, "restart", "manual: one")
    eventually(lambda: synced(fleet, rs, "one"), 90, what="first sync")
    first = latest_image(fleet, rd)

    for cluster in ("cluster2", "cluster1"):
        fleet.agents[cluster].stop(signal.SIGKILL)
        fleet.agents[cluster].start()
    mutate_sample_tree(source_dir)
    fleet.kubectl("patch", "replicationsource", rs, "-n", "src", "--type=merge",
                  "-p", '{"spec":{"trigger":{"manual":"two"}}}', context="cluster1")
    eventually(lambda: synced(fleet, rs, "two"), 120, what="sync after the agents restarted")
    assert latest_image(fleet, rd, other_than=first)

    metrics = httpx.get(fleet.agents["cluster1"].ready["metrics"], timeout=10).text
    labels = 'method="rsync",obj_name="rs-restart",obj_namespace="src",role="source"'
    assert f"volsync_sync_duration_seconds_count{{{labels}}}" in metrics
    assert f"volsync_volume_out_of_sync{{{labels}}} 0.0" in metrics
    assert "volsync_missed_intervals_total" in metrics or "# TYPE volsync_missed_intervals counter" in metrics
    assert 'result="success"' in metrics

    events = fleet.kubectl("get", "events", "-n", "src", "--field-selector", f"involvedObject.name={rs}",
                           context="cluster1").stdout
    assert "TransferStarted" in events


def test_destination_without_capacity_reports_an_error(fleet: Fleet) -> None:
    manifest = """\
apiVersion: volsync.backube/v1alpha1
kind: ReplicationDestination
metadata: {name: rd-bad, namespace: dest}
spec:
  rsync:
    copyMethod: Snapshot
"""
    fleet.kubectl("create", "-f", "-", context="cluster2", input=manifest)

    def error() -> str:
        conditions = status(fleet, "replicationdestination", "rd-bad", "dest", "cluster2").get("conditions") or []
        return next((c["message"] for c in conditions if c.get("reason") == "Error"), "")
    message = eventually(error, 30, what="Error condition")
    assert "capacity" in message and "accessModes" in message
    described = fleet.kubectl("describe", "replicationdestination", "rd-bad", "-n", "dest", context="cluster2").stdout
    assert "Error" in described


def _running_pod(fleet: Fleet, selector: str, ns: str, context: str) -> str:
    """The name of the Running mover Pod matching `selector`, or "" while there is none."""
    pods = fleet.get("pods", "-n", ns, "-l", selector, context=context)["items"]
    return next((p["metadata"]["name"] for p in pods if p.get("status", {}).get("phase") == "Running"), "")


def test_movers_and_agents_killed_mid_iteration_never_publish_a_partial_copy(fleet: Fleet) -> None:
    """During one iteration: the destination's mover Pod is deleted while the source's is pushing, and
    both agents are killed with SIGKILL and restarted. The Jobs replace their Pods (the source's rsync
    retries), the restarted agents find the Jobs of the running iteration, and the one image the
    iteration publishes is the whole tree (an image is published only after the destination's Job
    succeeded, i.e. after the source's completion signal)."""
    rd, rs = "rd-faults", "rs-faults"
    source_dir = seeded_pair(fleet, "faults", "manual: one", large_size=64 << 20)
    eventually(lambda: synced(fleet, rs, "one"), 90, what="first sync")
    first = latest_image(fleet, rd)
    completed = status(fleet, "replicationsource", rs, "src", "cluster1")["iteration"]["completed"]

    mutate_sample_tree(source_dir)
    (source_dir / "large.bin").write_bytes(os.urandom(64 << 20))  # a transfer that takes a moment
    expected = snapshot_tree(source_dir)
    fleet.kubectl("patch", "replicationsource", rs, "-n", "src", "--type=merge",
                  "-p", '{"spec":{"trigger":{"manual":"two"}}}', context="cluster1")
    eventually(lambda: _running_pod(fleet, f"app.kubernetes.io/name=src-{rs}", "src", "cluster1"), 60,
               what="the source mover Pod running")
    receiving = _running_pod(fleet, f"app.kubernetes.io/name=dst-{rd}", "dest", "cluster2")
    assert receiving, fleet.kubectl("get", "jobs,pods", "-n", "dest", context="cluster2").stdout
    fleet.kubectl("delete", "pod", receiving, "-n", "dest", "--wait=false", context="cluster2")
    for cluster in ("cluster2", "cluster1"):
        fleet.agents[cluster].stop(signal.SIGKILL)
    for cluster in ("cluster2", "cluster1"):
        fleet.agents[cluster].start()

    eventually(lambda: synced(fleet, rs, "two"), 180, what="the interrupted iteration completing")
    after = status(fleet, "replicationsource", rs, "src", "cluster1")
    assert after["iteration"]["completed"] == completed + 1 and after["latestMoverStatus"]["result"] == "Successful"
    image = latest_image(fleet, rd, other_than=first)
    assert_trees_equal(expected, restore(fleet, image, "restored-faults"))
