"""The node's own API objects: the `Node` (labels, capacity, addresses, `Ready` heartbeat) and its
`Lease` in `kube-node-lease`, renewed every 10 s as kubelet does (the Lease is the heartbeat).

`NodeRegistry.register()` creates the Node (or takes over the one left by a previous process of
the same name) and writes its whole status; `heartbeat()` renews the Lease and rewrites the status
(moving `lastHeartbeatTime`) only when it changed or every 5 minutes. Capacity comes from the host
(cpu count, MemTotal, the state directory's filesystem), `pods` is 110 as kubelet's default.
"""

from __future__ import annotations

import os
import platform
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from kube.clock import Clock, parse_rfc3339, rfc3339
from kube.rest import LEASES, NAMESPACES, NODES, Kube

LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40
HEARTBEAT_SECONDS = 10.0
REPORT_SECONDS = 300.0  # the Node's status is rewritten at least this often, else only on a change
KUBELET_VERSION = "v1.32.0-localcluster"
Obj = dict[str, Any]


def host_capacity(state_dir: Path) -> dict[str, str]:
    """cpu, memory, ephemeral-storage and pods of this host, as Kubernetes quantities."""
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    disk = shutil.disk_usage(state_dir if state_dir.exists() else state_dir.parent)
    return {"cpu": str(os.cpu_count() or 1), "memory": f"{mem_kib}Ki",
            "ephemeral-storage": f"{disk.total // 1024}Ki", "pods": "110"}


def arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


class NodeRegistry:
    """Writes the Node object and its Lease (see the module docstring)."""

    def __init__(self, kube: Kube, name: str, state_dir: Path, host_ip: str, clock: Clock) -> None:
        self.kube = kube
        self.name = name
        self.state_dir = state_dir
        self.host_ip = host_ip
        self.clock = clock
        self.kubelet_port = 0
        self.capacity = host_capacity(state_dir)

    def node_object(self) -> Obj:
        return {"metadata": {"name": self.name, "labels": {
            "kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch(),
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch()}},
            "spec": {}}

    def status(self, now: datetime, since: str | None) -> Obj:
        stamp = rfc3339(now)
        ready = {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "kubelet is posting ready status", "lastHeartbeatTime": stamp,
                 "lastTransitionTime": since or stamp}
        pressure = [{"type": t, "status": "False", "reason": f"KubeletHas{r}", "message": f"kubelet has {m}",
                     "lastHeartbeatTime": stamp, "lastTransitionTime": since or stamp}
                    for t, r, m in (("MemoryPressure", "SufficientMemory", "sufficient memory available"),
                                    ("DiskPressure", "NoDiskPressure", "no disk pressure"),
                                    ("PIDPressure", "SufficientPID", "sufficient PID available"))]
        uname = platform.uname()
        return {
            "capacity": self.capacity, "allocatable": self.capacity,
            "conditions": [*pressure, ready],
            "addresses": [{"type": "InternalIP", "address": self.host_ip}, {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {"machineID": _machine_id(), "systemUUID": _machine_id(), "bootID": _boot_id(),
                         "kernelVersion": uname.release, "osImage": "localcluster (bubblewrap sandboxes)",
                         "containerRuntimeVersion": "local://0.1", "kubeletVersion": KUBELET_VERSION,
                         "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": arch()},
        }

    def register(self) -> None:
        """Create or adopt the Node, then write its status and the Lease."""
        existing = self.kube.get(NODES, self.name)
        if existing is None:
            try:
                existing = self.kube.create(NODES, self.node_object())
            except ApiException as exc:
                if exc.status != 409:
                    raise
                existing = self.kube.get(NODES, self.name) or {}
        else:
            self.kube.patch(NODES, self.name, {"metadata": self.node_object()["metadata"]})
        self.kube.patch_status(NODES, self.name, self.status(self.clock.now(), None))
        self.heartbeat()

    def heartbeat(self) -> None:
        """Renew the Lease (the heartbeat); write the Node's status only when it changed or its Ready
        heartbeat is `REPORT_SECONDS` old (kubelet's nodeStatusReportFrequency). Decided from the
        Node as the API server has it, so a restarted kubelet behaves the same."""
        now = self.clock.now()
        node = self.kube.get(NODES, self.name) or {}
        current = node.get("status") or {}
        ready: Obj = next((c for c in current.get("conditions") or [] if c.get("type") == "Ready"), {})
        since = ready.get("lastTransitionTime") if ready.get("status") == "True" else None
        desired = self.status(now, since)
        beat = parse_rfc3339(ready.get("lastHeartbeatTime"))
        stale = beat is None or (now - beat).total_seconds() >= REPORT_SECONDS
        if stale or _without_heartbeats(desired) != _without_heartbeats(current):
            self.kube.patch_status(NODES, self.name, desired)
        self._renew_lease(now)

    def _renew_lease(self, now: datetime) -> None:
        micro = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": micro}
        if self.kube.get(LEASES, self.name, LEASE_NAMESPACE) is not None:
            self.kube.patch(LEASES, self.name, {"spec": spec}, LEASE_NAMESPACE)
            return
        node = self.kube.get(NODES, self.name) or {}
        owner = [{"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": node["metadata"]["uid"]}] \
            if node.get("metadata", {}).get("uid") else []
        body = {"metadata": {"name": self.name, "namespace": LEASE_NAMESPACE, "ownerReferences": owner}, "spec": spec}
        try:
            self.kube.create(LEASES, body)
        except ApiException as exc:
            if exc.status == 404:  # no kube-node-lease namespace yet
                self.kube.create(NAMESPACES, {"metadata": {"name": LEASE_NAMESPACE}})
                self.kube.create(LEASES, body)
            elif exc.status != 409:
                raise


def _without_heartbeats(status: Obj) -> Obj:
    """The status fields a heartbeat does not move (for the change check)."""
    keys = ("capacity", "allocatable", "addresses", "daemonEndpoints", "nodeInfo")
    conditions = sorted(({k: v for k, v in c.items() if k != "lastHeartbeatTime"}
                         for c in status.get("conditions") or []), key=lambda c: str(c.get("type")))
    return {**{k: status.get(k) for k in keys}, "conditions": conditions}


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip().replace("-", "")
    except OSError:
        return ""


def _machine_id() -> str:
    return _read("/etc/machine-id")


def _boot_id() -> str:
    return _read("/proc/sys/kernel/random/boot_id")
