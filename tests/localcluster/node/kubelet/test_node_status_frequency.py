"""The Lease is the heartbeat: the Node's status is written only when it changed or every 5 minutes
(kubelet's nodeStatusReportFrequency), and then the Ready condition's lastHeartbeatTime moves."""

from __future__ import annotations

import uuid
from pathlib import Path

from support.apiserver import ApiServer

from kube.clock import FakeClock
from kube.rest import LEASES, NODES, Kube
from localcluster.node.noderegistry import LEASE_NAMESPACE, NodeRegistry


def _ready_heartbeat(kube: Kube, name: str) -> tuple[str, str]:
    node = kube.get(NODES, name) or {}
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    return node["metadata"]["resourceVersion"], ready["lastHeartbeatTime"]


def test_heartbeat_renews_the_lease_and_writes_the_node_only_on_change_or_after_5_minutes(
        apiserver: ApiServer, tmp_path: Path) -> None:
    kube = Kube(apiserver.api_client("cluster1"), field_manager="kubelet")
    clock = FakeClock()
    name = f"node-{uuid.uuid4().hex[:6]}"
    registry = NodeRegistry(kube, name, tmp_path, "10.1.127.254", clock)
    try:
        registry.register()
        first = _ready_heartbeat(kube, name)
        lease = (kube.get(LEASES, name, LEASE_NAMESPACE) or {})["spec"]["renewTime"]
        clock.advance(10)
        registry.heartbeat()
        assert (kube.get(LEASES, name, LEASE_NAMESPACE) or {})["spec"]["renewTime"] != lease
        assert _ready_heartbeat(kube, name) == first  # nothing changed: the Node is not rewritten
        clock.advance(300)
        registry.heartbeat()
        later = _ready_heartbeat(kube, name)
        assert later[0] != first[0] and later[1] != first[1]
        clock.advance(10)
        registry.capacity = {**registry.capacity, "pods": "111"}
        registry.heartbeat()
        changed = kube.get(NODES, name) or {}
        assert changed["status"]["capacity"]["pods"] == "111"
        ready = next(c for c in changed["status"]["conditions"] if c["type"] == "Ready")
        assert ready["lastTransitionTime"] != ready["lastHeartbeatTime"]  # still Ready since the start
    finally:
        kube.delete(NODES, name)
