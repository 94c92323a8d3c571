"""Port-forward semantics on a SPDY session, as kubelet serves `kubectl port-forward`.

For each local connection the client opens two streams with the same `requestID` header: an
`error` stream (it only reads it: one message when forwarding fails) and a `data` stream, both
naming the Pod's `port`. Once both are there we dial `127.0.0.1:<port>` in the Pod's network
namespace and copy bytes both ways; the client half-closing the data stream shuts our socket's
write side, the Pod's side ending closes the data stream. A failure is written to the error stream
(`error forwarding port N to pod NAME, uid UID: ...`, kubelet's words) and both streams close.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from localcluster.kubeletapi import spdy

Dial = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
CHUNK = 32 * 1024


class Forwarder:
    """Pairs a session's streams by request id and forwards each pair (see the module docstring)."""

    def __init__(self, session_of: Callable[[], spdy.Session], dial: Dial, pod: str, uid: str) -> None:
        self._session_of = session_of
        self._dial = dial
        self._pod, self._uid = pod, uid
        self._halves: dict[str, dict[str, spdy.Stream]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def on_stream(self, stream: spdy.Stream) -> None:
        kind = stream.headers.get("streamtype", "")
        request = stream.headers.get("requestid") or f"port-{stream.headers.get('port', '')}"
        if kind not in ("data", "error"):
            self._spawn(self._session_of().reset(stream, spdy.CANCEL))
            return
        pair = self._halves.setdefault(request, {})
        pair[kind] = stream
        if len(pair) == 2:
            del self._halves[request]
            self._spawn(self._forward(pair["data"], pair["error"]))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _forward(self, data: spdy.Stream, error: spdy.Stream) -> None:
        raw = data.headers.get("port", "")
        try:
            port = int(raw)
            if not 0 < port < 65536:
                raise ValueError(raw)
        except ValueError:
            await self._fail(data, error, f'invalid port "{raw}"')
            return
        try:
            reader, writer = await self._dial(port)
        except OSError as exc:
            await self._fail(data, error, f"error forwarding port {port} to pod {self._pod}, uid {self._uid}: "
                                          f"failed to connect to localhost:{port} inside namespace: {exc}")
            return
        try:
            await asyncio.gather(_to_pod(data, writer), _from_pod(reader, data))
        finally:
            writer.close()
            await error.close()

    async def _fail(self, data: spdy.Stream, error: spdy.Stream, message: str) -> None:
        await error.write(message.encode())
        await error.close()
        await data.close()


async def _to_pod(data: spdy.Stream, writer: asyncio.StreamWriter) -> None:
    while chunk := await data.read():
        writer.write(chunk)
        try:
            await writer.drain()
        except ConnectionError:
            return
    with contextlib.suppress(OSError):
        if writer.can_write_eof():
            writer.write_eof()


async def _from_pod(reader: asyncio.StreamReader, data: spdy.Stream) -> None:
    try:
        while chunk := await reader.read(CHUNK):
            await data.write(chunk)
    except ConnectionError:
        pass
    await data.close()
