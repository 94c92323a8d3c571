"""The reference of bench/replication.py: plain rsync over a plain sshd on a loopback address.

`PlainSshd` is a stock sshd with a trivial config (no forced command) on a random 127.x address;
`plain_method` times one rsync into a destination and, separately, the `sync -f` of the
destination's filesystem that our mover pays for in its completion signal.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from samples import BenchError, Sampler

from movers import keys as sshkeys

CIPHER = "aes128-gcm@openssh.com"
PLAIN_FLAGS = ("-a",)


# -- processes and endpoints -------------------------------------------------------------------------


def free_endpoint(first_octet_range: tuple[int, int] = (1, 63)) -> tuple[str, int]:
    """A random 127.x.y.z (outside the agents' 127.64-127.127 pools) with a port free on it."""
    for _ in range(100):
        address = f"127.{random.randint(*first_octet_range)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((address, 0))
            except OSError:
                continue
            return address, int(s.getsockname()[1])
    raise BenchError("no free loopback endpoint")


def wait_listening(address: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"process {proc.args!r} exited with {proc.returncode} while starting")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            if s.connect_ex((address, port)) == 0:
                return
        time.sleep(0.01)
    raise BenchError(f"nothing listening on {address}:{port} after {timeout}s")


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Stop a child started in its own session, with everything in its process group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class PlainSshd:
    """The reference server: a stock sshd with a trivial config and no forced command."""

    def __init__(self, workdir: Path, keys: sshkeys.SshKeys) -> None:
        self.workdir = workdir
        self.keys = keys
        self.address, self.port = free_endpoint()
        self.proc: subprocess.Popen[bytes] | None = None
        self.client_key = workdir / "client_key"
        self.known_hosts = workdir / "known_hosts"

    def start(self) -> None:
        w = self.workdir
        w.mkdir(parents=True, exist_ok=True)
        os.chmod(w, 0o700)
        _write(w / "host_key", self.keys.destination, 0o600)
        _write(w / "authorized_keys", self.keys.source_pub, 0o600)
        _write(self.client_key, self.keys.source, 0o600)
        _write(self.known_hosts, f"[{self.address}]:{self.port} {self.keys.destination_pub.decode().strip()}\n"
               .encode(), 0o600)
        config = "\n".join([
            f"ListenAddress {self.address}:{self.port}",
            f"HostKey {w / 'host_key'}",
            f"PidFile {w / 'sshd.pid'}",
            f"AuthorizedKeysFile {w / 'authorized_keys'}",
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "SetEnv SHLVL=1",
        ]) + "\n"
        _write(w / "sshd_config", config.encode(), 0o600)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        with (w / "sshd.log").open("ab") as log:
            self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", str(w / "sshd_config"),
                                          "-E", str(w / "sshd.log")], stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, start_new_session=True)
        wait_listening(self.address, self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None

    def rsh(self) -> str:
        return (f"ssh -F /dev/null -c {CIPHER} -i {self.client_key} -o IdentitiesOnly=yes "
                f"-o UserKnownHostsFile={self.known_hosts} -o GlobalKnownHostsFile=/dev/null "
                "-o StrictHostKeyChecking=yes -o BatchMode=yes -o LogLevel=ERROR "
                f"-p {self.port}")

    def rsync(self, flags: Sequence[str], source: Path, dest: Path) -> tuple[float, float]:
        """(seconds of the rsync, seconds of a following `sync -f` of the destination's filesystem)."""
        cmd = ["rsync", *flags, "-e", self.rsh(), f"{source}/", f"root@{self.address}:{dest}/"]
        start = time.perf_counter()
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} exited with {done.returncode}: {done.stderr.decode(errors='replace')}")
        start = time.perf_counter()
        subprocess.run(["sync", "-f", str(dest)], stdin=subprocess.DEVNULL, check=True)
        return elapsed, time.perf_counter() - start


def plain_method(plain: PlainSshd, name: str, flags: Sequence[str], source: Path, dest: Path) -> Sampler:
    """A reference run: `name` is the rsync alone, `name+sync` adds the flush that ours does at completion."""

    def run() -> dict[str, float]:
        seconds, flush = plain.rsync(flags, source, dest)
        return {name: seconds, f"{name}+sync": seconds + flush}

    return run



def _write(path: Path, data: bytes, mode: int) -> None:
    path.unlink(missing_ok=True)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as f:
        f.write(data)


