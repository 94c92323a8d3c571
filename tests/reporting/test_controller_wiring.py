"""The replication controller feeds the reporter: a status write becomes a report, a deletion a
`deleted` report. In-process controller (no workers, a FakeClock) on a real API server; the hub is
a MockTransport handler validating with `api/hub.py`."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from support.fleet import LocalFleet, local_fleet
from support.harness import T0, Harness, running_harness

from agent.kinds import REPLICATION_DESTINATIONS
from agent.reporting import Reporter
from api.hub import ReplicationReport, ReportBatch
from kube.clock import FakeClock


class Recorder:
    def __init__(self) -> None:
        self.reports: list[ReplicationReport] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/reports"):
            batch = ReportBatch.model_validate_json(request.content)
            self.reports.extend(batch.reports)
            return httpx.Response(200, json={"accepted": len(batch.reports), "stale": 0})
        return httpx.Response(200, json={"leaseDurationSeconds": 300, "renewIntervalSeconds": 60})


@pytest.fixture(scope="module")
def wiring_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    with local_fleet(tmp_path_factory.mktemp("wiring"), names=("cluster1",)) as fleet:
        yield fleet


@pytest.fixture
def wired(wiring_cluster: LocalFleet) -> Iterator[tuple[Harness, Reporter, Recorder]]:
    hub = Recorder()
    http = httpx.Client(transport=httpx.MockTransport(hub), base_url="http://hub.test")
    reporter = Reporter(http, "cluster1", agent_id="a", clock=FakeClock(T0))
    try:
        with running_harness(wiring_cluster, reporter=reporter) as h:
            yield h, reporter, hub
    finally:
        reporter.close()
        http.close()


def test_status_writes_and_deletions_reach_the_hub(wired: tuple[Harness, Reporter, Recorder]) -> None:
    h, reporter, hub = wired
    h.kube.create(REPLICATION_DESTINATIONS, {"metadata": {"name": "rd", "namespace": h.dst}, "spec": {"rsync": {
        "copyMethod": "Snapshot", "capacity": "1Gi", "accessModes": ["ReadWriteOnce"]}}})
    address = h.until(lambda: (h.status("rd", h.dst, "rd").get("rsync") or {}).get("address"), "RD address")
    reporter.tick()
    latest = [r for r in hub.reports if (r.role, r.namespace, r.name) == ("destination", h.dst, "rd")][-1]
    assert latest.status == h.status("rd", h.dst, "rd")
    assert latest.status["rsync"]["address"] == address
    assert latest.spec["rsync"]["copyMethod"] == "Snapshot"
    # settled: the destination's mover Job runs and waits for a source
    h.until(lambda: h.receiver() is not None and h.status("rd", h.dst, "rd")["conditions"][0]["message"]
            == "Synchronization in-progress", "the destination mover running")
    h.drain()
    reporter.tick()
    sent = len(hub.reports)

    h.controller.queue.add(("destination", h.dst, "rd"))  # a reconcile that changes nothing reports nothing
    h.drain()
    reporter.tick()
    assert len(hub.reports) == sent

    h.kube.delete(REPLICATION_DESTINATIONS, "rd", h.dst)
    h.until(lambda: reporter.pending(), "the deletion reaches the reporter")
    reporter.tick()
    assert hub.reports[-1].deleted and hub.reports[-1].name == "rd"
