"""`volsync-mover` as a mover Pod runs it: both roles as real processes (`python -m movers.entrypoint`),
real sshd and rsync, on random loopback endpoints; keys as a mounted Secret (one file per data key);
the destination's termination message in a file the test makes, as the kubelet makes one per start."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from moverkit import Endpoint, free_endpoint
from support.processes import stop
from support.trees import assert_trees_equal, make_sample_tree
from support.waiting import eventually

from movers import entrypoint, keys, leftovers, processes
from movers.source import SourceTransfer

# run from the checkout, so that `movers` resolves even before the editable install knows the package
REPO = Path(__file__).resolve().parents[2]
MOVER = [sys.executable, "-m", "movers.entrypoint"]
FAST = ["--retries", "2", "--backoff", "0.05"]


def write_secret(directory: Path, data: dict[str, bytes]) -> Path:
    """A key Secret as the kubelet mounts it: one file per data key, mode 0600."""
    directory.mkdir(parents=True)
    for name, value in data.items():
        (directory / name).write_bytes(value)
        (directory / name).chmod(0o600)
    return directory


@dataclass
class Destination:
    proc: subprocess.Popen[bytes]
    endpoint: Endpoint
    data_dir: Path
    work_dir: Path
    log_file: Path
    termination_log: Path

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def termination_message(self) -> object:
        text = self.termination_log.read_text()
        return json.loads(text) if text else None

    def listening(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex((self.endpoint.address, self.endpoint.port)) == 0

    def sshd_gone(self) -> bool:
        pid = leftovers.pid_from_file(self.work_dir)
        return pid is None or not processes.running(pid)


@pytest.fixture
def destination(tmp_path: Path, ssh_keys: keys.SshKeys) -> Iterator[Destination]:
    """`volsync-mover destination` listening on a random loopback endpoint; stopped at teardown."""
    endpoint = free_endpoint()
    keys_dir = write_secret(tmp_path / "dst-keys", ssh_keys.destination_secret_data())
    data_dir, work_dir, log_file = tmp_path / "dst-data", tmp_path / "dst-work", tmp_path / "dst.log"
    termination_log = tmp_path / "termination-log"
    termination_log.touch()
    with log_file.open("wb") as out:
        proc = subprocess.Popen(
            [*MOVER, "destination", "--listen", endpoint.address, "--port", str(endpoint.port),
             "--data-dir", str(data_dir), "--keys-dir", str(keys_dir), "--work-dir", str(work_dir),
             "--termination-log", str(termination_log)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    dst = Destination(proc=proc, endpoint=endpoint, data_dir=data_dir, work_dir=work_dir, log_file=log_file,
                      termination_log=termination_log)
    try:
        eventually(lambda: dst.proc.poll() is not None or "sshd listening" in dst.log(), 30, what="listening")
        assert dst.proc.poll() is None, dst.log()
        yield dst
    finally:
        stop(dst.proc, timeout=30)
        leftovers.stop_stale_sshd(dst.work_dir)


def run_source(tmp_path: Path, data_dir: Path, secret: dict[str, bytes], env: dict[str, str],
               name: str = "src") -> subprocess.CompletedProcess[str]:
    keys_dir = write_secret(tmp_path / f"{name}-keys", secret)
    cmd = [*MOVER, "source", "--data-dir", str(data_dir), "--keys-dir", str(keys_dir),
           "--work-dir", str(tmp_path / f"{name}-work"), *FAST]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180, check=False,
                          env={**os.environ, **env}, cwd=REPO)


def towards(dst: Destination) -> dict[str, str]:
    return {"DESTINATION_ADDRESS": dst.endpoint.address, "DESTINATION_PORT": str(dst.endpoint.port)}


def test_source_replicates_the_tree_and_the_destination_exits_zero(
        tmp_path: Path, destination: Destination, ssh_keys: keys.SshKeys) -> None:
    sample = tmp_path / "src-data"
    make_sample_tree(sample)

    sent = run_source(tmp_path, sample, ssh_keys.source_secret_data(), {**towards(destination), "ITERATION": "it-7"})

    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "sent " in sent.stdout and " bytes  received " in sent.stdout, sent.stdout
    assert "total size is " in sent.stdout and "Rsync completed in " in sent.stdout, sent.stdout
    assert destination.proc.wait(30) == 0, destination.log()
    assert_trees_equal(sample, destination.data_dir)
    log = destination.log()
    assert "source signalled completion with code 0 (source iteration it-7)" in log and "data flushed" in log, log
    assert destination.termination_message() == {"code": 0, "sourceIteration": "it-7"}
    assert destination.sshd_gone() and not destination.listening()


def test_a_failed_source_leaves_the_destination_listening_for_a_good_one(
        tmp_path: Path, destination: Destination, ssh_keys: keys.SshKeys) -> None:
    sample = tmp_path / "src-data"
    make_sample_tree(sample, large_size=1024 * 1024, sparse_size=8 * 1024 * 1024)
    impostor = keys.generate()  # the source pins a host key the destination does not have
    wrong = {**ssh_keys.source_secret_data(), keys.DESTINATION_PUB: impostor.destination_pub}

    failed = run_source(tmp_path, sample, wrong, towards(destination), name="wrong")

    # rsync's code when ssh dies before the protocol starts: 255 or 12, depending on the race
    assert failed.returncode in (12, 255), failed.stdout + failed.stderr
    assert "Host key verification failed" in failed.stdout, failed.stdout
    assert "no completion signal sent" in failed.stdout and "Rsync completed" not in failed.stdout, failed.stdout
    assert destination.proc.poll() is None and destination.listening(), destination.log()
    assert not any(destination.data_dir.iterdir())
    assert destination.termination_message() is None

    good = run_source(tmp_path, sample, ssh_keys.source_secret_data(), towards(destination))

    assert good.returncode == 0, good.stdout + good.stderr
    assert destination.proc.wait(30) == 0, destination.log()
    assert_trees_equal(sample, destination.data_dir)


def test_source_without_an_address_fails_at_once(tmp_path: Path, ssh_keys: keys.SshKeys) -> None:
    sample = tmp_path / "src-data"
    sample.mkdir()
    env = {"DESTINATION_ADDRESS": ""}

    done = run_source(tmp_path, sample, ssh_keys.source_secret_data(), env)

    assert done.returncode == 1
    assert "error: DESTINATION_ADDRESS is not set" in done.stdout, done.stdout + done.stderr
    assert not (tmp_path / "src-work").exists()  # nothing attempted


def test_an_old_rsync_fails_the_mover_at_once_saying_so(tmp_path: Path, ssh_keys: keys.SshKeys) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "rsync").write_text("#!/bin/sh\necho 'rsync  version 3.1.3  protocol version 31'\n")
    (fake / "rsync").chmod(0o755)
    sample = tmp_path / "src-data"
    sample.mkdir()

    done = run_source(tmp_path, sample, ssh_keys.source_secret_data(),
                      {"DESTINATION_ADDRESS": "127.0.0.1", "PATH": f"{fake}:{os.environ['PATH']}"})

    assert done.returncode == 1
    assert "is version 3.1.3, older than 3.2.3" in done.stdout, done.stdout + done.stderr
    assert not (tmp_path / "src-work").exists()  # nothing attempted


def test_missing_key_files_are_a_clear_error(tmp_path: Path, ssh_keys: keys.SshKeys) -> None:
    secret = ssh_keys.source_secret_data()
    del secret[keys.DESTINATION_PUB]
    sample = tmp_path / "src-data"
    sample.mkdir()

    done = run_source(tmp_path, sample, secret, {"DESTINATION_ADDRESS": "127.0.0.1"})

    assert done.returncode == 1
    assert "ssh keys for the source role lack destination.pub" in done.stdout, done.stdout + done.stderr


def test_sigterm_stops_the_destination_without_claiming_success(destination: Destination) -> None:
    assert destination.listening()

    assert stop(destination.proc, signal.SIGTERM, timeout=30) == 143, destination.log()

    log = destination.log()
    assert "stopping on signal before the source signalled completion" in log, log
    assert "exiting with the source's code" not in log
    assert destination.termination_message() is None  # no claim of any completion
    assert destination.sshd_gone() and not destination.listening()


def test_defaults_are_a_pods(monkeypatch: pytest.MonkeyPatch) -> None:
    args = entrypoint.parser().parse_args(["destination"])
    assert (args.listen, args.port, args.data_dir, args.keys_dir) == ("0.0.0.0", 8022, "/data", "/keys")
    assert args.termination_log == "/dev/termination-log"
    monkeypatch.setenv("ITERATION", "abc-1")
    assert entrypoint.parser().parse_args(["source"]).iteration == "abc-1"
    assert entrypoint.parser().parse_args(["source", "--iteration", "x"]).iteration == "x"
    monkeypatch.delenv("ITERATION")
    assert entrypoint.parser().parse_args(["source"]).iteration is None


def test_termination_message_is_written_only_into_an_existing_file(tmp_path: Path) -> None:
    entrypoint.write_termination_message(tmp_path / "absent", 0, "x")  # outside a Pod: nothing made
    assert not (tmp_path / "absent").exists()
    made = tmp_path / "made"
    made.write_text("stale and longer than the message\n")
    entrypoint.write_termination_message(made, 3, None)
    assert made.read_text() == '{"code": 3, "sourceIteration": null}\n'


def test_destination_exits_with_the_code_the_source_recorded(
        tmp_path: Path, destination: Destination, ssh_keys: keys.SshKeys) -> None:
    signaller = SourceTransfer(data_dir=tmp_path, address=destination.endpoint.address,
                               port=destination.endpoint.port, source_key=ssh_keys.source,
                               destination_pub=ssh_keys.destination_pub, workdir=tmp_path / "signal-work")
    signaller.prepare()
    cmd = signaller.ssh_command("-o", "ControlMaster=no", "-o", "ControlPath=none",
                                f"{signaller.user}@{signaller.address}", "shutdown 3")

    sent = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)

    assert sent.returncode == 0, sent.stderr
    assert destination.proc.wait(30) == 3, destination.log()
    assert "source signalled completion with code 3" in destination.log()
    assert destination.termination_message() == {"code": 3, "sourceIteration": None}


def test_sigterm_stops_a_source_waiting_to_retry(tmp_path: Path, ssh_keys: keys.SshKeys) -> None:
    nobody = free_endpoint()  # nothing listens there: every attempt is refused
    keys_dir = write_secret(tmp_path / "src-keys", ssh_keys.source_secret_data())
    (tmp_path / "src-data").mkdir()
    log_file = tmp_path / "src.log"
    env = {**os.environ, "DESTINATION_ADDRESS": nobody.address, "DESTINATION_PORT": str(nobody.port)}
    with log_file.open("wb") as out:
        proc = subprocess.Popen([*MOVER, "source", "--data-dir", str(tmp_path / "src-data"), "--keys-dir",
                                 str(keys_dir), "--work-dir", str(tmp_path / "src-work"), "--backoff", "600"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    try:
        # the first attempt has failed once rsync's stderr holds the refusal; the source now waits 600 s
        err = tmp_path / "src-work/rsync.err"
        eventually(lambda: err.exists() and "Connection refused" in err.read_text(), 30, what="first attempt")

        assert stop(proc, signal.SIGTERM, timeout=30) == 143, log_file.read_text()

        assert "stopping on signal" in log_file.read_text()
    finally:
        stop(proc)
