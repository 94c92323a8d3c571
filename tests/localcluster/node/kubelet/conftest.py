"""Fixtures for the kubelet tests: a real API server, a real container runtime, and a small real
Pod network of the test's own (one named netns per Pod, loopback up with the Pod's address on it:
no veth, nothing added to the host namespace), removed afterwards, also on failure."""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.apiserver import ApiServer
from support.waiting import eventually

from kube.controller import Runtime
from kube.rest import NAMESPACES, PODS, Kube
from localcluster.node.kubelet import Node
from localcluster.node.layout import NodeLayout
from localcluster.node.podnet import PodAttachment


class LoopbackPodNetwork:
    """PodNetwork for tests: `ip netns add` per Pod, its IP on the namespace's own loopback."""

    def __init__(self) -> None:
        self.prefix = f"lckt{uuid.uuid4().hex[:6]}"
        self.made: set[str] = set()

    def _name(self, uid: str) -> str:
        return f"{self.prefix}-{uid[:8]}"

    def attach(self, pod_uid: str) -> PodAttachment:
        name = self._name(pod_uid)
        digest = hashlib.sha256(pod_uid.encode()).digest()
        ip = f"10.250.{digest[0]}.{digest[1] % 250 + 2}"
        if not Path(f"/run/netns/{name}").exists():
            subprocess.run(["ip", "netns", "add", name], check=True)
            self.made.add(name)
            subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
            subprocess.run(["ip", "-n", name, "addr", "add", f"{ip}/32", "dev", "lo"], check=True)
        return PodAttachment(f"/run/netns/{name}", ip)

    def detach(self, pod_uid: str) -> None:
        name = self._name(pod_uid)
        if Path(f"/run/netns/{name}").exists():
            subprocess.run(["ip", "netns", "delete", name], check=True)
        self.made.discard(name)

    def host_ip(self) -> str:
        return "10.250.255.254"

    def cleanup(self) -> None:
        for entry in Path("/run/netns").glob(f"{self.prefix}-*"):
            subprocess.run(["ip", "netns", "delete", entry.name], check=False)


@dataclass
class KubeletEnv:
    """One Node on cluster1 of the shared API server, in a namespace of the test's own."""

    server: ApiServer
    kube: Kube
    namespace: str
    node_name: str
    state_dir: Path
    network: LoopbackPodNetwork
    runtime: Runtime
    node: Node
    extra: list[tuple[Runtime, Node]] = field(default_factory=list)

    def pod(self, name: str, script: str, *, restart: str = "Never", node: bool = True, **spec: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"restartPolicy": restart, "containers": [
                {"name": "main", "image": "busybox", "command": ["sh", "-c", script]}], **spec},
        }
        if node:
            body["spec"]["nodeName"] = self.node_name
        return self.kube.create(PODS, body)

    def get(self, name: str) -> dict[str, Any]:
        pod = self.kube.get(PODS, name, self.namespace)
        assert pod is not None
        return pod

    def wait_phase(self, name: str, phase: str, timeout: float = 60.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            pod = self.get(name)
            return pod if (pod.get("status") or {}).get("phase") == phase else None

        return eventually(reached, timeout=timeout, interval=0.2, what=f"pod {name} {phase}")

    def log(self, pod: dict[str, Any], container: str = "main", attempt: int = 0) -> str:
        path = NodeLayout(self.state_dir).log_path(pod["metadata"]["uid"], container, attempt)
        return "".join(line.split(" ", 3)[3] + "\n" for line in path.read_text().splitlines() if line.count(" ") >= 3)

    def start_node(self) -> tuple[Runtime, Node]:
        """A further kubelet process-equivalent for the same node (adoption tests)."""
        runtime = Runtime(self.kube)
        node = Node(runtime, self.kube, name=self.node_name, state_dir=self.state_dir, network=self.network)
        node.start()
        runtime.start()
        self.extra.append((runtime, node))
        return runtime, node


@pytest.fixture
def kubelet(apiserver: ApiServer, tmp_path: Path) -> Iterator[KubeletEnv]:
    kube = Kube(apiserver.api_client("cluster1"), field_manager="kubelet")
    suffix = uuid.uuid4().hex[:6]
    namespace, node_name = f"kl-{suffix}", f"node-{suffix}"
    kube.create(NAMESPACES, {"metadata": {"name": namespace}})
    network = LoopbackPodNetwork()
    runtime = Runtime(kube)
    state = tmp_path / "node"
    node = Node(runtime, kube, name=node_name, state_dir=state, network=network)
    env = KubeletEnv(apiserver, kube, namespace, node_name, state, network, runtime, node)
    try:
        node.start()
        runtime.start()
        yield env
    finally:
        for rt, nd in [(runtime, node), *env.extra]:
            rt.stop()
            nd.stop(kill_pods=True)
        layout = NodeLayout(state)
        eventually(lambda: not any(r.running for uid in _uids(layout) for r in node.containers.containers(uid)),
                   timeout=20, what="every container of the test ended")
        network.cleanup()
        kube.delete(NAMESPACES, namespace)


def _uids(layout: NodeLayout) -> list[str]:
    return [p.name for p in layout.pods_dir.iterdir()] if layout.pods_dir.exists() else []
