"""Schedules and `paused`, with the real controller, real movers and an injected clock.

The controller runs in the test process with a `FakeClock` and no worker threads: the test steps
it (`drain`), so "nothing happened" is asserted after a deterministic reconcile, not after a
sleep, and hours of schedule pass in microseconds. Source and destination share one cluster
(two namespaces), which is enough for the trigger logic.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.apiserver import ApiServer
from support.waiting import eventually

from agent.localplatform import LocalPlatform
from agent.reconciling import ReplicationController
from kube import clients
from kube.clock import FakeClock, parse_rfc3339
from kube.rest import PVCS, REPLICATION_DESTINATIONS, REPLICATION_SOURCES, SECRETS, Kube

pytestmark = pytest.mark.timeout(180)

T0 = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)


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


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    server = ApiServer(tmp_path / "api", clusters=("cluster1",)).start()
    api = clients.load(str(server.kubeconfig), "cluster1")
    kube = Kube(api)
    clock = FakeClock(T0)
    platform = LocalPlatform(kube, tmp_path / "data", address_pool="127.93.7.0/24", clock=clock,
                             retries=2, backoff=(0.05, 0.1), poll_interval=0.02)
    controller = ReplicationController(kube, platform, clock=clock, workers=0)
    controller.start()
    try:
        yield Harness(server, kube, clock, controller, platform)
    finally:
        controller.stop()
        platform.close()
        clients.close(api)
        server.stop()


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


def test_schedule_slots_and_next_sync_time(harness: Harness) -> None:
    h = harness
    setup_pair(h, {"schedule": "*/3 * * * *"})
    # VolSync's behaviour: the first sync runs at creation, whatever the schedule.
    first = h.until(lambda: h.status("rs", "src", "rs").get("lastSyncTime"), "initial sync")
    assert parse_rfc3339(first) == T0
    st = h.status("rs", "src", "rs")
    assert st["nextSyncTime"] == "2026-01-01T00:03:00Z"
    assert st["conditions"][0]["reason"] in ("CleaningUp", "WaitingForSchedule")
    h.until(lambda: h.status("rs", "src", "rs")["conditions"][0]["reason"] == "WaitingForSchedule", "idle")

    # One second before the slot: a reconcile starts nothing.
    h.clock.set(datetime(2026, 1, 1, 0, 2, 59, tzinfo=UTC))
    h.controller.queue.add(("source", "src", "rs"))
    h.drain()
    assert h.status("rs", "src", "rs").get("lastSyncStartTime") is None
    assert h.status("rs", "src", "rs")["lastSyncTime"] == first

    # At the slot the requeue fires by itself (no event needed) and the sync runs.
    h.clock.set(datetime(2026, 1, 1, 0, 3, 0, tzinfo=UTC))
    second = h.until(lambda: (lambda t: t if t != first else None)(h.status("rs", "src", "rs").get("lastSyncTime")),
                     "sync at the slot")
    assert second == "2026-01-01T00:03:00Z"
    assert h.status("rs", "src", "rs")["nextSyncTime"] == "2026-01-01T00:06:00Z"

    # A long outage: slots are skipped, not queued; the next one is computed from the completion.
    h.clock.set(datetime(2026, 1, 1, 0, 13, 30, tzinfo=UTC))
    third = h.until(lambda: (lambda t: t if t != second else None)(h.status("rs", "src", "rs").get("lastSyncTime")),
                    "catch-up sync")
    assert third == "2026-01-01T00:13:30Z"
    assert h.status("rs", "src", "rs")["nextSyncTime"] == "2026-01-01T00:15:00Z"
    missed = h.controller.metrics.missed.labels("rs", "src", "source", "rsync")._value.get()
    assert missed == 1  # the run due at 00:06 completed after 00:09


def test_paused_source_does_not_sync_until_resumed(harness: Harness) -> None:
    h = harness
    setup_pair(h, {"manual": "one"}, paused=True)
    key = ("source", "src", "rs")
    for _ in range(3):
        h.clock.advance(600)
        h.controller.queue.add(key)
        h.drain()
        st = h.status("rs", "src", "rs")
        assert st.get("lastSyncTime") is None and st.get("lastSyncStartTime") is None
        assert h.platform.transfer("source/src/rs") is None
    assert st["conditions"][0]["message"] == "Synchronization paused"

    h.kube.patch(REPLICATION_SOURCES, "rs", {"spec": {"paused": False}}, "src")
    h.fresh_cache("rs", "src", "rs")
    done = h.until(lambda: h.status("rs", "src", "rs").get("lastManualSync") == "one", "sync after resume")
    assert done

    # Pausing again stops a later iteration before any data moves.
    h.kube.patch(REPLICATION_SOURCES, "rs", {"spec": {"paused": True, "trigger": {"manual": "two"}}}, "src")
    h.fresh_cache("rs", "src", "rs")
    h.clock.advance(60)
    h.controller.queue.add(key)
    h.drain()
    assert h.status("rs", "src", "rs").get("lastManualSync") == "one"
    assert h.platform.transfer("source/src/rs") is None


def test_schedule_without_initial_sync_waits_for_the_first_slot(harness: Harness) -> None:
    h = harness
    setup_pair(h, {"schedule": "0 * * * *"})
    h.until(lambda: h.status("rs", "src", "rs").get("lastSyncTime"), "initial sync")
    # The opt-out is an annotation: a new RS carrying it waits for its first slot.
    h.kube.create(REPLICATION_SOURCES, {"metadata": {"name": "rs2", "namespace": "src", "annotations": {
        "volsync-addon.io/skip-initial-sync": "true"}}, "spec": {"sourcePVC": "data", "trigger": {"schedule": "0 * * * *"},
        "rsync": h.kube.get(REPLICATION_SOURCES, "rs", "src")["spec"]["rsync"]}})  # type: ignore[index]
    h.fresh_cache("rs", "src", "rs2")
    h.controller.queue.add(("source", "src", "rs2"))
    h.drain()
    st = h.status("rs", "src", "rs2")
    assert st.get("lastSyncStartTime") is None and st.get("lastSyncTime") is None
    assert st["conditions"][0]["reason"] == "WaitingForSchedule"
    slot = parse_rfc3339(st["nextSyncTime"])
    assert slot is not None and slot > h.clock.now() - timedelta(hours=1)
