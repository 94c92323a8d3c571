"""Whole iterations: real rsync over real ssh into a real destination sshd, checked field by field."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import pytest
from moverkit import Endpoint, IterationRunner, SourceFactory, free_endpoint
from support.trees import (
    LARGE_SIZE,
    OWNER_GID,
    OWNER_UID,
    SPARSE_SIZE,
    assert_trees_equal,
    is_root,
    make_sample_tree,
    mutate_sample_tree,
    snapshot_tree,
)
from support.waiting import eventually

from movers import keys, processes
from movers.destination import DestinationServer
from movers.serverfiles import BUSY_MESSAGE
from movers.source import CANCELLED, LOG_LIMIT, SourceTransfer, TransferResult

STATS = re.compile(r"^sent ([\d,]+) bytes\s+received ([\d,]+) bytes", re.MULTILINE)


def sent_bytes(result: TransferResult) -> int:
    match = STATS.search(result.logs)
    assert match, result.logs
    return int(match.group(1).replace(",", ""))


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    root = tmp_path / "src-data"
    make_sample_tree(root)
    return root


def test_first_iteration_replicates_everything(destination: DestinationServer, run_iteration: IterationRunner,
                                               sample: Path) -> None:
    result = run_iteration(destination, sample)

    source, copy = snapshot_tree(sample), snapshot_tree(destination.data_dir)
    assert_trees_equal(source, copy)
    assert result.attempts == 1 and result.exit_code == 0
    assert sent_bytes(result) > LARGE_SIZE
    assert re.search(r"^total size is [\d,]+", result.logs, re.MULTILINE)
    assert re.search(r"^Rsync completed in \d+\.\d\ds$", result.logs, re.MULTILINE)
    # Spot checks that make the field-by-field comparison's meaning explicit.
    data = destination.data_dir
    assert (data / "日本語/データ.txt").read_text() == "こんにちは\n"
    assert copy["hard/one"].link_group == copy["hard/two"].link_group == "hard/one"
    assert (data / "hard/one").stat().st_ino == (data / "nested/hard-three").stat().st_ino
    assert copy["sparse.img"].size == SPARSE_SIZE and copy["sparse.img"].blocks * 512 <= 64 * 1024
    assert "user:1234:rwx" in copy["acl/file"].acl and "default:group:5678:r-x" in copy["acl/dir"].acl
    assert copy["modes/setgid-dir"].mode == 0o2775 and copy["modes/readonly-0444"].mode == 0o444
    assert os.readlink(data / "links/absolute") == "/etc/hostname"
    assert os.readlink(data / "links/dangling") == "does/not/exist"
    assert copy["empty-dir"].type == "dir" and not any((data / "empty-dir").iterdir())
    if is_root():
        assert (copy["owned/by-1234.txt"].uid, copy["owned/by-1234.txt"].gid) == (OWNER_UID, OWNER_GID)
        assert (copy["links/dangling"].uid, copy["links/dangling"].gid) == (OWNER_UID, OWNER_GID)


def test_second_iteration_propagates_changes_and_deletions(destination: DestinationServer,
                                                           run_iteration: IterationRunner, sample: Path) -> None:
    first = run_iteration(destination, sample)
    (destination.data_dir / "stray-file-only-on-destination").write_text("will be deleted")
    mutate_sample_tree(sample)

    second = run_iteration(destination, sample)

    assert_trees_equal(sample, destination.data_dir)
    data = destination.data_dir
    for gone in ("modes/private-0600", "links/absolute", "nested/empty", "stray-file-only-on-destination"):
        assert not os.path.lexists(data / gone)
    assert (data / "new-dir/sub/new-file.txt").read_bytes() == b"brand new\n"
    assert (data / "hard/two").stat().st_ino != (data / "hard/one").stat().st_ino
    assert sent_bytes(second) < sent_bytes(first) / 10, "the delta algorithm should send far less"


def test_a_same_size_rewrite_within_the_same_second_is_still_sent(destination: DestinationServer,
                                                                  run_iteration: IterationRunner,
                                                                  tmp_path: Path) -> None:
    # rsync's default quick check compares whole seconds: a file rewritten with the same size in the
    # second of the last sync would be skipped, silently leaving the old content on the destination.
    source = tmp_path / "src"
    source.mkdir()
    target = source / "same-size.txt"
    target.write_bytes(b"version-one\n")
    os.utime(target, ns=(1_700_000_000_100_000_000, 1_700_000_000_100_000_000))
    run_iteration(destination, source)
    assert (destination.data_dir / "same-size.txt").read_bytes() == b"version-one\n"

    target.write_bytes(b"version-two\n")  # same size, same second, later nanoseconds
    os.utime(target, ns=(1_700_000_000_900_000_000, 1_700_000_000_900_000_000))
    run_iteration(destination, source, workdir=tmp_path / "second")
    assert (destination.data_dir / "same-size.txt").read_bytes() == b"version-two\n"


def test_no_change_iteration_transfers_almost_nothing(destination: DestinationServer,
                                                      run_iteration: IterationRunner, sample: Path,
                                                      tmp_path: Path) -> None:
    run_iteration(destination, sample)
    before = snapshot_tree(destination.data_dir)

    again = run_iteration(destination, sample, workdir=tmp_path / "again")

    assert sent_bytes(again) < 8 * 1024, again.logs
    assert snapshot_tree(destination.data_dir) == before
    itemized = (tmp_path / "again/rsync.out").read_text(errors="replace")
    assert not re.search(r"^[<>ch.*][fdLDS]", itemized, re.MULTILINE), f"nothing should be itemized:\n{itemized}"


def test_source_retries_until_the_iteration_opens(destination: DestinationServer, make_source: SourceFactory,
                                                  tmp_path: Path) -> None:
    data = tmp_path / "small"
    make_sample_tree(data, large_size=4096, sparse_size=1 << 20)
    transfer = make_source(destination, data, retries=20, backoff=(0.2,))

    def open_after_first_failure() -> None:
        eventually(lambda: transfer.failed_attempts >= 1, timeout=30)
        destination.open_iteration()

    opener = threading.Thread(target=open_after_first_failure)
    opener.start()
    transfer.start()
    result = transfer.wait(60)
    opener.join(30)

    assert result is not None and result.succeeded, result
    assert result.attempts >= 2
    assert destination.completion() == 0
    assert "rsync refused: no iteration open" in destination.log_tail(4096)
    destination.close_iteration()  # the volume's symlinks are munged while the iteration is open
    assert_trees_equal(data, destination.data_dir)


def test_failure_after_all_retries_sends_no_completion(destination: DestinationServer, make_source: SourceFactory,
                                                       tmp_path: Path) -> None:
    data = tmp_path / "small"
    make_sample_tree(data, large_size=4096, sparse_size=1 << 20)
    transfer = make_source(destination, data, retries=4)

    transfer.start()
    busy = transfer.wait(60)

    assert busy is not None and not busy.succeeded
    assert (busy.attempts, busy.exit_code) == (4, 12)
    assert len(busy.logs.encode()) <= LOG_LIMIT
    assert BUSY_MESSAGE in busy.logs and busy.logs.endswith("failed after 4 attempts")
    assert destination.completion() is None

    # With the iteration open, an rsync the server refuses (an option outside the forced command's list) fails
    # the same way (--write-devices reaches the server as --inplace plus the devices flag).
    destination.open_iteration()
    refused = make_source(destination, data, retries=2, extra_rsync_args=["--write-devices"])
    refused.start()
    result = refused.wait(60)

    assert result is not None and not result.succeeded and result.attempts == 2
    assert "option --inplace is not allowed" in result.logs
    assert destination.completion() is None
    assert "completion" not in destination.log_tail(8192)


def test_a_wrong_host_key_fails_without_sending_data(destination: DestinationServer, make_source: SourceFactory,
                                                     tmp_path: Path, ssh_keys: keys.SshKeys) -> None:
    destination.open_iteration()
    data = tmp_path / "small"
    make_sample_tree(data, large_size=4096, sparse_size=1 << 20)
    impostor_pub = keys.generate().destination_pub
    transfer = make_source(destination, data, destination_pub=impostor_pub, retries=2)

    transfer.start()
    result = transfer.wait(60)

    assert result is not None and not result.succeeded and result.attempts == 2
    assert "Host key verification failed" in result.logs
    assert list(destination.data_dir.iterdir()) == []
    assert destination.completion() is None
    assert "Accepted publickey" not in destination.log_tail(8192)


def test_cancel_stops_a_running_transfer_promptly(destination: DestinationServer, make_source: SourceFactory,
                                                  tmp_path: Path) -> None:
    destination.open_iteration()
    data = tmp_path / "slow"
    data.mkdir()
    (data / "big.bin").write_bytes(os.urandom(8 << 20))
    transfer = make_source(destination, data, extra_rsync_args=["--bwlimit=256"], retries=5, backoff=(60,))
    transfer.start()
    eventually(lambda: any(p.name.startswith(".big.bin.") for p in destination.data_dir.iterdir()), timeout=30)
    assert transfer.poll() is None

    started = time.monotonic()
    transfer.cancel()
    result = transfer.wait(10)

    assert time.monotonic() - started < 3
    assert result is not None and not result.succeeded
    assert (result.exit_code, result.attempts) == (CANCELLED, 1)
    assert result.logs.endswith("cancelled")
    assert destination.completion() is None
    ours = (str(transfer.config_file), str(transfer.control_path))  # rsync/ssh argv, the mux master's title
    eventually(lambda: not [pid for pid in _all_pids() if any(s in " ".join(processes.cmdline(pid)) for s in ours)],
               timeout=5)
    receiver_cwd = str(destination.data_dir)
    eventually(lambda: not [pid for pid in _all_pids() if _cwd(pid) == receiver_cwd], timeout=15)


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and processes.running(int(name))]


def _cwd(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def test_cancel_interrupts_the_backoff_sleep(destination: DestinationServer, make_source: SourceFactory,
                                             tmp_path: Path) -> None:
    transfer = make_source(destination, tmp_path, retries=3, backoff=(600,))
    transfer.start()
    eventually(lambda: transfer.failed_attempts == 1, timeout=30)

    transfer.cancel()
    result = transfer.wait(5)

    assert result is not None and not result.succeeded and result.attempts == 1
    assert result.logs.endswith("cancelled")


def test_compressed_transfer_from_a_long_workdir_with_spaces(destination: DestinationServer,
                                                              make_source: SourceFactory, tmp_path: Path) -> None:
    data = tmp_path / "small"
    make_sample_tree(data, large_size=1 << 20, sparse_size=1 << 20)
    destination.open_iteration()
    workdir = tmp_path / ("a work dir with spaces " + "x" * 100)
    transfer = make_source(destination, data, compress=True, user=destination.login_user, workdir=workdir)

    transfer.start()
    result = transfer.wait(60)

    assert result is not None and result.succeeded, result
    assert "-z" in transfer.rsync_command()
    destination.close_iteration()
    assert_trees_equal(data, destination.data_dir)
    # A unix socket path is limited to 107 bytes: the control socket moved to a short private directory,
    # which is removed with the master at the end of the iteration.
    assert not str(transfer.control_path).startswith(str(workdir))
    assert f'ControlPath "{transfer.control_path}"' in transfer.config_file.read_text()
    assert not transfer.control_path.parent.exists()


@pytest.mark.skipif(not is_root(), reason="binding port 22 needs root")
def test_port_22_on_a_random_loopback_address(tmp_path: Path, ssh_keys: keys.SshKeys,
                                              run_iteration: IterationRunner) -> None:
    endpoint = _free_port_22()
    data = tmp_path / "small"
    make_sample_tree(data, large_size=4096, sparse_size=1 << 20)
    with DestinationServer(workdir=tmp_path / "dst-work", data_dir=tmp_path / "dst-data", address=endpoint.address,
                           port=22, destination_key=ssh_keys.destination, source_pub=ssh_keys.source_pub) as server:
        result = run_iteration(server, data)
        known_hosts = (tmp_path / "src-work-0" / "known_hosts").read_text()

    assert known_hosts.startswith(f"{endpoint.address} ssh-ed25519 ")
    assert result.succeeded
    assert_trees_equal(data, tmp_path / "dst-data")


def _free_port_22() -> Endpoint:
    try:
        return free_endpoint(22)
    except RuntimeError:
        pytest.skip("port 22 is taken on every tried loopback address")


def test_rsync_command_brackets_ipv6_and_pins_the_host_key(tmp_path: Path, ssh_keys: keys.SshKeys) -> None:
    transfer = SourceTransfer(data_dir=tmp_path, address="fd00::1", port=2222, source_key=ssh_keys.source,
                              destination_pub=ssh_keys.destination_pub, workdir=tmp_path / "w", user="u")
    transfer.prepare()

    command = transfer.rsync_command()
    assert command[0] == "rsync" and command[1:7] == ["-aAHSx", "--numeric-ids", "--delete", "--modify-window=-1",
                                                      "--info=stats2,misc2", "--timeout=300"]
    assert "-z" not in command
    assert command[-2:] == [f"{tmp_path}/", "u@[fd00::1]:."]
    assert command[command.index("-e") + 1] == f"ssh -F {transfer.config_file} -p 2222"
    assert (tmp_path / "w/known_hosts").read_text().startswith("[fd00::1]:2222 ssh-ed25519 ")
    assert (tmp_path / "w/source").stat().st_mode & 0o777 == 0o600
