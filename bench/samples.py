"""The measuring pieces of bench/replication.py: data sets, checks, CPU metering and interleaved cases.

- data: A (one big file of random bytes) and B (64 KiB files in 100 directories), and the changes
  the incremental cases make to them; `empty`, `verify` (names, sizes, mtimes, changed bytes);
- `CpuMeter`: CPU seconds of this process and all it starts (a cgroup v1 cpuacct group of its own);
- `Case` and `run_case`: N runs of several methods, in an order that rotates from run to run, with
  `sync` (not timed) before every timed command so that no method pays for another's dirty pages.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIB = 1 << 20
CHUNK = 4 * MIB
FILE_SIZE = 64 * 1024
DIRS = 100

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


