"""The API server's connections to a node's kubelet: HTTPS with the kubelet client certificate
(kube-apiserver's `--kubelet-client-certificate/-key`, the kubelet's serving certificate checked
against `--kubelet-certificate-authority`), always to `127.0.0.1` (every embedded node runs on
this machine; nothing else is ever dialled). Since every kubelet listens there, the port a Node
publishes proves nothing: the kubelet's certificate must name exactly the cluster and node dialled
(`osutil.certs.kubelet_server_name`), else the connection fails.

`get` opens a streaming GET (container logs); `websocket` performs a WebSocket handshake (wsproto)
offering the client's subprotocols and returns the open connection, or raises `Refused` with the
kubelet's status and body when it answers with an HTTP error instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import httpx
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

KUBELET_HOST = "127.0.0.1"
READ_CHUNK = 64 * 1024
HANDSHAKE_TIMEOUT = 15.0


class Refused(Exception):
    """The kubelet answered with an HTTP error (`status`, `body`) instead of serving."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"kubelet answered {status}")
        self.status, self.body = status, body


@dataclass(frozen=True)
class KubeletCredentials:
    """The API server's client certificate and key for kubelets, and the CA their certificates chain to."""

    cert: Path
    key: Path
    ca: Path

    @cached_property
    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx

    def url(self, port: int, path: str) -> str:
        return f"https://{KUBELET_HOST}:{port}{path}"


async def get(creds: KubeletCredentials, port: int, path: str, server_name: str) -> tuple[httpx.AsyncClient,
                                                                                          httpx.Response]:
    """A streaming GET to the kubelet whose certificate names `server_name`; the caller reads
    `response.aiter_raw()` and closes both."""
    client = httpx.AsyncClient(verify=creds.context, timeout=httpx.Timeout(HANDSHAKE_TIMEOUT, read=None))
    try:
        request = client.build_request("GET", creds.url(port, path), extensions={"sni_hostname": server_name})
        response = await client.send(request, stream=True)
    except httpx.TransportError as exc:  # refused, or a certificate not naming `server_name`
        await client.aclose()
        raise ConnectionError(str(exc) or type(exc).__name__) from exc
    except BaseException:
        await client.aclose()
        raise
    return client, response


class KubeletSocket:
    """An open WebSocket to the kubelet: whole binary messages in and out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ws: WSConnection,
                 subprotocol: str | None) -> None:
        self._reader, self._writer, self._ws = reader, writer, ws
        self.subprotocol = subprotocol
        self.close_code = 1000

    async def send(self, payload: bytes) -> None:
        self._writer.write(self._ws.send(BytesMessage(data=payload)))
        await self._writer.drain()

    async def messages(self) -> AsyncIterator[bytes]:
        """Every message the kubelet sends, until it closes (or the connection drops)."""
        partial = bytearray()
        while data := await self._reader.read(READ_CHUNK):
            self._ws.receive_data(data)
            for event in self._ws.events():
                if isinstance(event, BytesMessage | TextMessage):
                    partial += event.data.encode() if isinstance(event.data, str) else event.data
                    if event.message_finished:
                        yield bytes(partial)
                        partial.clear()
                elif isinstance(event, Ping):
                    self._writer.write(self._ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    self.close_code = event.code
                    with contextlib.suppress(Exception):
                        self._writer.write(self._ws.send(event.response()))
                    return

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.write(self._ws.send(CloseConnection(code=1000)))
            await self._writer.drain()
        self._writer.close()


async def websocket(creds: KubeletCredentials, port: int, path: str, subprotocols: list[str],
                    server_name: str) -> KubeletSocket:
    """A WebSocket to the kubelet whose certificate names `server_name`."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(KUBELET_HOST, port, ssl=creds.context, server_hostname=server_name),
        HANDSHAKE_TIMEOUT,
    )
    ws = WSConnection(ConnectionType.CLIENT)
    writer.write(ws.send(Request(host=f"{KUBELET_HOST}:{port}", target=path, subprotocols=subprotocols)))
    await writer.drain()
    status, body = 0, bytearray()
    while data := await asyncio.wait_for(reader.read(READ_CHUNK), HANDSHAKE_TIMEOUT):
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, AcceptConnection):
                return KubeletSocket(reader, writer, ws, event.subprotocol)
            if isinstance(event, RejectConnection):
                status = event.status_code
                if not event.has_body:
                    writer.close()
                    raise Refused(status, b"")
            elif isinstance(event, RejectData):
                body += event.data
                if event.body_finished:
                    writer.close()
                    raise Refused(status, bytes(body))
    writer.close()
    raise ConnectionError("the kubelet closed the connection during the WebSocket handshake")
