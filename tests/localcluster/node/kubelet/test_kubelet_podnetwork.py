"""The kubelet on the real Pod network (`localcluster.network`): two Pods get their own addresses
on the fabric, one serves TCP, the other reaches it by Pod IP, and a tcpSocket readiness probe
dials the server inside its own namespace. The fabric is the test's own and removed afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubeletenv import KubeletEnv
from support.apiserver import ApiServer
from support.waiting import eventually

from kube.controller import Runtime
from kube.rest import NAMESPACES, Kube
from localcluster.network import fabric as fabric_mod
from localcluster.network.addressing import ClusterNet, fabric_name
from localcluster.network.fabric import Fabric
from localcluster.network.podnet import PodNetwork
from localcluster.node.kubelet import Node


@pytest.fixture
def routed_kubelet(apiserver: ApiServer, tmp_path: Path) -> Iterator[KubeletEnv]:
    fab = Fabric(fabric_name(f"test-{uuid.uuid4()}"))
    kube = Kube(apiserver.api_client("cluster1"), field_manager="kubelet")
    suffix = uuid.uuid4().hex[:6]
    namespace, node_name = f"kln-{suffix}", f"node-{suffix}"
    kube.create(NAMESPACES, {"metadata": {"name": namespace}})
    runtime = Runtime(kube)
    network = PodNetwork(fab.ensure(), ClusterNet(7), tmp_path / "net")
    node = Node(runtime, kube, name=node_name, state_dir=tmp_path / "node", network=network)
    env = KubeletEnv(apiserver, kube, namespace, node_name, tmp_path / "node", None, runtime, node)  # type: ignore[arg-type]
    try:
        node.start()
        runtime.start()
        yield env
    finally:
        runtime.stop()
        node.stop(kill_pods=True)
        fab.remove()
        fabric_mod.lock_path(fab.name).unlink(missing_ok=True)
        kube.delete(NAMESPACES, namespace)


def test_pods_reach_each_other_on_the_routed_network(routed_kubelet: KubeletEnv) -> None:
    env = routed_kubelet
    env.pod("server", "", restart="Always", containers=[{
        "name": "main", "image": "busybox", "command": ["sh", "-c", "while true; do echo pong | nc -l -p 7000; done"],
        "ports": [{"name": "pong", "containerPort": 7000}],
        "readinessProbe": {"tcpSocket": {"port": "pong"}, "periodSeconds": 1}}])

    def ready() -> dict[str, Any] | None:
        pod = env.get("server")
        conds = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}
        return pod if conds.get("Ready") == "True" else None

    server = eventually(ready, timeout=40, interval=0.2, what="server Ready by its tcpSocket probe")
    ip = server["status"]["podIP"]
    assert ip.startswith("10.7.") and server["status"]["hostIP"] == "10.7.127.254"
    env.pod("client", f"nc -w 5 {ip} 7000")
    client = env.wait_phase("client", "Succeeded")
    assert client["status"]["podIP"] != ip
    assert env.log(client) == "pong\n"
