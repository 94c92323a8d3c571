"""The storage pool: a sparse XFS image with reflinks, loop-mounted `nosuid,nodev`, whose copies share blocks.

    <root>/pool.img   sparse file, `mkfs.xfs -m reflink=1` (default 64 GiB apparent size)
    <root>/pool/      its mount point (`mount -o loop,nosuid,nodev`); volumes and snapshots live inside

A snapshot, clone or restore is then `cp --reflink=always`: metadata, not data, and still
copy-on-write, so a later in-place write to one side never reaches the other. `nosuid,nodev` keeps
replicated setuid executables and device nodes inert on this host (they are kept as sent).

`open_pool` is idempotent and crash-safe: a pool already mounted at `<root>/pool` from our image (a
run killed with -9, or stopped with `release=False`) is adopted, found through /proc/self/mountinfo
and the loop device's backing file; an image that exists but is not mounted is mounted again; an
image is made only when `<root>/pool` is absent or empty. When the pool cannot be made (not root,
no loop device, mkfs or mount refused) the pool directory is used as a plain directory (full
copies) with a warning naming what is missing; `size=0` asks for that on purpose. An image that
exists but cannot be mounted is an error (its volumes are inside it), never a silent fallback.

`release` unmounts (lazily if busy) and detaches every loop device still backed by the image.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from osutil.files import private_dir

log = logging.getLogger(__name__)

IMAGE = "pool.img"
MOUNT_DIR = "pool"
_MOUNTINFO = "/proc/self/mountinfo"


class PoolError(RuntimeError):
    """The pool's image exists but cannot be mounted: its volumes would be missing."""


@dataclass(frozen=True)
class Pool:
    """Where volumes and snapshots live; `reflink` when it is the mounted XFS image."""

    image: Path
    path: Path
    reflink: bool
    adopted: bool = False


def open_pool(root: Path, size: int) -> Pool:
    """Adopt, re-mount or make the pool under `root`; fall back to a plain directory (see the module docstring)."""
    root = Path(os.path.realpath(root))
    private_dir(root)
    image, path = root / IMAGE, root / MOUNT_DIR
    if mounted_from(path, image):
        log.info("adopting storage pool %s already mounted at %s", image, path)
        return Pool(image, path, reflink=True, adopted=True)
    if size <= 0 and not image.exists():
        private_dir(path)
        log.warning("storage pool disabled (size 0): %s is a plain directory, snapshots and clones are full copies",
                    path)
        return Pool(image, path, reflink=False)
    if not image.exists():
        problem = _missing_tool() or _not_empty(path) or _make_image(image, size)
        if problem:
            private_dir(path)
            log.warning("cannot make the storage pool %s (%s): using %s as a plain directory, snapshots and clones "
                        "are full copies", image, problem, path)
            return Pool(image, path, reflink=False)
    path.mkdir(mode=0o700, exist_ok=True)
    problem = _run(["mount", "-o", "loop,nosuid,nodev", str(image), str(path)])
    if problem:
        raise PoolError(f"cannot mount storage pool {image} at {path}: {problem}")
    os.chmod(path, 0o700)
    log.info("storage pool %s mounted at %s (XFS, reflink)", image, path)
    return Pool(image, path, reflink=True)


def release(pool: Pool) -> None:
    """Unmount the pool (lazily if something still uses it) and detach the loop devices of its image."""
    if not pool.reflink:
        return
    if mounted_from(pool.path, pool.image) and _run(["umount", str(pool.path)]) is not None:
        log.warning("storage pool %s is busy: detaching it lazily", pool.path)
        _run(["umount", "-l", str(pool.path)])
    for device in loop_devices(pool.image):
        _run(["losetup", "-d", device])


def free_bytes(pool: Pool) -> tuple[int, int]:
    """(capacity, free) of the filesystem holding the pool, in bytes."""
    st = os.statvfs(pool.path)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


def mounted_from(path: Path, image: Path) -> bool:
    """Whether the topmost mount at `path` is a loop device backed by `image`."""
    at_path = [fields for fields in _mountinfo() if fields[4] == str(path)]
    if not at_path:
        return False
    source = at_path[-1][-2] if len(at_path[-1]) >= 2 else ""
    return source in loop_devices(image)


def loop_devices(image: Path) -> list[str]:
    """The loop devices (`/dev/loopN`) whose backing file is `image`."""
    found = []
    target = os.path.realpath(image)
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            name = backing.read_text().strip()
        except OSError:
            continue
        if name.removesuffix(" (deleted)") == target:
            found.append(f"/dev/{backing.parent.parent.name}")
    return found


def _missing_tool() -> str | None:
    if os.geteuid() != 0:
        return "not root: mounting a loop device needs CAP_SYS_ADMIN"
    if shutil.which("mkfs.xfs") is None:
        return "no mkfs.xfs (Debian package xfsprogs)"
    if not os.path.exists("/dev/loop-control"):
        return "no loop device support (/dev/loop-control)"
    return None


def _not_empty(path: Path) -> str | None:
    if path.is_dir() and any(path.iterdir()):
        return f"{path} already holds volumes of a plain-directory run"
    return None


def _make_image(image: Path, size: int) -> str | None:
    """A sparse `size`-byte file formatted XFS with reflinks, made under a staging name and renamed into place."""
    staging = image.with_name(f".{image.name}.tmp")
    staging.unlink(missing_ok=True)
    with open(staging, "wb") as f:
        f.truncate(size)
    problem = _run(["mkfs.xfs", "-q", "-m", "reflink=1", str(staging)])
    if problem:
        staging.unlink(missing_ok=True)
        return problem
    os.chmod(staging, 0o600)
    os.rename(staging, image)
    return None


def _mountinfo() -> list[list[str]]:
    """Fields of /proc/self/mountinfo, mount point unescaped; the mount source is the second-to-last field."""
    rows = []
    with open(_MOUNTINFO) as f:
        for line in f:
            fields = line.split()
            fields[4] = _unescape(fields[4])
            rows.append(fields)
    return rows


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _run(cmd: list[str]) -> str | None:
    """Run mkfs/mount/umount/losetup; None when it worked, else its message."""
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr.strip() or f"{cmd[0]} exited with {done.returncode}")
