"""The REST door: authorization is decided on the headers, before a byte of the body is read, and the
body cap holds for chunked bodies (no Content-Length). The app is driven as ASGI with a `receive`
that records what was read."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hubkit import Hub

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
