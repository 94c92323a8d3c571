"""The receiving end confines the source by itself: option allow-list, munged links, iteration boundaries.

Driven with real ssh, sshd and rsync; nothing here depends on the installed rrsync.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest
from moverkit import IterationRunner, SourceFactory, SshRunner
from support.waiting import eventually

from movers import forced, processes
from movers.destination import DestinationServer
from movers.errors import MoverError
from movers.rsyncversion import check_rsync
from movers.source import SourceTransfer

# What `rsync -aAHSx --numeric-ids --delete --modify-window=-1 --info=stats2,misc2 --itemize-changes` sends.
OUR_CLIENT = ("rsync --server -lHogDtpArxSe.iLsfxCIvu --log-format=%i --delete -@-1 --numeric-ids "
              "--info=MISC2,STATS2 . .")
ONLY_THE_VOLUME = "only 'rsync --server OPTIONS . .' is allowed: the destination is the volume itself"
HOLD = "rsync --server -logDtpre.iLsfxCIvu . ."  # a receiver that waits for a sender which never speaks


def test_our_own_client_passes_the_allow_list() -> None:
    words = OUR_CLIENT.split(" ")
    assert forced.check_rsync_args(words) == words[2:-2]
    compressed = ["rsync", "--server", "-logDtprze.iLsfxCIvu", "--bwlimit=100", ".", "."]
    assert forced.check_rsync_args(compressed) == compressed[2:-2]


@pytest.mark.parametrize(("command", "message"), [
    ("rsync --server --sender -logDtpre.iLsfxCIvu . .", "reading from write-only server is not allowed"),
    ("rsync --server -logDtpRe.iLsfxCIvu . .", "option -R is not allowed"),
    ("rsync --server -slogDtpre.iLsfxCIvu . .", "option -s is not allowed"),
    ("rsync --server -KLlogDtpre.iLsfxCIvu . .", "option -KL is not allowed"),
    ("rsync --server -logDtpXe.iLsfxCIvu . .", "option -X is not allowed"),
    ("rsync --server -logDtpre.iLsfxCIvu --xattrs . .", "option --xattrs is not allowed"),
    ("rsync --server -logDtpre.iLsfxCIvu --temp-dir=/tmp . .", "option --temp-dir is not allowed"),
    ("rsync --server -logDtpre.iLsfxCIvu --log-file=/tmp/x . .", "option --log-file is not allowed"),
    ("rsync --server -logDtpre.iLsfxCIvu --link-dest=/etc . .", "option --link-dest is not allowed"),
    ("rsync --server -logDtpre.iLsfxCIvu --no-implied-dirs . .", "option --no-implied-dirs is not allowed"),
    ("rsync --server --daemon . .", "option --daemon is not allowed"),
    ("rsync --server -logDtpre.iLsfxCIvu . /tmp", ONLY_THE_VOLUME),
    ("rsync --server -logDtpre.iLsfxCIvu . ../up", ONLY_THE_VOLUME),
    ("rsync --server -logDtpre.iLsfxCIvu --info=$(id) . .",
     "option '--info=$(id)' holds a character that is not allowed"),
])
def test_options_that_escape_confinement_are_refused(destination: DestinationServer, make_source: SourceFactory,
                                                     ssh_run: SshRunner, tmp_path: Path, command: str,
                                                     message: str) -> None:
    destination.open_iteration()
    transfer = make_source(destination, tmp_path)

    done = ssh_run(transfer, f"{transfer.user}@{destination.address}", command)

    assert (done.returncode, done.stderr.strip()) == (1, message)
    assert f"rsync refused: {message}" in destination.log_tail(4096)


def test_received_symlinks_cannot_be_followed_while_the_source_can_write(
        destination: DestinationServer, run_iteration: IterationRunner, make_source: SourceFactory,
        tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("not for the source")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "shadow").symlink_to("/etc/shadow")
    (tree / "escape").symlink_to(outside)
    run_iteration(destination, tree)
    assert os.readlink(destination.data_dir / "shadow") == "/etc/shadow"  # closed: exactly what was sent

    destination.open_iteration()
    transfer = make_source(destination, tree, retries=1)
    transfer.prepare()
    rsh = f"ssh -F {transfer.config_file} -o ControlMaster=no -o ControlPath=none -p {destination.port}"
    remote = f"{transfer.user}@{destination.address}:."
    sent = subprocess.run(["rsync", "-a", "-e", rsh, f"{tree}/", remote], capture_output=True, text=True,
                          timeout=60, check=False)
    assert sent.returncode == 0, sent.stderr
    # While the source may write, no symlink in the volume leads anywhere.
    assert os.readlink(destination.data_dir / "shadow") == "/rsyncd-munged//etc/shadow"
    assert os.readlink(destination.data_dir / "escape") == f"/rsyncd-munged/{outside}"
    with pytest.raises(FileNotFoundError):
        (destination.data_dir / "escape" / "secret").read_text()
    # A second session tries to write through the link it sent in the first one.
    attack = tmp_path / "attack"
    (attack / "escape").mkdir(parents=True)
    (attack / "escape" / "pwned").write_text("written through a symlink")
    for flags in (["-a", "--relative", "--no-implied-dirs"], ["-a", "--keep-dirlinks"], ["-a", "--relative"]):
        subprocess.run(["rsync", *flags, "-e", rsh, f"{attack}/./escape/pwned", remote], capture_output=True,
                       timeout=60, check=False)
        assert not (outside / "pwned").exists(), flags
    assert destination.iteration_open() and destination.completion() is None  # the attempts were in the iteration
    destination.close_iteration()
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


def _held_session(transfer: SourceTransfer, destination: DestinationServer) -> subprocess.Popen[bytes]:
    """An rsync receiver session that stays open (its sender never speaks) until the client is stopped."""
    transfer.prepare()
    cmd = transfer.ssh_command("-o", "ControlMaster=no", "-o", "ControlPath=none",
                               f"{transfer.user}@{destination.address}", HOLD)
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert eventually(lambda: _receivers(destination), timeout=30), "the held session never reached rsync"
    return proc


def _receivers(destination: DestinationServer) -> list[int]:
    sshd = destination.pid
    assert sshd is not None
    return [pid for pid in processes.descendants(sshd)
            if (argv := processes.cmdline(pid))[1:2] == ["--server"] and Path(argv[0]).name == "rsync"]


def _lock_waiters(destination: DestinationServer) -> int:
    """How many processes wait for the sessions' flock (from /proc/locks: blocked requests start with ->)."""
    try:
        st = os.stat(destination.workdir / "sessions.lock")
    except FileNotFoundError:
        return 0
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with open("/proc/locks") as f:
        return sum(1 for line in f if "->" in line and inode in line)


def test_completion_waits_for_a_running_transfer(destination: DestinationServer, make_source: SourceFactory,
                                                 ssh_run: SshRunner, tmp_path: Path) -> None:
    destination.open_iteration()
    transfer = make_source(destination, tmp_path)
    held = _held_session(transfer, destination)
    signal: dict[str, subprocess.CompletedProcess[str]] = {}
    sender = threading.Thread(target=lambda: signal.update(done=ssh_run(
        transfer, f"{transfer.user}@{destination.address}", "shutdown 0", timeout=90)))
    try:
        sender.start()
        # Either the signal is recorded (wrong) or it waits for the session's lock.
        assert eventually(lambda: destination.completion() is not None or _lock_waiters(destination) == 1,
                          timeout=30)
        assert destination.completion() is None  # the signal waits while data may still arrive
    finally:
        held.kill()
        held.communicate(timeout=30)
    sender.join(60)

    assert signal["done"].returncode == 0, signal["done"].stderr
    assert destination.completion() == 0
    assert not _receivers(destination)


def test_closing_an_iteration_ends_its_running_transfers(destination: DestinationServer, make_source: SourceFactory,
                                                         tmp_path: Path) -> None:
    data = tmp_path / "slow"
    data.mkdir()
    (data / "big.bin").write_bytes(os.urandom(4 << 20))
    destination.open_iteration()
    # 4 MiB at 64 KiB/s: about a minute of writing unless the close stops it.
    transfer = make_source(destination, data, retries=1, extra_rsync_args=["--bwlimit=64"])
    transfer.start()
    assert eventually(lambda: _receivers(destination) and any(destination.data_dir.iterdir()), timeout=30)

    destination.close_iteration()

    assert not _receivers(destination)
    result = transfer.wait(20)
    assert result is not None and not result.succeeded, "the transfer went on after its iteration was closed"
    assert destination.completion() is None
    assert not (destination.data_dir / "big.bin").exists()
    assert list(destination.data_dir.iterdir()) == []  # the receiver removed its partial file


def _fake_rsync(tmp_path: Path, banner: str) -> str:
    script = tmp_path / "rsync"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' '{banner}'\n")
    script.chmod(0o755)
    return str(script)


def test_an_old_rsync_is_refused_at_start_up_with_a_clear_error(tmp_path: Path) -> None:
    old = _fake_rsync(tmp_path, "rsync  version 3.1.2  protocol version 31")

    with pytest.raises(MoverError) as caught:
        check_rsync(old)

    assert str(caught.value) == (f"{old} is version 3.1.2, older than 3.2.3, which the movers need (--munge-links on "
                                 "the receiver, --modify-window=-1, protocol 31): install rsync >= 3.2.3")
    (tmp_path / "ok").mkdir()
    assert check_rsync(_fake_rsync(tmp_path / "ok", "rsync  version 3.2.7  protocol version 31")) == (3, 2, 7)
    with pytest.raises(MoverError, match="did not report an rsync version"):
        check_rsync(_fake_rsync(tmp_path, "not rsync at all"))
    with pytest.raises(MoverError, match="cannot run .*: install rsync >= 3.2.3"):
        check_rsync(str(tmp_path / "missing"))
    assert check_rsync() >= (3, 2, 3)  # the machine's own rsync


def test_stopping_the_server_gives_the_links_back(destination: DestinationServer, make_source: SourceFactory,
                                                 tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub/link").symlink_to("../target")
    destination.open_iteration()
    transfer = make_source(destination, tree)
    transfer.prepare()
    rsh = f"ssh -F {transfer.config_file} -o ControlMaster=no -o ControlPath=none -p {destination.port}"
    sent = subprocess.run(["rsync", "-a", "-e", rsh, f"{tree}/", f"{transfer.user}@{destination.address}:."],
                          capture_output=True, text=True, timeout=60, check=False)
    assert sent.returncode == 0, sent.stderr
    assert os.readlink(destination.data_dir / "sub/link") == "/rsyncd-munged/../target"
    mtime = os.lstat(destination.data_dir / "sub").st_mtime_ns

    destination.stop()  # e.g. the ReplicationDestination is deleted in the middle of an iteration

    assert os.readlink(destination.data_dir / "sub/link") == "../target"
    assert os.lstat(destination.data_dir / "sub").st_mtime_ns == mtime
    assert not (destination.workdir / forced.MUNGED).exists()
