"""Network namespaces for node tests, with nothing added to the host namespace: `loopback_netns`
(one namespace, only its loopback up) and `LoopbackPodNetwork` (a small real PodNetwork: `ip netns
add` per Pod, the Pod's address on that loopback; no veth; deterministic per Pod uid and `prefix`,
so a second kubelet process (adoption tests) finds the same namespaces)."""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from localcluster.node.netseam import PodAttachment


@contextmanager
def loopback_netns(prefix: str) -> Iterator[str]:
    """A fresh network namespace `/run/netns/<prefix>-<random>` with only its loopback up, deleted after."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


class LoopbackPodNetwork:
    """PodNetwork for tests: `ip netns add` per Pod, its IP on the namespace's own loopback."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix or f"lckt{uuid.uuid4().hex[:6]}"
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
