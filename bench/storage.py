"""Benchmark of the local CSI-style storage driver: snapshot, restore and clone against a plain copy.

    .venv/bin/python bench/storage.py [--runs 3] [--files 10000] [--big-mib 1024] [--keep]

Starts an embedded API server (one cluster, loopback, no auth) and a `StorageDriver` driven by its
own started `Runtime`, exactly as a cluster process runs it, with its pool (sparse XFS image,
reflink=1, loop-mounted) in a temporary directory on the data root's filesystem. A claim of the
default class `local-csi` is filled with `--files` files of 64 KiB random bytes (100 directories)
plus one `--big-mib` MiB file of random bytes. Then, per run, through the API (official client,
state polled every 5 ms):

- (a) reference: `cp -a` of the same tree on the data root's own filesystem, then `sync -f`
  (the driver flushes each copy too), from a source directory in the page cache;
- (b) VolumeSnapshot create -> `status.readyToUse`;
- (c) restore: a new claim with `dataSourceRef` to that snapshot -> `Bound`;
- (d) clone: a new claim with `dataSource` to the source claim -> `Bound`;
- (e) floor: `cp -a --reflink=always` of the volume inside the pool, then `sync -f`: what any
  copy in the pool costs on this machine now, without the API (b-d minus e is the driver's and
  the API's share).

Every copy is checked (file count and the big file's digest). Printed: median / min seconds and
each case's ratio to the reference's median (target <= 0.5 s for snapshot and clone). Results go to
bench/results/storage-<UTC timestamp>.json. Needs root (loop mount).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import ROOT, scratch, start_apiserver, until, write_results

from kube import clients
from kube.controller import Runtime
from kube.rest import PVCS, PVS, VOLUME_SNAPSHOTS, Kube
from localcluster.storage.driver import StorageDriver
from manifests import CRD_DIR

NS = "default"


def make_tree(root: Path, files: int, big_mib: int) -> str:
    """`files` x 64 KiB in 100 directories and one big file; returns the big file's sha256."""
    blob = os.urandom(64 << 10)
    for i in range(files):
        d = root / f"d{i % 100:02d}"
        d.mkdir(exist_ok=True)
        (d / f"f{i}").write_bytes(blob[i % 64:] + blob[: i % 64])
    digest = hashlib.sha256()
    with open(root / "big", "wb") as f:
        for _ in range(big_mib):
            chunk = os.urandom(1 << 20)
            digest.update(chunk)
            f.write(chunk)
    return digest.hexdigest()


def check_tree(root: Path, files: int, big_digest: str) -> None:
    count = sum(1 for p in root.rglob("f*") if p.is_file())
    digest = hashlib.sha256()
    with open(root / "big", "rb") as f:
        while chunk := f.read(16 << 20):
            digest.update(chunk)
    if count != files or digest.hexdigest() != big_digest:
        raise AssertionError(f"copy {root} differs: {count} files, big file {digest.hexdigest()[:12]}")


def claim(name: str, source: dict[str, str] | None = None, field: str = "dataSource") -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "4Gi"}},
                            "storageClassName": "local-csi"}
    if source:
        spec[field] = source
    return {"metadata": {"name": name, "namespace": NS}, "spec": spec}


def bound(kube: Kube, name: str) -> Path:
    def claim_bound() -> dict[str, Any] | None:
        pvc = kube.get(PVCS, name, NS)
        return pvc if pvc and (pvc.get("status") or {}).get("phase") == "Bound" else None

    pvc = until(claim_bound, f"claim {name} Bound", 300)
    assert pvc is not None
    pv = kube.get(PVS, pvc["spec"]["volumeName"])
    assert pv is not None
    return Path(pv["spec"]["local"]["path"])


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    result = fn()
    return time.perf_counter() - began, result


def copy_and_flush(*cp: str) -> None:
    subprocess.run(["cp", "-a", *cp], check=True)
    subprocess.run(["sync", "-f", cp[-1]], check=True)


def one_run(i: int, kube: Kube, driver: StorageDriver, ref_src: Path, volume: Path, work: Path,
            samples: dict[str, list[float]]) -> None:
    """One sample of each case (see the module docstring)."""
    dst = work / f"ref-dst-{i}"
    subprocess.run(["sync"], check=True)
    samples["reference cp -a"].append(timed(lambda: copy_and_flush(str(ref_src), str(dst)))[0])
    shutil.rmtree(dst)
    subprocess.run(["sync"], check=True)

    def snapshot_ready() -> Any:
        kube.create(VOLUME_SNAPSHOTS, {"metadata": {"name": f"snap-{i}", "namespace": NS},
                                       "spec": {"source": {"persistentVolumeClaimName": "source"}}})
        return until(lambda: ((kube.get(VOLUME_SNAPSHOTS, f"snap-{i}", NS) or {}).get("status") or {}).get(
            "readyToUse"), "snapshot ready")

    samples["snapshot"].append(timed(snapshot_ready)[0])

    def claim_bound(name: str, source: dict[str, str], field: str) -> Path:
        kube.create(PVCS, claim(name, source, field))
        return bound(kube, name)

    ref = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": f"snap-{i}"}
    samples["restore"].append(timed(lambda: claim_bound(f"restore-{i}", ref, "dataSourceRef"))[0])
    src = {"kind": "PersistentVolumeClaim", "name": "source"}
    samples["clone"].append(timed(lambda: claim_bound(f"clone-{i}", src, "dataSource"))[0])

    floor = driver.layout.root / f"floor-{i}"
    subprocess.run(["sync"], check=True)
    samples["floor reflink cp"].append(timed(lambda: copy_and_flush("--reflink=always", str(volume), str(floor)))[0])
    shutil.rmtree(floor)


def run(args: argparse.Namespace, work: Path) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"reference cp -a": [], "snapshot": [], "restore": [], "clone": [],
                                       "floor reflink cp": []}
    ref_src = work / "ref-src"
    ref_src.mkdir()
    big = make_tree(ref_src, args.files, args.big_mib)
    server, _ = start_apiserver(work / "api", ("cluster1",), "--crd-dir", str(CRD_DIR))
    api = clients.load(str(server.ready["kubeconfig"]), "cluster1")
    kube = Kube(api)
    runtime = Runtime(kube)
    driver = StorageDriver(runtime, kube, work / "storage", node_name="cluster1")
    try:
        driver.start()
        runtime.start()
        assert driver.pool is not None
        print(f"pool: {driver.pool.path} reflink={driver.pool.reflink}", flush=True)
        kube.create(PVCS, claim("source"))
        volume = bound(kube, "source")
        subprocess.run(["cp", "-a", f"{ref_src}/.", f"{volume}/"], check=True)
        subprocess.run(["sync"], check=True)
        for i in range(args.runs):
            one_run(i, kube, driver, ref_src, volume, work, samples)
            for name in ("restore", "clone"):
                check_tree(bound(kube, f"{name}-{i}"), args.files, big)
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in samples.items()), flush=True)
    finally:
        runtime.stop()
        driver.stop(release=True)
        clients.close(api)
        server.stop(15)
    return samples


def report(samples: dict[str, list[float]], args: argparse.Namespace) -> None:
    ref = statistics.median(samples["reference cp -a"])
    print(f"\n{args.files} x 64 KiB + {args.big_mib} MiB, {args.runs} runs (median / min seconds, ratio to reference)")
    for name, values in samples.items():
        med = statistics.median(values)
        target = "  (target <= 0.5 s)" if name in ("snapshot", "clone") else ""
        print(f"  {name:16} {med:7.3f} / {min(values):7.3f}   x{med / ref:.3f}{target}")
    out = write_results("storage", {"files": args.files, "big_mib": args.big_mib, "samples": samples})
    print(f"written to {out.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/storage.py needs root (the pool is a loop-mounted XFS image)")
    with scratch("bench-storage-", args.keep, os.environ.get("BENCH_DIR", "/var/tmp")) as work:
        report(run(args, work), args)


if __name__ == "__main__":
    main()
