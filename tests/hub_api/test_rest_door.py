"""The REST door: authorization is decided on the headers, before a byte of the body is read, and the
body cap holds for chunked bodies (no Content-Length). The app is driven as ASGI with a `receive`
that records what was read."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import unquote

import pytest
from hubkit import Hub, report
from support.waiting import eventually

from hub.rest import MAX_BODY_BYTES

CHUNK = 1024 * 1024


def call(hub: Hub, path: str, token: str | None, chunks: int, chunk: bytes = b"x" * CHUNK) -> tuple[int, int]:
    """POST `chunks` chunks of a body without Content-Length; (status, chunks the app read)."""
    headers = [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope: dict[str, Any] = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
                             "root_path": "", "headers": headers, "server": ("hub.test", 80),
                             "client": ("127.0.0.1", 1)}
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read >= chunks:
            await asyncio.Event().wait()  # the client says nothing more (it would be a disconnect)
        read += 1
        return {"type": "http.request", "body": chunk, "more_body": read < chunks}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(hub.app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], read


@pytest.mark.parametrize("who", [None, "token:not-a-token", "admin", "cluster2"])
def test_a_refused_agent_request_is_answered_before_its_body_is_read(shared_hub: Hub, who: str | None) -> None:
    token = None if who is None else shared_hub.auth(who)["Authorization"].removeprefix("Bearer ")
    status, read = call(shared_hub, "/api/v1/agents/cluster1/reports", token, chunks=256)
    assert status == (401 if who in (None, "token:not-a-token") else 403)
    assert read == 0, f"{read} chunks of the body were read before the refusal"


def test_a_chunked_body_over_the_cap_is_413_as_soon_as_the_cap_is_passed(shared_hub: Hub) -> None:
    status, read = call(shared_hub, "/api/v1/agents/cluster1/reports", shared_hub.tokens["cluster1"], chunks=256)
    assert status == 413
    assert read == MAX_BODY_BYTES // CHUNK + 1, read


def test_a_chunked_body_within_the_cap_reaches_the_endpoint(shared_hub: Hub) -> None:
    body = json.dumps({"agentId": "a", "reports": []}).encode()
    status, read = call(shared_hub, "/api/v1/agents/cluster1/reports", shared_hub.tokens["cluster1"], chunks=1,
                        chunk=body)
    assert (status, read) == (200, 1)


def post(hub: Hub, raw_path: str, token: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST as a server hands it to the app: `path` is `raw_path` percent-decoded once; (status, JSON answer)."""
    headers = [(b"content-type", b"application/json"), (b"authorization", f"Bearer {token}".encode())]
    scope: dict[str, Any] = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                             "scheme": "http", "path": unquote(raw_path), "raw_path": raw_path.encode(),
                             "query_string": b"", "root_path": "", "headers": headers,
                             "server": ("hub.test", 80), "client": ("127.0.0.1", 1)}
    messages = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(hub.app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))


@pytest.mark.parametrize("alias", ["cluster%2531", "cluster%252531", "%2563luster1", "cluster1%252F"])
def test_a_percent_encoded_alias_of_the_tokens_cluster_is_refused(hub: Hub, alias: str) -> None:
    """`cluster%2531` reaches the app as `cluster%31`: it is not cluster1 (decoding it again would make it one
    for the door while the endpoint wrote under `cluster%31`, outside cluster1's caps and locks)."""
    status, answer = post(hub, f"/api/v1/agents/{alias}/reports", hub.tokens["cluster1"],
                          {"agentId": "a", "reports": [report("aliased", 1)]})
    assert status in (403, 404), (status, answer)
    assert hub.fleet.stored_names(unquote(alias)) == set()
    assert hub.get("/api/v1/replications").json() == []


def test_the_cluster_authorised_is_the_cluster_written(hub: Hub) -> None:
    """`%63luster1` is decoded once by the server: door and route both see cluster1, and that is where it lands."""
    status, answer = post(hub, "/api/v1/agents/%63luster1/reports", hub.tokens["cluster1"],
                          {"agentId": "a", "reports": [report("encoded", 1)]})
    assert (status, answer) == (200, {"accepted": 1, "stale": 0})
    rows = eventually(lambda: hub.get("/api/v1/replications").json() or None, what="the report listed")
    assert [(r["cluster"], r["name"]) for r in rows] == [("cluster1", "encoded")]
    status, _ = post(hub, "/api/v1/agents/%63luster1/reports", hub.tokens["cluster2"],
                     {"agentId": "a", "reports": [report("other", 1)]})
    assert status == 403
