"""Helpers of the kubelet tests: `KubeletEnv`, one Node on cluster1 of the shared API server with
the real container runtime and a `LoopbackPodNetwork`, in a namespace of the test's own."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.apiserver import ApiServer
from support.loopnet import LoopbackPodNetwork
from support.waiting import eventually

from kube.controller import Runtime
from kube.rest import EVENTS, PODS, Kube
from localcluster.node.kubelet import Node
from localcluster.node.layout import NodeLayout


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
            "metadata": {"name": name, "namespace": self.namespace, "labels": {"app": name}},
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

        try:
            return eventually(reached, timeout=timeout, interval=0.2, what=f"pod {name} {phase}")
        except AssertionError as exc:
            events, _ = self.kube.list(EVENTS, self.namespace)
            seen = [f"{e.get('reason')}: {e.get('message')}" for e in events
                    if (e.get("involvedObject") or {}).get("name") == name]
            raise AssertionError(f"{exc}\nstatus: {self.get(name).get('status')}\nevents: {seen}") from None

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


def uids_on_disk(layout: NodeLayout) -> list[str]:
    return [p.name for p in layout.pods_dir.iterdir()] if layout.pods_dir.exists() else []
