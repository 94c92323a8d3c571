"""The protocol modules on their own: the SPDY/3.1 session (frames a client would send, built here
with the spec's layout), port-forward pairing over it against a real local listener, and the CRI
log rendering options."""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path

from localcluster.kubeletapi import logs, portforward, spdy


class Client:
    """The client half of a SPDY/3 session: its own compression context, frames as bytes."""

    def __init__(self) -> None:
        self.deflate = zlib.compressobj(zdict=spdy.DICTIONARY)
        self.inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)

    def syn_stream(self, stream_id: int, headers: dict[str, str], fin: bool = False) -> bytes:
        block = self.deflate.compress(spdy.header_block(headers)) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        payload = struct.pack(">IIBB", stream_id, 0, 0, 0) + block
        return spdy.control(spdy.SYN_STREAM, spdy.FLAG_FIN if fin else 0, payload)


def frames(raw: bytes) -> list[tuple[bool, int, int, bytes]]:
    """(control?, type or stream id, flags, payload) for each frame in `raw`."""
    out, pos = [], 0
    while pos < len(raw):
        first, second = struct.unpack_from(">II", raw, pos)
        length = second & 0xFFFFFF
        payload = raw[pos + 8: pos + 8 + length]
        control = bool(first & 0x80000000)
        out.append((control, first & 0xFFFF if control else first, second >> 24, payload))
        pos += 8 + length
    return out


def test_dictionary_is_the_specs() -> None:
    assert len(spdy.DICTIONARY) == 1423 and zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2


def test_session_replies_echoes_pings_and_carries_data() -> None:
    async def scenario() -> tuple[bytes, list[spdy.Stream], bytes]:
        sent = bytearray()

        async def write(frame: bytes) -> None:
            sent.extend(frame)

        opened: list[spdy.Stream] = []
        session = spdy.Session(write, opened.append)
        client = Client()
        wire = client.syn_stream(1, {"streamType": "data", "port": "80"}) + spdy.control(spdy.PING, 0, b"\0\0\0\7")
        wire += spdy.data(1, 0, b"hello") + spdy.data(1, spdy.FLAG_FIN, b"")
        for i in range(0, len(wire), 3):  # frames split anywhere by the transport
            await session.feed(wire[i: i + 3])
        await opened[0].write(b"back")
        await opened[0].close()
        received = b"".join([await opened[0].read(), await opened[0].read()])
        return bytes(sent), opened, received

    sent, opened, received = asyncio.run(scenario())
    assert opened[0].headers == {"streamtype": "data", "port": "80"}
    assert received == b"hello"
    parsed = frames(sent)
    assert parsed[0][:2] == (True, spdy.SYN_REPLY)
    assert struct.unpack(">I", parsed[0][3][:4])[0] == 1
    assert spdy.parse_header_block(Client().inflate.decompress(parsed[0][3][4:])) == {}
    assert parsed[1] == (True, spdy.PING, 0, b"\0\0\0\7")
    assert parsed[2] == (False, 1, 0, b"back") and parsed[3] == (False, 1, spdy.FLAG_FIN, b"")


def test_port_forward_pairs_streams_and_reports_failures() -> None:
    async def scenario() -> list[tuple[bool, int, int, bytes]]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"pong:" + await reader.read(100))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sent = bytearray()

        async def write(frame: bytes) -> None:
            sent.extend(frame)

        session: spdy.Session
        forwarder = portforward.Forwarder(lambda: session, lambda p: asyncio.open_connection("127.0.0.1", p),
                                          "pod", "uid-1")
        session = spdy.Session(write, forwarder.on_stream)
        client = Client()
        for sid, kind, target in ((1, "error", port), (3, "data", port), (5, "error", 1), (7, "data", 1)):
            await session.feed(client.syn_stream(sid, {"streamType": kind, "port": str(target),
                                                       "requestID": str(sid // 4)}, fin=kind == "error"))
        await session.feed(spdy.data(3, spdy.FLAG_FIN, b"ping"))
        while forwarder.tasks:
            await asyncio.gather(*list(forwarder.tasks))
        server.close()
        return frames(bytes(sent))

    parsed = asyncio.run(scenario())
    data = {sid: b"".join(p for c, sid2, _, p in parsed if not c and sid2 == sid) for sid in (1, 3, 5, 7)}
    assert data[3] == b"pong:ping" and data[1] == b""
    assert data[5].startswith(b"error forwarding port 1 to pod pod, uid uid-1: failed to connect")
    fins = {sid for c, sid, flags, _ in parsed if not c and flags & spdy.FLAG_FIN}
    assert fins == {1, 3, 5, 7}


def test_log_rendering_options(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(b"2026-01-01T00:00:01.000000000Z stdout F one\n"
                    b"2026-01-01T00:00:02.500000000Z stderr P par\n"
                    b"2026-01-01T00:00:02.600000000Z stderr F tial\n"
                    b"2026-01-01T00:00:03.123456789Z stdout F three\n"
                    b"2026-01-01T00:00:04.0000")  # a line still being written: not shown

    async def read(options: logs.LogOptions) -> bytes:
        return b"".join([chunk async for chunk in logs.stream(log, options, lambda: False)])

    assert asyncio.run(read(logs.LogOptions())) == b"one\npartial\nthree\n"
    assert asyncio.run(read(logs.LogOptions(tail_lines=1))) == b"three\n"
    assert asyncio.run(read(logs.LogOptions(limit_bytes=6))) == b"one\npa"
    since = logs.file_stamp(datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC))
    assert asyncio.run(read(logs.LogOptions(since=since, timestamps=True))) == (
        b"2026-01-01T00:00:02.5Z par2026-01-01T00:00:02.6Z tial\n2026-01-01T00:00:03.123456789Z three\n")
    options = logs.parse_options({"sinceTime": "2026-01-01T00:00:03Z", "follow": "true", "tailLines": "2"})
    assert options.since == "2026-01-01T00:00:03.000000000Z" and options.follow and options.tail_lines == 2


def test_a_command_killed_by_a_signal_exits_128_plus_the_signal() -> None:
    from localcluster.kubeletapi.channels import exit_status

    body = json.loads(exit_status(-11, ["wget", "-T", "3"]))
    assert body["details"]["causes"] == [{"reason": "ExitCode", "message": "139"}]
    assert body["message"].endswith("exited with 139")
