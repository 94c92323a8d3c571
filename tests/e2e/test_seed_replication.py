"""The user's procedure (seed sections 2 and 3) end to end with kubectl, two clusters, real movers.

cluster2 runs the ReplicationDestination, cluster1 the ReplicationSource; each cluster has its own
agent process. Data moves with real rsync over a real sshd in mover Jobs on the clusters' nodes,
to the destination Service's address, and comes back as a PVC restored from `latestImage`, equal
to the source in every detail the sample tree exercises (contents, modes, ownership, symlinks,
hardlinks, ACLs, sparse files, empty directories, names with spaces and non-ASCII characters).
"""

from __future__ import annotations

import ipaddress

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
)
from support.trees import assert_trees_equal, make_sample_tree, mutate_sample_tree, snapshot_tree
from support.waiting import eventually

pytestmark = pytest.mark.timeout(300)



@pytest.mark.parametrize("service_type", ["LoadBalancer", "ClusterIP"])
def test_seed_procedure_replicates_and_restores(fleet: Fleet, service_type: str) -> None:
    suffix = service_type.lower()
    rd, rs, pvc = f"rd-{suffix}", f"rs-{suffix}", f"data-{suffix}"
    address, keys = create_destination(fleet, rd, service_type)
    # the cluster's own addresses: its "cloud" load balancer's pool, or its Service range
    network = "172.20.0.0/16" if service_type == "LoadBalancer" else "10.0.0.0/8"
    assert ipaddress.ip_address(address) in ipaddress.ip_network(network), address
    assert keys == f"volsync-rsync-dst-src-{rd}"

    source_dir = create_pvc(fleet, pvc, "src", "cluster1")
    make_sample_tree(source_dir, large_size=4 << 20)
    expected = snapshot_tree(source_dir)

    copy_secret(fleet, keys)
    create_source(fleet, rs, pvc, address, keys, 'schedule: "*/3 * * * *"')

    done = eventually(lambda: status(fleet, "replicationsource", rs, "src", "cluster1").get("lastSyncTime"), 90,
                      what="first sync of the source")
    assert done
    described = fleet.kubectl("describe", "replicationsource", "-n", "src", rs, context="cluster1").stdout
    for text in ("Synchronizing", "Last Sync Time", "Last Sync Duration", "Next Sync Time"):
        assert text in described, described
    rs_status = status(fleet, "replicationsource", rs, "src", "cluster1")
    assert rs_status["latestMoverStatus"]["result"] == "Successful"
    assert "sent" in rs_status["latestMoverStatus"].get("logs", "")

    image = eventually(lambda: template(fleet, "replicationdestination", rd, "dest", "{{.status.latestImage.name}}",
                                        "cluster2"), 60, what="latestImage")
    rd_status = status(fleet, "replicationdestination", rd, "dest", "cluster2")
    assert rd_status["latestImage"]["kind"] == "VolumeSnapshot"
    restored = restore(fleet, image, f"restored-{suffix}")
    assert_trees_equal(expected, restored)


def test_manual_trigger_publishes_new_images_and_removes_old_ones(fleet: Fleet) -> None:
    rd, rs = "rd-manual", "rs-manual"
    source_dir = seeded_pair(fleet, "manual", "manual: first")

    eventually(lambda: status(fleet, "replicationsource", rs, "src", "cluster1").get("lastManualSync") == "first",
               90, what="lastManualSync first")
    first = latest_image(fleet, rd)
    restored = restore(fleet, first, "restored-first")
    assert_trees_equal(source_dir, restored)

    mutate_sample_tree(source_dir)
    expected = snapshot_tree(source_dir)
    fleet.kubectl("patch", "replicationsource", rs, "-n", "src", "--type=merge",
                  "-p", '{"spec":{"trigger":{"manual":"second"}}}', context="cluster1")
    eventually(lambda: status(fleet, "replicationsource", rs, "src", "cluster1").get("lastManualSync") == "second",
               90, what="lastManualSync second")
    second = latest_image(fleet, rd, other_than=first)
    eventually(lambda: fleet.kubectl("get", "volumesnapshot", first, "-n", "dest", context="cluster2",
                                     check=False).returncode != 0, 30, what="first snapshot deleted")
    restored2 = restore(fleet, second, "restored-second")
    assert_trees_equal(expected, restored2)
