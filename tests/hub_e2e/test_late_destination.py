"""A destination that stops publishing turns `late` on the hub within the grace (issue 7, acceptance).

A real `volsync-hub` (the embedded fleet, agents as Pods applied by the work agents) with a short
`--grace-seconds`; a replication cluster1 → cluster2 set up as in the seed procedure, driven by the
README's own manual-trigger commands (run verbatim with bash, so they are verified too). Then the
destination's snapshotting breaks (its VolumeSnapshotClass is deleted, as an admin might): the source
still completes its sync and says so, the receiving sshd still takes the data, but no new image is
published. The hub pairs the two, shows the destination `late` (and the pair, once, in the summary)
and marks cluster2's addon `Degraded`/ReplicationsLate no later than the grace after the source's
sync; cluster1 stays healthy. With the class back, the image is published and all is well again.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support.apiserver import ROOT
from support.hubprocess import Hub, replication_hub, replication_rows, trigger_manual
from support.seed import copy_secret, create_destination, create_pvc, create_source, status
from support.trees import make_sample_tree
from support.waiting import eventually

pytestmark = pytest.mark.timeout(420)

GRACE = 15.0
SLACK = 10.0  # report delivery and one reconcile on a busy machine
SNAPSHOT_CLASS = """\
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: local-csi-snapclass
  annotations: {snapshot.storage.kubernetes.io/is-default-class: "true"}
driver: local.csi.volsync-addon.io
deletionPolicy: Delete
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = replication_hub(tmp_path_factory.mktemp("hub") / "run", "--grace-seconds", str(GRACE))
    yield h
    h.stop()


def readme_block(title: str) -> str:
    """The first ```sh block after the README paragraph that starts with `title`."""
    text = (ROOT / "README.md").read_text()
    after = text[text.index(f"**{title}**"):]
    found = re.search(r"```sh\n(.*?)```", after, re.S)
    assert found is not None, title
    return found.group(1)


def run_readme(hub: Hub, script: str, tmp: Path) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp), "KUBECONFIG": hub.ready["kubeconfig"]}
    res = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, env=env, timeout=180)
    assert res.returncode == 0, res.stderr
    return res.stdout


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_a_destination_that_stops_publishing_turns_late_within_the_grace(hub: Hub, tmp_path: Path) -> None:
    address, keys = create_destination(hub, "rd", "LoadBalancer")
    data = create_pvc(hub, "data", "src", "cluster1")
    make_sample_tree(data, large_size=1 << 16)
    copy_secret(hub, keys)
    create_source(hub, "rs", "data", address, keys, "manual: one")
    eventually(lambda: status(hub, "replicationsource", "rs", "src", "cluster1").get(
        "lastManualSync") == "one", 90, what="first sync")

    # The README's advice, verbatim: trigger sync-2 and wait until the destination has published it.
    def published() -> dict[str, Any] | None:
        st = status(hub, "replicationdestination", "rd", "dest", "cluster2")
        return st if st.get("latestImage") else None
    before = eventually(published, 60, what="the first image")  # (lastManualSync alone does not mean that)
    out = run_readme(hub, readme_block("Waiting for a manual sync to be published."), tmp_path)
    source = status(hub, "replicationsource", "rs", "src", "cluster1")
    dest = status(hub, "replicationdestination", "rd", "dest", "cluster2")
    assert source["lastManualSync"] == "sync-2"
    assert dest["latestImage"]["name"] != before["latestImage"]["name"]
    assert out.splitlines()[-1] == f"published {dest['latestImage']['name']}"
    # published after the source's sync began (the README's own rule; lastSyncTime may be in the same second)
    assert parse(dest["lastSyncTime"]) >= parse(source["iteration"]["startTime"]).replace(microsecond=0)
    # and exactly: the image names the source iteration it holds (the id the source sent with its signal)
    assert dest["latestImageSourceIteration"] == source["iteration"]["id"]

    def paired_ok() -> dict[tuple[str, str], dict[str, Any]] | None:
        found = replication_rows(hub)
        src, dst = found.get(("cluster1", "source")), found.get(("cluster2", "destination"))
        ok = src and dst and src["state"] == dst["state"] == "ok" and dst["lastSyncTime"] == dest["lastSyncTime"]
        return found if ok else None
    found = eventually(paired_ok, 30, what="the pair ok on the hub")
    assert found[("cluster1", "source")]["peer"] == {"cluster": "cluster2", "namespace": "dest", "name": "rd",
                                                     "role": "destination"}
    assert found[("cluster2", "destination")]["peer"]["cluster"] == "cluster1"
    summary = hub.rest("/api/v1/summary")
    assert (summary["pairs"], summary["replications"]["ok"], summary["replications"]["late"]) == (1, 1, 0)
    assert hub.addon_condition("cluster2", "Degraded")["status"] == "False"

    # The destination's snapshots now fail (no VolumeSnapshotClass): the next sync is received but never
    # published, while the source completes it and reports success.
    hub.kubectl("delete", "volumesnapshotclass", "local-csi-snapclass", context="cluster2")
    trigger_manual(hub, "three")
    eventually(lambda: status(hub, "replicationsource", "rs", "src", "cluster1").get(
        "lastManualSync") == "three", 90, what="the source's sync three")
    source = status(hub, "replicationsource", "rs", "src", "cluster1")
    assert source["latestMoverStatus"]["result"] == "Successful"
    synced = parse(source["lastSyncTime"])

    late = eventually(lambda: replication_rows(hub)[("cluster2", "destination")]["state"] == "late" or None,
                      GRACE + SLACK + 30, what="the destination late on the hub")
    assert late
    late_after = time.time() - synced.timestamp()
    eventually(lambda: hub.addon_condition("cluster2", "Degraded").get("reason") == "ReplicationsLate", 30,
               what="cluster2 Degraded")
    degraded_after = time.time() - synced.timestamp()
    print(f"late on REST {late_after:.1f}s and Degraded {degraded_after:.1f}s after the source's sync (grace {GRACE}s)")
    assert late_after <= GRACE + SLACK and degraded_after <= GRACE + SLACK
    assert late_after >= GRACE - 1  # not before the grace: the destination had that long to publish
    assert hub.addon_condition("cluster2", "Degraded")["status"] == "True"
    found = replication_rows(hub)
    assert found[("cluster1", "source")]["state"] == "ok"  # the source did its part
    message = found[("cluster2", "destination")]["stateMessage"]
    # judged by iteration ids, not by two clusters' times (sync three may begin in the second image 2 appeared)
    assert message.startswith(f"its newest image holds its source's iteration {source['iteration']['number'] - 1}, "
                              "older than its source's last completed sync"), message
    assert status(hub, "replicationdestination", "rd", "dest", "cluster2")[
        "lastSyncTime"] == dest["lastSyncTime"]  # truly still the old image
    summary = hub.rest("/api/v1/summary")
    assert (summary["pairs"], summary["replications"]["late"], summary["replications"]["ok"]) == (1, 1, 0)
    assert hub.addon_condition("cluster1", "Degraded")["status"] == "False"

    # The class is back: the pending image is published, and the hub says so.
    hub.kubectl("apply", "-f", "-", input=SNAPSHOT_CLASS, context="cluster2")
    eventually(lambda: replication_rows(hub)[("cluster2", "destination")]["state"] == "ok" or None, 90,
               what="published again")
    eventually(lambda: hub.addon_condition("cluster2", "Degraded").get("status") == "False", 30,
               what="cluster2 healthy again")
