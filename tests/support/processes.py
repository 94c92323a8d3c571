"""Start a real server process and wait for its one-line `<name> ready {json}` announcement."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def start_ready(cmd: Sequence[str], prefix: str, log: Path, cwd: Path, timeout: float = 30.0,
                ) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Run `cmd` (stderr appended to `log`) until it prints `<prefix> {json}`; return it and the JSON."""
    err = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # logs are private, as the hub's own
    try:
        proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=err, cwd=cwd)
    finally:
        os.close(err)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline and b"\n" not in line:
        if not sel.select(timeout=max(deadline - time.monotonic(), 0)):
            break
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        line += chunk
    sel.close()
    first = line.split(b"\n", 1)[0]  # whatever follows the ready line (a guide, logs) is not ours
    if not first.startswith(prefix.encode() + b" "):
        stop(proc)
        raise RuntimeError(f"{cmd[0]} did not start: {line!r}\n{log.read_text(errors='replace')[-4000:]}")
    try:
        return proc, json.loads(first[len(prefix) + 1:])
    except ValueError:
        stop(proc)
        raise


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
    """Signal the process, wait (SIGKILL after `timeout`), close its pipe; the exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode
