"""The agent's reporter against the real REST app with small caps: what the hub refuses waits (a WARNING, no
retry spin), the rest is stored, and replication reports keep flowing. The reporter's httpx client
reaches the app in-process (a MockTransport handing each request to the ASGI app)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hubkit import AppClient, Hub
from prometheus_client import CollectorRegistry

from agent.reporting import Reporter
from hub.limits import RestLimits
from hub.rest import create_app


class Bridge:
    """An httpx transport handler that serves each request with the app, counting them."""

    def __init__(self, app: AppClient) -> None:
        self.app = app
        self.requests: list[tuple[str, int]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        answer = self.app.request(request.method, request.url.path, content=request.content,
                                  headers=dict(request.headers))
        self.requests.append((request.url.path.rsplit("/", 1)[-1], answer.status_code))
        return httpx.Response(answer.status_code, content=answer.content, headers=answer.headers)


def rs(name: str, logs: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"lastSyncTime": "2026-01-01T00:00:00Z"}
    if logs:
        status["latestMoverStatus"] = {"result": "Failed", "logs": logs}
    return {"metadata": {"name": name, "namespace": "apps"}, "spec": {"trigger": {"schedule": "*/5 * * * *"}},
            "status": status}


@pytest.fixture
def bridge(hub: Hub) -> Bridge:
    app = create_app(hub.fleet, hub.token_store, clock=hub.clock, metrics_registry=CollectorRegistry(),
                     limits=RestLimits(max_replications=3, max_report_bytes=4096))
    return Bridge(AppClient(app))


@pytest.fixture
def reporter(hub: Hub, bridge: Bridge, tmp_path: Any) -> Iterator[Reporter]:
    token = tmp_path / "token"
    token.write_text(hub.tokens["cluster1"])
    with httpx.Client(transport=httpx.MockTransport(bridge), base_url="http://hub.test") as client:
        yield Reporter(client, "cluster1", agent_id="agent-1", clock=hub.clock, token_file=token)


def stored(hub: Hub) -> list[str]:
    return [r["name"] for r in hub.get("/api/v1/replications", cluster="cluster1").json()]


def test_refused_reports_wait_and_the_rest_is_stored(hub: Hub, bridge: Bridge, reporter: Reporter,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "volsync.agent.reporting")
    reporter.observe("source", rs("big", logs="x" * 8000))
    for name in ("a", "b", "c", "d", "e"):
        reporter.observe("source", rs(name))
    delay = reporter.tick()
    assert stored(hub) == ["a", "b", "c"]
    assert [code for what, code in bridge.requests if what == "reports"] == [413, 429, 200]
    assert reporter.pending() == 3  # big, d, e: set aside, not dropped
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("refused 1 of 6 reports (413" in w for w in warnings), warnings
    assert any("refused 2 of 5 reports (429" in w and "at most 3 per cluster" in w for w in warnings), warnings
    # no retry spin: nothing is due until the next heartbeat / resend
    assert delay >= 59, delay
    count = len(bridge.requests)
    assert reporter.tick() > 0 and len(bridge.requests) == count
    # the stored replications keep reporting; a newer state of a refused one still waits
    reporter.observe("source", {**rs("a"), "status": {"lastSyncTime": "2026-01-01T00:01:00Z"}})
    reporter.observe("source", rs("e", logs="y"))
    reporter.tick()
    assert bridge.requests[count:] == [("reports", 200)]
    assert hub.get("/api/v1/replications", cluster="cluster1").json()[0]["lastSyncTime"] == "2026-01-01T00:01:00Z"
    # a replication gone frees a place: after the resend interval the refused ones go again, one fits
    reporter.forget("source", "apps", "b")
    reporter.tick()
    hub.clock.advance(301)
    reporter.tick()
    assert sorted(stored(hub)) == ["a", "c", "d"]
    assert reporter.pending() == 2  # big (too large) and e (over the cap) wait again
