"""The little ASGI plumbing the kubelet server needs: plain replies, the query, and a WebSocket
wrapper (accept with a subprotocol, deny with an HTTP response, binary messages in and out)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]


def read_query(query: dict[str, list[str]]) -> dict[str, str]:
    """One value per parameter, the first (as Go's `url.Values.Get`)."""
    return {k: v[0] for k, v in query.items() if v}


async def http_reply(send: Callable[[Message], Awaitable[None]], status: int, body: bytes, media: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class WebSocket:
    """One ASGI WebSocket connection; `receive_bytes` returns None once the peer is gone."""

    def __init__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                 send: Callable[[Message], Awaitable[None]]) -> None:
        self.subprotocols: list[str] = list(scope.get("subprotocols") or [])
        self._receive, self._send = receive, send
        self._connected = False
        self._closed = False

    async def _connect(self) -> None:
        if not self._connected:
            self._connected = True
            message = await self._receive()
            if message["type"] != "websocket.connect":
                self._closed = True

    async def accept(self, subprotocol: str | None) -> None:
        await self._connect()
        await self._send({"type": "websocket.accept", "subprotocol": subprotocol})

    async def deny(self, status: int, body: bytes) -> None:
        """Refuse the upgrade with an HTTP response (a `Status` JSON body)."""
        await self._connect()
        await self._send({"type": "websocket.http.response.start", "status": status,
                          "headers": [(b"content-type", b"application/json"),
                                      (b"content-length", str(len(body)).encode())]})
        await self._send({"type": "websocket.http.response.body", "body": body})
        self._closed = True

    async def send_bytes(self, data: bytes) -> None:
        if not self._closed:
            await self._send({"type": "websocket.send", "bytes": data})

    async def receive_bytes(self) -> bytes | None:
        while not self._closed:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                self._closed = True
                return None
            if message["type"] == "websocket.receive":
                return message.get("bytes") or (message.get("text") or "").encode()
        return None

    async def close(self, code: int = 1000) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                await self._send({"type": "websocket.close", "code": code})
