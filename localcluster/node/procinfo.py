"""Processes as the runtime identifies them: `(pid, starttime)` pairs read from `/proc`, so a pid the
kernel reused for another process is never mistaken for a container's (pure reads, no signals here)."""

from __future__ import annotations

import os


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def alive(pid: int, started: int) -> bool:
    """True while the process `pid` that started at `started` still lives (and is not a zombie)."""
    return start_time(pid) == started


def pid_namespace(pid: int) -> str | None:
    """The PID namespace of `pid` (`pid:[inode]`), None when it is gone."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def in_namespace(namespace: str) -> list[int]:
    """Every live process whose PID namespace is `namespace`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and pid_namespace(int(entry)) == namespace:
            found.append(int(entry))
    return found


def read_pid_file(text: str) -> tuple[int, int] | None:
    """`"<pid> <starttime>"` -> (pid, starttime); None for an empty or malformed file."""
    parts = text.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])
