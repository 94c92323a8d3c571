"""One caller cannot take the hub: at most a few requests in flight per caller (429 with Retry-After beyond),
and a batch never waits in a worker thread for its cluster's other batch (429 at once), so the other clusters'
heartbeats, the admin's reads and /healthz answer meanwhile."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hubkit import Hub, report
from support.waiting import eventually

from hub.limits import DEFAULT_AGENT_IN_FLIGHT
from kube.clock import rfc3339


class Held:
    """A raw ASGI request to the app whose body stays open until `release` (a slow client)."""

    def __init__(self, hub: Hub, path: str, token: str, first: bytes = b'{"agentId": "a", ',
                 *, complete: bool = False) -> None:
        self.hub, self.path, self.token, self.first, self.complete = hub, path, token, first, complete
        self.released = asyncio.Event()
        self.read = 0
        self.status: int | None = None
        self.headers: dict[bytes, bytes] = {}

    async def run(self) -> None:
        headers = [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked"),
                   (b"authorization", f"Bearer {self.token}".encode())]
        scope: dict[str, Any] = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                                 "method": "POST", "scheme": "http", "path": self.path,
                                 "raw_path": self.path.encode(), "query_string": b"", "root_path": "",
                                 "headers": headers, "server": ("hub.test", 80), "client": ("127.0.0.1", 1)}

        async def receive() -> dict[str, Any]:
            self.read += 1
            if self.read == 1:
                return {"type": "http.request", "body": self.first, "more_body": not self.complete}
            await self.released.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.status, self.headers = message["status"], dict(message["headers"])

        await self.hub.app(scope, receive, send)


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_one_agent_token_has_at_most_its_cap_of_requests_in_flight(hub: Hub) -> None:
    path, token = "/api/v1/agents/cluster1/reports", hub.tokens["cluster1"]
    beat = json.dumps({"agentId": "b", "sentAt": rfc3339(hub.clock.now())}).encode()

    async def scenario() -> dict[str, Any]:
        held = [Held(hub, path, token) for _ in range(DEFAULT_AGENT_IN_FLIGHT)]
        extra = [Held(hub, path, token) for _ in range(8)]
        tasks = [asyncio.create_task(h.run()) for h in held]
        await until(lambda: all(h.read >= 2 for h in held))  # both are in the door, reading their bodies
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(e.run() for e in extra)), 5)
        refused_in = time.monotonic() - started
        other = Held(hub, "/api/v1/agents/cluster2/heartbeat", hub.tokens["cluster2"], first=beat, complete=True)
        await asyncio.wait_for(other.run(), 5)
        assert all(h.status is None for h in held), "the held requests were answered"
        for h in held:
            h.released.set()
        await asyncio.gather(*tasks)
        again = Held(hub, path, token)  # the slots are free again
        again.released.set()
        await asyncio.wait_for(again.run(), 5)
        return {"extra": [(e.status, e.headers.get(b"retry-after"), e.read) for e in extra],
                "refused_in": refused_in, "other": other.status, "again": again.status}

    seen = asyncio.run(scenario())
    assert seen["extra"] == [(429, b"1", 0)] * 8, seen  # refused on the headers, before any body is read
    assert seen["refused_in"] < 2, seen
    assert seen["other"] == 200, seen
    assert seen["again"] == 400, seen  # it got through the door (the body ended early: the client went away)
    assert hub.client.get("/healthz").status_code == 200


def test_a_batch_does_not_wait_for_its_clusters_other_batch(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    storing, release = threading.Event(), threading.Event()
    submit = hub.fleet.submit

    def slow_submit(cluster: str, batch: Any) -> Any:
        if cluster == "cluster1" and batch.reports[0].name == "slow":
            storing.set()
            assert release.wait(30)
        return submit(cluster, batch)

    monkeypatch.setattr(hub.fleet, "submit", slow_submit)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(hub.send, "cluster1", report("slow", 1))
        assert storing.wait(10)
        try:
            started = time.monotonic()
            second = pool.submit(hub.send, "cluster1", report("fast", 1)).result(timeout=5)
            took = time.monotonic() - started
            other = hub.send("cluster2", report("elsewhere", 1))
        finally:
            release.set()
        assert first.result(timeout=10).status_code == 200
    assert second.status_code == 429 and took < 2, (second.text, took)
    assert second.headers["retry-after"] == "1"
    assert isinstance(second.json()["detail"], str) and "another batch" in second.json()["detail"]
    assert other.status_code == 200
    names = eventually(lambda: sorted(r["name"] for r in hub.get("/api/v1/replications").json()) or None)
    assert names == ["elsewhere", "slow"]
