"""A container's termination message, read as the kubelet reads it once the container ended.

The container sees a writable file at `terminationMessagePath` (default `/dev/termination-log`; the
runtime binds `layout.TERMINATION_LOG` of the start there). Once it ended, the message is
- the last `FILE_BYTES` (4096) bytes of that file;
- with `terminationMessagePolicy: FallbackToLogsOnError`, when the file is empty and the container
  failed (a non-zero exit, not a `StartError`: a command that never ran has no log), the last
  `LOG_LINES` (80) lines of its log, cut to their last `LOG_BYTES` (2048) bytes;
- prefixed with the runtime's own message (`StartError`'s complaint) and ": " when there is one.
It becomes `state.terminated.message` (and `lastState.terminated.message` after a restart).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from localcluster.node.runtime import ContainerRecord

DEFAULT_PATH = "/dev/termination-log"
FILE_BYTES = 4096
LOG_LINES = 80
LOG_BYTES = 2048
LOG_WINDOW = 256 * 1024  # bytes of the CRI log read from its end to find the last lines
FALLBACK = "FallbackToLogsOnError"


def message_path(container: Mapping[str, Any]) -> str | None:
    """Where the container's termination message file goes (None: `terminationMessagePath: ""`)."""
    path = container.get("terminationMessagePath", DEFAULT_PATH)
    return str(path) if path else None


def termination_message(record: ContainerRecord, message_file: Path, policy: str) -> str:
    """The message of an ended container (see the module docstring); "" while it runs."""
    if record.exit_code is None:
        return ""
    text = _tail(message_file, FILE_BYTES).decode(errors="replace")
    if not text and policy == FALLBACK and record.exit_code != 0 and record.reason != "StartError":
        text = log_tail(record.log_path)
    if record.message and text:
        return f"{record.message}: {text}"
    return record.message or text


def log_tail(log_path: Path) -> str:
    """The last `LOG_LINES` lines of a CRI log (both streams, partial pieces joined), its last `LOG_BYTES`."""
    raw = _tail(log_path, LOG_WINDOW)
    lines = raw.split(b"\n")
    if len(raw) == LOG_WINDOW:
        lines = lines[1:]  # the window began inside a line
    text: list[bytes] = []
    for line in lines:
        parts = line.split(b" ", 3)
        if len(parts) < 4:
            continue
        text.append(parts[3] + b"\n" if parts[2] == b"F" else parts[3])
    joined = b"".join(text)
    kept = b"".join(joined.splitlines(keepends=True)[-LOG_LINES:])
    return kept[-LOG_BYTES:].decode(errors="replace")


def _tail(path: Path, limit: int) -> bytes:
    """The last `limit` bytes of `path` (b"" when it does not exist)."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - limit))
            return fh.read(limit)
    except (FileNotFoundError, IsADirectoryError):
        return b""
