"""Process helpers over /proc: liveness, command lines, descendants, and bounded termination.

The movers start real sshd, ssh and rsync processes. Some of them outlive their parent (sshd forks a
session per connection, ssh backgrounds a ControlPersist master), so stopping cleanly needs more than
`Popen.terminate()`.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterable

_PROC = "/proc"


def state(pid: int) -> str | None:
    """The one-letter state from /proc/<pid>/stat, or None when the process does not exist."""
    stat = _read_stat(pid)
    return stat[0] if stat else None


def running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    return state(pid) not in (None, "Z", "X")


def cmdline(pid: int) -> list[str]:
    """The argv of `pid` (empty for a zombie or a vanished process)."""
    try:
        with open(f"{_PROC}/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [part.decode(errors="surrogateescape") for part in raw.split(b"\0") if part]


def descendants(pid: int) -> list[int]:
    """All live descendants of `pid`, parents before children."""
    by_parent: dict[int, list[int]] = {}
    for name in os.listdir(_PROC):
        if name.isdigit():
            stat = _read_stat(int(name))
            if stat and stat[0] not in ("Z", "X"):
                by_parent.setdefault(int(stat[1]), []).append(int(name))
    found: list[int] = []
    frontier = [pid]
    while frontier:
        kids = by_parent.get(frontier.pop(), [])
        found.extend(kids)
        frontier.extend(kids)
    return found


def terminate(pids: Iterable[int], timeout: float = 5.0, reap: Callable[[], object] | None = None) -> None:
    """SIGTERM `pids`, wait up to `timeout` for them to go, then SIGKILL whatever is left.

    `reap` is called while waiting so that a caller's own child (which becomes a zombie) is collected.
    """
    pending = [pid for pid in pids if running(pid)]
    for pid in pending:
        _signal(pid, signal.SIGTERM)
    if not wait_until(lambda: _all_gone(pending, reap), timeout):
        for pid in pending:
            _signal(pid, signal.SIGKILL)
        wait_until(lambda: _all_gone(pending, reap), timeout)


def kill_group(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
    """Stop a child started with `start_new_session=True` and its whole process group; return its status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait()


def wait(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """Wait up to `timeout` for `proc` to exit and return its status (None if still running).

    Unlike `Popen.wait(timeout)`, which polls with sleeps of up to 50 ms, this wakes up as soon as
    the process exits (through a pidfd) so that short commands are not slowed down.
    """
    if proc.returncode is not None:
        return proc.returncode
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    return proc.wait() if ready else proc.poll()


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.005) -> bool:
    """Poll `condition` until it holds or `timeout` passes; return whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 0.02)


def _all_gone(pids: list[int], reap: Callable[[], object] | None) -> bool:
    if reap is not None:
        reap()
    return not any(running(pid) for pid in pids)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _read_stat(pid: int) -> tuple[str, str] | None:
    """(state, ppid) of `pid`; the command name in parentheses may itself contain spaces or ')'."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return (fields[0], fields[1]) if len(fields) >= 2 else None
