"""The data root as a `nosuid,nodev` mount, so that replicated data cannot escalate privileges on this host.

A destination receives whatever the source volume holds: a setuid-root executable, a device node.
With the data root bind-mounted onto itself with ``nosuid,nodev`` (one mount covering volumes,
snapshots, their staging directories and the movers' work directories), such files are kept
exactly as sent (a restore gives them back) but are inert here: exec ignores the setuid/setgid
bits and no device node can be opened, by anyone. The data root and its subdirectories are also
0700 (see `copying.Layout`), so no other local user reaches them in the first place.

Mounting needs root with CAP_SYS_ADMIN. Without it `protect` returns False and the caller falls
back to what holds without a mount (the 0700 directories; the receiving rsync strips setuid/setgid
from files when the volume is not on a nosuid,nodev mount: see `agent.movers.forced`).

Only a mount we made is ever removed: when `protect` mounts, it records the mount (its id in
/proc/self/mountinfo and the boot it was made in) in ``MARKER`` inside the data root, a file on the
data root's own filesystem, so it outlives a `kill -9` of the agent. The next start adopts a mount
that matches the marker; a data root that is already ``nosuid,nodev`` otherwise (an admin's own
mount, a nosuid tmpfs) is used as it is and never unmounted.

`release` runs at every stop of the agent (not only at uninstall): the data root and everything the
agent makes under it stay 0700 between runs, so the setuid files and device nodes it keeps are out of
other users' reach without the mount, and a stopped agent leaves no mount behind that would make
``rm -rf`` of its state fail (EBUSY) or outlive a test's temporary directory.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from osutil.files import write_private

log = logging.getLogger(__name__)

_MOUNTINFO = "/proc/self/mountinfo"
_BOOT_ID = "/proc/sys/kernel/random/boot_id"
MARKER = ".nosuid-mount"  # in the data root: "<boot id> <mount id>" of the mount we made


def inert(path: Path) -> bool:
    """Whether `path` is on a mount where setuid bits and device nodes have no effect."""
    flags = os.statvfs(path).f_flag
    return bool(flags & os.ST_NOSUID and flags & os.ST_NODEV)


def protect(root: Path) -> bool:
    """Make `root` a `nosuid,nodev` bind mount of itself unless it already is on one; returns whether it is.

    Returns False (and logs why) when this process may not mount. A mount we made before (see `MARKER`)
    is adopted; any other nosuid,nodev mount is used as it is and left alone by `release`.
    """
    if inert(root):
        if not ours(root):
            (root / MARKER).unlink(missing_ok=True)  # from an earlier boot: not ours any more
        return True
    if os.geteuid() != 0:
        log.warning("data root %s is not on a nosuid,nodev mount and an unprivileged agent cannot mount it so; "
                    "replicated setuid/setgid bits are stripped on receipt", root)
        return False
    problem = _run(["mount", "--bind", str(root), str(root)])
    if problem is None:
        _mark(root)
        problem = _run(["mount", "-o", "remount,bind,nosuid,nodev", str(root)])
        if problem is not None:
            release(root)
    if problem is not None:
        log.warning("cannot mount data root %s nosuid,nodev (%s); replicated setuid/setgid bits are stripped on "
                    "receipt and the data stays under 0700 directories", root, problem)
        return False
    return inert(root)


def release(root: Path) -> None:
    """Unmount `root` if its topmost mount is the one `protect` made (see `MARKER`); anything else,
    an admin's own bind mount of the data root included, is left alone."""
    if not ours(root):
        return
    if _run(["umount", str(root)]) is not None:  # busy: detach now, the kernel frees it when unused
        _run(["umount", "-l", str(root)])
    (root / MARKER).unlink(missing_ok=True)


def ours(root: Path) -> bool:
    """Whether the topmost mount at `root` is the bind mount `protect` made (recorded in `MARKER`)."""
    try:
        recorded = (root / MARKER).read_text().split()
    except (FileNotFoundError, NotADirectoryError):
        return False
    top = _top_mount(root)
    return top is not None and self_bound(root) and recorded == [_boot_id(), top.mount_id]


def _mark(root: Path) -> None:
    """Record the bind mount just made at `root` as ours (written through it, onto the data root's own
    filesystem: it stays when the mount goes, and a stale one is told apart by boot and mount id)."""
    top = _top_mount(root)
    if top is None:
        return
    write_private(root / MARKER, f"{_boot_id()} {top.mount_id}\n")


def _boot_id() -> str:
    try:
        with open(_BOOT_ID) as f:
            return f.read().strip()
    except OSError:
        return "unknown-boot"


def _top_mount(path: Path) -> _Mount | None:
    at_path = [m for m in _mountinfo() if m.mount_point == str(path)]
    return at_path[-1] if at_path else None


@dataclass(frozen=True)
class _Mount:
    mount_id: str
    parent_id: str
    device: str
    root: str
    mount_point: str


def self_bound(path: Path) -> bool:
    """Whether the topmost mount at `path` is a bind mount of `path` onto itself."""
    mounts = _mountinfo()
    at_path = [m for m in mounts if m.mount_point == str(path)]
    if not at_path:
        return False
    top = at_path[-1]
    parent = next((m for m in mounts if m.mount_id == top.parent_id), None)
    if parent is None or parent.device != top.device:
        return False
    relative = os.path.relpath(str(path), parent.mount_point)
    expected = os.path.normpath(os.path.join(parent.root, relative))
    return top.root == expected


def _mountinfo() -> list[_Mount]:
    mounts = []
    with open(_MOUNTINFO) as f:
        for line in f:
            fields = line.split()
            mounts.append(_Mount(fields[0], fields[1], fields[2], _unescape(fields[3]), _unescape(fields[4])))
    return mounts


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _run(cmd: list[str]) -> str | None:
    """Run mount/umount; None when it worked, else its message."""
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr.strip() or f"{cmd[0]} exited with {done.returncode}")
