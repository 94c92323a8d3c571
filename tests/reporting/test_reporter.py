"""The agent's reporter against a hub made of an `httpx.MockTransport` handler, stepped with `tick()`
and a FakeClock: no ports, no sleeps. Every request is validated with the hub's own models
(`api/hub.py`), so what the reporter sends is what the REST API accepts."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.reporting import Reporter
from api.hub import Heartbeat, ReportBatch
from kube.clock import FakeClock

CLUSTER = "cluster1"


class Hub:
    """Records what agents send; `down` refuses connections that many times; `reports_status` answers reports."""

    def __init__(self, token: str = "t0") -> None:
        self.token = token
        self.down = 0
        self.reports_status = 200
        self.reports_headers: dict[str, str] = {}  # with a refused reports_status
        self.renew = 60
        self.calls: list[str] = []  # "heartbeat" / "reports" / "refused" / "401", in order
        self.heartbeats: list[Heartbeat] = []
        self.batches: list[ReportBatch] = []
        self.headers: list[str] = []
        self.gate: threading.Event | None = None  # when set, requests wait for it (a slow hub)
        self.entered = threading.Event()
        self.answered = threading.Condition()  # notified after every request

    def __call__(self, request: httpx.Request) -> httpx.Response:
        try:
            return self._handle(request)
        finally:
            with self.answered:
                self.answered.notify_all()

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30), "test never released the hub"
        if self.down > 0:
            self.down -= 1
            self.calls.append("refused")
            raise httpx.ConnectError("connection refused", request=request)
        self.headers.append(request.headers.get("authorization", ""))
        if request.headers.get("authorization") != f"Bearer {self.token}":
            self.calls.append("401")
            return httpx.Response(401, json={"detail": "invalid agent token"})
        assert request.url.path.startswith(f"/api/v1/agents/{CLUSTER}/")
        if request.url.path.endswith("/heartbeat"):
            self.calls.append("heartbeat")
            self.heartbeats.append(Heartbeat.model_validate_json(request.content))
            return httpx.Response(200, json={"leaseDurationSeconds": 300, "renewIntervalSeconds": self.renew})
        self.calls.append("reports")
        batch = ReportBatch.model_validate_json(request.content)
        if self.reports_status != 200:
            return httpx.Response(self.reports_status, json={"detail": "no"}, headers=self.reports_headers)
        self.batches.append(batch)
        return httpx.Response(200, json={"accepted": len(batch.reports), "stale": 0})

    def reports(self) -> list[Any]:
        return [r for b in self.batches for r in b.reports]


def rs(name: str, last_sync: str | None = None, ns: str = "src") -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{"type": "Synchronizing", "status": "True", "reason": "SyncInProgress",
                                              "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    if last_sync:
        status["lastSyncTime"] = last_sync
    return {"apiVersion": "volsync.backube/v1alpha1", "kind": "ReplicationSource",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": "7"},
            "spec": {"sourcePVC": "data", "trigger": {"schedule": "*/5 * * * *"}}, "status": status}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def hub() -> Hub:
    return Hub()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("t0\n")
    return path


@pytest.fixture
def client(hub: Hub) -> Iterator[httpx.Client]:
    with httpx.Client(transport=httpx.MockTransport(hub), base_url="http://hub.test") as c:
        yield c


@pytest.fixture
def reporter(client: httpx.Client, clock: FakeClock, token_file: Path, tmp_path: Path) -> Reporter:
    return Reporter(client, CLUSTER, agent_id="agent-1", clock=clock, token_file=token_file, version="0.1.0",
                    sequence_file=tmp_path / "sequence")


def test_heartbeat_then_the_observed_report(reporter: Reporter, hub: Hub, clock: FakeClock) -> None:
    reporter.observe("source", rs("a", "2026-01-01T00:00:00Z"))
    assert hub.calls == []  # observe only queues
    reporter.tick()
    assert hub.calls == ["heartbeat", "reports"]
    assert hub.heartbeats[0].agent_id == "agent-1" and hub.heartbeats[0].version == "0.1.0"
    (report,) = hub.reports()
    assert (report.role, report.namespace, report.name, report.deleted) == ("source", "src", "a", False)
    assert report.spec == {"sourcePVC": "data", "trigger": {"schedule": "*/5 * * * *"}}
    assert report.status["lastSyncTime"] == "2026-01-01T00:00:00Z"
    assert report.sequence >= int(clock.now().timestamp() * 1000)
    assert hub.headers == ["Bearer t0", "Bearer t0"]
    assert reporter.pending() == 0


def test_batches_of_at_most_500(reporter: Reporter, hub: Hub) -> None:
    for i in range(1200):
        reporter.observe("source", rs(f"rs-{i}"))
    reporter.tick()
    assert [len(b.reports) for b in hub.batches] == [500, 500, 200]
    sequences = [r.sequence for r in hub.reports()]
    assert len(set(sequences)) == 1200 and sequences == sorted(sequences)
    assert {r.name for r in hub.reports()} == {f"rs-{i}" for i in range(1200)}


def test_only_changes_are_reported(reporter: Reporter, hub: Hub) -> None:
    reporter.observe("source", rs("a", "2026-01-01T00:00:00Z"))
    reporter.observe("source", rs("a", "2026-01-01T00:00:00Z"))
    reporter.tick()
    reporter.observe("source", rs("a", "2026-01-01T00:00:00Z"))  # what the hub already has
    reporter.tick()
    assert len(hub.reports()) == 1
    changed = rs("a", "2026-01-01T00:05:00Z")
    reporter.observe("source", changed)
    changed["metadata"]["resourceVersion"] = "8"  # metadata alone is no change
    reporter.observe("source", changed)
    reporter.tick()
    first, second = hub.reports()
    assert second.status["lastSyncTime"] == "2026-01-01T00:05:00Z"
    assert second.sequence > first.sequence


def test_latest_state_only_while_the_hub_is_away(reporter: Reporter, hub: Hub, clock: FakeClock) -> None:
    hub.down = 3
    reporter.observe("source", rs("a", "2026-01-01T00:00:00Z"))
    delays = [reporter.tick()]
    assert hub.calls == ["refused"]
    for minute in (1, 2, 3):
        reporter.observe("source", rs("a", f"2026-01-01T00:0{minute}:00Z"))
        reporter.observe("destination", rs("b", f"2026-01-01T00:0{minute}:00Z", ns="dst"))
        assert reporter.pending() == 2  # at most one per object all along
        assert reporter.tick() == delays[-1]  # nothing is due yet: no call
        clock.advance(delays[-1])
        delays.append(reporter.tick())
    assert delays == [1.0, 2.0, 4.0, 60.0]  # the last: the hub is back, the next heartbeat is due in 60 s
    assert hub.calls == ["refused", "refused", "refused", "heartbeat", "reports"]
    assert reporter.pending() == 0
    reports = {(r.role, r.name): r for r in hub.reports()}
    assert len(hub.reports()) == 2
    assert reports[("source", "a")].status["lastSyncTime"] == "2026-01-01T00:03:00Z"
    assert reports[("destination", "b")].status["lastSyncTime"] == "2026-01-01T00:03:00Z"


def test_backoff_doubles_to_a_minute_and_resets(reporter: Reporter, hub: Hub, clock: FakeClock) -> None:
    hub.down = 10
    delays = []
    for _ in range(9):
        delays.append(reporter.tick())
        clock.advance(delays[-1])
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    hub.down = 1
    reporter.tick()
    clock.advance(60)
    assert reporter.tick() == 60.0  # back: the next thing due is the heartbeat
    assert hub.calls[-1] == "heartbeat"
    hub.down = 1
    clock.advance(60)
    assert reporter.tick() == 1.0  # a new outage starts from the first step again


def test_server_errors_are_retried(reporter: Reporter, hub: Hub, clock: FakeClock) -> None:
    hub.reports_status = 503
    reporter.observe("source", rs("a"))
    assert reporter.tick() == 1.0
    assert reporter.pending() == 1
    hub.reports_status = 200
    clock.advance(1)
    reporter.tick()
    assert [r.name for r in hub.reports()] == ["a"]


@pytest.mark.parametrize(("retry_after", "delay"), [("3", 3.0), (None, 1.0), ("soon", 1.0), ("86400", 60.0)])
def test_a_busy_hub_429_naming_no_report_is_retried(reporter: Reporter, hub: Hub, clock: FakeClock,
                                                     retry_after: str | None, delay: float) -> None:
    """The hub's in-flight cap (or its cluster's other batch) answers a bare 429: the batch is kept and sent
    again after Retry-After (at least the back-off step, at most its last), not dropped."""
    hub.reports_status = 429
    hub.reports_headers = {"Retry-After": retry_after} if retry_after is not None else {}
    reporter.observe("source", rs("a"))
    assert reporter.tick() == delay
    assert reporter.pending() == 1
    hub.reports_status = 200
    clock.advance(delay)
    reporter.tick()
    assert [r.name for r in hub.reports()] == ["a"] and reporter.pending() == 0


def test_sequences_never_go_back_across_a_restart(client: httpx.Client, hub: Hub, clock: FakeClock,
                                                   token_file: Path, tmp_path: Path) -> None:
    seq = tmp_path / "sequence"
    first = Reporter(client, CLUSTER, agent_id="a1", clock=clock, token_file=token_file, sequence_file=seq)
    for i in range(50):
        first.observe("source", rs(f"rs-{i}"))
    first.tick()
    first.close()
    high = max(r.sequence for r in hub.reports())
    # The same instant (a fake clock that did not move): only the persisted counter keeps order.
    second = Reporter(client, CLUSTER, agent_id="a2", clock=clock, token_file=token_file, sequence_file=seq)
    second.observe("source", rs("rs-0", "2026-01-01T00:00:00Z"))
    second.tick()
    assert hub.reports()[-1].sequence > high
    # Without a file, the time does it: a restart a second later starts a thousand higher.
    clock.advance(1)
    third = Reporter(client, CLUSTER, agent_id="a3", clock=clock, token_file=token_file)
    third.observe("source", rs("rs-0", "2026-01-01T00:01:00Z"))
    third.tick()
    assert hub.reports()[-1].sequence > hub.reports()[-2].sequence


def test_401_rereads_the_token_file(reporter: Reporter, hub: Hub, token_file: Path, clock: FakeClock,
                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "volsync.agent.reporting")
    hub.token = "rotated-secret"
    token_file.write_text("rotated-secret\n")
    reporter.observe("source", rs("a"))
    reporter.tick()
    assert hub.calls == ["401", "heartbeat", "reports"]
    assert hub.headers[-1] == "Bearer rotated-secret"
    # A token the hub does not take at all: slow retries, logged once, and never the token itself.
    hub.token = "tok-xyz-2"
    clock.advance(60)
    reporter.observe("source", rs("a", "2026-01-01T00:00:00Z"))
    assert reporter.tick() == 60.0
    clock.advance(60)
    assert reporter.tick() == 60.0
    assert hub.calls[-2:] == ["401", "401"]
    refused = [r for r in caplog.records if "not valid" in r.getMessage()]
    assert len(refused) == 1 and str(token_file) in refused[0].getMessage()
    assert not any("rotated-secret" in r.getMessage() or "tok-xyz-2" in r.getMessage() for r in caplog.records)
    token_file.write_text("tok-xyz-2")
    clock.advance(60)
    reporter.tick()
    assert hub.reports()[-1].status["lastSyncTime"] == "2026-01-01T00:00:00Z"


def test_4xx_reports_are_dropped_and_logged_once(reporter: Reporter, hub: Hub,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    hub.reports_status = 422
    reporter.observe("source", rs("a"))
    reporter.observe("source", rs("b"))
    assert reporter.tick() == 60.0  # nothing left to retry: the next heartbeat
    assert reporter.pending() == 0 and hub.calls == ["heartbeat", "reports"]
    dropped = [r for r in caplog.records if "refused 2 reports" in r.getMessage()]
    assert len(dropped) == 1 and "422" in dropped[0].getMessage()
    hub.reports_status = 200
    reporter.observe("source", rs("c"))
    reporter.tick()
    assert [r.name for r in hub.reports()] == ["c"]


def test_heartbeat_cadence_follows_the_hub(reporter: Reporter, hub: Hub, clock: FakeClock) -> None:
    hub.renew = 20
    assert reporter.tick() == 20.0
    clock.advance(19)
    reporter.tick()
    assert hub.calls == ["heartbeat"]
    clock.advance(1)
    reporter.tick()
    assert hub.calls == ["heartbeat", "heartbeat"]
    sent = [h.sent_at for h in hub.heartbeats]
    assert (sent[1] - sent[0]).total_seconds() == 20


def test_a_sub_second_cadence_is_honoured(reporter: Reporter, hub: Hub, clock: FakeClock) -> None:
    # a hub with short lease timings (tests, or a tight RPO) asks for sub-second heartbeats
    hub.renew = 0.5
    assert reporter.tick() == 0.5
    clock.advance(0.5)
    reporter.tick()
    assert hub.calls == ["heartbeat", "heartbeat"]


def test_everything_is_sent_again_every_five_minutes(reporter: Reporter, hub: Hub, clock: FakeClock) -> None:
    reporter.observe("source", rs("a"))
    reporter.observe("source", rs("b"))
    reporter.tick()
    clock.advance(240)
    reporter.tick()
    assert len(hub.reports()) == 2
    clock.advance(60)
    reporter.tick()
    again = hub.reports()[2:]
    assert {r.name for r in again} == {"a", "b"}
    assert min(r.sequence for r in again) > max(r.sequence for r in hub.reports()[:2])


def test_forget_reports_deleted_once(reporter: Reporter, hub: Hub) -> None:
    reporter.observe("destination", rs("b", ns="dst"))
    reporter.tick()
    reporter.forget("destination", "dst", "b")
    reporter.forget("destination", "dst", "b")
    reporter.tick()
    gone = hub.reports()[-1]
    assert len(hub.reports()) == 2 and gone.deleted and (gone.namespace, gone.name) == ("dst", "b")
    reporter.observe("destination", rs("b", ns="dst"))  # recreated: reported again
    reporter.tick()
    assert not hub.reports()[-1].deleted


def test_the_thread_never_blocks_the_caller(reporter: Reporter, hub: Hub) -> None:
    hub.gate = threading.Event()
    reporter.start()
    try:
        assert hub.entered.wait(10)  # the thread is inside a request the hub does not answer
        for i in range(100):
            reporter.observe("source", rs(f"rs-{i}"))  # returns at once all the same
        assert reporter.pending() == 100
    finally:
        hub.gate.set()
    try:
        with hub.answered:
            assert hub.answered.wait_for(lambda: len(hub.reports()) == 100, timeout=10)
    finally:
        reporter.close()
    assert {r.name for r in hub.reports()} == {f"rs-{i}" for i in range(100)}
