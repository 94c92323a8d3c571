"""One way to run our long-lived child processes: started detached, announced, adopted after a crash.

A daemon of ours is started in its own session (a `kill -9` of its parent leaves it running) and
prints one ready line `<name> ready {json}` on stdout once it serves. The starter records that JSON
plus the pid in a private ready file, written atomically; a later starter (after its own crash)
*adopts* the process when the ready file names a live pid whose command line is still the one it
would start, instead of starting a second copy. Anything else found running for the same ready
file is stopped first, so that a fresh one can take its locks.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osutil.files import open_private, write_private


@dataclass
class Daemon:
    """A started or adopted daemon: its pid, its ready JSON, and its Popen when we started it."""

    pid: int
    ready: dict[str, Any]
    proc: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return alive(self.pid)

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> None:
        """`sig` (SIGTERM), then SIGKILL after `timeout`; returns once the process is gone."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            if self.proc is not None:
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            elif not gone(self.pid, timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                gone(self.pid, timeout)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


def alive(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False


def gone(pid: int, timeout: float) -> bool:
    """Wait up to `timeout` seconds for `pid` to end; whether it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.02)
    return not alive(pid)


def cmdline(pid: int) -> list[str]:
    """The argv of `pid` ([] when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")[:-1]


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_line(stream: Any, timeout: float) -> bytes:
    """The first line `stream` prints within `timeout` seconds (b"" or a partial line if none)."""
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    line = b""
    try:
        while time.monotonic() < deadline and b"\n" not in line:
            if not sel.select(max(deadline - time.monotonic(), 0)):
                break
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                break
            line += chunk
    finally:
        sel.close()
    return line.split(b"\n", 1)[0]


def adopt(readyfile: Path, cmd: Sequence[str]) -> Daemon | None:
    """The daemon `readyfile` names, if it is alive and still runs exactly `cmd`."""
    ready = read_json(readyfile)
    if ready is None or not isinstance(ready.get("pid"), int):
        return None
    pid = ready["pid"]
    if alive(pid) and cmdline(pid) == list(cmd):
        return Daemon(pid, ready)
    return None


def start(cmd: Sequence[str], name: str, readyfile: Path, log: Path, *, timeout: float = 30.0,
          env: dict[str, str] | None = None) -> Daemon:
    """Adopt the daemon `readyfile` names when it runs `cmd`; else stop it (if alive) and start `cmd`
    detached (own session, stderr appended to `log`), wait for `<name> ready {json}`, record it."""
    adopted = adopt(readyfile, cmd)
    if adopted is not None:
        return adopted
    previous = read_json(readyfile)
    if previous is not None and isinstance(previous.get("pid"), int) and cmdline(previous["pid"])[:3] == list(cmd)[:3]:
        Daemon(previous["pid"], previous).stop()  # same program, other arguments: make room
    with open_private(log, "ab") as err:
        proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    assert proc.stdout is not None
    line = read_line(proc.stdout, timeout)
    prefix = f"{name} ready ".encode()
    if not line.startswith(prefix):
        Daemon(proc.pid, {}, proc).stop(timeout=5)
        raise RuntimeError(f"{name} did not start: {line!r} (see {log})")
    ready: dict[str, Any] = {**json.loads(line[len(prefix):]), "pid": proc.pid}
    write_private(readyfile, json.dumps(ready))  # atomic: a later starter reads all or nothing
    return Daemon(proc.pid, ready, proc)


def announce(name: str, **fields: Any) -> None:
    """Print the ready line `<name> ready {json}` a starter waits for, and flush it."""
    print(f"{name} ready {json.dumps(fields)}", flush=True)
