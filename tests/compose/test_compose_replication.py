"""docker-compose.yml for real (issue 11, Deliver 4): hub, cluster1 and cluster2 as separate containers
of the project's image under Podman, the clusters joining the hub over the compose network, and the
seed procedure's replication from cluster1 to cluster2 crossing containers: the source mover Pod in
cluster1's container reaches the LoadBalancer address (cluster2's container address) of the
destination mover's Service; the restored image equals the source tree.

Everything runs inside a network namespace of the test's own (`composekit`); kubectl talks to the
API servers through the loopback ports compose publishes. No healthchecks (Podman without systemd
runs none): every wait polls with a deadline.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from composekit import CONTEXTS, ComposeStack
from image.imagekit import BuiltImage, build_image, podman_exclusive
from support.loopnet import loopback_netns
from support.seed import (
    copy_secret,
    create_destination,
    create_pvc,
    create_source,
    latest_image,
    restore,
    status,
    volume_dir,
)
from support.trees import assert_trees_equal, make_sample_tree, mutate_sample_tree
from support.waiting import eventually

from api import images

# the first test may wait for (or run) the image build, as tests/image does
pytestmark = pytest.mark.timeout(1500)

ADDON = """apiVersion: addon.open-cluster-management.io/v1alpha1
kind: ManagedClusterAddOn
metadata: {{name: volsync, namespace: {cluster}}}
"""
JOINED = ("HubAcceptedManagedCluster", "ManagedClusterJoined", "ManagedClusterConditionAvailable")


@pytest.fixture(scope="module")
def compose_image() -> BuiltImage:
    missing = [tool for tool in ("podman", "runc", "debootstrap", "docker-compose") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run scripts/bootstrap --test")
    return build_image()


@pytest.fixture(scope="module")
def stack(compose_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    """The stack up (the engine started, `docker-compose up -d`), every kubeconfig written; down and
    cleaned up afterwards, whatever happened."""
    base = tmp_path_factory.mktemp("compose")
    with podman_exclusive(), loopback_netns("vsa-cmp") as netns:
        running = ComposeStack(netns, base)
        try:
            running.start_engine()
            running.up()
            eventually(lambda: all(p.exists() for p in running.kubeconfigs), 120, 0.5,
                       what="the three containers' kubeconfigs in the shared directory")
            yield running
        finally:
            running.down()
    assert not running.containers(), "containers left behind"


def _conditions(obj: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}


def _addon_available(stack: ComposeStack, cluster: str) -> bool:
    addon = stack.get("managedclusteraddon", "volsync", "-n", cluster, context="hub")
    return _conditions(addon).get("Available") == "True"


def _agent_starts(stack: ComposeStack, cluster: str) -> list[tuple[str, bool]]:
    """(uid.restartCount, ready) of the agent Pods of `cluster`."""
    pods = stack.get("pods", "-n", "volsync-system", context=cluster)["items"]
    return [(f"{p['metadata']['uid']}.{s.get('restartCount')}", bool(s.get("ready")))
            for p in pods for s in (p.get("status") or {}).get("containerStatuses") or []]


def test_the_compose_file_names_the_project_image() -> None:
    text = (Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text()
    assert f"image: {images.default_image()}\n" in text


def test_a_the_clusters_join_the_hub_across_containers(stack: ComposeStack) -> None:
    def joined() -> bool:
        clusters = {c["metadata"]["name"]: c for c in stack.get("managedclusters", context="hub")["items"]}
        return all(all(_conditions(clusters.get(name, {})).get(t) == "True" for t in JOINED)
                   for name in ("cluster1", "cluster2"))
    eventually(joined, 120, 0.5, what="cluster1 and cluster2 accepted, joined and available on the hub")
    for context in CONTEXTS:  # each API server answers on its published port with its own certificate
        nodes = stack.get("nodes", context=context)["items"]
        assert [n["metadata"]["name"] for n in nodes] == [f"{context}-node"]
    hub_service = stack.get("service", "volsync-hub", "-n", "volsync-system", context="hub")
    ingress = hub_service["status"]["loadBalancer"]["ingress"]
    assert ingress and not ingress[0]["ip"].startswith(("10.", "172.20.")), ingress  # the hub container's address


def test_b_the_agents_run_as_pods_and_reach_the_hub(stack: ComposeStack) -> None:
    for cluster in ("cluster1", "cluster2"):
        stack.kubectl("apply", "-f", "-", context="hub", input=ADDON.format(cluster=cluster))

    for cluster in ("cluster1", "cluster2"):
        eventually(functools.partial(_addon_available, stack, cluster), 180, 0.5, what=f"{cluster}'s addon "
                   "Available (its agent Pod heartbeating to the hub's address from its container)")
        pods = stack.get("pods", "-n", "volsync-system", context=cluster)["items"]
        assert [p["status"]["phase"] for p in pods] == ["Running"], pods
    stack.kubectl("create", "ns", "src", context="cluster1")
    stack.kubectl("create", "ns", "dest", context="cluster2")


def test_c_replication_crosses_containers(stack: ComposeStack) -> None:
    address, keys = create_destination(stack, "rd", "LoadBalancer")
    rd_service = stack.get("service", "-n", "dest", context="cluster2")["items"]
    assert [s["status"]["loadBalancer"]["ingress"][0]["ip"] for s in rd_service] == [address]
    source_dir = create_pvc(stack, "data", "src", "cluster1")
    assert source_dir.is_relative_to(stack.data / "cluster1")  # the container's volume, seen from the host
    make_sample_tree(source_dir, large_size=1 << 20)
    copy_secret(stack, keys)
    create_source(stack, "rs", "data", address, keys, "manual: one")
    eventually(lambda: status(stack, "replicationsource", "rs", "src", "cluster1")
               .get("lastManualSync") == "one", 180, 0.5, what="the first sync, cluster1 -> cluster2")
    image = latest_image(stack, "rd")
    restored = restore(stack, image, "restored")
    assert restored.is_relative_to(stack.data / "cluster2")
    assert_trees_equal(source_dir, restored)

    def reported() -> bool:  # both agents' reports reached the hub, read through its published REST port
        rows = {(r["cluster"], r["role"]): r for r in stack.rest("/api/v1/replications")}
        return {("cluster1", "source"), ("cluster2", "destination")} <= rows.keys()
    eventually(reported, 60, 0.5, what="the hub's REST API reporting the source and the destination")


def test_d_a_cluster_container_killed_and_started_again_keeps_its_state(stack: ComposeStack) -> None:
    """cluster2's container killed (SIGKILL to everything in it) and started again: its API store,
    node and volumes are in its data directory, its Pods come back, it rejoins, and the next sync
    lands on the same destination (same Service address) with the previous image kept."""
    first = latest_image(stack, "rd")
    address = status(stack, "replicationdestination", "rd", "dest", "cluster2")["rsync"]["address"]
    before = _agent_starts(stack, "cluster2")
    stack.compose("kill", "-s", "KILL", "cluster2")
    stack.compose("start", "cluster2")

    def agent_back() -> bool:  # the node found its Pod's container gone and started it again
        starts = _agent_starts(stack, "cluster2")
        return bool(starts) and starts != before and all(ready for _, ready in starts)
    eventually(agent_back, 180, 0.5, what="cluster2's agent Pod started again and ready after the restart")
    assert stack.get("volumesnapshot", first, "-n", "dest", context="cluster2")["metadata"]["name"] == first
    source_dir = volume_dir(stack, "data", "src", "cluster1")
    mutate_sample_tree(source_dir)
    stack.kubectl("patch", "replicationsource", "rs", "-n", "src", "--type=merge",
                  "-p", '{"spec":{"trigger":{"manual":"two"}}}', context="cluster1")
    eventually(lambda: status(stack, "replicationsource", "rs", "src", "cluster1")
               .get("lastManualSync") == "two", 180, 0.5, what="the second sync, to the restarted cluster2")
    assert status(stack, "replicationdestination", "rd", "dest", "cluster2")["rsync"]["address"] == address
    image = latest_image(stack, "rd", other_than=first)
    assert_trees_equal(source_dir, restore(stack, image, "restored-two"))


def test_e_the_hub_container_killed_and_started_again_adopts_the_fleet(stack: ComposeStack) -> None:
    """The hub's container killed -9 and started again (same address, same state): the clusters stay
    joined, the agents keep running (no second agent Pod), the hub reports them again, and a third
    sync runs through it."""
    agents = {cluster: _agent_starts(stack, cluster) for cluster in ("cluster1", "cluster2")}
    stack.compose("kill", "-s", "KILL", "hub")
    stack.compose("start", "hub")

    def fleet_reported() -> bool:
        clusters = {c["metadata"]["name"]: c for c in stack.get("managedclusters", context="hub")["items"]}
        joined = all(_conditions(clusters[name]).get(t) == "True" for name in ("cluster1", "cluster2") for t in JOINED)
        return joined and all(_addon_available(stack, name) for name in ("cluster1", "cluster2")) \
            and {r["name"] for r in stack.rest("/api/v1/clusters") if r["available"]} >= {"cluster1", "cluster2"}
    eventually(fleet_reported, 180, 0.5, what="the restarted hub: clusters joined, addons Available, REST up")
    assert {cluster: _agent_starts(stack, cluster) for cluster in agents} == agents  # untouched
    stack.kubectl("patch", "replicationsource", "rs", "-n", "src", "--type=merge",
                  "-p", '{"spec":{"trigger":{"manual":"three"}}}', context="cluster1")
    eventually(lambda: status(stack, "replicationsource", "rs", "src", "cluster1")
               .get("lastManualSync") == "three", 180, 0.5, what="the third sync, after the hub restarted")
