"""A minimal SPDY/3.1 server session (the framing kubectl's port-forward speaks), written from the spec.

Frames: an 8-byte header, then the payload. A control frame starts with bit 1, the version (3) and
its type (SYN_STREAM 1, SYN_REPLY 2, RST_STREAM 3, SETTINGS 4, PING 6, GOAWAY 7, HEADERS 8,
WINDOW_UPDATE 9), then flags (8 bits) and length (24 bits); a data frame starts with bit 0 and the
stream id (31 bits), then flags (FIN = 1) and length. Header blocks (`count, (len, name, len,
value)*`, 32-bit big-endian lengths) are zlib-compressed with SPDY/3's dictionary, one compression
context per direction for the whole session, each block sync-flushed.

The client opens streams (odd ids) with SYN_STREAM; we answer each with an empty SYN_REPLY, echo
PINGs, and otherwise ignore SETTINGS and WINDOW_UPDATE: kubectl's implementation does not enforce
flow-control windows, and the transport below (TCP, WebSocket) already pushes back. The session
runs over any byte transport: `feed()` what arrives, it `write`s what it sends.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Awaitable, Callable

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
VERSION = 3
CANCEL = 5  # RST_STREAM status
MAX_PAYLOAD = 16 * 1024 * 1024 - 1

# SPDY/3's header dictionary (section 2.6.10.1 of the draft): these names, each preceded by its
# length as a 32-bit big-endian integer, then the text below as is. 1423 bytes, Adler-32 0xe3c6a7c2.
_DICTIONARY_NAMES = (
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
    "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
    "content-base", "content-encoding", "content-language", "content-length", "content-location", "content-md5",
    "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host", "if-match",
    "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after",
    "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
    "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie",
    "keep-alive", "origin",
)
_DICTIONARY_TEXT = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(
    struct.pack(">I", len(n)) + n.encode() for n in _DICTIONARY_NAMES
) + _DICTIONARY_TEXT.encode()


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3: the session ends."""


def header_block(pairs: dict[str, str]) -> bytes:
    """An uncompressed header block."""
    out = bytearray(struct.pack(">I", len(pairs)))
    for name, value in pairs.items():
        for text in (name.encode(), value.encode()):
            out += struct.pack(">I", len(text)) + text
    return bytes(out)


def parse_header_block(block: bytes) -> dict[str, str]:
    """Names lower-cased (SPDY/3 requires it; be lenient); several values stay NUL-separated."""
    try:
        (count,), pos, pairs = struct.unpack_from(">I", block), 4, {}
        for _ in range(count):
            texts = []
            for _ in range(2):
                (size,) = struct.unpack_from(">I", block, pos)
                texts.append(block[pos + 4: pos + 4 + size].decode("utf-8", "replace"))
                pos += 4 + size
            pairs[texts[0].lower()] = texts[1]
        return pairs
    except struct.error as exc:
        raise ProtocolError(f"truncated header block: {exc}") from exc


def control(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def data(stream_id: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(payload)) + payload


class Stream:
    """One client-opened stream: `headers`, what the client sends (`read`), what we send (`write`)."""

    def __init__(self, session: Session, stream_id: int, headers: dict[str, str]) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = False  # we sent FIN or RST
        self.reset = False  # the peer reset it

    async def read(self) -> bytes:
        """The next chunk the client sent; b"" once it half-closed or reset the stream."""
        return await self.inbox.get()

    async def write(self, chunk: bytes) -> None:
        for start in range(0, len(chunk), MAX_PAYLOAD):
            if self.closed or self.reset:
                return
            await self.session.send(data(self.id, 0, chunk[start: start + MAX_PAYLOAD]))

    async def close(self) -> None:
        """Half-close our side (FIN), once."""
        if not self.closed and not self.reset:
            self.closed = True
            await self.session.send(data(self.id, FLAG_FIN, b""))


class Session:
    """The server side of one SPDY/3.1 connection. `on_stream` is called for every new stream once
    it has been replied to; it must not block (start a task)."""

    def __init__(self, write: Callable[[bytes], Awaitable[None]], on_stream: Callable[[Stream], None]) -> None:
        self._write = write
        self._on_stream = on_stream
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8, zdict=DICTIONARY)
        self._lock = asyncio.Lock()
        self.streams: dict[int, Stream] = {}
        self.gone = False  # the peer sent GOAWAY

    async def send(self, frame: bytes) -> None:
        async with self._lock:
            await self._write(frame)

    async def feed(self, chunk: bytes) -> None:
        """Bytes from the transport, in order; frames are handled as soon as they are complete."""
        self._buffer += chunk
        while len(self._buffer) >= 8:
            (length,) = struct.unpack_from(">I", self._buffer, 4)
            length &= 0xFFFFFF
            if len(self._buffer) < 8 + length:
                return
            head, payload = bytes(self._buffer[:8]), bytes(self._buffer[8: 8 + length])
            del self._buffer[: 8 + length]
            await self._frame(head, payload)

    def end(self) -> None:
        """The transport ended: every stream reads EOF."""
        for stream in self.streams.values():
            stream.reset = True
            stream.inbox.put_nowait(b"")

    async def _frame(self, head: bytes, payload: bytes) -> None:
        first, second = struct.unpack_from(">II", head)
        flags = second >> 24
        if not first & 0x80000000:
            self._data(first & 0x7FFFFFFF, flags, payload)
            return
        kind = first & 0xFFFF
        if kind in (SYN_STREAM, SYN_REPLY, HEADERS):
            offset = 10 if kind == SYN_STREAM else 4
            if len(payload) < offset:
                raise ProtocolError(f"control frame {kind} too short")
            try:  # every block goes through the one inflater, or the next ones cannot be read
                headers = parse_header_block(self._inflate.decompress(payload[offset:]))
            except zlib.error as exc:
                raise ProtocolError(f"header block: {exc}") from exc
            if kind == SYN_STREAM:
                await self._open(struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF, flags, headers)
        elif kind == RST_STREAM and len(payload) >= 8:
            stream = self.streams.pop(struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF, None)
            if stream is not None:
                stream.reset = True
                stream.inbox.put_nowait(b"")
        elif kind == PING:
            await self.send(control(PING, 0, payload))
        elif kind == GOAWAY:
            self.gone = True

    async def _open(self, stream_id: int, flags: int, headers: dict[str, str]) -> None:
        stream = Stream(self, stream_id, headers)
        self.streams[stream_id] = stream
        if flags & FLAG_FIN:
            stream.inbox.put_nowait(b"")
        async with self._lock:
            block = self._deflate.compress(header_block({})) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
            await self._write(control(SYN_REPLY, 0, struct.pack(">I", stream_id) + block))
        self._on_stream(stream)

    def _data(self, stream_id: int, flags: int, payload: bytes) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        if payload:
            stream.inbox.put_nowait(payload)
        if flags & FLAG_FIN:
            stream.inbox.put_nowait(b"")

    async def reset(self, stream: Stream, status: int = CANCEL) -> None:
        if not stream.closed and not stream.reset:
            stream.closed = True
            await self.send(control(RST_STREAM, 0, struct.pack(">II", stream.id, status)))
        self.streams.pop(stream.id, None)
