"""The in-process controller harness: real API server, real movers, an injected clock, no workers.

The controller runs in the test process with a `FakeClock` and no worker threads: the test steps
it (`drain`), so "nothing happened" is asserted after a deterministic reconcile, not after a
sleep, and hours of schedule pass in microseconds. Source and destination share one cluster (two
namespaces).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.kinds import REPLICATION_DESTINATIONS, REPLICATION_SOURCES
from agent.localplatform import LocalPlatform
from agent.reconciling import ReplicationController
from kube.clock import FakeClock
from kube.controller import Runtime
from kube.rest import PVCS, SECRETS, Kube
from localcluster.storage.driver import StorageDriver
from support.apiserver import ApiServer
from support.waiting import eventually

POOL = "127.93.7.0/24"
FIRST_ADDRESS = "127.93.7.1"

T0 = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)


@contextmanager
def cluster_storage(kube: Kube, root: Path) -> Iterator[StorageDriver]:
    """The cluster's storage as its cluster process runs it: a StorageDriver on a Runtime of its own
    (real time: provisioning is the cluster's, not the agent's), its pool released at the end."""
    runtime = Runtime(kube)
    driver = StorageDriver(runtime, kube, root, node_name="cluster1-node")
    try:
        driver.start()
        runtime.start()
        yield driver
    finally:
        runtime.stop()
        driver.stop(release=True)


@dataclass
class Harness:
    server: ApiServer
    kube: Kube
    clock: FakeClock
    controller: ReplicationController
    platform: LocalPlatform

    def drain(self) -> None:
        """Reconcile every key that is due now (no waiting for delayed ones)."""
        while True:
            key = self.controller.queue.get(timeout=0.01)
            if key is None:
                return
            self.controller.run_one(key)

    def status(self, kind: str, ns: str, name: str) -> dict[str, Any]:
        res = REPLICATION_SOURCES if kind == "rs" else REPLICATION_DESTINATIONS
        obj = self.kube.get(res, name, ns) or {}
        st: dict[str, Any] = obj.get("status") or {}
        return st

    def until(self, fn: Any, what: str, timeout: float = 30.0) -> Any:
        def step() -> Any:
            self.drain()
            return fn()
        return eventually(step, timeout, what=what)

    def fresh_cache(self, kind: str, ns: str, name: str) -> None:
        """Wait until the controller's informer has caught up with the server's copy."""
        res = REPLICATION_SOURCES if kind == "rs" else REPLICATION_DESTINATIONS
        want = (self.kube.get(res, name, ns) or {})["metadata"]["resourceVersion"]
        inf = self.controller.informers[res.plural]
        eventually(lambda: (inf.get(ns, name) or {}).get("metadata", {}).get("resourceVersion") == want, 10,
                   what="informer caught up")


def setup_pair(h: Harness, trigger: dict[str, Any], *, paused: bool = False) -> None:
    for ns in ("src", "dest"):
        h.server.kubectl("create", "ns", ns, context="cluster1")
    h.kube.create(REPLICATION_DESTINATIONS, {"metadata": {"name": "rd", "namespace": "dest"}, "spec": {"rsync": {
        "copyMethod": "Snapshot", "capacity": "1Gi", "accessModes": ["ReadWriteOnce"]}}})
    rd = h.until(lambda: (lambda s: s if s.get("address") and s.get("sshKeys") else None)(
        h.status("rd", "dest", "rd").get("rsync") or {}), "RD address and keys")
    secret = h.kube.get(SECRETS, rd["sshKeys"], "dest")
    assert secret is not None
    h.kube.create(SECRETS, {"metadata": {"name": rd["sshKeys"], "namespace": "src"}, "data": secret["data"]})
    h.kube.create(PVCS, {"metadata": {"name": "data", "namespace": "src"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    h.kube.create(REPLICATION_SOURCES, {"metadata": {"name": "rs", "namespace": "src"}, "spec": {
        "sourcePVC": "data", "trigger": trigger, "paused": paused,
        "rsync": {"address": rd["address"], "sshKeys": rd["sshKeys"], "copyMethod": "Snapshot"}}})
