"""Benchmark of the embedded node: how fast Pods and Jobs run, against bare process starts.

    .venv/bin/python bench/workloads.py [--pods 20] [--jobs 10] [--keep]

Starts the embedded platform as the embedded default does (`embedded.apiprocess.start_api` with
the fleet's flags, then `localcluster.launcher.Fleet` with one cluster process) in a temporary data
dir, and measures through the cluster's API with the official client:

- Pod create → Running: N busybox Pods (`sleep 600`) created one after the other; for each, the
  time from the create call returning to the Pod's `status.phase` reading Running (polled every
  5 ms on a kept-alive connection); p50 / p99;
- Job create → Complete: M Jobs running busybox `true`; from the create call to the `Complete`
  condition; p50 / p99.

References measured in the same run, on the same machine: a bare `busybox true` started with
`subprocess.run` (the process floor), and the same command inside bubblewrap with the node's
sandbox flags but no API, no network namespace (the sandbox floor). Ratios are ours / reference.
Results are printed and written to bench/results/workloads-<UTC timestamp>.json.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import percentile, scratch, until, write_results  # noqa: E402

from embedded.apiprocess import start_api  # noqa: E402
from kube import clients  # noqa: E402
from kube.rest import Kube, Resource  # noqa: E402
from localcluster.launcher import Fleet  # noqa: E402

PODS = Resource("", "v1", "pods", "Pod")
JOBS = Resource("batch", "v1", "jobs", "Job")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
BUSYBOX = "busybox:1.36"


def reference_process(n: int) -> list[float]:
    busybox = shutil.which("busybox") or "/bin/busybox"
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run([busybox, "true"], check=True)
        times.append(time.perf_counter() - start)
    return times


def reference_sandbox(n: int) -> list[float]:
    busybox = shutil.which("busybox") or "/bin/busybox"
    argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid", "--unshare-ipc",
            "--unshare-uts", "--tmpfs", "/tmp", "--die-with-parent", "--", busybox, "true"]
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(argv, check=True)
        times.append(time.perf_counter() - start)
    return times


def pod_to_running(kube: Kube, ns: str, n: int) -> list[float]:
    def running(name: str) -> bool:
        return bool(((kube.get(PODS, name, ns) or {}).get("status") or {}).get("phase") == "Running")

    times = []
    for i in range(n):
        body = {"metadata": {"name": f"p{i}", "namespace": ns}, "spec": {
            "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": BUSYBOX, "command": ["sleep", "600"]}]}}
        kube.create(PODS, body, ns)
        start = time.perf_counter()
        until(functools.partial(running, f"p{i}"), f"Pod p{i} Running")
        times.append(time.perf_counter() - start)
    return times


def job_to_complete(kube: Kube, ns: str, n: int, prefix: str = "j") -> list[float]:
    """Seconds from each of `n` busybox `true` Jobs' create call to its Complete condition (one at a time)."""

    def complete(name: str) -> bool:
        conditions = ((kube.get(JOBS, name, ns) or {}).get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Complete" and c.get("status") == "True" for c in conditions)

    times = []
    for i in range(n):
        body = {"metadata": {"name": f"{prefix}{i}", "namespace": ns}, "spec": {"backoffLimit": 0, "template": {
            "spec": {"restartPolicy": "Never",
                     "containers": [{"name": "c", "image": BUSYBOX, "command": ["true"]}]}}}}
        kube.create(JOBS, body, ns)
        start = time.perf_counter()
        until(functools.partial(complete, f"{prefix}{i}"), f"Job {prefix}{i} Complete")
        times.append(time.perf_counter() - start)
    return times


def summary(name: str, ours: list[float], reference: list[float]) -> dict[str, Any]:
    p50, p99, ref = statistics.median(ours), percentile(ours, 99), statistics.median(reference)
    print(f"{name:28} p50 {p50 * 1000:8.1f} ms  p99 {p99 * 1000:8.1f} ms   reference p50 {ref * 1000:7.1f} ms"
          f"   ratio p50 {p50 / ref:6.1f}x")
    return {"name": name, "p50_s": p50, "p99_s": p99, "reference_p50_s": ref, "ratio_p50": p50 / ref}


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--pods", type=int, default=20)
    p.add_argument("--jobs", type=int, default=10)
    p.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    args = p.parse_args()
    with scratch("bench-workloads-", args.keep) as base:
        rows = measure(base, args.pods, args.jobs)
    out = write_results("workloads", {"rows": rows})
    print(f"results: {out}")
    return 0


def measure(base: Path, pods: int, jobs: int) -> list[dict[str, Any]]:
    """The references and both cases on a fresh one-cluster fleet in `base` (stopped afterwards)."""
    fleet = Fleet(base / "clusters", ["cluster1"], base / "api" / "kubeconfig", base / "api" / "pki")
    api = start_api(base / "api", ["cluster1"], extra_args=fleet.apiserver_args())
    rows = []
    try:
        fleet.start()
        client = clients.load(str(api.kubeconfig), "cluster1")
        kube = Kube(client, field_manager="bench")
        kube.create(NAMESPACES, {"metadata": {"name": "bench"}})
        process, sandbox = reference_process(max(pods, 20)), reference_sandbox(max(pods, 20))
        print(f"{'bare busybox true':28} p50 {statistics.median(process) * 1000:8.1f} ms")
        print(f"{'bwrap busybox true':28} p50 {statistics.median(sandbox) * 1000:8.1f} ms")
        rows.append(summary("Pod create -> Running", pod_to_running(kube, "bench", pods), sandbox))
        rows.append(summary("Job create -> Complete", job_to_complete(kube, "bench", jobs), sandbox))
        clients.close(client)
    finally:
        fleet.stop()
        api.stop()
    return rows


if __name__ == "__main__":
    sys.exit(main())
