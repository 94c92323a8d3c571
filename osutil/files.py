"""Private files: the one way stores, logs, keys, tokens and kubeconfigs are written.

Everything here is created for our user only, whatever the umask: directories 0700, files 0600
(an existing one is tightened too, since an older version may have left it readable). A whole-file
write goes through a temporary file in the same directory that is fsynced and renamed into place,
so a process killed mid-write (kill -9, power loss) leaves either the old content or the new one,
never a truncated file. Append-style files (logs, lock files) are opened with `open_private`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any


def private_dir(path: Path) -> Path:
    """Create `path` 0700 (and the missing parents too, whatever the umask), and tighten an existing
    one: it holds stores, logs and secrets. Existing parents are left as they are."""
    missing = [d for d in (path, *path.parents) if not d.exists()]
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:  # made concurrently
            continue
        d.chmod(0o700)  # mkdir's mode is filtered through the umask
    path.chmod(0o700)
    return path


def write_private(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    """Replace `path`'s content atomically and durably with `data`, the file `mode` (0600: private)
    from its first byte; the parent directory is created 0700 if missing."""
    if not path.parent.is_dir():
        private_dir(path.parent)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = _temporary(path, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_dir(path.parent)


def move_private(tmp: Path, path: Path) -> None:
    """Move a file another program wrote (`tmp`, next to `path`) into place durably and 0600: the
    rename of `write_private`, for content this process does not hold (e.g. openssl's output)."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fchmod(fd, 0o600)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _sync_dir(path.parent)


def open_private(path: Path, mode: str = "a", **kwargs: Any) -> IO[Any]:
    """`open(path, mode)` for files written in place (logs, lock files): created 0600, and an existing
    file made 0600 too."""
    def opener(name: str, flags: int) -> int:
        fd = os.open(name, flags, 0o600)
        try:
            os.fchmod(fd, 0o600)
        except BaseException:
            os.close(fd)
            raise
        return fd

    return open(path, mode, opener=opener, **kwargs)


def _temporary(path: Path, mode: int) -> tuple[int, Path]:
    """A new file next to `path` (O_EXCL: never someone else's, never a symlink), `mode` from the start."""
    for attempt in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{attempt}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        except FileExistsError:
            continue
        os.fchmod(fd, mode)  # the umask may have taken bits away from an executable mode
        return fd, tmp
    raise FileExistsError(f"no free temporary name next to {path}")


def _sync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
