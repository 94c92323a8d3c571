"""The forced command bounds what one session can do to the others: a quiet client cannot hold the
session (and so the iteration) open, a session waits for the lock only so long, a shutdown slipping in
while a session turns its lock shared is noticed, short options cannot smuggle an argument, and
directories sent with an owner-unreadable mode still get their links munged and given back.

Real sshd, ssh and rsync where the behaviour is theirs; the lock and the walk run the forced command's
own code in a separate process (as nobody for the permission cases).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from moverkit import Endpoint, SourceFactory
from support.waiting import eventually

from movers import forced, keys, processes
from movers.destination import DestinationServer

HOLD = "rsync --server -logDtpre.iLsfxCIvu . ."  # a receiver whose sender never speaks
NOBODY = 65534


@pytest.fixture
def quick_destination(tmp_path: Path, endpoint: Endpoint, ssh_keys: keys.SshKeys) -> Iterator[DestinationServer]:
    server = DestinationServer(workdir=tmp_path / "dst-work", data_dir=tmp_path / "dst-data",
                               address=endpoint.address, port=endpoint.port, destination_key=ssh_keys.destination,
                               source_pub=ssh_keys.source_pub, io_timeout=2)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _receivers(destination: DestinationServer) -> list[int]:
    sshd = destination.pid
    assert sshd is not None
    return [pid for pid in processes.descendants(sshd)
            if (argv := processes.cmdline(pid))[1:2] == ["--server"] and Path(argv[0]).name == "rsync"]


def test_a_quiet_client_cannot_hold_its_session_open(quick_destination: DestinationServer,
                                                     make_source: SourceFactory, tmp_path: Path) -> None:
    destination = quick_destination
    destination.open_iteration()
    transfer = make_source(destination, tmp_path)
    transfer.prepare()
    # Authenticates, asks for a receiver with its own (long) timeout, then never says a word.
    cmd = transfer.ssh_command("-o", "ControlMaster=no", "-o", "ControlPath=none",
                               f"{transfer.user}@{destination.address}", HOLD.replace(" . .", " --timeout=9999 . ."))
    quiet = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert eventually(lambda: _receivers(destination), timeout=30), "the session never reached rsync"
        receiver = processes.cmdline(_receivers(destination)[0])
        assert receiver[-3:] == ["--timeout=2", ".", "."]  # ours comes last, so it wins

        assert eventually(lambda: quiet.poll() is not None, timeout=30), "the quiet session is still open"
        assert not _receivers(destination)
    finally:
        quiet.kill()
        quiet.communicate(timeout=30)
    # The lock is free again: the completion signal goes through at once.
    done = subprocess.run(transfer.ssh_command("-o", "ControlMaster=no", "-o", "ControlPath=none",
                                               f"{transfer.user}@{destination.address}", "shutdown 0"),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert destination.completion() == 0


RUN_FORCED = """
import sys
sys.path.insert(0, sys.argv[1])
import forced
forced.LOCK_WAIT = 1.0
sys.exit(forced.main(["forced", *sys.argv[2:]]))
"""


def _forced_copy(tmp_path: Path) -> Path:
    where = tmp_path / "forced-lib"
    where.mkdir(exist_ok=True)
    shutil.copy(forced.__file__, where / "forced.py")
    return where


def test_a_session_waits_for_the_sessions_lock_only_so_long(tmp_path: Path) -> None:
    workdir, data = tmp_path / "work", tmp_path / "data"
    workdir.mkdir()
    data.mkdir()
    (workdir / "receiving").touch()
    lock = os.open(workdir / "sessions.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_SH)  # a session of this iteration, still writing
    try:
        env = {"SSH_ORIGINAL_COMMAND": HOLD, "PATH": "/usr/bin:/bin"}
        done = subprocess.run([sys.executable, "-I", "-S", "-c", RUN_FORCED, str(_forced_copy(tmp_path)),
                               str(workdir), str(data), shutil.which("rsync") or "rsync"],
                              env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
                              check=False)
    finally:
        os.close(lock)
    assert (done.returncode, done.stderr.strip()) == (1, forced.STILL_WRITING)
    assert "rsync refused: another session is still running" in (workdir / "sshd.log").read_text()


def test_a_shutdown_between_the_exclusive_and_the_shared_lock_is_noticed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """flock(2) turns LOCK_EX into LOCK_SH by releasing it first: a shutdown may complete in between."""
    workdir, data = tmp_path / "work", tmp_path / "data"
    workdir.mkdir()
    data.mkdir()
    (workdir / "receiving").touch()
    real_flock = fcntl.flock
    ran: list[list[str]] = []

    def flock(fd: int, operation: int) -> None:
        real_flock(fd, operation)
        if operation == fcntl.LOCK_SH:  # what a shutdown does when it gets the lock in the gap
            (workdir / "complete").write_text("0\n")

    monkeypatch.setattr(fcntl, "flock", flock)
    monkeypatch.setattr(os, "execve", lambda path, argv, env: ran.append(argv))
    monkeypatch.setattr(os, "chdir", lambda path: None)

    code = forced.receive(str(workdir), str(data), "/usr/bin/rsync", HOLD.split(" "))

    assert (code, ran) == (1, [])
    assert "rsync refused: the iteration is complete" in (workdir / "sshd.log").read_text()


@pytest.mark.parametrize(("word", "message"), [
    ("-logDtpre", "option '-logDtpre' is not allowed"),  # a bare e: rsync would take the next word as its value
    ("-e", "option '-e' is not allowed"),
    ("-e.x", "option '-e.x' is not allowed"),
    ("-e.iLsfxC", "option '-e.iLsfxC' is not allowed"),
    ("-logDtpRe.iLsfxC", "option -R is not allowed"),
])
def test_short_options_cannot_hand_rsync_an_argument(word: str, message: str) -> None:
    assert forced.check_rsync_args(["rsync", "--server", word, "--numeric-ids", ".", "."]) == message
    assert forced.check_rsync_args(["rsync", "--server", "-logDtpre.iLsfxC", ".", "."]) == ["-logDtpre.iLsfxC"]


WALK = """
import sys
sys.path.insert(0, sys.argv[1])
import forced
from pathlib import Path
print(getattr(forced, sys.argv[2])(Path(sys.argv[3])))
"""


def _walk_as_nobody(lib: Path, function: str, volume: Path) -> str:
    done = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           "/usr/bin/python3", "-I", "-S", "-c", WALK, str(lib), function, str(volume)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to run the walk as nobody on nobody's tree)")
@pytest.mark.parametrize("mode", [0o300, 0o500, 0o100, 0o000])
def test_links_in_directories_the_owner_cannot_read_are_munged_and_given_back(mode: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="munge-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        lib = _forced_copy(base)
        os.chmod(lib, 0o755)
        os.chmod(lib / "forced.py", 0o644)
        volume = base / "volume"
        (volume / "locked/inner").mkdir(parents=True)
        (volume / "locked/link").symlink_to("/etc/hostname")
        (volume / "locked/inner/deep").symlink_to("../elsewhere")
        for path in (volume, volume / "locked", volume / "locked/inner", volume / "locked/link",
                     volume / "locked/inner/deep"):
            os.lchown(path, NOBODY, NOBODY)
        os.chmod(volume / "locked", mode)
        mtime = os.lstat(volume / "locked").st_mtime_ns

        assert _walk_as_nobody(lib, "munge_links", volume) == "2"
        assert os.readlink(volume / "locked/link") == f"{forced.PREFIX}/etc/hostname"
        assert os.readlink(volume / "locked/inner/deep") == f"{forced.PREFIX}../elsewhere"
        assert os.lstat(volume / "locked").st_mode & 0o7777 == mode  # as it was sent
        assert os.lstat(volume / "locked").st_mtime_ns == mtime

        assert _walk_as_nobody(lib, "unmunge_links", volume) == "2"
        assert os.readlink(volume / "locked/link") == "/etc/hostname"
        assert os.readlink(volume / "locked/inner/deep") == "../elsewhere"
        assert os.lstat(volume / "locked").st_mode & 0o7777 == mode
        assert os.lstat(volume / "locked").st_mtime_ns == mtime
    finally:
        os.chmod(base / "volume/locked", 0o700)
        shutil.rmtree(base)
