"""The receiving end of the rsync-over-ssh mover: one real sshd per ReplicationDestination.

The sshd accepts exactly one key (the source's) and forces every session through a script that lets
rsync write into `data_dir` and records the source's completion signal only while an iteration is
open (see `forced` for what is allowed). The agent drives iterations with `open_iteration()`,
`completion()` and `close_iteration()`; closing an iteration ends the sessions still running.

Everything lives in `workdir`: host key, authorized_keys, sshd_config, pidfile, script, markers, log.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from movers import forced, leftovers, processes, serverfiles, sshconfig
from movers.errors import MoverError
from movers.keys import public_key_line
from osutil.files import open_private, write_private


class DestinationServer:
    """A foreground sshd listening on `address:port`, writing what the source sends into `data_dir`."""

    def __init__(self, *, workdir: Path, data_dir: Path, address: str, port: int, destination_key: bytes,
                 source_pub: bytes, sshd: str = "/usr/sbin/sshd", rsync: str = "rsync",
                 python: str = sys.executable, start_timeout: float = 10.0,
                 io_timeout: int = forced.IO_TIMEOUT) -> None:
        self.workdir = Path(sshconfig.check_path("workdir", str(Path(workdir).absolute())))
        self.data_dir = Path(sshconfig.check_path("data_dir", str(Path(data_dir).absolute())))
        self.address = sshconfig.check_address(address)
        self.port = sshconfig.check_port(port)
        self.sshd = sshd
        self.rsync = rsync
        self.python = python
        self.start_timeout = start_timeout
        self.io_timeout = io_timeout
        self.login_user = "root" if sshconfig.is_root() else sshconfig.current_user()
        self._destination_key = destination_key
        self._source_pub_line = public_key_line(source_pub)
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self.host_key_file = self.workdir / "ssh_host_key"
        self.authorized_keys_file = self.workdir / "authorized_keys"
        self.config_file = self.workdir / "sshd_config"
        self.pid_file = self.workdir / "sshd.pid"
        self.forced_command_file = self.workdir / "forced-command"
        self.log_file = self.workdir / serverfiles.LOG

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start sshd (idempotent); replaces a stale sshd left running on this workdir."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return
            self._proc = None
            self.workdir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.workdir, 0o700)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            rsync = shutil.which(self.rsync)
            if rsync is None:
                raise MoverError(f"{self.rsync} not found: install rsync")
            self.rsync = os.path.abspath(rsync)
            self._check_login_shell()
            self._stop_stale()
            # links a killed agent left munged get their targets back; the first session munges them again
            leftovers.unmunge(self.workdir, leftovers.recorded_data_dir(self.workdir) or self.data_dir)
            self._write_files()
            self._check_config()
            self._spawn()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sshd and any session it is serving, and give the volume's links back (idempotent)."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                if proc.poll() is None:
                    processes.terminate([*processes.descendants(proc.pid), proc.pid], timeout, reap=proc.poll)
                proc.wait()
                self._unmunge()  # its sessions are gone with it

    def _unmunge(self) -> None:
        """Real targets for the volume's symlinks, once no session can write (see `forced`)."""
        leftovers.unmunge(self.workdir, self.data_dir)

    def alive(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None else None

    def __enter__(self) -> DestinationServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- iterations --------------------------------------------------------------------------------

    def open_iteration(self) -> None:
        """Accept data (and a completion signal) from the source from now on; from the first session on,
        the volume's symlinks are munged until the iteration is closed (see `forced`)."""
        (self.workdir / serverfiles.COMPLETE).unlink(missing_ok=True)
        write_private(self.workdir / serverfiles.RECEIVING, b"")

    def close_iteration(self, keep: Path | None = None) -> int | None:
        """Refuse new rsync sessions and completion signals, end the sessions still running (a transfer
        of this iteration writes nothing more once this returns), then read and forget the completion
        code: returned, and first written to `keep` (if given and the source sent one), so that a
        completion recorded while the iteration was being closed is never lost."""
        (self.workdir / serverfiles.RECEIVING).unlink(missing_ok=True)
        self.end_sessions()
        self._unmunge()
        return leftovers.take_completion(self.workdir, keep)

    def end_sessions(self, timeout: float = 10.0) -> None:
        """Stop every rsync receiver of this sshd and wait until no session can still write.

        Each session holds a shared lock on ``sessions.lock`` from before it checks the ``receiving``
        marker until its rsync exits; once the exclusive lock is ours, no session that saw the marker
        is left. Receivers are killed until then (a session may exec rsync after a first round).
        """
        if not self.workdir.is_dir():
            return  # never started: no session either
        fd = os.open(self.workdir / "sessions.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            for receivers_only in (True, False):  # then, as a last resort, every session, stuck or not
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    self._kill_sessions(receivers_only=receivers_only)
                    if processes.wait_until(lambda: _try_lock(fd), 0.5):
                        return
            raise MoverError(f"sessions of {self.workdir} did not end within {2 * timeout}s")
        finally:
            os.close(fd)

    def _kill_sessions(self, *, receivers_only: bool) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        pids = processes.descendants(proc.pid)
        if receivers_only:
            pids = [pid for pid in pids if _is_receiver(processes.cmdline(pid), self.rsync)]
        processes.terminate(pids, 2.0)

    def iteration_open(self) -> bool:
        return (self.workdir / serverfiles.RECEIVING).exists()

    def completion(self) -> int | None:
        """The code the source sent with `shutdown N [ID]` in this iteration, or None before it did."""
        return leftovers.completion(self.workdir)

    def completion_record(self) -> leftovers.Completion | None:
        """The code and the source's iteration id (None if it named none) of this iteration's completion."""
        return leftovers.completion_record(self.workdir)

    def log_tail(self, max_bytes: int = 1024) -> str:
        """The end of sshd's log (authentication results, forced-command decisions, errors)."""
        try:
            with self.log_file.open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - max_bytes))
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    # -- internals ---------------------------------------------------------------------------------

    def _write_files(self) -> None:
        config = serverfiles.sshd_config(
            address=self.address, port=self.port, host_key=self.host_key_file, pid_file=self.pid_file,
            authorized_keys=self.authorized_keys_file, login_user=self.login_user, root=sshconfig.is_root())
        authorized = serverfiles.authorized_keys(
            python=self.python, script=self.forced_command_file, workdir=self.workdir, data_dir=self.data_dir,
            rsync=self.rsync, source_pub_line=self._source_pub_line, io_timeout=self.io_timeout)
        write_private(self.host_key_file, self._destination_key)
        write_private(self.authorized_keys_file, authorized.encode())
        write_private(self.forced_command_file,
                       serverfiles.forced_command().encode(), mode=0o700)
        write_private(self.config_file, config.encode())
        write_private(self.workdir / leftovers.DATA_DIR, str(self.data_dir).encode())

    def _check_login_shell(self) -> None:
        if sshconfig.is_root():
            return
        try:
            shell = pwd.getpwuid(os.geteuid()).pw_shell
        except KeyError as exc:
            raise MoverError(f"uid {os.geteuid()} has no passwd entry: sshd cannot log it in") from exc
        if Path(shell or "/bin/sh").name in ("nologin", "false"):
            raise MoverError(f"user {self.login_user} has login shell {shell}: sshd runs the forced command "
                             "through it, so give the user a POSIX shell (e.g. /bin/sh) or run as root")

    def _check_config(self) -> None:
        cmd = [self.sshd, "-t", "-f", str(self.config_file)]
        for _ in range(2):
            try:
                done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)
            except FileNotFoundError as exc:
                raise MoverError(f"{self.sshd} not found: install openssh-server") from exc
            message = (done.stdout + done.stderr).decode(errors="replace").strip()
            if done.returncode == 0:
                return
            privsep = "Missing privilege separation directory: "
            if message.startswith(privsep) and sshconfig.is_root():
                # sshd running as root needs its (empty, root-owned) chroot directory; a
                # systemd-less machine may not have it.
                os.makedirs(message[len(privsep):].splitlines()[0].strip(), mode=0o755, exist_ok=True)
                continue
            break
        raise MoverError(f"sshd rejected its configuration {self.config_file}: {message}")

    def _spawn(self) -> None:
        cmd = [self.sshd, "-D", "-f", str(self.config_file), "-E", str(self.log_file)]
        self.pid_file.unlink(missing_ok=True)
        with open_private(self.log_file, "ab") as log:
            log_start = log.tell()
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, close_fds=True, umask=0o077)
        # sshd writes its pidfile once its listening sockets are bound.
        ready = processes.wait_until(
            lambda: proc.poll() is not None or leftovers.pid_from_file(self.workdir) == proc.pid, self.start_timeout)
        if proc.poll() is not None:
            proc.wait()
            raise MoverError(self._startup_failure(proc.returncode, log_start))
        if not ready:
            processes.kill_group(proc)
            raise MoverError(f"sshd did not start listening on {self._endpoint()} within {self.start_timeout}s; "
                             f"log: {self.log_tail(512)}")
        self._proc = proc

    def _startup_failure(self, code: int | None, log_start: int) -> str:
        with self.log_file.open("rb") as f:
            f.seek(log_start)
            log = f.read(8192).decode(errors="replace")
        endpoint = self._endpoint()
        if "Address already in use" in log:
            return (f"sshd cannot listen on {endpoint}: the address is already in use by another process; "
                    "stop it or choose another port/address")
        if "Permission denied" in log and "Bind to port" in log:
            return (f"sshd cannot listen on {endpoint}: permission denied (ports below "
                    f"{_unprivileged_port_start()} need root or CAP_NET_BIND_SERVICE); run as root or choose a "
                    "higher port")
        if "Cannot assign requested address" in log:
            return f"sshd cannot listen on {endpoint}: no local interface has that address; choose one that exists"
        return f"sshd exited with status {code} while starting on {endpoint}: {log.strip()}"

    def _endpoint(self) -> str:
        return f"{sshconfig.bracketed(self.address)}:{self.port}"

    def _stop_stale(self) -> None:
        """Kill an sshd recorded in a leftover pidfile, but only if it is an sshd serving our config."""
        leftovers.stop_stale_sshd(self.workdir)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def _is_receiver(argv: list[str], rsync: str) -> bool:
    return len(argv) >= 2 and argv[0] == rsync and argv[1] == "--server"



def _unprivileged_port_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        return 1024
