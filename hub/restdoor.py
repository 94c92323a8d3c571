"""The REST API's door (ASGI middleware): who is calling, and how big the body is, before any app code reads it.

FastAPI parses a body into its pydantic model before a Security dependency runs, and Starlette
reads a chunked body whole; so an unauthenticated client could make the hub buffer any amount.
`RequestDoor` runs first, on the headers alone:

- `/api/v1/agents/{cluster}/...` needs that cluster's agent token (401 without a valid token, 403
  for another cluster's or the admin token); every other `/api/v1/...` path needs the admin token
  (401 / 403 for an agent token). `/healthz`, `/readyz`, `/metrics` and the docs are open.
  The cluster is the path segment exactly as the router sees it (`scope["path"]`, which the server
  has already percent-decoded once; it is not decoded again), so the cluster authorised is the
  cluster the endpoint writes: `cluster%2531` is the cluster `cluster%31`, not `cluster1`.
- a caller has at most `InFlight.agent` (per agent token) or `InFlight.admin` requests in flight;
  one more is a 429 with `Retry-After`, so one caller cannot hold the buffers and worker threads
  the other clusters' heartbeats and `/healthz` need.
- the body is then read with a running cap (`Content-Length` or not): over `max_body_bytes` is a
  413 as soon as the cap is passed, and what was read is dropped.

A refusal closes the connection (`Connection: close`), so the server stops reading the unread body.
The caller found is left in `scope["state"]["caller"]` for the endpoints' dependencies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.tokens import Caller

log = logging.getLogger("volsync.hub.rest")

AGENT_PREFIX = "/api/v1/agents/"
USER_PREFIX = "/api/v1/"


@dataclass(frozen=True)
class Refusal:
    """An HTTP refusal: status and the message for `{"detail": ...}`."""

    status: int
    detail: str


UNAUTHORIZED = Refusal(401, "missing or invalid bearer token")
RETRY_AFTER_SECONDS = 1


def path_cluster(path: str) -> str | None:
    """The `{cluster}` of an agent path as the router matches it (`scope["path"]`, never decoded again)."""
    return path[len(AGENT_PREFIX):].split("/", 1)[0] if path.startswith(AGENT_PREFIX) else None


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), or None."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def authorize(who: Caller | None, path: str) -> Refusal | None:
    """Whether `who` may call `path` (pure); None when allowed or when the path is open."""
    if (cluster := path_cluster(path)) is not None:
        if who is None:
            return UNAUTHORIZED
        if who.kind != "agent":
            return Refusal(403, "the agent endpoints take an agent token")
        if who.cluster != cluster:
            return Refusal(403, f"this token does not belong to cluster {cluster!r}")
        return None
    if path.startswith(USER_PREFIX):
        if who is None:
            return UNAUTHORIZED
        if who.kind != "admin":
            return Refusal(403, "the user endpoints take the admin token")
    return None


def refuse(refusal: Refusal, *, close: bool = True) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else {}
    if refusal.status == 429:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if close:
        headers["Connection"] = "close"
    return JSONResponse({"detail": refusal.detail}, status_code=refusal.status, headers=headers)


class BodyTooLarge(Exception):
    pass


async def read_capped(receive: Receive, cap: int) -> tuple[list[Message], bool]:
    """The request's body messages, read until the end (or a disconnect), at most `cap` bytes in all.

    Returns (messages, complete); raises BodyTooLarge as soon as more than `cap` bytes arrived."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, False
        size += len(message.get("body", b""))
        if size > cap:
            raise BodyTooLarge
        if not message.get("more_body", False):
            return messages, True


class InFlight:
    """Requests in flight per caller (an agent token's cluster, or the admin), within caps.

    A lock, not the event loop, guards the counts: in-process tests run requests in several loops."""

    def __init__(self, *, agent: int, admin: int) -> None:
        self.agent, self.admin = agent, admin
        self._guard = threading.Lock()
        self._counts: dict[str, int] = {}

    def enter(self, who: Caller) -> str | None:
        """The key to `leave` with, or None when the caller already has its cap of requests in flight."""
        key, cap = (f"agent/{who.cluster}", self.agent) if who.kind == "agent" else ("admin", self.admin)
        with self._guard:
            if self._counts.get(key, 0) >= cap:
                return None
            self._counts[key] = self._counts.get(key, 0) + 1
        return key

    def leave(self, key: str) -> None:
        with self._guard:
            if (left := self._counts[key] - 1) > 0:
                self._counts[key] = left
            else:
                del self._counts[key]


class RequestDoor:
    """ASGI middleware: authorization on the headers, the caller's in-flight cap, then the body read with a
    running cap."""

    def __init__(self, app: ASGIApp, *, identify: Callable[[str | None], Caller | None], max_body_bytes: int,
                 in_flight: InFlight) -> None:
        self.app = app
        self.identify = identify
        self.max_body_bytes = max_body_bytes
        self.in_flight = in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path: str = scope.get("path", "")
        who = self.identify(bearer(headers.get("authorization")))
        if (refusal := authorize(who, path)) is not None:
            log.info("%d %s %s: %s", refusal.status, scope.get("method"), path, refusal.detail)
            await refuse(refusal)(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = who
        counted = who is not None and path.startswith(USER_PREFIX)  # the open paths are never refused
        key = self.in_flight.enter(who) if who is not None and counted else None
        if counted and key is None:
            busy = Refusal(429, "too many requests of this caller in flight; retry when one has been answered")
            log.info("429 %s %s: %s", scope.get("method"), path, busy.detail)
            await refuse(busy)(scope, receive, send)
            return
        try:
            await self._admit(scope, receive, send)
        finally:
            if key is not None:
                self.in_flight.leave(key)

    async def _admit(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The body read within the cap (413 as soon as it is passed), then the app."""
        headers, path = Headers(scope=scope), scope.get("path", "")
        too_large = Refusal(413, f"request body over {self.max_body_bytes} bytes")
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            await refuse(too_large)(scope, receive, send)
            return
        try:
            messages, _ = await read_capped(receive, self.max_body_bytes)
        except BodyTooLarge:
            log.info("413 %s %s: body over %d bytes", scope.get("method"), path, self.max_body_bytes)
            await refuse(too_large)(scope, receive, send)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)
