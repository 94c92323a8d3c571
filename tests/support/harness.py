"""The in-process controller harness: real API server and cluster, mover Jobs, an injected clock, no workers.

The controller runs in the test process with a `FakeClock` and no worker threads: the test steps
it (`drain`), so "nothing happened" is asserted after a deterministic reconcile, not after a
sleep, and hours of schedule pass in microseconds. The cluster is a real embedded one (its node
runs the mover Jobs, its storage the PVCs and snapshots: real time); one cluster serves many
harnesses, each with namespaces of its own (`src`, `dst`); source and destination share the cluster.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from agent.destination import ServerView
from agent.kinds import REPLICATION_DESTINATIONS, REPLICATION_SOURCES
from agent.reconciling import ReplicationController
from agent.reporting import Reporter
from agent.source import TransferView
from api.images import default_image
from kube import clients
from kube.clock import FakeClock
from kube.rest import NAMESPACES, PVCS, SECRETS, Kube
from support.apiserver import ApiServer
from support.fleet import LocalFleet
from support.waiting import eventually

T0 = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)


@dataclass
class Harness:
    server: ApiServer
    kube: Kube
    clock: FakeClock
    controller: ReplicationController
    src: str  # the source's namespace
    dst: str  # the destination's namespace
    cleanups: list[Callable[[], None]] = field(default_factory=list)  # run at the end, last first

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

    def until(self, fn: Any, what: str, timeout: float = 60.0) -> Any:
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

    def transfer(self, name: str = "rs") -> TransferView | None:
        """The source mover Job of ReplicationSource `name`, as the planner sees it."""
        rs = self.kube.get(REPLICATION_SOURCES, name, self.src)
        return None if rs is None else self.controller.movers.transfer(rs)

    def receiver(self, name: str = "rd") -> ServerView | None:
        """The destination mover Job of ReplicationDestination `name`, as the planner sees it."""
        rd = self.kube.get(REPLICATION_DESTINATIONS, name, self.dst)
        return None if rd is None else self.controller.movers.server(rd)


@contextmanager
def running_harness(fleet: LocalFleet, *, reporter: Reporter | None = None) -> Iterator[Harness]:
    """A harness on `fleet`'s cluster1 with two new namespaces; everything it made is deleted after."""
    api = clients.load(str(fleet.api.kubeconfig), "cluster1")
    kube = Kube(api)
    clock = FakeClock(T0)
    suffix = uuid.uuid4().hex[:6]
    src, dst = f"src-{suffix}", f"dest-{suffix}"
    for ns in (src, dst):
        try:
            kube.create(NAMESPACES, {"metadata": {"name": ns}})
        except ApiException as exc:
            if exc.status != 409:  # a retried create that landed the first time
                raise
    controller = ReplicationController(kube, mover_image=default_image(), rsync_retries=2, clock=clock, workers=0,
                                       reporter=reporter)
    controller.start()
    h = Harness(fleet.api, kube, clock, controller, src, dst)
    try:
        yield h
    finally:
        controller.stop()
        for cleanup in reversed(h.cleanups):
            cleanup()
        fleet.kubectl("delete", "namespace", src, dst, "--wait=false", check=False)
        clients.close(api)


def setup_pair(h: Harness, trigger: dict[str, Any], *, paused: bool = False) -> None:
    h.kube.create(REPLICATION_DESTINATIONS, {"metadata": {"name": "rd", "namespace": h.dst}, "spec": {"rsync": {
        "copyMethod": "Snapshot", "capacity": "1Gi", "accessModes": ["ReadWriteOnce"]}}})
    rd = h.until(lambda: (lambda s: s if s.get("address") and s.get("sshKeys") else None)(
        h.status("rd", h.dst, "rd").get("rsync") or {}), "RD address and keys")
    secret = h.kube.get(SECRETS, rd["sshKeys"], h.dst)
    assert secret is not None
    h.kube.create(SECRETS, {"metadata": {"name": rd["sshKeys"], "namespace": h.src}, "data": secret["data"]})
    h.kube.create(PVCS, {"metadata": {"name": "data", "namespace": h.src}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    h.kube.create(REPLICATION_SOURCES, {"metadata": {"name": "rs", "namespace": h.src}, "spec": {
        "sourcePVC": "data", "trigger": trigger, "paused": paused,
        "rsync": {"address": rd["address"], "sshKeys": rd["sshKeys"], "copyMethod": "Snapshot"}}})
