"""Benchmark of the hub (`volsync-hub` with the ManifestWork deployer) on a fresh embedded hub API server.

    .venv/bin/python bench/hub.py [--clusters 1000] [--replications 10000] [--batch 100] [--requests 50] [--quick]

Starts one real `volsync-apiserver` process (cluster `hub` only) on 127.0.0.1 with a fresh
temporary data dir, creates N cluster namespaces and N ManagedClusters (accepted, joined,
available, as OCM's registration leaves them; not timed), then starts a real `volsync-hub
--kubeconfig <embedded kubeconfig> --context hub --hub-url http://127.0.0.1:1` process (the
ManifestWork deployer, as against a production hub; no agents and no work agent run). Phases:

1. **enable**: the N clusters are labelled `addons.open-cluster-management.io/volsync=true` from
   8 concurrent clients (merge PATCH) and the time until every ManagedClusterAddOn `volsync`, every
   ManifestWork `addon-volsync-deploy-0`, every agent token Secret and every MCA status exists is
   taken from watch streams this script holds open (arrival of the first event per namespace), then
   until the hub process is idle again. Reference: the same N ManifestWorks (the same body the hub
   renders) created directly by 8 client threads on a second, fresh API server started by this
   script (the floor set by the API server's write rate; no watchers on it).
2. **heartbeats**: one POST /api/v1/agents/{c}/heartbeat per cluster with its own agent token (read
   from the Secrets `volsync-agent-token` with the official kubernetes client), twice: the first
   creates each Lease (and flips the MCA's Available), the second only renews it, the steady state.
   Hub CPU includes the reconcile every renewal triggers, until the hub is idle again.
3. **reports**: R reports over min(N, 100) clusters, POSTed to /api/v1/agents/{c}/reports in batches
   from 8 concurrent clients: new (one ConfigMap create each), stale (the same sequences again: no
   write) and updated (sequence + 1: one ConfigMap replace each). A mix of states (5 % error,
   5 % never synced, 10 % late, the rest ok). Reference: the same ConfigMaps created and then
   replaced directly by 8 client threads on the reference API server. Then the hub's background CPU
   with no requests at all (each cluster with replications is reconciled every 60 s).
4. **queries**: GET /api/v1/replications (all rows, `cluster=`, `state=error`) K times each, p50/p99
   and response size; /api/v1/clusters, /api/v1/summary and /metrics (which computes the summary)
   fewer times.
5. memory: VmRSS (and VmHWM, the peak) of the hub and the API server processes from /proc.

Every row carries the CPU seconds of the hub process, the API server process (from
/proc/<pid>/stat, 10 ms ticks) and this client (time.process_time) per wall second of the phase
(100 % = one core), and the 1-minute load average at the end of the phase: other work on the
machine shows up there. "writes" counts the API server's resourceVersion increments during a
phase (every write to the store, by anyone). `cost ×` = ours/reference for times, reference/ours
for rates (1.0 = as fast as the floor).

`--quick` runs 100 clusters and 1,000 replications (< 60 s). Results are printed as a table and
written to bench/results/hub-<UTC timestamp>.json. Only 127.0.0.1 is contacted; every process
this script starts is stopped in `finally` blocks and the temporary dir is removed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import kubernetes

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
# Run as a script, this file's directory comes first on sys.path, and this file is named like the
# `hub` package: put the project's root there instead (bench/ last, for `common`).
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

from common import (  # noqa: E402
    HOST,
    Report,
    ServerProcess,
    WatchThread,
    check,
    cpu_share,
    http_client,
    lead_cells,
    load_line,
    machine_facts,
    memory_kb,
    percentile,
    process_cpu,
    render_table,
    report_main,
    start_apiserver,
)

from api.hub import ReplicationReport  # noqa: E402
from hub import ocm, rendering, reports  # noqa: E402
from hub.deployers.manifestwork import desired_work  # noqa: E402
from kube import clients  # noqa: E402
from manifests import CRD_DIR  # noqa: E402

CONCURRENCY = 8
REPORT_CLUSTERS = 100
MERGE = "application/merge-patch+json"
HUB_URL_FOR_AGENTS = "http://127.0.0.1:1"  # written into the agents' Secret; nothing listens there
MC_PATH = "/apis/cluster.open-cluster-management.io/v1/managedclusters"
MCA_PATH = "/apis/addon.open-cluster-management.io/v1alpha1/managedclusteraddons"
WORK_PATH = "/apis/work.open-cluster-management.io/v1/manifestworks"
SECRET_PATH = "/api/v1/secrets"
REF_WORK = "bench-reference-work"

T = TypeVar("T")
R = TypeVar("R")


# -- results ------------------------------------------------------------------------------------
@dataclass
class Row:
    metric: str
    unit: str  # "/s" (a rate: higher is better), "s" or "ms" (times: lower is better), "MB"
    ours: float
    reference: float | None = None
    hub_cpu_s: float | None = None
    server_cpu_s: float | None = None
    client_cpu_s: float | None = None
    wall_s: float | None = None
    load1: float | None = None
    writes: int | None = None
    note: str = ""

    @property
    def cost_ratio(self) -> float | None:
        if self.reference is None or not self.ours or not self.reference or self.unit == "MB":
            return None
        return self.reference / self.ours if self.unit == "/s" else self.ours / self.reference


def _lat(values: Sequence[float]) -> str:
    if not values:
        return ""
    return f"p50 {percentile(values, 50) * 1000:.1f} ms, p99 {percentile(values, 99) * 1000:.1f} ms"


# -- processes ------------------------------------------------------------------------------------
def start_hub(kubeconfig: Path, data_dir: Path) -> ServerProcess:
    cmd = [sys.executable, "-m", "hub.main", "--kubeconfig", str(kubeconfig), "--context", "hub",
           "--hub-url", HUB_URL_FOR_AGENTS, "--rest-host", HOST, "--data-dir", str(data_dir),
           "--log-level", "warning"]
    data_dir.mkdir(parents=True)
    proc = ServerProcess("volsync-hub", cmd, data_dir / "hub.log").start(timeout=300)
    if not str(proc.ready["rest"]).startswith(f"https://{HOST}:"):
        proc.stop()
        raise RuntimeError(f"the hub REST API is not on {HOST}: {proc.ready['rest']}")
    REST_CA[str(proc.ready["rest"])] = str(proc.ready["caFile"])
    return proc


# -- metering -------------------------------------------------------------------------------------
@dataclass
class Meter:
    wall: float = 0.0
    hub_cpu: float | None = None
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    writes: int = 0
    load1: float = 0.0


@contextmanager
def metered(server_pid: int, base: str, hub_pid: int | None = None) -> Iterator[Meter]:
    m = Meter()
    rv0 = current_rv(base)
    h0 = process_cpu(hub_pid) if hub_pid else 0.0
    s0 = process_cpu(server_pid)
    c0 = time.process_time()
    t0 = time.perf_counter()
    try:
        yield m
    finally:
        m.wall = time.perf_counter() - t0
        m.client_cpu = time.process_time() - c0
        m.server_cpu = process_cpu(server_pid) - s0
        m.hub_cpu = (process_cpu(hub_pid) - h0) if hub_pid else None
        m.load1 = os.getloadavg()[0]
        m.writes = current_rv(base) - rv0


def row_of(metric: str, unit: str, ours: float, m: Meter, note: str = "", reference: float | None = None) -> Row:
    return Row(metric, unit, ours, reference, m.hub_cpu, m.server_cpu, m.client_cpu, m.wall, round(m.load1, 2),
               m.writes, note)


def wait_idle(pid: int, *, share: float = 0.10, window: float = 1.0, windows: int = 2, timeout: float = 300.0) -> float:
    """Seconds until the process used less than `share` of a core in `windows` consecutive windows (the
    hub is never quite idle once clusters have replications: each is reconciled again every 60 s)."""
    t0 = time.perf_counter()
    quiet = 0
    while time.perf_counter() - t0 < timeout:
        c0, w0 = process_cpu(pid), time.perf_counter()
        time.sleep(window)
        used = (process_cpu(pid) - c0) / (time.perf_counter() - w0)
        quiet = quiet + 1 if used < share else 0
        if quiet >= windows:
            return time.perf_counter() - t0 - windows * window
    raise RuntimeError(f"process {pid} did not become idle within {timeout:.0f} s")


# -- HTTP -----------------------------------------------------------------------------------------
REST_CA: dict[str, str] = {}  # the hub REST API's https URL -> the CA file of its ready line


def client(base: str, **kwargs: Any) -> httpx.Client:
    ca = next((f for url, f in REST_CA.items() if base.startswith(url)), None)
    if ca is not None:  # the hub REST API serves HTTPS from a private CA
        kwargs.setdefault("verify", ssl.create_default_context(cafile=ca))
    return http_client(base, 120.0, **kwargs)


def current_rv(base: str) -> int:
    """The store's resourceVersion now (every write by anyone increments it)."""
    with client(base) as c:
        return int(check(c.get("/api/v1/namespaces", params={"limit": "1"}), 200)["metadata"]["resourceVersion"])


def fan_out(base: str, jobs: Sequence[T], fn: Callable[[httpx.Client, T], R], *,
            concurrency: int = CONCURRENCY) -> tuple[list[R], list[float], float]:
    """Run fn(client, job) for every job from `concurrency` threads, each with its own keep-alive client
    (connected before the clock starts). Results in job order, per-job seconds, wall seconds."""
    results: list[Any] = [None] * len(jobs)
    latencies: list[float] = [0.0] * len(jobs)
    failures: list[BaseException] = []
    barrier = threading.Barrier(concurrency + 1)

    def work(k: int) -> None:
        try:
            with client(base) as c:
                c.get("/healthz")
                barrier.wait()
                for i in range(k, len(jobs), concurrency):
                    t0 = time.perf_counter()
                    results[i] = fn(c, jobs[i])
                    latencies[i] = time.perf_counter() - t0
        except threading.BrokenBarrierError:
            pass
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(k,), name=f"client-{k}", daemon=True) for k in range(concurrency)]
    for t in threads:
        t.start()
    with suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=60)
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"a client failed: {failures[0]!r}") from failures[0]
    return results, latencies, wall


class Watch(WatchThread):
    """A raw watch stream (all namespaces) that records, per namespace, when an object first appeared
    and when `ready(obj)` first held. Ends by itself (timeoutSeconds), when the server stops or on `stop()`."""

    def __init__(self, base: str, path: str, *, name: str, label_selector: str = "",
                 ready: Callable[[dict[str, Any]], bool] | None = None, timeout_s: int = 3600) -> None:
        params = {"timeoutSeconds": str(timeout_s), **({"labelSelector": label_selector} if label_selector else {})}
        super().__init__(http_client(base, httpx.Timeout(30.0, read=None)), path, params)
        self.base, self.name = base, name
        self.label_selector = label_selector
        self.ready_when = ready
        self.seen: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.events = 0

    def start(self) -> Watch:
        with client(self.base) as c:
            params = {"limit": "1", **({"labelSelector": self.label_selector} if self.label_selector else {})}
            self.start_at(str(check(c.get(self.path, params=params), 200)["metadata"]["resourceVersion"]))
        return self

    def handle(self, t: float, ev: dict[str, Any]) -> bool:
        if ev.get("type") not in ("ADDED", "MODIFIED"):
            return False
        self.events += 1
        obj = ev["object"]
        meta = obj.get("metadata") or {}
        if self.name and meta.get("name") != self.name:
            return False
        ns = meta.get("namespace") or ""
        self.seen.setdefault(ns, t)
        if self.ready_when is not None and ns not in self.ready and self.ready_when(obj):
            self.ready[ns] = t
        return False


# -- objects --------------------------------------------------------------------------------------
def cluster_name(i: int) -> str:
    return f"cluster-{i:05d}"


def managed_cluster(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster",
        "metadata": {"name": name, "labels": {"name": name, "cloud": "auto-detect", "vendor": "auto-detect"}},
        "spec": {"hubAcceptsClient": True, "leaseDurationSeconds": 60,
                 "managedClusterClientConfigs": [{"url": f"https://api.{name}.example.com:6443"}]},
    }


def cluster_status(now: str) -> dict[str, Any]:
    conditions = [
        {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": now}
        for t, r, m in (("HubAcceptedManagedCluster", "HubClusterAdminAccepted", "Accepted by hub cluster admin"),
                        ("ManagedClusterJoined", "ManagedClusterJoined", "Managed cluster joined"),
                        ("ManagedClusterConditionAvailable", "ManagedClusterAvailable",
                         "Managed cluster is available"))
    ]
    return {"status": {"conditions": conditions, "version": {"kubernetes": "v1.32.0"}}}


def addon_work(cluster: str, name: str = ocm.WORK_NAME) -> dict[str, Any]:
    """The ManifestWork the hub writes for `cluster` (same renderer, a made-up MCA uid and token)."""
    mca = {"apiVersion": ocm.MANAGED_CLUSTER_ADDONS.api_version, "kind": ocm.MANAGED_CLUSTER_ADDONS.kind,
           "metadata": {"name": ocm.ADDON, "namespace": cluster, "uid": f"00000000-0000-4000-8000-{cluster[-5:]:0>12}"}}
    manifests = rendering.render(cluster, mca, None, hub_url=HUB_URL_FOR_AGENTS, token="t" * 43, ca_bundle="",
                                 image="quay.io/backube/volsync-addon-agent:latest")
    work = desired_work(cluster, mca, manifests)
    work["metadata"]["name"] = name
    if name != ocm.WORK_NAME:  # the reference's works: no label, no owner (nothing to garbage-collect)
        work["metadata"].pop("labels")
        work["metadata"].pop("ownerReferences")
    return work


def _t(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def replication_report(j: int, sequence: int, now: datetime) -> dict[str, Any]:
    """Report j of a cluster: every 20th in error, every 20th+1 never synced, 2 in 20 late, the rest ok."""
    role = "source" if j % 2 == 0 else "destination"
    kind = j % 20
    last = now - timedelta(minutes=2, seconds=j % 60)
    if kind in (2, 3):
        last = now - timedelta(hours=1, minutes=j % 30)
    status: dict[str, Any] = {
        "lastSyncStartTime": _t(last - timedelta(seconds=42)),
        "lastSyncTime": _t(last),
        "lastSyncDuration": "42.118s",
        "nextSyncTime": _t(last + timedelta(minutes=5)),
        "latestMoverStatus": {"result": "Successful",
                              "logs": "sent 1,234,567 bytes  received 8,910 bytes  total size 10,737,418,240"},
        "conditions": [{"type": "Synchronizing", "status": "False", "reason": "WaitingForSchedule",
                        "message": "Waiting for next scheduled synchronization",
                        "lastTransitionTime": _t(last)}],
    }
    if role == "destination":
        status["latestImage"] = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot",
                                 "name": f"volsync-rep-{j:05d}-dst-{sequence:06d}"}
        status.pop("lastSyncStartTime")
    if kind == 0:
        status["latestMoverStatus"] = {"result": "Failed", "logs": "rsync: connection unexpectedly closed"}
        status["conditions"][0].update(status="False", reason="Error", message="synchronization failed")
    elif kind == 1:
        for key in ("lastSyncTime", "lastSyncDuration", "latestMoverStatus", "latestImage", "lastSyncStartTime"):
            status.pop(key, None)
    spec: dict[str, Any] = {"trigger": {"schedule": "*/5 * * * *"}} if role == "source" else {}
    if role == "source":
        spec.update(sourcePVC=f"data-{j:05d}", rsync={"address": "10.0.0.1", "copyMethod": "Snapshot"})
    else:
        spec.update(rsync={"copyMethod": "Snapshot", "capacity": "10Gi", "accessModes": ["ReadWriteOnce"]})
    return {"role": role, "namespace": f"app-{j % 10}", "name": f"rep-{j:05d}", "sequence": sequence,
            "observedAt": _t(now), "spec": spec, "status": status}


def expected_errors(per_cluster: int, clusters: int) -> int:
    return clusters * sum(1 for j in range(per_cluster) if j % 20 == 0)


# -- phases ---------------------------------------------------------------------------------------
def create_clusters(base: str, names: list[str]) -> float:
    """Namespaces, ManagedClusters and their status as OCM's registration leaves them; wall seconds."""
    stamp = _t(datetime.now(UTC))

    def one(c: httpx.Client, name: str) -> None:
        check(c.post("/api/v1/namespaces", json={"metadata": {"name": name}}), 201)
        check(c.post(MC_PATH, json=managed_cluster(name)), 201)
        check(c.patch(f"{MC_PATH}/{name}/status", content=json.dumps(cluster_status(stamp)),
                      headers={"Content-Type": MERGE}), 200)

    _, _, wall = fan_out(base, names, one)
    return wall


def create_namespaces(base: str, names: list[str]) -> None:
    fan_out(base, names, lambda c, name: check(c.post("/api/v1/namespaces", json={"metadata": {"name": name}}), 201))


def reference_phase(args: argparse.Namespace, work: Path, names: list[str], report_names: list[str],
                    report_bodies: dict[str, list[dict[str, Any]]], report: Report) -> dict[str, Any]:
    """The floor: a fresh API server with no watchers; the client alone writes what the hub would."""
    server, base = start_apiserver(work / "reference-api", ("hub",), "--crd-dir", str(CRD_DIR))
    out: dict[str, Any] = {}
    try:
        print(f"reference: {len(names)} namespaces, then {len(names)} ManifestWorks from {CONCURRENCY} clients ...",
              flush=True)
        create_namespaces(base, names)
        works = [addon_work(n, REF_WORK) for n in names]
        out["work_bytes"] = len(json.dumps(works[0], separators=(",", ":")))

        def create_work(c: httpx.Client, body: dict[str, Any]) -> None:
            check(c.post(f"/apis/work.open-cluster-management.io/v1/namespaces/{body['metadata']['namespace']}"
                         "/manifestworks", json=body), 201)

        with metered(server.pid, base) as mt:
            _, lat, wall = fan_out(base, works, create_work)
        out["works_per_s"] = len(works) / wall
        out["works_s"] = wall
        report.add(row_of(f"reference: {len(works):,} ManifestWorks created by the client alone", "s", wall, mt,
                          f"{out['works_per_s']:,.0f}/s, {out['work_bytes'] / 1000:.0f} kB each, {_lat(lat)}"))
        del works

        cms: list[dict[str, Any]] = []
        for name in report_names:
            for body in report_bodies[name]:
                cms.append(reports.report_configmap(name, ReplicationReport.model_validate(body)))

        def create_cm(c: httpx.Client, body: dict[str, Any]) -> str:
            obj = check(c.post(f"/api/v1/namespaces/{body['metadata']['namespace']}/configmaps", json=body), 201)
            return str(obj["metadata"]["resourceVersion"])

        print(f"reference: {len(cms):,} report ConfigMaps created, then replaced, from {CONCURRENCY} clients ...",
              flush=True)
        with metered(server.pid, base) as mt:
            rvs, lat, wall = fan_out(base, cms, create_cm)
        out["cm_creates_per_s"] = len(cms) / wall
        report.add(row_of(f"reference: {len(cms):,} report ConfigMaps created by the client alone", "/s",
                          len(cms) / wall, mt, _lat(lat)))
        for body, rv in zip(cms, rvs, strict=True):
            body["metadata"]["resourceVersion"] = rv

        def replace_cm(c: httpx.Client, body: dict[str, Any]) -> None:
            meta = body["metadata"]
            check(c.put(f"/api/v1/namespaces/{meta['namespace']}/configmaps/{meta['name']}", json=body), 200)

        with metered(server.pid, base) as mt:
            _, lat, wall = fan_out(base, cms, replace_cm)
        out["cm_replaces_per_s"] = len(cms) / wall
        report.add(row_of(f"reference: {len(cms):,} report ConfigMaps replaced (PUT) by the client alone", "/s",
                          len(cms) / wall, mt, _lat(lat)))
        out["server_memory_kb"] = memory_kb(server.pid)
    finally:
        server.stop()
    return out


def read_tokens(kubeconfig: Path) -> dict[str, str]:
    """Every cluster's agent token, from the Secrets the addon controller made (official client)."""
    api = clients.load(str(kubeconfig), "hub")
    try:
        core = kubernetes.client.CoreV1Api(api)
        secrets = core.list_secret_for_all_namespaces(label_selector=f"{ocm.TOKEN_LABEL}=true")
        out: dict[str, str] = {}
        for secret in secrets.items:
            meta, data = secret.metadata, secret.data or {}
            if meta is not None and meta.name == ocm.TOKEN_SECRET and meta.namespace and "token" in data:
                out[meta.namespace] = base64.b64decode(data["token"]).decode()
        return out
    finally:
        clients.close(api)


def run(args: argparse.Namespace, work: Path) -> Report:
    n, r = args.clusters, args.replications
    report_clusters = min(n, REPORT_CLUSTERS)
    per_cluster = max(1, r // report_clusters)
    r = per_cluster * report_clusters
    batch = min(args.batch, per_cluster)
    report = Report(
        config={"clusters": n, "replications": r, "report_clusters": report_clusters,
                "replications_per_cluster": per_cluster, "batch": batch, "requests": args.requests,
                "concurrency": CONCURRENCY, "quick": args.quick},
        machine=machine_facts("httpx", "fastapi", "pydantic", "kubernetes"),
    )
    names = [cluster_name(i) for i in range(n)]
    report_names = names[:report_clusters]
    start = datetime.now(UTC)
    bodies = {c: [replication_report(j, 1, start) for j in range(per_cluster)] for c in report_names}

    ref = reference_phase(args, work, names, report_names, bodies, report)
    report.details["reference"] = ref

    server, base = start_apiserver(work / "api", ("hub",), "--crd-dir", str(CRD_DIR))
    kubeconfig = Path(server.ready["kubeconfig"])
    hub: ServerProcess | None = None
    watches: list[Watch] = []
    try:
        print(f"creating {n} namespaces and ManagedClusters (not timed) ...", flush=True)
        wall = create_clusters(base, names)
        report.details["cluster_setup_s"] = wall

        print("starting volsync-hub (ManifestWork deployer) ...", flush=True)
        with metered(server.pid, base) as mt:
            hub = start_hub(kubeconfig, work / "hub")
            rest, admin = str(hub.ready["rest"]), Path(hub.ready["adminTokenFile"]).read_text().strip()
            with client(rest) as c:
                while c.get("/readyz").status_code != 200:
                    time.sleep(0.05)
        mt.hub_cpu = process_cpu(hub.pid)
        report.add(row_of(f"hub start until /readyz, {n:,} clusters present", "s", mt.wall, mt))
        report.details["hub_memory_kb_at_start"] = memory_kb(hub.pid)
        wait_idle(hub.pid)

        # -- 1. enable every cluster at once ---------------------------------------------------
        def has_status(obj: dict[str, Any]) -> bool:
            return bool((obj.get("status") or {}).get("conditions"))

        mcas = Watch(base, MCA_PATH, name=ocm.ADDON, ready=has_status).start()
        works = Watch(base, WORK_PATH, name=ocm.WORK_NAME, label_selector=f"{ocm.ADDON_NAME_LABEL}={ocm.ADDON}").start()
        tokens = Watch(base, SECRET_PATH, name=ocm.TOKEN_SECRET, label_selector=f"{ocm.TOKEN_LABEL}=true").start()
        watches += [mcas, works, tokens]
        label = json.dumps({"metadata": {"labels": {ocm.INSTALL_LABEL: "true"}}})

        def enable(c: httpx.Client, name: str) -> None:
            check(c.patch(f"{MC_PATH}/{name}", content=label, headers={"Content-Type": MERGE}), 200)

        print(f"labelling {n} ManagedClusters from {CONCURRENCY} clients; waiting for the hub ...", flush=True)
        deadline = time.monotonic() + args.timeout
        with metered(server.pid, base, hub.pid) as mt_all:
            with metered(server.pid, base, hub.pid) as mt:
                t0 = time.perf_counter()
                _, lat, label_wall = fan_out(base, names, enable)
                while not (len(mcas.seen) >= n and len(works.seen) >= n and len(tokens.seen) >= n
                           and len(mcas.ready) >= n):
                    if time.monotonic() > deadline or not hub.alive():
                        raise RuntimeError(f"no convergence: {len(mcas.seen)} MCAs, {len(works.seen)} works, "
                                           f"{len(tokens.seen)} tokens, {len(mcas.ready)} statuses "
                                           f"(hub alive: {hub.alive()})")
                    for w in watches:
                        if w.failure:
                            raise RuntimeError(f"watch failed: {w.failure!r}")
                    time.sleep(0.02)
            idle_s = wait_idle(hub.pid)
        t_mca = max(mcas.seen.values()) - t0
        t_work = max(works.seen.values()) - t0
        t_token = max(tokens.seen.values()) - t0
        t_status = max(mcas.ready.values()) - t0
        done = max(t_mca, t_work, t_token, t_status)
        curve = sorted(v - t0 for v in works.seen.values())
        report.details["enable"] = {
            "label_wall_s": label_wall, "label_latency": _lat(lat), "mca_s": t_mca, "work_s": t_work,
            "token_s": t_token, "mca_status_s": t_status, "idle_after_s": idle_s,
            "works_at": {f"p{p}": percentile(curve, p) for p in (10, 50, 90, 100)},
            "watch_events": {"mcas": mcas.events, "works": works.events, "tokens": tokens.events},
        }
        ref_s = ref["works_s"]
        note = f"labels sent in {label_wall:.2f} s ({_lat(lat)}); works 50 % at {percentile(curve, 50):.2f} s"
        report.add(row_of(f"enable {n:,}: time to every MCA", "s", t_mca, mt, note))
        report.add(row_of(f"enable {n:,}: time to every ManifestWork", "s", t_work, mt,
                          f"tokens {t_token:.2f} s, every MCA status {t_status:.2f} s", ref_s))
        report.add(row_of(f"enable {n:,}: clusters/s (to every work)", "/s", n / t_work, mt,
                          "reference = the client creating the works alone", ref["works_per_s"]))
        mt.wall = done
        report.add(row_of(f"enable {n:,}: hub CPU s to converge (all four sets)", "s", mt.hub_cpu or 0.0, mt,
                          f"{(mt.hub_cpu or 0.0) / n * 1000:.1f} ms hub CPU, {mt.server_cpu / n * 1000:.1f} ms "
                          f"server CPU, {mt.writes / n:.1f} API writes per cluster"))
        report.add(row_of(f"enable {n:,}: hub CPU s until idle again", "s", mt_all.hub_cpu or 0.0, mt_all,
                          f"idle {idle_s:.1f} s after convergence; {mt_all.writes / n:.1f} API writes per cluster"))
        hub_mem, srv_mem = memory_kb(hub.pid), memory_kb(server.pid)
        report.details["memory_after_enable_kb"] = {"hub": hub_mem, "apiserver": srv_mem}
        start_rss = report.details["hub_memory_kb_at_start"]["VmRSS"]
        report.add(Row(f"hub RSS after enabling {n:,}", "MB", hub_mem["VmRSS"] / 1024,
                       note=f"peak {hub_mem['VmHWM'] / 1024:.0f} MB; {start_rss / 1024:.0f} MB before enabling: "
                            f"{(hub_mem['VmRSS'] - start_rss) / n:.0f} kB per enabled cluster"))
        report.add(Row(f"API server RSS after enabling {n:,}", "MB", srv_mem["VmRSS"] / 1024,
                       note=f"peak {srv_mem['VmHWM'] / 1024:.0f} MB; reference server after its writes "
                            f"{ref['server_memory_kb']['VmRSS'] / 1024:.0f} MB"))
        for w in watches:
            w.stop()

        # -- 2. heartbeats -------------------------------------------------------------------------
        agent_tokens = read_tokens(kubeconfig)
        if len(agent_tokens) < n:
            raise RuntimeError(f"only {len(agent_tokens)} agent tokens for {n} clusters")

        def heartbeat(c: httpx.Client, name: str) -> None:
            body = {"agentId": f"agent-{name}", "version": "bench", "sentAt": _t(datetime.now(UTC))}
            check(c.post(f"/api/v1/agents/{name}/heartbeat", json=body,
                         headers={"Authorization": f"Bearer {agent_tokens[name]}"}), 200)

        for label_, key in (("first (creates each Lease)", "heartbeat_first"), ("renewal", "heartbeat_renew")):
            print(f"heartbeats, {label_}, {n} clusters ...", flush=True)
            with metered(server.pid, base, hub.pid) as mt_all:
                with metered(server.pid, base, hub.pid) as mt:
                    _, lat, wall = fan_out(rest, names, heartbeat)
                idle_s = wait_idle(hub.pid)
            mt.wall = wall
            report.add(row_of(f"heartbeats/s, {label_}", "/s", n / wall, mt, _lat(lat)))
            report.add(row_of(f"  hub CPU per heartbeat incl. the reconcile it triggers ({label_})", "ms",
                              (mt_all.hub_cpu or 0.0) / n * 1000, mt_all,
                              f"idle {idle_s:.1f} s after the last; {mt_all.writes / n:.2f} API writes per "
                              f"heartbeat; server {mt_all.server_cpu / n * 1000:.1f} ms CPU per heartbeat"))
            report.details[key] = {"wall_s": wall, "idle_after_s": idle_s, "hub_cpu_s": mt_all.hub_cpu,
                                   "server_cpu_s": mt_all.server_cpu, "writes": mt_all.writes}

        # -- 3. reports ----------------------------------------------------------------------------
        def batches() -> list[tuple[str, list[dict[str, Any]]]]:
            # Round-robin over the clusters, as many agents would send: the hub refuses a second
            # concurrent batch of one cluster (429 busy), which the real reporter retries.
            return [(name, bodies[name][k:k + batch]) for k in range(0, per_cluster, batch) for name in report_names]

        jobs = batches()

        def post(c: httpx.Client, job: tuple[str, list[dict[str, Any]]]) -> tuple[int, int]:
            name, items = job
            for _ in range(30):
                resp = c.post(f"/api/v1/agents/{name}/reports", json={"agentId": f"agent-{name}", "reports": items},
                              headers={"Authorization": f"Bearer {agent_tokens[name]}"})
                if resp.status_code != 429:
                    break
                time.sleep(float(resp.headers.get("retry-after", "1")))  # busy: retry as the agent's reporter does
            reply = check(resp, 200)
            return int(reply["accepted"]), int(reply["stale"])

        def round_(label_: str, want_accepted: bool, reference: float | None) -> None:
            print(f"reports: {label_}, {r:,} in {len(jobs)} batches of {batch} ...", flush=True)
            with metered(server.pid, base, hub.pid) as mt_all:
                with metered(server.pid, base, hub.pid) as mt:
                    replies, lat, wall = fan_out(rest, jobs, post)
                idle_s = wait_idle(hub.pid)
            accepted, stale = sum(a for a, _ in replies), sum(s for _, s in replies)
            if (accepted, stale) != ((r, 0) if want_accepted else (0, r)):
                raise RuntimeError(f"{label_}: {accepted} accepted, {stale} stale of {r}")
            mt.wall = wall
            report.add(row_of(f"reports/s, {label_}", "/s", r / wall, mt,
                              f"batch {batch}: {_lat(lat)}; {mt.writes / r:.2f} API writes per report", reference))
            report.add(row_of(f"  hub CPU per report incl. the reconciles they trigger ({label_})", "ms",
                              (mt_all.hub_cpu or 0.0) / r * 1000, mt_all,
                              f"idle {idle_s:.1f} s after the last batch; {mt_all.writes / r:.2f} API writes per "
                              "report"))

        round_("new (ConfigMap create each)", True, ref["cm_creates_per_s"])
        round_("stale (same sequences again)", False, None)
        later = start + timedelta(minutes=5)
        for name in report_names:
            bodies[name] = [replication_report(j, 2, later) for j in range(per_cluster)]
        jobs = batches()
        round_("updated (sequence + 1, ConfigMap replace each)", True, ref["cm_replaces_per_s"])

        print(f"hub background CPU over {args.background:.0f} s (no requests) ...", flush=True)
        with metered(server.pid, base, hub.pid) as mt:
            time.sleep(args.background)
        report.add(row_of(f"hub background CPU, no requests ({report_clusters} clusters with replications)", "ms",
                          (mt.hub_cpu or 0.0) / mt.wall * 1000, mt,
                          "hub CPU ms per wall second: every cluster with replications is reconciled every 60 s"))

        # -- 4. queries ----------------------------------------------------------------------------
        auth = {"Authorization": f"Bearer {admin}"}
        errors = expected_errors(per_cluster, report_clusters)
        queries: list[tuple[str, str, dict[str, str], int | None, int]] = [
            (f"GET /api/v1/replications, all {r:,} rows", "/api/v1/replications", {}, r, args.requests),
            (f"GET /api/v1/replications?cluster= ({per_cluster} rows)", "/api/v1/replications",
             {"cluster": report_names[len(report_names) // 2]}, per_cluster, args.requests),
            (f"GET /api/v1/replications?state=error ({errors} rows)", "/api/v1/replications", {"state": "error"},
             errors, args.requests),
            (f"GET /api/v1/clusters ({n:,} clusters)", "/api/v1/clusters", {}, n, max(3, args.requests // 10)),
            ("GET /api/v1/summary", "/api/v1/summary", {}, None, max(3, args.requests // 10)),
            ("GET /metrics (computes the summary)", "/metrics", {}, None, max(3, args.requests // 10)),
        ]
        with client(rest, headers=auth) as c:
            for label_, path, params, want, runs in queries:
                print(f"{label_} x{runs} ...", flush=True)
                resp = c.get(path, params=params)  # warm-up, and the row count
                if resp.status_code != 200:
                    raise RuntimeError(f"{path}: {resp.status_code} {resp.text[:300]}")
                if want is not None and len(resp.json()) != want:
                    raise RuntimeError(f"{label_}: {len(resp.json())} rows, expected {want}")
                times: list[float] = []
                with metered(server.pid, base, hub.pid) as mt:
                    for _ in range(runs):
                        t1 = time.perf_counter()
                        resp = c.get(path, params=params)
                        size = len(resp.content)
                        times.append(time.perf_counter() - t1)
                        if resp.status_code != 200:
                            raise RuntimeError(f"{path}: {resp.status_code}")
                report.add(row_of(label_ + " p50", "ms", percentile(times, 50) * 1000, mt,
                                  f"p99 {percentile(times, 99) * 1000:.0f} ms over {runs}; {size / 1e6:.2f} MB; "
                                  f"hub {(mt.hub_cpu or 0.0) / runs * 1000:.0f} ms CPU each"))
                report.details.setdefault("queries_ms", {})[label_] = [t * 1000 for t in times]

        # -- 5. memory -----------------------------------------------------------------------------
        hub_mem, srv_mem = memory_kb(hub.pid), memory_kb(server.pid)
        report.details["memory_end_kb"] = {"hub": hub_mem, "apiserver": srv_mem}
        report.add(Row(f"hub RSS at the end ({n:,} clusters, {r:,} replications)", "MB", hub_mem["VmRSS"] / 1024,
                       note=f"peak {hub_mem['VmHWM'] / 1024:.0f} MB"))
        report.add(Row("API server RSS at the end", "MB", srv_mem["VmRSS"] / 1024,
                       note=f"peak {srv_mem['VmHWM'] / 1024:.0f} MB"))
        report.details["hub_cpu_total_s"] = process_cpu(hub.pid)
        report.details["server_cpu_total_s"] = process_cpu(server.pid)
        report.details["store_writes_total"] = current_rv(base)
    finally:
        for w in watches:
            w.stop()
        if hub is not None:
            hub.stop()
            report.details["hub_log_tail"] = hub.log.read_text(errors="replace")[-3000:] if hub.log.exists() else ""
        server.stop()
    return report


def render(report: Report) -> str:
    mf, cfg = report.machine, report.config
    lines = [
        "",
        f"hub benchmark: {cfg['clusters']:,} clusters; {cfg['replications']:,} replications over "
        f"{cfg['report_clusters']} clusters (batches of {cfg['batch']}); {CONCURRENCY} concurrent clients",
        f"machine: nproc {mf['nproc']} ({mf['cpu']}), {mf['memory_gib']} GiB, Python {mf['python']}, "
        f"fastapi {mf['fastapi']}, pydantic {mf['pydantic']}, kubernetes {mf['kubernetes']}",
        load_line(mf),
        "cost × = ours/reference for times, reference/ours for rates (reference: the client alone writing the same "
        "objects to a fresh API server)",
        "hub/srv/cli CPU: CPU seconds of the hub process / the API server / this client per wall second of the "
        "phase (100% = one core); load1: 1-min load average at the end of the phase; writes: store writes",
        "",
    ]
    header = ("metric", "ours", "reference", "cost ×", "hub CPU", "srv CPU", "cli CPU", "wall", "load1", "writes",
              "note")
    table = [header]
    for r in report.rows:
        table.append((
            *lead_cells(r),
            cpu_share(r.hub_cpu_s, r.wall_s),
            cpu_share(r.server_cpu_s, r.wall_s),
            cpu_share(r.client_cpu_s, r.wall_s),
            f"{r.wall_s:.1f} s" if r.wall_s is not None else "—",
            f"{r.load1:.1f}" if r.load1 is not None else "—",
            f"{r.writes:,}" if r.writes is not None else "—",
            r.note,
        ))
    lines += render_table(table, left=(0, len(header) - 1))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--clusters", type=int, default=None, help="ManagedClusters (default 1000; quick 100)")
    p.add_argument("--replications", type=int, default=None,
                   help=f"reports over min(clusters, {REPORT_CLUSTERS}) clusters (default 10000; quick 1000)")
    p.add_argument("--batch", type=int, default=100, help="reports per POST (at most 1000)")
    p.add_argument("--requests", type=int, default=None, help="GETs per replications query (default 50; quick 20)")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed for convergence (default 600)")
    p.add_argument("--background", type=float, default=None,
                   help="seconds of hub background CPU measured with no requests (default 20; quick 5)")
    p.add_argument("--quick", action="store_true", help="100 clusters, 1,000 replications (< 60 s)")
    p.add_argument("--keep", action="store_true", help="keep the temporary data dir (logs, stores)")
    args = p.parse_args(argv)
    args.clusters = args.clusters or (100 if args.quick else 1_000)
    args.replications = args.replications or (1_000 if args.quick else 10_000)
    args.requests = args.requests or (20 if args.quick else 50)
    args.timeout = args.timeout or 600.0
    args.background = args.background or (5.0 if args.quick else 20.0)
    if args.clusters < 1 or args.replications < 1 or not 1 <= args.batch <= 1000:
        p.error("--clusters and --replications must be positive, --batch within 1..1000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return report_main("hub", args.keep, lambda work: run(args, work), render,
                       lambda r: {**asdict(r), "cost_ratio": r.cost_ratio})


if __name__ == "__main__":
    sys.exit(main())
