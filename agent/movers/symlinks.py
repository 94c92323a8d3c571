"""Munged symlinks in a destination volume while the source may write into it.

The receiving rsync runs with ``--munge-links``: every symlink it creates points into
``/rsyncd-munged/``, so a link the source sends (say ``etc -> /etc``) can never be followed by a later
write of the same or another session. Links already in the volume when an iteration opens (from the
previous iteration, a restore or a clone) are munged the same way first, so that while an iteration
is open *no* symlink in the volume leads anywhere. Once the iteration is closed and its sessions have
ended, the links are given back their real targets, so the volume (and any image taken of it) holds
exactly what the source sent.

Links are replaced atomically (a new link renamed over the old one) with their owner and times kept,
and the times of the directories holding them are restored. rsync compares munged values itself, so
an unchanged link is not rewritten by the transfer.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

PREFIX = "/rsyncd-munged/"


def munge_links(root: Path) -> int:
    """Point every symlink under `root` into ``/rsyncd-munged/``; returns how many were changed."""
    return _rewrite(root, lambda target: None if target.startswith(PREFIX) else PREFIX + target)


def unmunge_links(root: Path) -> int:
    """Give every munged symlink under `root` its real target back; returns how many were changed."""
    return _rewrite(root, lambda target: target[len(PREFIX):] if target.startswith(PREFIX) else None)


def _rewrite(root: Path, change: Callable[[str], str | None]) -> int:
    count = 0
    for directory, links in _links_by_directory(root):
        todo = [(name, new) for name in links if (new := change(os.readlink(directory / name))) is not None]
        if todo:
            with _directory_kept(directory):
                for name, new in todo:
                    _replace_link(directory / name, new)
            count += len(todo)
    return count


def _links_by_directory(root: Path) -> Iterator[tuple[Path, list[str]]]:
    for dirpath, dirnames, filenames in os.walk(root):
        links = [name for name in (*dirnames, *filenames) if os.path.islink(os.path.join(dirpath, name))]
        if links:
            yield Path(dirpath), links


@contextlib.contextmanager
def _directory_kept(directory: Path) -> Iterator[None]:
    """Let us write into `directory` (even if read-only) and leave its mode and times as they were."""
    st = os.lstat(directory)
    mode = stat.S_IMODE(st.st_mode)
    if not mode & stat.S_IWUSR:
        os.chmod(directory, mode | stat.S_IWUSR | stat.S_IXUSR)
    try:
        yield
    finally:
        if not mode & stat.S_IWUSR:
            os.chmod(directory, mode)
        os.utime(directory, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _replace_link(path: Path, target: str) -> None:
    st = os.lstat(path)
    tmp = path.with_name(f".~munge{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    with contextlib.suppress(PermissionError):  # an unprivileged agent cannot give links away
        os.lchown(tmp, st.st_uid, st.st_gid)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    os.replace(tmp, path)
