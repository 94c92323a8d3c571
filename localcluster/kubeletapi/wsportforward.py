"""Port-forward over the WebSocket channel protocol (v4/v5.channel.k8s.io), as the official Python
client's `kubernetes.stream.portforward` speaks it (kubectl tunnels SPDY instead: `portforward.py`).

The ports come in the query. Port number i gets channel 2i for data and 2i+1 for errors; the first
message on each channel is the port as 16-bit little-endian, then data (or an error text) follows.
Each port is one connection to `127.0.0.1:<port>` in the Pod's network namespace, opened when the
session starts; the session ends when every connection has ended or the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Awaitable, Callable

from localcluster.kubeletapi.channels import Receive, Send
from localcluster.kubeletapi.portforward import CHUNK, Dial

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def parse_ports(values: list[str]) -> list[int]:
    """`ports=80&ports=8080` or `ports=80,8080`; ValueError on anything but 1..65535."""
    ports = [int(p) for v in values for p in v.split(",") if p.strip()]
    if not ports or any(not 0 < p < 65536 for p in ports):
        raise ValueError(f"invalid ports {values}: each must be 1..65535")
    return ports


async def serve(ports: list[int], dial: Dial, send: Send, receive: Receive, describe: Callable[[int], str]) -> None:
    """Forward `ports` until all their connections ended or the client left."""
    for i, port in enumerate(ports):
        for channel in (2 * i, 2 * i + 1):
            await send(bytes([channel]) + struct.pack("<H", port))
    connections: dict[int, asyncio.StreamWriter] = {}
    pumps: list[asyncio.Task[None]] = []
    for i, port in enumerate(ports):
        try:
            reader, writer = await dial(port)
        except OSError as exc:
            await send(bytes([2 * i + 1]) + f"{describe(port)}: {exc}".encode())
            continue
        connections[i] = writer
        pumps.append(asyncio.create_task(_from_pod(reader, 2 * i, send)))
    feeder = asyncio.create_task(_to_pods(connections, receive))
    try:
        if pumps:
            pods_done = asyncio.create_task(_every(pumps))
            await asyncio.wait([pods_done, feeder], return_when=asyncio.FIRST_COMPLETED)
            pods_done.cancel()
    finally:
        feeder.cancel()
        for task in pumps:
            task.cancel()
        for writer in connections.values():
            writer.close()


async def _every(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.gather(*tasks)


async def _from_pod(reader: asyncio.StreamReader, channel: int, send: Callable[[bytes], Awaitable[None]]) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(CHUNK):
            await send(bytes([channel]) + chunk)


async def _to_pods(connections: dict[int, asyncio.StreamWriter], receive: Receive) -> None:
    while (message := await receive()) is not None:
        if len(message) < 2 or message[0] % 2:
            continue
        writer = connections.get(message[0] // 2)
        if writer is not None and not writer.is_closing():
            writer.write(message[1:])
            with contextlib.suppress(ConnectionError):
                await writer.drain()
