"""The destination sshd: lifecycle, its forced command, and what it refuses (driven with real ssh)."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from moverkit import Endpoint, SourceFactory, SshRunner, free_endpoint
from support.waiting import eventually

from movers import keys, processes
from movers.destination import DestinationServer
from movers.errors import MoverError
from movers.serverfiles import BUSY_MESSAGE, INVALID_MESSAGE


def new_server(tmp_path: Path, endpoint: Endpoint, ssh_keys: keys.SshKeys, **overrides: object) -> DestinationServer:
    options: dict[str, object] = {
        "workdir": tmp_path / "dst-work", "data_dir": tmp_path / "dst-data", "address": endpoint.address,
        "port": endpoint.port, "destination_key": ssh_keys.destination, "source_pub": ssh_keys.source_pub,
    }
    options.update(overrides)
    return DestinationServer(**options)  # type: ignore[arg-type]


def test_serves_the_destination_key_as_host_key(destination: DestinationServer, ssh_keys: keys.SshKeys) -> None:
    scan = subprocess.run(["ssh-keyscan", "-t", "ed25519", "-p", str(destination.port), destination.address],
                          capture_output=True, text=True, timeout=30, check=False)

    assert scan.stdout.split()[1:3] == ssh_keys.destination_pub.decode().split()[:2]
    assert (destination.workdir / "ssh_host_key").stat().st_mode & 0o777 == 0o600
    authorized = (destination.workdir / "authorized_keys").read_text()
    work = destination.workdir
    assert authorized.startswith(f'restrict,command="{destination.python} -I -S {work}/forced-command {work} '
                                 f'{destination.data_dir} {destination.rsync} {destination.io_timeout}" ')
    assert authorized.rstrip().endswith(ssh_keys.source_pub.decode().split()[1])


@pytest.mark.parametrize("command", ["ls /", "rsync --version", "shutdown", "shutdown 256", "shutdown -1",
                                     "shutdown 3; touch /tmp/pwned", "shutdown 007", "sftp"])
def test_forced_command_rejects_anything_else(destination: DestinationServer, make_source: SourceFactory,
                                              ssh_run: SshRunner, tmp_path: Path, command: str) -> None:
    destination.open_iteration()
    transfer = make_source(destination, tmp_path)

    done = ssh_run(transfer, f"{transfer.user}@{destination.address}", command)

    assert done.returncode == 1
    assert done.stderr.strip() == INVALID_MESSAGE
    assert destination.completion() is None


def test_interactive_shell_and_subsystems_are_refused(destination: DestinationServer, make_source: SourceFactory,
                                                     ssh_run: SshRunner, tmp_path: Path) -> None:
    transfer = make_source(destination, tmp_path)
    target = f"{transfer.user}@{destination.address}"

    shell = ssh_run(transfer, target)
    sftp = ssh_run(transfer, "-s", target, "sftp")

    assert (shell.returncode, shell.stderr.strip()) == (1, INVALID_MESSAGE)
    assert sftp.returncode == 255
    assert "subsystem request failed" in sftp.stderr


def test_shutdown_records_the_code_only_while_an_iteration_is_open(
        destination: DestinationServer, make_source: SourceFactory, ssh_run: SshRunner, tmp_path: Path) -> None:
    transfer = make_source(destination, tmp_path)
    target = f"{transfer.user}@{destination.address}"

    refused = ssh_run(transfer, target, "shutdown 0")
    assert (refused.returncode, refused.stderr.strip()) == (1, BUSY_MESSAGE)
    assert destination.completion() is None

    destination.open_iteration()
    assert destination.completion() is None
    done = ssh_run(transfer, target, "shutdown 3")
    assert done.returncode == 0, done.stderr
    assert destination.completion() == 3
    assert "completion 3 recorded" in destination.log_tail()

    destination.open_iteration()
    assert destination.completion() is None
    destination.close_iteration()
    assert destination.completion() is None


def test_rsync_is_refused_while_no_iteration_is_open(destination: DestinationServer, make_source: SourceFactory,
                                                     ssh_run: SshRunner, tmp_path: Path) -> None:
    transfer = make_source(destination, tmp_path)

    done = ssh_run(transfer, f"{transfer.user}@{destination.address}", "rsync --server -logDtpre.iLsfxCIvu . .")

    assert (done.returncode, done.stderr.strip()) == (1, BUSY_MESSAGE)
    assert "rsync refused: no iteration open" in destination.log_tail()


@pytest.fixture
def banner_server() -> Iterator[Endpoint]:
    """A TCP server that greets every client with b"hello": reachable only if forwarding worked."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    endpoint = free_endpoint()
    listener.bind((endpoint.address, endpoint.port))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"hello")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        stop.set()
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(5)


def test_port_forwarding_is_refused(destination: DestinationServer, make_source: SourceFactory, ssh_run: SshRunner,
                                    banner_server: Endpoint, tmp_path: Path) -> None:
    with socket.create_connection((banner_server.address, banner_server.port), timeout=5) as direct:
        assert direct.recv(5) == b"hello"
    transfer = make_source(destination, tmp_path)
    transfer.prepare()
    target = f"{transfer.user}@{destination.address}"
    forward = f"{banner_server.address}:{banner_server.port}"

    stdio = ssh_run(transfer, "-o", "LogLevel=INFO", "-W", forward, target)
    assert stdio.returncode != 0
    assert "administratively prohibited" in stdio.stderr

    local = free_endpoint()
    cmd = transfer.ssh_command("-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "LogLevel=INFO", "-N",
                               "-L", f"{local.address}:{local.port}:{forward}", target)
    with subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        try:
            conn = eventually(lambda: _connect(local), timeout=15)
            assert conn is not None
            with conn:
                assert conn.recv(5) == b"", "data arrived through a forwarded port"
        finally:
            proc.terminate()
        try:  # generous: in a full run the machine may be busy with the compose stack's containers
            _, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate(timeout=10)
            raise AssertionError(f"ssh -L did not exit on SIGTERM within 60 s: {stderr!r}") from None
    assert b"administratively prohibited" in stderr


def _connect(endpoint: Endpoint) -> socket.socket | None:
    try:
        return socket.create_connection((endpoint.address, endpoint.port), timeout=5)
    except OSError:
        return None


def test_only_the_source_key_is_accepted(destination: DestinationServer, make_source: SourceFactory,
                                         ssh_run: SshRunner, tmp_path: Path, ssh_keys: keys.SshKeys) -> None:
    destination.open_iteration()
    other = keys.generate()
    intruder = make_source(destination, tmp_path, source_key=other.source, workdir=tmp_path / "intruder")

    done = ssh_run(intruder, f"{intruder.user}@{destination.address}", "shutdown 0")

    assert done.returncode == 255
    assert "Permission denied (publickey)" in done.stderr
    assert destination.completion() is None
    assert "Accepted publickey" not in destination.log_tail(4096)


def test_start_is_idempotent_and_stop_frees_the_port(destination: DestinationServer) -> None:
    pid = destination.pid
    destination.start()
    assert destination.pid == pid and destination.alive()

    destination.stop()

    assert not destination.alive()
    with socket.socket() as s:
        s.bind((destination.address, destination.port))
    destination.start()
    assert destination.alive() and destination.pid != pid


def test_start_replaces_a_stale_sshd_on_the_same_workdir(tmp_path: Path, endpoint: Endpoint,
                                                         ssh_keys: keys.SshKeys) -> None:
    stale = new_server(tmp_path, endpoint, ssh_keys)
    fresh = new_server(tmp_path, endpoint, ssh_keys)
    try:
        stale.start()
        stale_pid = stale.pid
        assert stale_pid is not None

        fresh.start()

        assert not processes.running(stale_pid)
        assert fresh.alive() and fresh.pid != stale_pid
        assert fresh.pid == int((fresh.workdir / "sshd.pid").read_text())
    finally:
        stale.stop()
        fresh.stop()


def test_a_pidfile_naming_another_process_is_left_alone(tmp_path: Path, endpoint: Endpoint,
                                                        ssh_keys: keys.SshKeys) -> None:
    (tmp_path / "dst-work").mkdir()
    with subprocess.Popen(["sleep", "60"]) as bystander:
        try:
            (tmp_path / "dst-work" / "sshd.pid").write_text(f"{bystander.pid}\n")
            with new_server(tmp_path, endpoint, ssh_keys) as server:
                assert server.alive()
                assert bystander.poll() is None
        finally:
            bystander.kill()


def test_bind_failure_is_a_clear_error(tmp_path: Path, endpoint: Endpoint, ssh_keys: keys.SshKeys) -> None:
    server = new_server(tmp_path, endpoint, ssh_keys)
    with socket.socket() as squatter:
        squatter.bind((endpoint.address, endpoint.port))
        squatter.listen()
        with pytest.raises(MoverError, match=rf"cannot listen on {endpoint.address}:{endpoint.port}: .*in use"):
            server.start()
    assert not server.alive()


def test_a_bad_host_key_is_reported_with_sshds_message(tmp_path: Path, endpoint: Endpoint,
                                                       ssh_keys: keys.SshKeys) -> None:
    server = new_server(tmp_path, endpoint, ssh_keys, destination_key=b"not a key\n")

    with pytest.raises(MoverError, match="sshd rejected its configuration .*(no hostkeys|host key)"):
        server.start()
    assert not server.alive()


def test_the_source_key_can_neither_read_nor_escape_the_data_dir(destination: DestinationServer,
                                                                  make_source: SourceFactory, tmp_path: Path) -> None:
    destination.open_iteration()
    (destination.data_dir / "private.txt").write_text("destination data")
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "payload.txt").write_text("x")
    transfer = make_source(destination, upload)
    transfer.prepare()
    rsh = f"ssh -F {transfer.config_file} -o ControlMaster=no -o ControlPath=none -p {destination.port}"
    remote = f"{transfer.user}@{destination.address}"

    pull = subprocess.run(["rsync", "-a", "-e", rsh, f"{remote}:.", str(tmp_path / "stolen")],
                          capture_output=True, text=True, timeout=60, check=False)
    escape = subprocess.run(["rsync", "-a", "-e", rsh, f"{upload}/", f"{remote}:../escaped"],
                            capture_output=True, text=True, timeout=60, check=False)

    assert pull.returncode != 0 and "reading from write-only server is not allowed" in pull.stderr
    assert not (tmp_path / "stolen/private.txt").exists()
    assert escape.returncode != 0 and "only 'rsync --server OPTIONS . .' is allowed" in escape.stderr
    assert not (destination.data_dir.parent / "escaped").exists()
    assert sorted(p.name for p in destination.data_dir.iterdir()) == ["private.txt"]
