"""Other copy methods, agent restarts, and what the agent exposes (events, metrics).

- Source `Clone` and `Direct`, destination `Direct` (latestImage is the receiving PVC itself);
  the receiving PVC is reused across iterations (same UID), so only deltas move.
- An agent killed with SIGKILL and started again resumes: its stale sshd is replaced, the next
  manual sync completes, nothing is lost.
- `/metrics` carries VolSync's metric names and labels; Events show TransferStarted.
"""

from __future__ import annotations

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
    status,
    template,
    volume_dir,
)
from support.trees import assert_trees_equal, make_sample_tree, mutate_sample_tree
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
    rd, rs, pvc = "rd-restart", "rs-restart", "data-restart"
    address, keys = create_destination(fleet, rd, "LoadBalancer")
    source_dir = create_pvc(fleet, pvc, "src", "cluster1")
    make_sample_tree(source_dir, large_size=1 << 20)
    copy_secret(fleet, keys)
    create_source(fleet, rs, pvc, address, keys, "manual: one")
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
