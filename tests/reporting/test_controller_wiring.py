"""The replication controller feeds the reporter: a status write becomes a report, a deletion a
`deleted` report. In-process controller (no workers, a FakeClock) on a real API server; the hub is
a MockTransport handler validating with `api/hub.py`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.apiserver import ApiServer
from support.harness import POOL, T0, Harness

from agent.kinds import REPLICATION_DESTINATIONS
from agent.localplatform import LocalPlatform
from agent.reconciling import ReplicationController
from agent.reporting import Reporter
from api.hub import ReplicationReport, ReportBatch
from kube import clients
from kube.clock import FakeClock
from kube.rest import Kube


class Recorder:
    def __init__(self) -> None:
        self.reports: list[ReplicationReport] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/reports"):
            batch = ReportBatch.model_validate_json(request.content)
            self.reports.extend(batch.reports)
            return httpx.Response(200, json={"accepted": len(batch.reports), "stale": 0})
        return httpx.Response(200, json={"leaseDurationSeconds": 300, "renewIntervalSeconds": 60})


@pytest.fixture
def wired(tmp_path: Path) -> Iterator[tuple[Harness, Reporter, Recorder]]:
    server = ApiServer(tmp_path / "api", clusters=("cluster1",)).start()
    api = clients.load(str(server.kubeconfig), "cluster1")
    kube = Kube(api)
    clock = FakeClock(T0)
    hub = Recorder()
    http = httpx.Client(transport=httpx.MockTransport(hub), base_url="http://hub.test")
    reporter = Reporter(http, "cluster1", agent_id="a", clock=clock)
    platform = LocalPlatform(kube, tmp_path / "data", address_pool=POOL, clock=clock,
                             retries=2, backoff=(0.05, 0.1), poll_interval=0.02)
    controller = ReplicationController(kube, platform, clock=clock, workers=0, reporter=reporter)
    controller.start()
    try:
        yield Harness(server, kube, clock, controller, platform), reporter, hub
    finally:
        controller.stop()
        platform.close()
        reporter.close()
        http.close()
        clients.close(api)
        server.stop()


def test_status_writes_and_deletions_reach_the_hub(wired: tuple[Harness, Reporter, Recorder]) -> None:
    h, reporter, hub = wired
    h.server.kubectl("create", "ns", "dest", context="cluster1")
    h.kube.create(REPLICATION_DESTINATIONS, {"metadata": {"name": "rd", "namespace": "dest"}, "spec": {"rsync": {
        "copyMethod": "Snapshot", "capacity": "1Gi", "accessModes": ["ReadWriteOnce"]}}})
    address = h.until(lambda: (h.status("rd", "dest", "rd").get("rsync") or {}).get("address"), "RD address")
    reporter.tick()
    latest = [r for r in hub.reports if (r.role, r.namespace, r.name) == ("destination", "dest", "rd")][-1]
    assert latest.status == h.status("rd", "dest", "rd")
    assert latest.status["rsync"]["address"] == address
    assert latest.spec["rsync"]["copyMethod"] == "Snapshot"
    h.drain()
    reporter.tick()
    sent = len(hub.reports)

    h.controller.queue.add(("destination", "dest", "rd"))  # a reconcile that changes nothing reports nothing
    h.drain()
    reporter.tick()
    assert len(hub.reports) == sent

    h.kube.delete(REPLICATION_DESTINATIONS, "rd", "dest")
    h.until(lambda: reporter.pending(), "the deletion reaches the reporter")
    reporter.tick()
    assert hub.reports[-1].deleted and hub.reports[-1].name == "rd"
