"""Benchmark of the rsync-over-ssh mover against plain rsync over a plain sshd, measured in the same run.

    .venv/bin/python bench/replication.py [--quick] [--runs N] [--no-e2e | --e2e] [--mover-arg ARG] [--keep]

Data is generated in a temporary directory: A = one file of random bytes (1 GiB; 128 MiB with
`--quick`), B = 64 KiB files of random bytes spread over 100 directories (10,000 files; 1,000 with
`--quick`). Everything listens on random addresses in 127.0.0.0/8 only. Needs root (as the agent).

Cases, per data set: a full copy into an emptied destination (A and B), and incremental iterations
on top of the previous state: no change (B), 1 % of B's files rewritten, 1 MiB rewritten in the
middle of A (same size, new mtime). Each case runs N times (5; 2 with `--quick`); within a run the
methods go one after the other in an order that rotates from run to run, and `sync` is called (not
timed) before every timed command so that no method pays for another's dirty pages. The source
data is in the page cache throughout (the figures are "warm"). Every destination is checked against
the source after each case (names, sizes, mtimes, and the bytes that changed). The methods:

- **ours**: the mover as the agent drives it. One `DestinationServer` (our sshd with its forced
  command and rrsync) per data set stays up; a timed iteration is `open_iteration()`, a new
  `SourceTransfer` (writes its ssh files, rsync `-aAHSx --numeric-ids --delete` over ssh, then the
  `shutdown 0` completion signal, which flushes the destination's filesystem with `sync -f`, then
  stops its ssh ControlMaster) until its `TransferResult`, checked together with `completion() == 0`.
  `--mover-arg` adds rsync arguments to ours only (e.g. `--mover-arg=--no-sparse`).
- **plain**: `rsync -a -e "ssh -c aes128-gcm@openssh.com ..."` to a plain sshd started by this
  script on another loopback address with a trivial config (the same ed25519 host and client keys,
  no forced command, `SetEnv SHLVL=1` so that root's bash does not source its rc files, as in
  ours). This is the best plain rsync over ssh on this machine: the floor for our mover.
  **plain+sync** is the same run plus a `sync -f` of the destination's filesystem, timed right
  after it: the durability ours pays for in its completion signal (VolSync's destination runs
  `sync` too), so `ours/(plain+sync)` is the like-for-like ratio.
- **volsync-eq**: VolSync's rsync mover flags `rsync -aAhHSxz --delete` over the same plain sshd
  and ssh command (zstd compression is negotiated by rsync 3.2+); no sync.
- **e2e** (full mode only unless `--e2e`; `--no-e2e` skips it): a Fleet (API server + one agent
  process per cluster, as in the e2e tests) with a ReplicationDestination and a ReplicationSource,
  both copyMethod Direct and manually triggered, on data set B. Timed from the PATCH that sets
  `spec.trigger.manual` to the moment `status.lastManualSync` equals it (the object is polled over
  HTTP every 20 ms): a first sync into an emptied destination PVC and a no-change sync, each
  interleaved with `plain` copying the same source directory. Before each trigger the script waits
  (not timed) until the destination agent has reopened its iteration, so that no retry backoff is
  measured. The source's own figure ("Rsync completed in ...", rsync plus completion signal, from
  `latestMoverStatus.logs`) separates the mover from the agents' orchestration around it.

How to read the table: times are median/min seconds. `ours/plain` is the mover's cost relative
to the best plain rsync (target <= 1.05 on large files; on the no-change case the difference
ours - plain is the per-iteration orchestration, target <= 0.2 s). `volsync/ours` is how much
faster ours is than VolSync's flags (> 1 means faster; ~1.4 expected on A on a fast link where
`-z` only costs CPU). For A, MB/s = 10^6 bytes per second of the median full copy. The e2e rows
compare a whole agent-driven sync to plain rsync of the same data; their difference is the
orchestration (API watch, planning, status patches, key files, ssh handshakes, completion signal).
`cpu ours/plain` compares CPU seconds of both ends (every process this script starts, through a
cgroup v1 cpuacct group of its own, when the machine has one): far less sensitive than wall time to
other load on the machine, so it tells a real cost from noise. For e2e it includes the API server
and both agents (and the server's side of the 20 ms polling).

Results are printed and written to bench/results/replication-<UTC timestamp>.json with every sample.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from movers import keys as sshkeys  # noqa: E402
from movers.destination import DestinationServer  # noqa: E402
from movers.source import SourceTransfer  # noqa: E402

CIPHER = "aes128-gcm@openssh.com"
PLAIN_FLAGS = ("-a",)
VOLSYNC_FLAGS = ("-aAhHSxz", "--delete")
MIB = 1 << 20
CHUNK = 4 * MIB
FILE_SIZE = 64 * 1024
DIRS = 100
METHODS = ("ours", "plain", "volsync")
E2E_POLL = 0.02

# One timed run of a method: {sample name: seconds}.
Sampler = Callable[[], dict[str, float]]


class BenchError(RuntimeError):
    pass


# -- data --------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    name: str
    path: Path
    files: list[Path]
    size: int


def make_big_file(directory: Path, size: int) -> Dataset:
    directory.mkdir(parents=True)
    path = directory / "big.bin"
    with path.open("wb") as f:
        left = size
        while left:
            n = min(CHUNK, left)
            f.write(os.urandom(n))
            left -= n
    return Dataset("A", directory, [path], size)


def make_many_files(directory: Path, count: int) -> Dataset:
    files: list[Path] = []
    for d in range(DIRS):
        sub = directory / f"d{d:03d}"
        sub.mkdir(parents=True)
    for i in range(count):
        path = directory / f"d{i % DIRS:03d}" / f"f{i:05d}.bin"
        path.write_bytes(os.urandom(FILE_SIZE))
        files.append(path)
    return Dataset("B", directory, files, count * FILE_SIZE)


def bump_mtime(path: Path, step: int) -> None:
    """Give `path` a new mtime that cannot collide with the previous one at any granularity."""
    t = int(path.stat().st_mtime) + 10 * (step + 1)
    os.utime(path, (t, t))


def rewrite_middle(dataset: Dataset, step: int) -> tuple[int, int]:
    path = dataset.files[0]
    offset = dataset.size // 2 - MIB // 2
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, os.urandom(MIB), offset)
    finally:
        os.close(fd)
    bump_mtime(path, step)
    return offset, MIB


def rewrite_percent(dataset: Dataset, step: int, percent: float = 1.0) -> list[Path]:
    chosen = random.Random(1000 + step).sample(dataset.files, max(1, int(len(dataset.files) * percent / 100)))
    for path in chosen:
        path.write_bytes(os.urandom(FILE_SIZE))
        bump_mtime(path, step)
    return chosen


def empty(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(directory):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def signature(directory: Path) -> list[tuple[str, int, int]]:
    out: list[tuple[str, int, int]] = []
    for dirpath, _dirs, names in os.walk(directory):
        for name in names:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out.append((os.path.relpath(path, directory), st.st_size, int(st.st_mtime)))
    return sorted(out)


def digest(path: Path, offset: int = 0, length: int = -1) -> str:
    with path.open("rb") as f:
        f.seek(offset)
        return hashlib.sha256(f.read(length)).hexdigest()


def verify(case: str, source: Path, destinations: dict[str, Path], changed: Sequence[tuple[Path, int, int]]) -> None:
    """Every destination has the source's names, sizes and mtimes, and the changed bytes."""
    want = signature(source)
    for method, dest in destinations.items():
        if signature(dest) != want:
            raise BenchError(f"{case}: {method}'s destination {dest} differs from the source (names/sizes/mtimes)")
        for path, offset, length in changed:
            rel = path.relative_to(source)
            if digest(dest / rel, offset, length) != digest(path, offset, length):
                raise BenchError(f"{case}: {method}'s copy of {rel} has the wrong content")


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


class OurMover:
    """One DestinationServer per data set; each timed iteration is a fresh SourceTransfer, as in the agent."""

    def __init__(self, workdir: Path, keys: sshkeys.SshKeys, source: Path, dest: Path,
                 rsync_args: Sequence[str] = ()) -> None:
        self.keys = keys
        self.source = source
        self.dest = dest
        self.rsync_args = tuple(rsync_args)
        self.source_workdir = workdir / "source"
        address, port = free_endpoint()
        self.server = DestinationServer(workdir=workdir / "destination", data_dir=dest, address=address, port=port,
                                        destination_key=keys.destination, source_pub=keys.source_pub)

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def iterate(self) -> dict[str, float]:
        start = time.perf_counter()
        self.server.open_iteration()
        transfer = SourceTransfer(data_dir=self.source, address=self.server.address, port=self.server.port,
                                  source_key=self.keys.source, destination_pub=self.keys.destination_pub,
                                  workdir=self.source_workdir, retries=1, extra_rsync_args=self.rsync_args)
        transfer.start()
        try:
            result = transfer.wait(900)
            code = self.server.completion()
            elapsed = time.perf_counter() - start
            if result is None:
                raise BenchError("our transfer did not finish within 900 s")
        except BaseException:  # interrupted or timed out: stop its rsync/ssh (own sessions) before leaving
            transfer.cancel()
            transfer.wait(30)
            raise
        finally:
            self.server.close_iteration()
        if not result.succeeded or code != 0:
            raise BenchError(f"our transfer failed (exit {result.exit_code}, completion {code}): {result.logs}\n"
                             f"sshd log: {self.server.log_tail()}")
        return {"ours": elapsed}


def plain_method(plain: PlainSshd, name: str, flags: Sequence[str], source: Path, dest: Path) -> Sampler:
    """A reference run: `name` is the rsync alone, `name+sync` adds the flush that ours does at completion."""

    def run() -> dict[str, float]:
        seconds, flush = plain.rsync(flags, source, dest)
        return {name: seconds, f"{name}+sync": seconds + flush}

    return run


# -- measuring ---------------------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds used by this process and everything started after `start()` (the servers, the agents).

    A cgroup v1 `cpuacct` group of our own, so the figure covers both ends of a transfer and is far
    less sensitive than wall time to other load on the machine. Unavailable (None) elsewhere.
    """

    BASE = Path("/sys/fs/cgroup/cpuacct")

    def __init__(self) -> None:
        self.path: Path | None = None

    def start(self) -> None:
        if not (self.BASE / "cpuacct.usage").exists():
            return
        path = self.BASE / f"bench-replication-{os.getpid()}"
        try:
            path.mkdir()
            (path / "cgroup.procs").write_text(str(os.getpid()))
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()
            return
        self.path = path

    def seconds(self) -> float | None:
        if self.path is None:
            return None
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def close(self) -> None:
        path, self.path = self.path, None
        if path is None:
            return
        for _ in range(50):
            with contextlib.suppress(OSError):
                for pid in (path / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        (self.BASE / "cgroup.procs").write_text(pid)
                path.rmdir()
                return
            time.sleep(0.1)


@dataclass
class Case:
    name: str
    dataset: str
    samples: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""

    def median(self, method: str) -> float | None:
        values = self.samples.get(method)
        return statistics.median(values) if values else None

    def minimum(self, method: str) -> float | None:
        values = self.samples.get(method)
        return min(values) if values else None

    def cpu_median(self, method: str) -> float | None:
        values = self.cpu.get(method)
        return statistics.median(values) if values else None

    def as_json(self) -> dict[str, Any]:
        return {"case": self.name, "dataset": self.dataset, "note": self.note, "samples": self.samples,
                "median": {m: self.median(m) for m in self.samples},
                "min": {m: self.minimum(m) for m in self.samples},
                "cpu_seconds": self.cpu, "cpu_median": {m: self.cpu_median(m) for m in self.cpu}}


def run_case(case: Case, runs: int, methods: dict[str, Sampler], meter: CpuMeter,
             before_run: Callable[[int], None] | None = None,
             before_method: Callable[[str], None] | None = None) -> Case:
    names = list(methods)
    for run in range(runs):
        if before_run is not None:
            before_run(run)
        order = names[run % len(names):] + names[:run % len(names)]
        for method in order:
            if before_method is not None:
                before_method(method)
            os.sync()
            cpu_before = meter.seconds()
            for key, seconds in methods[method]().items():
                case.samples.setdefault(key, []).append(seconds)
            cpu_after = meter.seconds()
            if cpu_before is not None and cpu_after is not None:
                case.cpu.setdefault(method, []).append(cpu_after - cpu_before)
        print(f"  {case.name} [{case.dataset}] run {run + 1}/{runs}: "
              + ", ".join(f"{m} {case.samples[m][-1]:.3f}s" for m in names), flush=True)
    return case


def bench_dataset(dataset: Dataset, tmp: Path, keys: sshkeys.SshKeys, plain: PlainSshd, runs: int,
                  cases: list[Case], meter: CpuMeter, mover_args: Sequence[str]) -> None:
    dests = {m: tmp / "dst" / m / dataset.name for m in METHODS}
    for d in dests.values():
        d.mkdir(parents=True)
    ours = OurMover(tmp / "ours-work" / dataset.name, keys, dataset.path, dests["ours"], mover_args)
    methods: dict[str, Sampler] = {
        "ours": ours.iterate,
        "plain": plain_method(plain, "plain", PLAIN_FLAGS, dataset.path, dests["plain"]),
        "volsync": plain_method(plain, "volsync", VOLSYNC_FLAGS, dataset.path, dests["volsync"]),
    }
    try:
        ours.start()
        full = Case("full copy", dataset.name, note="destination emptied before every run")
        cases.append(run_case(full, runs, methods, meter, before_method=lambda m: empty(dests[m])))
        verify(full.name, dataset.path, dests, [])
        if dataset.name == "B":
            same = Case("no change", dataset.name)
            cases.append(run_case(same, runs, methods, meter))
            verify(same.name, dataset.path, dests, [])
            changed: list[Path] = []

            def change_files(run: int) -> None:
                changed[:] = rewrite_percent(dataset, run)

            some = Case("1% files changed", dataset.name, note=f"{max(1, len(dataset.files) // 100)} files rewritten")
            cases.append(run_case(some, runs, methods, meter, before_run=change_files))
            verify(some.name, dataset.path, dests, [(p, 0, -1) for p in changed])
        else:
            region: list[tuple[int, int]] = []

            def change_middle(run: int) -> None:
                region[:] = [rewrite_middle(dataset, run)]

            mid = Case("1 MiB rewritten mid-file", dataset.name, note="same size, new mtime; rsync's delta transfer")
            cases.append(run_case(mid, runs, methods, meter, before_run=change_middle))
            verify(mid.name, dataset.path, dests, [(dataset.files[0], *region[0])])
    finally:
        ours.stop()
        for d in dests.values():
            shutil.rmtree(d, ignore_errors=True)


# -- end to end through the agents --------------------------------------------------------------------


class ApiClient:
    """A minimal HTTP client for one cluster of the embedded API server (token from the kubeconfig)."""

    def __init__(self, kubeconfig: Path, context: str) -> None:
        import httpx
        import yaml

        config = yaml.safe_load(kubeconfig.read_text())
        ctx = next(c["context"] for c in config["contexts"] if c["name"] == context)
        server = next(c["cluster"]["server"] for c in config["clusters"] if c["name"] == ctx["cluster"])
        token = next(u["user"].get("token") for u in config["users"] if u["name"] == ctx["user"])
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=server, headers=headers, timeout=30.0, trust_env=False)

    def rs_path(self, namespace: str, name: str) -> str:
        return f"/apis/volsync.backube/v1alpha1/namespaces/{namespace}/replicationsources/{name}"

    def get(self, path: str) -> dict[str, Any]:
        response = self.http.get(path)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def merge_patch(self, path: str, patch: dict[str, Any]) -> None:
        response = self.http.patch(path, content=json.dumps(patch),
                                   headers={"Content-Type": "application/merge-patch+json"})
        response.raise_for_status()

    def close(self) -> None:
        self.http.close()


def _mover_seconds(status: dict[str, Any]) -> float | None:
    logs = (status.get("latestMoverStatus") or {}).get("logs") or ""
    found = re.findall(r"Rsync completed in ([0-9.]+)s", logs)
    return float(found[-1]) if found else None


def bench_e2e(dataset: Dataset, tmp: Path, plain: PlainSshd, runs: int, cases: list[Case],
              meter: CpuMeter) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from support.agents import Fleet
    from support.seed import copy_secret, create_destination, create_pvc, create_source, volume_dir
    from support.waiting import eventually

    rd, rs, pvc = "rd-bench", "rs-bench", "bench-data"
    fleet = Fleet(tmp / "fleet")
    client: ApiClient | None = None
    extra: dict[str, Any] = {"mover_seconds": {}}
    plain_dest = tmp / "dst" / "e2e-plain"
    try:
        started = time.perf_counter()
        fleet.start()
        fleet.kubectl("create", "ns", "dest", context="cluster2")
        fleet.kubectl("create", "ns", "src", context="cluster1")
        address, keys = create_destination(fleet, rd, "ClusterIP", copy_method="Direct")
        source_dir = create_pvc(fleet, pvc, "src", "cluster1")
        copy_secret(fleet, keys)
        client = ApiClient(fleet.server.kubeconfig, "cluster1")
        path = client.rs_path("src", rs)

        def last_sync() -> str | None:
            value: str | None = (client.get(path).get("status") or {}).get("lastManualSync") if client else None
            return value

        create_source(fleet, rs, pvc, address, keys, "manual: warmup", copy_method="Direct")
        eventually(lambda: last_sync() == "warmup", 120, interval=E2E_POLL, what="warm-up sync of an empty PVC")
        dest_dir = volume_dir(fleet, f"volsync-{rd}-dst", "dest", "cluster2")
        subprocess.run(["cp", "-a", f"{dataset.path}/.", f"{source_dir}/"], check=True)
        markers = fleet.base / "agents" / "cluster2" / "movers"
        print(f"  e2e fleet ready in {time.perf_counter() - started:.1f}s", flush=True)

        def destination_open() -> bool:
            return any(d.joinpath("receiving").exists() and not d.joinpath("complete").exists()
                       for d in markers.glob("*/sshd"))

        def sync(tag: str) -> Sampler:
            counter = [0]

            def run() -> dict[str, float]:
                counter[0] += 1
                value = f"{tag}-{counter[0]}"
                start = time.perf_counter()
                client_ = client
                assert client_ is not None
                client_.merge_patch(path, {"spec": {"trigger": {"manual": value}}})
                deadline = start + 600
                while True:
                    status = client_.get(path).get("status") or {}
                    if status.get("lastManualSync") == value:
                        elapsed = time.perf_counter() - start
                        break
                    if time.perf_counter() > deadline:
                        raise BenchError(f"e2e sync {value} did not complete within 600 s: {status}")
                    time.sleep(E2E_POLL)
                result = (status.get("latestMoverStatus") or {}).get("result")
                if result != "Successful":
                    raise BenchError(f"e2e sync {value} ended with latestMoverStatus {status.get('latestMoverStatus')}")
                extra["mover_seconds"].setdefault(tag, []).append(_mover_seconds(status))
                return {"e2e": elapsed}

            return run

        plain_dest.mkdir(parents=True)
        dests = {"e2e": dest_dir, "plain": plain_dest}

        plain_run = plain_method(plain, "plain", PLAIN_FLAGS, source_dir, plain_dest)

        def prepare(method: str, emptied: bool) -> None:
            if emptied:
                empty(dests[method])
            if method == "e2e":
                # not timed: the destination agent reopens its iteration shortly after the previous sync
                eventually(destination_open, 60, interval=E2E_POLL, what="destination iteration open")

        first = Case("e2e first sync", dataset.name, note="agents, copyMethod Direct; destination PVC emptied")
        cases.append(run_case(first, runs, {"e2e": sync("full"), "plain": plain_run}, meter,
                              before_method=lambda m: prepare(m, True)))
        verify(first.name, source_dir, dests, [])
        same = Case("e2e no change", dataset.name, note="agents, copyMethod Direct")
        cases.append(run_case(same, runs, {"e2e": sync("same"), "plain": plain_run}, meter,
                              before_method=lambda m: prepare(m, False)))
        verify(same.name, source_dir, dests, [])
        return extra
    finally:
        if client is not None:
            client.close()
        fleet.stop()
        shutil.rmtree(plain_dest, ignore_errors=True)


# -- report ------------------------------------------------------------------------------------------


def _fmt(case: Case, method: str) -> str:
    med, low = case.median(method), case.minimum(method)
    return "-" if med is None or low is None else f"{med:.3f}/{low:.3f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def report(cases: list[Case], sizes: dict[str, int], e2e_extra: dict[str, Any] | None) -> list[str]:
    head = ("case", "data", "ours", "plain", "plain+sync", "volsync-eq", "ours/plain", "ours/(plain+sync)",
            "volsync/ours", "cpu ours/plain")
    rows: list[tuple[str, ...]] = [head, ("", "", *(["med/min s"] * 4), "", "", "", "")]
    for c in cases:
        ours = "e2e" if "e2e" in c.samples else "ours"
        rows.append((c.name, c.dataset, _fmt(c, ours), _fmt(c, "plain"), _fmt(c, "plain+sync"), _fmt(c, "volsync"),
                     _ratio(c.median(ours), c.median("plain")), _ratio(c.median(ours), c.median("plain+sync")),
                     _ratio(c.median("volsync"), c.median(ours)), _ratio(c.cpu_median(ours), c.cpu_median("plain"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths,
                                                                                                  strict=True)))
             for r in rows]
    lines.insert(2, "  ".join("-" * w for w in widths))
    full_a = next((c for c in cases if c.dataset == "A" and c.name == "full copy"), None)
    if full_a is not None:
        rates = []
        for m in ("ours", "plain", "plain+sync", "volsync"):
            med = full_a.median(m)
            if med:
                rates.append(f"{m} {sizes['A'] / med / 1e6:.0f}")
        lines.append(f"A full copy throughput, MB/s of the median ({sizes['A'] / MIB:.0f} MiB): " + ", ".join(rates))
    for c in cases:
        ours_med, plain_med, synced_med = c.median("ours"), c.median("plain"), c.median("plain+sync")
        if c.name == "no change" and ours_med is not None and plain_med is not None and synced_med is not None:
            lines.append(f"no-change iteration on B: ours - plain = {(ours_med - plain_med) * 1000:+.0f} ms, "
                         f"ours - (plain+sync) = {(ours_med - synced_med) * 1000:+.0f} ms (target <= +200 ms)")
    cpu = [f"{c.name} [{c.dataset}] ours {c.cpu_median('ours'):.2f} / plain {c.cpu_median('plain'):.2f} / "
           f"volsync {c.cpu_median('volsync'):.2f}" for c in cases
           if None not in (c.cpu_median("ours"), c.cpu_median("plain"), c.cpu_median("volsync"))]
    if cpu:
        lines.append("CPU seconds of both ends, median: " + "; ".join(cpu))
    if e2e_extra:
        for c in cases:
            if "e2e" not in c.samples:
                continue
            tag = "full" if "first" in c.name else "same"
            movers = [s for s in e2e_extra["mover_seconds"].get(tag, []) if s is not None]
            e2e_med, plain_med = c.median("e2e"), c.median("plain")
            if movers and e2e_med is not None and plain_med is not None:
                mover = statistics.median(movers)
                lines.append(f"{c.name}: e2e - plain = {(e2e_med - plain_med) * 1000:+.0f} ms; the source's own "
                             f"rsync + completion signal took {mover:.2f}s (its log, 10 ms resolution), so the agents' "
                             f"orchestration around it = {(e2e_med - mover) * 1000:.0f} ms")
    return lines


def _write(path: Path, data: bytes, mode: int) -> None:
    path.unlink(missing_ok=True)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as f:
        f.write(data)


def _versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name, cmd in (("rsync", ["rsync", "--version"]), ("ssh", ["ssh", "-V"])):
        with contextlib.suppress(OSError):
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            out[name] = (done.stdout or done.stderr).splitlines()[0].strip()
    return out


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so that the finally blocks stop every process and remove the data."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="A = 128 MiB, B = 1,000 files, 2 runs, no e2e (< 60 s)")
    p.add_argument("--runs", type=int, help="runs per case (default 5; 2 with --quick)")
    e2e_group = p.add_mutually_exclusive_group()
    e2e_group.add_argument("--no-e2e", action="store_true", help="skip the end-to-end measurement through the agents")
    e2e_group.add_argument("--e2e", action="store_true", help="run the end-to-end measurement with --quick too")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (for inspection)")
    p.add_argument("--mover-arg", action="append", default=[], metavar="ARG",
                   help="extra rsync argument for our mover (SourceTransfer.extra_rsync_args), e.g. --no-sparse")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/replication.py needs root (sshd logs the benchmark in as root)", file=sys.stderr)
        return 2
    runs = args.runs or (2 if args.quick else 5)
    size_a = (128 if args.quick else 1024) * MIB
    count_b = 1000 if args.quick else 10_000
    e2e = args.e2e or not (args.quick or args.no_e2e)
    began = time.perf_counter()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    cases: list[Case] = []
    e2e_extra: dict[str, Any] | None = None
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="bench-replication-"))
    plain: PlainSshd | None = None
    meter = CpuMeter()
    with _terminate_as_exit():
        try:
            meter.start()
            t = time.perf_counter()
            keys = sshkeys.generate()
            a = make_big_file(tmp / "src" / "A", size_a)
            b = make_many_files(tmp / "src" / "B", count_b)
            print(f"data: A = {size_a // MIB} MiB, B = {count_b} x 64 KiB in {DIRS} dirs "
                  f"({time.perf_counter() - t:.1f}s to generate in {tmp}); {runs} runs per case", flush=True)
            plain = PlainSshd(tmp / "plain-sshd", keys)
            plain.start()
            bench_dataset(a, tmp, keys, plain, runs, cases, meter, args.mover_arg)
            bench_dataset(b, tmp, keys, plain, runs, cases, meter, args.mover_arg)
            if e2e:
                e2e_extra = bench_e2e(b, tmp, plain, runs, cases, meter)
        finally:
            if plain is not None:
                plain.stop()
            meter.close()
            if args.keep:
                print(f"kept {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - began
    lines = report(cases, {"A": size_a, "B": count_b * FILE_SIZE}, e2e_extra)
    print()
    print("\n".join(lines))
    print(f"\n{len(cases)} cases in {elapsed:.0f}s; load average before {load_before[0]:.2f}, "
          f"after {os.getloadavg()[0]:.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    gitignore = RESULTS / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text("*.json\n")
    out = RESULTS / f"replication-{stamp}.json"
    out.write_text(json.dumps({
        "timestamp": stamp, "quick": args.quick, "runs": runs, "elapsed_s": elapsed,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg(), **_versions()},
        "data": {"A_bytes": size_a, "B_files": count_b, "B_file_bytes": FILE_SIZE, "B_dirs": DIRS},
        "commands": {"plain": ["rsync", *PLAIN_FLAGS], "volsync": ["rsync", *VOLSYNC_FLAGS], "cipher": CIPHER,
                     "ours_extra_rsync_args": args.mover_arg},
        "cases": [c.as_json() for c in cases], "e2e": e2e_extra, "table": lines,
    }, indent=2) + "\n")
    print(f"results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
