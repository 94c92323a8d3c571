"""Benchmark of the rsync-over-ssh mover against plain rsync over a plain sshd, measured in the same run.

    .venv/bin/python bench/replication.py [--quick] [--runs N] [--no-e2e | --e2e | --e2e-only] [--mover-arg ARG]
        [--keep]

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
- **e2e** (full mode only unless `--e2e`; `--no-e2e` skips it, `--e2e-only` runs nothing else):
  bench/replication_e2e.py. A Fleet (API server, cluster processes with their nodes, one agent per
  cluster, as in the e2e tests) with, per copyMethod (Direct and Snapshot on both sides), a
  ReplicationDestination and a manually triggered ReplicationSource on data set B: a first sync
  into an emptied destination PVC and a no-change sync, each timed from the PATCH of the trigger to
  the source's `lastManualSync` AND the destination's image of that very iteration (watch events,
  local receive times), interleaved with `plain` copying the same source directory; before each
  trigger (not timed) the previous iteration is fully idle on both sides (no source Job running, a
  destination mover Pod up). The same watch streams give the mover Jobs' start-up cost per
  iteration, and a trivial busybox Job on the same node gives the node's floor. The source's own
  figure ("Rsync completed in ...", from `latestMoverStatus.logs`) separates the mover from the
  orchestration around it.

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
both agents and the cluster processes (nodes, controllers) of the fleet.

Results are printed and written to bench/results/replication-<UTC timestamp>.json with every sample.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the project's packages before bench/'s scripts of the same names (apiserver, hub)

from common import machine_facts, render_table, scratch, terminate_as_exit, utc_stamp, write_results  # noqa: E402
from rsyncplain import CIPHER, PLAIN_FLAGS, PlainSshd, free_endpoint, plain_method  # noqa: E402
from samples import (  # noqa: E402
    DIRS,
    FILE_SIZE,
    MIB,
    BenchError,
    Case,
    CpuMeter,
    Dataset,
    Sampler,
    empty,
    make_big_file,
    make_many_files,
    rewrite_middle,
    rewrite_percent,
    run_case,
    verify,
)

from movers import keys as sshkeys  # noqa: E402
from movers.destination import DestinationServer  # noqa: E402
from movers.source import SourceTransfer  # noqa: E402

VOLSYNC_FLAGS = ("-aAhHSxz", "--delete")
METHODS = ("ours", "plain", "volsync")


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
    lines = render_table(rows, left=(0, 1), rule_after=2)
    full_a = next((c for c in cases if c.dataset == "A" and c.name == "full copy"), None)
    if full_a is not None:
        rates = [f"{m} {sizes['A'] / med / 1e6:.0f}" for m in ("ours", "plain", "plain+sync", "volsync")
                 if (med := full_a.median(m))]
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
        from replication_e2e import summary_lines

        lines += summary_lines(cases, e2e_extra)
    return lines


def _versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name, cmd in (("rsync", ["rsync", "--version"]), ("ssh", ["ssh", "-V"])):
        with contextlib.suppress(OSError):
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            out[name] = (done.stdout or done.stderr).splitlines()[0].strip()
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="A = 128 MiB, B = 1,000 files, 2 runs, no e2e (< 60 s)")
    p.add_argument("--runs", type=int, help="runs per case (default 5; 2 with --quick)")
    e2e_group = p.add_mutually_exclusive_group()
    e2e_group.add_argument("--no-e2e", action="store_true", help="skip the end-to-end measurement through the agents")
    e2e_group.add_argument("--e2e", action="store_true", help="run the end-to-end measurement with --quick too")
    e2e_group.add_argument("--e2e-only", action="store_true", help="only the end-to-end rows (no A, no mover rows)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (for inspection)")
    p.add_argument("--mover-arg", action="append", default=[], metavar="ARG",
                   help="extra rsync argument for our mover (SourceTransfer.extra_rsync_args), e.g. --no-sparse")
    args = p.parse_args(argv)
    args.runs = args.runs or (2 if args.quick else 5)
    args.size_a = (128 if args.quick else 1024) * MIB
    args.count_b = 1000 if args.quick else 10_000
    args.with_e2e = args.e2e or args.e2e_only or not (args.quick or args.no_e2e)
    return args


def run(args: argparse.Namespace, tmp: Path, cases: list[Case]) -> dict[str, Any] | None:
    """Every case into `cases`; the e2e figures (or None without e2e)."""
    plain: PlainSshd | None = None
    meter = CpuMeter()
    try:
        meter.start()
        t = time.perf_counter()
        keys = sshkeys.generate()
        b = make_many_files(tmp / "src" / "B", args.count_b)
        a = None if args.e2e_only else make_big_file(tmp / "src" / "A", args.size_a)
        print(f"data: A = {0 if a is None else args.size_a // MIB} MiB, B = {args.count_b} x 64 KiB in {DIRS} dirs "
              f"({time.perf_counter() - t:.1f}s to generate in {tmp}); {args.runs} runs per case", flush=True)
        plain = PlainSshd(tmp / "plain-sshd", keys)
        plain.start()
        for dataset in () if a is None else (a, b):
            bench_dataset(dataset, tmp, keys, plain, args.runs, cases, meter, args.mover_arg)
        if not args.with_e2e:
            return None
        from replication_e2e import bench_e2e

        return bench_e2e(b, tmp, plain, args.runs, cases, meter)
    finally:
        if plain is not None:
            plain.stop()
        meter.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/replication.py needs root (sshd logs the benchmark in as root)", file=sys.stderr)
        return 2
    began, stamp, machine = time.perf_counter(), utc_stamp(), machine_facts()
    cases: list[Case] = []
    with terminate_as_exit(), scratch("bench-replication-", args.keep) as tmp:
        e2e_extra = run(args, tmp, cases)
    elapsed = time.perf_counter() - began
    lines = report(cases, {"A": args.size_a, "B": args.count_b * FILE_SIZE}, e2e_extra)
    print()
    print("\n".join(lines))
    machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"\n{len(cases)} cases in {elapsed:.0f}s; load average before {machine['loadavg_at_start'][0]:.2f}, "
          f"after {machine['loadavg_at_end'][0]:.2f}")
    out = write_results("replication", {
        "timestamp": stamp, "quick": args.quick, "runs": args.runs, "elapsed_s": elapsed,
        "machine": {**machine, **_versions()},
        "data": {"A_bytes": 0 if args.e2e_only else args.size_a, "B_files": args.count_b, "B_file_bytes": FILE_SIZE,
                 "B_dirs": DIRS},
        "commands": {"plain": ["rsync", *PLAIN_FLAGS], "volsync": ["rsync", *VOLSYNC_FLAGS], "cipher": CIPHER,
                     "ours_extra_rsync_args": args.mover_arg},
        "cases": [c.as_json() for c in cases], "e2e": e2e_extra, "table": lines,
    }, stamp)
    print(f"results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
