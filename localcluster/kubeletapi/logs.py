"""Container logs as kubelet serves them: CRI log files turned into the plain text `kubectl logs` shows.

A CRI log line is `<RFC3339Nano UTC> stdout|stderr F|P <text>`: `F` ends a line, `P` is a partial
chunk of a long one (no newline of its own). The options are kubelet's (`PodLogOptions`):
`tailLines` counts CRI entries from the end, `sinceSeconds`/`sinceTime` drop older entries,
`timestamps` prefixes each entry with its time (Go's RFC3339Nano: trailing zeros trimmed),
`limitBytes` caps the output, `follow` keeps reading until the container has ended and the file
is drained. Timestamps in the files carry nine fractional digits in UTC, so they compare as text.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

FOLLOW_POLL_SECONDS = 0.1
_TRUE = ("1", "t", "T", "true", "TRUE", "True")
_FALSE = ("0", "f", "F", "false", "FALSE", "False")
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)")


@dataclass(frozen=True)
class LogOptions:
    """What to show of one container start's log (the query of `/containerLogs/...`)."""

    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    since: str | None = None  # a file timestamp (nine fractional digits, UTC): entries before it are dropped
    limit_bytes: int | None = None


def parse_bool(name: str, raw: str) -> bool:
    """A boolean query parameter as Go's strconv.ParseBool reads it (empty = true, as a bare flag)."""
    if raw == "" or raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f'{name}: Invalid value: "{raw}": must be a boolean')


def parse_time(raw: str) -> datetime:
    """An RFC 3339 time (`sinceTime`), ValueError when it is not one."""
    m = _RFC3339.fullmatch(raw)
    if m is None:
        raise ValueError(f'sinceTime: Invalid value: "{raw}": must be an RFC3339 time')
    base = datetime.fromisoformat(m.group(1) + (m.group(3) if m.group(3) != "Z" else "+00:00"))
    fraction = (m.group(2) or ".0")[1:]
    return base + timedelta(microseconds=int(fraction[:6].ljust(6, "0")))


def file_stamp(when: datetime) -> str:
    """`when` in the files' own timestamp format (so entries compare against it as text)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def parse_options(query: Mapping[str, str], now: datetime | None = None) -> LogOptions:
    """Kubelet's reading of the query; ValueError (a 400) on a value it cannot parse."""
    def integer(name: str, minimum: int) -> int | None:
        raw = query.get(name, "")
        if raw == "":
            return None
        if not re.fullmatch(r"[+-]?\d{1,18}", raw) or int(raw) < minimum:
            raise ValueError(f'{name}: Invalid value: "{raw}": must be an integer >= {minimum}')
        return int(raw)

    since: str | None = None
    seconds = integer("sinceSeconds", 1)
    if seconds is not None:
        since = file_stamp((now or datetime.now(UTC)) - timedelta(seconds=seconds))
    elif query.get("sinceTime"):
        since = file_stamp(parse_time(query["sinceTime"]))
    return LogOptions(
        follow=parse_bool("follow", query["follow"]) if "follow" in query else False,
        previous=parse_bool("previous", query["previous"]) if "previous" in query else False,
        timestamps=parse_bool("timestamps", query["timestamps"]) if "timestamps" in query else False,
        tail_lines=integer("tailLines", 0),
        since=since,
        limit_bytes=integer("limitBytes", 1),
    )


def go_time(stamp: str) -> str:
    """A file timestamp as Go's RFC3339Nano prints it: fractional trailing zeros trimmed."""
    head, _, rest = stamp.partition(".")
    if not rest:
        return stamp
    fraction = rest.rstrip("Z").rstrip("0")
    return f"{head}.{fraction}Z" if fraction else f"{head}Z"


def render(line: bytes, options: LogOptions) -> bytes | None:
    """One CRI entry as the client sees it, None for an entry the options drop or a damaged one."""
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3 or parts[2] not in (b"F", b"P"):
        return None
    stamp = parts[0].decode("ascii", "replace")
    if options.since is not None and stamp < options.since:
        return None
    text = parts[3] if len(parts) == 4 else b""
    if parts[2] == b"F":
        text += b"\n"
    if options.timestamps:
        text = go_time(stamp).encode() + b" " + text
    return text


class _Budget:
    """`limitBytes`: how much more may be sent."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit

    def take(self, chunk: bytes) -> bytes:
        if self.left is None:
            return chunk
        chunk = chunk[: self.left]
        self.left -= len(chunk)
        return chunk

    @property
    def spent(self) -> bool:
        return self.left is not None and self.left <= 0


async def batches(path: Path, *, follow: bool, running: Callable[[], bool],
                  from_end: bool = False) -> AsyncIterator[list[bytes]]:
    """Complete CRI lines of the file in batches: what it holds now (nothing with `from_end`), then,
    with `follow`, what is appended until `running()` turns False and the file holds nothing more."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        lines = handle.read().split(b"\n")
        pending = lines.pop()  # bytes after the last newline: a line still being written
        yield [] if from_end else lines
        while follow:
            alive = running()  # asked before reading: whatever was written before the end is read
            more = handle.read()
            if more:
                lines = (pending + more).split(b"\n")
                pending = lines.pop()
                yield lines
            elif not alive:
                return
            else:
                await asyncio.sleep(FOLLOW_POLL_SECONDS)


async def stream(path: Path, options: LogOptions, running: Callable[[], bool]) -> AsyncIterator[bytes]:
    """The log of one container start as text chunks; with `follow`, until `running()` turns False
    and the file holds nothing more."""
    budget, first = _Budget(options.limit_bytes), True
    async for lines in batches(path, follow=options.follow, running=running):
        if first and options.tail_lines is not None:
            lines = lines[-options.tail_lines:] if options.tail_lines else []
        first = False
        for chunk in _rendered(lines, options, budget):
            yield chunk
        if budget.spent:
            return


def _rendered(lines: list[bytes], options: LogOptions, budget: _Budget) -> list[bytes]:
    out = bytearray()
    for line in lines:
        text = render(line, options)
        if text is not None:
            out += text
    chunk = budget.take(bytes(out))
    return [chunk] if chunk else []
