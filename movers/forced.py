"""The destination's forced command: the only program the source key can run on the destination's sshd.

A standalone script (standard library only): `serverfiles` copies it into the mover's work directory
and authorized_keys runs it as ``python -I -S forced-command WORKDIR DATA_DIR RSYNC [IO_TIMEOUT]``; the
request is in ``$SSH_ORIGINAL_COMMAND``. It allows only:

* ``rsync --server OPTIONS . .`` while an iteration is open (marker ``receiving``) and not yet complete
  (marker ``complete``): the options are checked against a list of what our sender sends (anything
  that reads, follows links, names paths or hands arguments over the protocol is refused, whatever
  the installed rsync would accept), then rsync runs in DATA_DIR with a clean environment,
  receiver-side ``--munge-links`` (a received symlink can never be followed by a later write),
  ``--timeout=IO_TIMEOUT`` after the client's options (the last one wins: a client that goes quiet
  cannot hold the session, and so the iteration, open) and, when DATA_DIR is not on a ``nosuid,nodev``
  mount, ``--chmod=Fug-s`` (no setuid/setgid file);
* ``shutdown N [ID]`` (N 0..255; ID, optional, the source's iteration id, ``[A-Za-z0-9._-]{1,64}``)
  while an iteration is open: waits until no rsync session is running, flushes the data's filesystem,
  records ``N`` or ``N ID`` atomically in ``complete`` and exits 0 (the "iteration done" signal);
* anything else: "Invalid command", exit 1.

Locking: a session takes ``sessions.lock`` exclusively while it checks the markers (and, the first
time in an iteration, munges the volume's links: see below), then holds it shared for its rsync's
whole life (the descriptor is inherited across exec); so sessions of one iteration run one after
another. flock(2) converts exclusive to shared by releasing first, so the markers are checked again
once the shared lock is held. Both waits for the exclusive lock are bounded (``LOCK_WAIT``).
``shutdown`` takes the lock exclusively: it waits for running transfers, and no transfer can
start between its check and the recorded completion. The agent's `close_iteration` kills receivers
until it holds the lock exclusively itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import re
import signal
import stat
import sys
from collections.abc import Callable
from pathlib import Path

BUSY = "destination busy: not accepting data now"
INVALID = "Invalid command"
WRITE_ONLY = "reading from write-only server is not allowed"
STILL_WRITING = "destination busy: a transfer of this iteration is still running"
MUNGED = "links-munged"  # marker: the volume's symlinks are munged (from the first session to the close)
LOCK_WAIT = 60.0  # seconds a session or a shutdown waits for the sessions before it
IO_TIMEOUT = 300  # rsync --timeout of a receiving session, unless the command line says otherwise
# Short options a receiving server may get: what `rsync -aAHSxz` (and -v, -c, -I, -u, -W, -n...) sends.
# Refused among others: s (arguments over the protocol), L k K (follow links), R (relative paths),
# X (xattrs: a security.capability attribute would be a setuid bit that --chmod does not strip).
_SHORT = set("lHogDtpArxSzvcIuWnEUNOJiqm")
SOURCE_ITERATION = re.compile(r"[A-Za-z0-9._-]{1,64}")  # the id a source may name in `shutdown N ID`
_CAPABILITIES = re.compile(r"e\.[A-Za-z]*")
_LONG = re.compile(
    r"--(delete|delete-(before|during|after|delay)|numeric-ids|sparse|hard-links|acls|one-file-system"
    r"|log-format=%[A-Za-z%]*|info=[A-Za-z0-9,]*|modify-window=-?\d{1,9}|bwlimit=\d{1,12}[KMGkmg]?"
    r"|timeout=\d{1,9}|compress-level=\d|compress-choice=[a-z0-9]{1,16}|checksum-choice=[a-z0-9,]{1,32}"
    r"|ignore-times|size-only)"
)
_LONG_NAMES = {
    "delete", "delete-before", "delete-during", "delete-after", "delete-delay", "numeric-ids", "sparse",
    "hard-links", "acls", "one-file-system", "log-format", "info", "modify-window", "bwlimit", "timeout",
    "compress-level", "compress-choice", "checksum-choice", "ignore-times", "size-only",
}
_WINDOW = re.compile(r"-@-?\d{1,9}")
_SAFE_WORD = re.compile(r"[A-Za-z0-9.,=%@_-]+")


def check_rsync_args(words: list[str]) -> list[str] | str:
    """The options of ``rsync --server OPTIONS . .`` if all are allowed, else the refusal message."""
    if words[:2] != ["rsync", "--server"]:
        return INVALID
    if "--sender" in words:
        return WRITE_ONLY
    options, paths = words[2:-2], words[-2:]
    if len(words) < 5 or paths != [".", "."]:
        return "only 'rsync --server OPTIONS . .' is allowed: the destination is the volume itself"
    for word in options:
        problem = _check_option(word)
        if problem:
            return problem
    return options


def _check_option(word: str) -> str | None:
    name = word.split("=")[0]
    if word.startswith("--") and name[2:] not in _LONG_NAMES:
        return f"option {name} is not allowed"
    if not _SAFE_WORD.fullmatch(word):
        return f"option {word!r} holds a character that is not allowed"
    if word.startswith("--"):
        return None if _LONG.fullmatch(word) else f"option {word!r} is not allowed"
    if not word.startswith("-"):
        return f"argument {word!r} is not allowed"
    if _WINDOW.fullmatch(word):
        return None
    letters, has_e, capabilities = word[1:].partition("e")
    if has_e and not _CAPABILITIES.fullmatch("e" + capabilities):  # a bare e takes the next word as its value
        return f"option {word!r} is not allowed"
    refused = "".join(sorted(set(letters) - _SHORT))
    if refused:
        return f"option -{refused} is not allowed"
    if not letters:
        return f"option {word!r} is not allowed"
    return None


def _receiver_options(data_dir: str) -> list[str]:
    flags = os.statvfs(data_dir).f_flag
    inert = flags & os.ST_NOSUID and flags & os.ST_NODEV
    return ["--munge-links"] + ([] if inert else ["--chmod=Fug-s"])


def _note(workdir: str, text: str) -> None:
    try:
        with open(os.path.join(workdir, "sshd.log"), "a") as log:
            log.write(f"forced-command[{os.getpid()}]: {text}\n")
    except OSError:
        pass


def _fail(workdir: str, note: str, message: str) -> int:
    _note(workdir, note)
    sys.stderr.write(message + "\n")
    return 1


def _lock(workdir: str) -> int:
    fd = os.open(os.path.join(workdir, "sessions.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    os.set_inheritable(fd, True)
    return fd


def _not_receiving(workdir: str) -> str | None:
    """Why no data may be received now, or None while the iteration is open and not complete."""
    if not os.path.exists(os.path.join(workdir, "receiving")):
        return "no iteration open"
    if os.path.exists(os.path.join(workdir, "complete")):
        return "the iteration is complete"
    return None


def receive(workdir: str, data_dir: str, rsync: str, words: list[str], io_timeout: int = IO_TIMEOUT) -> int:
    checked = check_rsync_args(words)
    if isinstance(checked, str):
        return _fail(workdir, f"rsync refused: {checked}", checked)
    fd = _lock(workdir)
    if not _exclusive(fd):  # alone while checking and munging; then shared, held by rsync until it exits
        return _fail(workdir, "rsync refused: another session is still running", STILL_WRITING)
    if (why := _not_receiving(workdir)) is not None:
        return _fail(workdir, f"rsync refused: {why}", BUSY)
    if not os.path.exists(os.path.join(workdir, MUNGED)):
        munge_links(Path(data_dir))
        os.close(os.open(os.path.join(workdir, MUNGED), os.O_WRONLY | os.O_CREAT, 0o600))
    fcntl.flock(fd, fcntl.LOCK_SH)  # not atomic: a shutdown or a close may have come in between
    if (why := _not_receiving(workdir)) is not None:
        return _fail(workdir, f"rsync refused: {why}", BUSY)
    _note(workdir, "rsync accepted")
    os.chdir(data_dir)
    argv = [rsync, "--server", *checked, *_receiver_options(data_dir), f"--timeout={io_timeout}", ".", "."]
    os.execve(rsync, argv, {"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    return 1  # not reached


def _timeout(*_: object) -> None:
    raise TimeoutError


def _exclusive(fd: int) -> bool:
    """Take the sessions lock exclusively, waiting at most LOCK_WAIT seconds; whether we got it."""
    signal.signal(signal.SIGALRM, _timeout)
    signal.setitimer(signal.ITIMER_REAL, LOCK_WAIT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except TimeoutError:
        return False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return True


def complete(workdir: str, data_dir: str, code: str, source_iteration: str | None = None) -> int:
    """Record ``code`` (and the source's iteration id, when sent) in ``complete`` as ``N[ ID]``."""
    fd = _lock(workdir)
    if not _exclusive(fd):
        return _fail(workdir, f"shutdown {code} refused: a transfer is still running", STILL_WRITING)
    if not os.path.exists(os.path.join(workdir, "receiving")):
        return _fail(workdir, f"shutdown {code} refused: no iteration open", BUSY)
    syncfs(data_dir)
    tmp = os.path.join(workdir, f".complete.{os.getpid()}")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(f"{code} {source_iteration}\n" if source_iteration else f"{code}\n")
        os.replace(tmp, os.path.join(workdir, "complete"))
    except OSError:
        return _fail(workdir, "completion could not be recorded", "destination could not record completion")
    named = f" for source iteration {source_iteration}" if source_iteration else ""
    _note(workdir, f"completion {code} recorded{named}")
    return 0


def syncfs(path: str) -> None:
    """Flush the filesystem holding the directory `path` (syncfs(2); sync(2) where that fails)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if ctypes.CDLL(None, use_errno=True).syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


# -- munged symlinks ---------------------------------------------------------------------------------
# The receiving rsync runs with --munge-links: every symlink it creates points into /rsyncd-munged/, so
# a link the source sends (say `etc -> /etc`) can never be followed by a later write. Links already in
# the volume when the first session of an iteration starts (previous iteration, restore, clone) are
# munged the same way first, so while the source may write, no symlink in the volume leads anywhere.
# When the iteration is closed and its sessions have ended, the agent gives the links their real
# targets back (`unmunge_links`), so the volume and any image of it hold exactly what was sent. Links
# are replaced atomically with their owner and times kept; the holding directories' times are restored.

PREFIX = "/rsyncd-munged/"


def munge_links(root: Path) -> int:
    """Point every symlink under `root` into ``/rsyncd-munged/``; returns how many were changed."""
    return _rewrite(root, lambda target: None if target.startswith(PREFIX) else PREFIX + target)


def unmunge_links(root: Path) -> int:
    """Give every munged symlink under `root` its real target back; returns how many were changed."""
    return _rewrite(root, lambda target: target[len(PREFIX):] if target.startswith(PREFIX) else None)


def _rewrite(root: Path, change: Callable[[str], str | None]) -> int:
    """Rewrite the symlinks under `root` (not through links) by `change`. Directories are read from
    their entries (no stat per file); one the agent may not read, enter or write into (an owner mode
    like 0300 or 0500, as sent) is opened up for the owner while it is walked, and every directory
    gets its mode back, and its times too when a link in it was rewritten."""
    count = 0
    stack: list[tuple[Path, tuple[os.stat_result, bool] | None]] = [(root, None)]
    while stack:
        directory, left = stack.pop()
        if left is not None:  # everything below is done: give the directory its mode back
            _restore(directory, *left)
            continue
        st = os.lstat(directory)
        mode = stat.S_IMODE(st.st_mode)
        if mode & _OWNER_RWX != _OWNER_RWX:
            with contextlib.suppress(PermissionError):  # not ours (unprivileged agent): skipped if unreadable
                os.chmod(directory, mode | _OWNER_RWX)
        links, subdirectories = _entries(directory)
        todo = [(name, new) for name in links if (new := change(os.readlink(directory / name))) is not None]
        for name, new in todo:
            _replace_link(directory / name, new)
        count += len(todo)
        stack.append((directory, (st, bool(todo))))
        stack.extend((sub, None) for sub in subdirectories)
    return count


_OWNER_RWX = stat.S_IRUSR | stat.S_IWUSR | stat.S_IXUSR


def _entries(directory: Path) -> tuple[list[str], list[Path]]:
    """The names of `directory`'s symlinks and its subdirectories (empty if it cannot be read)."""
    links, subdirectories = [], []
    with contextlib.suppress(PermissionError), os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_symlink():
                links.append(entry.name)
            elif entry.is_dir(follow_symlinks=False):
                subdirectories.append(Path(entry.path))
    return links, subdirectories


def _restore(directory: Path, st: os.stat_result, changed: bool) -> None:
    """Give `directory` its mode back, and its times when a link in it was rewritten."""
    mode = stat.S_IMODE(st.st_mode)
    if mode & _OWNER_RWX != _OWNER_RWX:
        with contextlib.suppress(PermissionError):
            os.chmod(directory, mode)
    if changed:
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


def main(argv: list[str]) -> int:
    """Serve one request: ``argv`` is [script, WORKDIR, DATA_DIR, RSYNC, IO_TIMEOUT (optional)]."""
    workdir, data_dir, rsync = argv[1:4]
    io_timeout = int(argv[4]) if len(argv) > 4 else IO_TIMEOUT
    request = os.environ.get("SSH_ORIGINAL_COMMAND", "")
    words = request.split(" ")
    if words[:2] == ["rsync", "--server"]:
        return receive(workdir, data_dir, rsync, words, io_timeout)
    code = words[1] if len(words) in (2, 3) and words[0] == "shutdown" else ""
    source_iteration = words[2] if len(words) == 3 else None
    if (re.fullmatch(r"0|[1-9]\d{0,2}", code) and int(code) <= 255
            and (source_iteration is None or SOURCE_ITERATION.fullmatch(source_iteration))):
        return complete(workdir, data_dir, code, source_iteration)
    return _fail(workdir, "invalid command refused", INVALID)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
