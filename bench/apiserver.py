"""Benchmark of the embedded API server over real HTTP, against a plain-SQLite reference.

    .venv/bin/python bench/apiserver.py [--objects 10000] [--watch-updates 1000] [--quick] [--keep]

Starts one real `volsync-apiserver` process on 127.0.0.1 with a fresh temporary data dir and
measures, with httpx clients in this process:

- creates/s: POST of N small ConfigMaps (~200 bytes of data) sequentially on one keep-alive
  client into namespace `default`, then N more from 8 concurrent clients in threads (one GIL, so
  usually bound by the client's CPU) into `bench-conc`, and N more from 8 client processes into
  `bench-proc` (what the server does when the client is not the bottleneck);
- updates/s: PUT (carrying resourceVersion) and JSON merge-PATCH of the N objects in `default`;
- lists of the N objects in `default`: plain JSON (median of 5; also with the client's
  json.loads), a label selector matching 10 %, the kubectl Table form, and a paged list with
  limit=500 (total time for all pages);
- watch latency: one raw `?watch=true&resourceVersion=<current>` stream in a thread while M merge
  patches are sent back-to-back from another client; for every write, the arrival of its event
  (matched by the resourceVersion the write returned) minus the ack and minus the send time.

The reference, measured in the same run and in the same process: a plain SQLite loop with the
store's settings (WAL, synchronous=NORMAL, the store's schema, autoincrement id) doing one
BEGIN/INSERT/COMMIT per row of a body like the stored ConfigMap, and "SELECT all rows + json.loads"
of N such rows as the list floor. The table's last column is the cost ratio: ours/reference for
times, reference/ours for rates (1.0 = as fast as the floor, 20 = twenty times slower). Server
and client CPU seconds per phase come from /proc and time.process_time.

`--quick` runs 1,000 objects, 200 watch updates and 3 list repetitions (< 30 s). Results are
printed as a table and written to bench/results/apiserver-<UTC timestamp>.json. Only 127.0.0.1
is contacted (httpx's proxy environment is ignored).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sqlite3
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from common import (
    Report,
    check,
    cpu_share,
    http_client,
    lead_cells,
    load_line,
    machine_facts,
    memory_kb,
    percentile,
    render_table,
    report_main,
    start_apiserver,
    threads_cpu,
    watch_events,
)

NS = "default"
CONC_NS = "bench-conc"
PROC_NS = "bench-proc"
CONCURRENCY = 8
PAGE = 500
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io"
MERGE = "application/merge-patch+json"

# The reference store's schema and settings: a copy of apiserver/store.py's.
REF_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    rv INTEGER PRIMARY KEY AUTOINCREMENT,
    resource TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_key ON log(resource, namespace, name, rv);
"""


# -- results ------------------------------------------------------------------------------------
@dataclass
class Row:
    metric: str
    unit: str  # "/s" (a rate: higher is better) or "ms" (a time: lower is better)
    ours: float
    reference: float | None = None
    server_cpu_s: float | None = None
    client_cpu_s: float | None = None
    wall_s: float | None = None
    note: str = ""
    ops: int = 1  # operations the CPU and wall figures cover

    @property
    def server_cpu_per_op(self) -> float | None:
        return None if self.server_cpu_s is None else self.server_cpu_s / self.ops

    @property
    def cost_ratio(self) -> float | None:
        """How many times the reference's cost ours is (ours/ref for times, ref/ours for rates)."""
        if self.reference is None or not self.ours or not self.reference:
            return None
        return self.reference / self.ours if self.unit == "/s" else self.ours / self.reference


# -- CPU accounting -----------------------------------------------------------------------------
@dataclass
class Meter:
    wall: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0


@contextmanager
def metered(server_pid: int | None) -> Iterator[Meter]:
    m = Meter()
    s0 = threads_cpu(server_pid) if server_pid else 0.0
    c0 = time.process_time()
    t0 = time.perf_counter()
    try:
        yield m
    finally:
        m.wall = time.perf_counter() - t0
        m.client_cpu = time.process_time() - c0
        m.server_cpu = (threads_cpu(server_pid) - s0) if server_pid else 0.0


# -- objects ------------------------------------------------------------------------------------
def name_of(i: int) -> str:
    return f"cm-{i:06d}"


def data_of(i: int, gen: int) -> dict[str, str]:
    """~200 bytes of data, different per object and per generation."""
    seed = f"{i:06d}-{gen:03d}-"
    return {
        "config.yaml": (seed + "replicas: 3; schedule: '*/5 * * * *'; ") * 2,
        "owner": "team-" + str(i % 97),
        "checksum": (seed * 5)[:48],
    }


def configmap(i: int, namespace: str, gen: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name_of(i), "namespace": namespace, "labels": {"app": "bench", "tier": f"t{i % 10}"}},
        "data": data_of(i, gen),
    }


def _rv(obj: Any) -> int:
    return int(obj["metadata"]["resourceVersion"])


# -- phases -------------------------------------------------------------------------------------
def bench_creates_sequential(c: httpx.Client, n: int) -> tuple[dict[str, int], list[float]]:
    path = f"/api/v1/namespaces/{NS}/configmaps"
    rvs: dict[str, int] = {}
    lat: list[float] = []
    for i in range(n):
        t0 = time.perf_counter()
        obj = check(c.post(path, json=configmap(i, NS)), 201)
        lat.append(time.perf_counter() - t0)
        rvs[name_of(i)] = _rv(obj)
    return rvs, lat


def _create_slice(base: str, namespace: str, indexes: range, barrier: Any = None) -> list[float]:
    """POST the ConfigMaps `indexes` into `namespace` on one keep-alive client; per-request seconds."""
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    lat: list[float] = []
    with http_client(base) as c:
        c.get("/healthz").raise_for_status()  # connected before the clock starts
        if barrier is not None:
            barrier.wait()
        for i in indexes:
            t0 = time.perf_counter()
            resp = c.post(path, json=configmap(i, namespace))
            lat.append(time.perf_counter() - t0)
            check(resp, 201)
    return lat


def creates_threads(base: str, n: int) -> list[float]:
    """n creates from CONCURRENCY threads, each with its own keep-alive client (one GIL: client-bound)."""
    results: list[list[float]] = [[] for _ in range(CONCURRENCY)]
    failures: list[BaseException] = []

    def work(k: int) -> None:
        try:
            results[k] = _create_slice(base, CONC_NS, range(k, n, CONCURRENCY))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(k,), name=f"create-{k}") for k in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"concurrent creates failed: {failures[0]!r}")
    return [x for part in results for x in part]


def _proc_worker(base: str, k: int, n: int, barrier: Any, out: Any) -> None:
    try:
        out.put((k, _create_slice(base, PROC_NS, range(k, n, CONCURRENCY), barrier)))
    except BaseException as exc:
        out.put((k, repr(exc)))
        raise


def creates_processes(base: str, n: int, server_pid: int) -> tuple[list[float], Meter]:
    """n creates from CONCURRENCY client processes (spawned and connected before the clock starts)."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(CONCURRENCY + 1)
    out = ctx.Queue()
    procs = [ctx.Process(target=_proc_worker, args=(base, k, n, barrier, out), daemon=True)
             for k in range(CONCURRENCY)]
    for p in procs:
        p.start()
    lat: list[float] = []
    try:
        barrier.wait(timeout=60)
        with metered(server_pid) as mt:
            for _ in procs:
                k, result = out.get(timeout=600)
                if isinstance(result, str):
                    raise RuntimeError(f"client process {k} failed: {result}")
                lat.extend(result)
        mt.client_cpu = float("nan")  # in other processes
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    return lat, mt


def bench_puts(c: httpx.Client, n: int, rvs: dict[str, int]) -> list[float]:
    lat: list[float] = []
    for i in range(n):
        name = name_of(i)
        body = configmap(i, NS, gen=1)
        body["metadata"]["resourceVersion"] = str(rvs[name])
        t0 = time.perf_counter()
        obj = check(c.put(f"/api/v1/namespaces/{NS}/configmaps/{name}", json=body), 200)
        lat.append(time.perf_counter() - t0)
        rvs[name] = _rv(obj)
    return lat


def bench_patches(c: httpx.Client, n: int, rvs: dict[str, int], gen: int = 2) -> list[float]:
    lat: list[float] = []
    headers = {"Content-Type": MERGE}
    for i in range(n):
        name = name_of(i)
        patch = json.dumps({"data": {"checksum": data_of(i, gen)["checksum"]}})
        t0 = time.perf_counter()
        obj = check(c.patch(f"/api/v1/namespaces/{NS}/configmaps/{name}", content=patch, headers=headers), 200)
        lat.append(time.perf_counter() - t0)
        rvs[name] = _rv(obj)
    return lat


def timed_get(c: httpx.Client, path: str, params: dict[str, str], headers: dict[str, str] | None = None,
              parse: bool = False) -> tuple[float, int, int]:
    """Seconds for one GET with its whole body read (and parsed if asked); item count, bytes."""
    t0 = time.perf_counter()
    resp = c.get(path, params=params, headers=headers)
    body = resp.content
    doc = json.loads(body) if parse else None
    elapsed = time.perf_counter() - t0
    if resp.status_code != 200:
        raise RuntimeError(f"GET {path}: {resp.status_code} {resp.text[:300]}")
    if doc is None:
        doc = resp.json()
    items = doc.get("items", doc.get("rows")) or []
    return elapsed, len(items), len(body)


def paged_list(c: httpx.Client, path: str) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    token = ""
    count = pages = 0
    while True:
        params = {"limit": str(PAGE)}
        if token:
            params["continue"] = token
        doc = check(c.get(path, params=params), 200)
        count += len(doc["items"])
        pages += 1
        token = doc["metadata"].get("continue", "")
        if not token:
            break
    return time.perf_counter() - t0, count, pages


@dataclass
class WatchResult:
    sent: int
    received: int
    arrival_minus_ack_ms: list[float]
    arrival_minus_send_ms: list[float]
    write_ms: list[float]
    wall_s: float


def bench_watch(base: str, c: httpx.Client, m: int, n: int, rvs: dict[str, int]) -> WatchResult:
    path = f"/api/v1/namespaces/{NS}/configmaps"
    start_rv = int(check(c.get(path, params={"limit": "1"}), 200)["metadata"]["resourceVersion"])
    arrivals: dict[int, float] = {}
    connected = threading.Event()
    stop = threading.Event()
    failure: list[BaseException] = []

    def arrived(t: float, ev: dict[str, Any]) -> bool:
        arrivals[_rv(ev["object"])] = t
        return stop.is_set()

    def watcher() -> None:
        try:
            with http_client(base, httpx.Timeout(30.0, read=None)) as wc:
                watch_events(wc, path, {"resourceVersion": str(start_rv)}, connected, arrived)
        except BaseException as exc:  # reported by the main thread
            if not stop.is_set():
                failure.append(exc)
        finally:
            connected.set()

    def wait_for(rv: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while rv not in arrivals and time.monotonic() < deadline and not failure:
            time.sleep(0.0005)
        return rv in arrivals

    headers = {"Content-Type": MERGE}

    def poke(i: int, gen: int) -> int:
        name = name_of(i % n)
        patch = json.dumps({"data": {"checksum": f"watch-{gen}-{i}"}})
        return _rv(check(c.patch(f"{path}/{name}", content=patch, headers=headers), 200))

    thread = threading.Thread(target=watcher, name="watch", daemon=True)
    thread.start()
    try:
        if not connected.wait(30) or failure:
            raise RuntimeError(f"watch did not connect: {failure}")
        # Warm-up: the stream is live once the event of this write has come through it.
        if not wait_for(poke(0, 0), 30):
            raise RuntimeError(f"watch delivered no event: {failure}")
        writes: list[tuple[float, float, int]] = []
        t_start = time.perf_counter()
        for i in range(m):
            t_send = time.perf_counter()
            rv = poke(i, 1)
            t_ack = time.perf_counter()
            writes.append((t_send, t_ack, rv))
        wait_for(writes[-1][2], 30)
        deadline = time.monotonic() + 10
        while any(rv not in arrivals for _, _, rv in writes) and time.monotonic() < deadline and not failure:
            time.sleep(0.01)
        wall = time.perf_counter() - t_start
        stop.set()
        poke(0, 2)  # wakes the watcher so that it sees `stop`
        thread.join(10)
        if failure:
            raise RuntimeError(f"watch failed: {failure[0]!r}")
    finally:
        stop.set()
    got = [(ts, ta, arrivals[rv]) for ts, ta, rv in writes if rv in arrivals]
    for k, (_, _, rv) in enumerate(writes):
        rvs[name_of(k % n)] = max(rvs.get(name_of(k % n), 0), rv)
    return WatchResult(
        sent=m,
        received=len(got),
        arrival_minus_ack_ms=[(tr - ta) * 1000 for _, ta, tr in got],
        arrival_minus_send_ms=[(tr - ts) * 1000 for ts, _, tr in got],
        write_ms=[(ta - ts) * 1000 for ts, ta, _ in writes],
        wall_s=wall,
    )


# -- the reference ------------------------------------------------------------------------------
def reference(db_path: Path, template: dict[str, Any], n: int, list_runs: int) -> dict[str, Any]:
    """Plain SQLite with the store's settings: inserts/s with a commit per row, and list time."""
    bodies = []
    for i in range(n):
        obj = json.loads(json.dumps(template))
        obj["metadata"]["name"] = name_of(i)
        obj["metadata"]["resourceVersion"] = str(i + 1)
        obj["data"] = data_of(i, 0)
        bodies.append((NS, name_of(i), json.dumps(obj, separators=(",", ":"), ensure_ascii=False)))
    db = sqlite3.connect(str(db_path), isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(REF_SCHEMA)
        t0 = time.perf_counter()
        for ns, name, body in bodies:
            db.execute("BEGIN")
            db.execute(
                "INSERT INTO log(resource, namespace, name, event, body) VALUES ('/configmaps', ?, ?, 'ADDED', ?)",
                (ns, name, body),
            )
            db.execute("COMMIT")
        insert_s = time.perf_counter() - t0
        list_times = []
        for _ in range(list_runs):
            t0 = time.perf_counter()
            items = [json.loads(body) for (body,) in db.execute("SELECT body FROM log ORDER BY rv")]
            list_times.append(time.perf_counter() - t0)
            assert len(items) == n
        avg_body = sum(len(b) for _, _, b in bodies) / max(1, n)
    finally:
        db.close()
    return {
        "inserts_per_s": n / insert_s,
        "insert_s": insert_s,
        "list_ms_runs": [t * 1000 for t in list_times],
        "list_ms": statistics.median(list_times) * 1000,
        "avg_body_bytes": avg_body,
    }


# -- main ---------------------------------------------------------------------------------------
def run(args: argparse.Namespace, work: Path) -> Report:
    n, m, runs = args.objects, args.watch_updates, args.list_runs
    report = Report(
        config={"objects": n, "watch_updates": m, "list_runs": runs, "concurrency": CONCURRENCY, "page": PAGE,
                "quick": args.quick},
        machine=machine_facts("httpx", "uvicorn", "starlette", "httptools", "uvloop"),
    )
    report.machine["sqlite"] = sqlite3.sqlite_version
    print(f"starting the apiserver in {work / 'data'} ...", flush=True)
    server, base = start_apiserver(work / "data")
    pid = server.pid
    try:
        rows: dict[str, Row] = {}
        with http_client(base) as c:
            # Warm the server's code paths (and the client) before timing anything.
            for ns in (CONC_NS, PROC_NS):
                check(c.post("/api/v1/namespaces", json={"metadata": {"name": ns}}), 201)
            warm = configmap(0, "kube-public")
            check(c.post("/api/v1/namespaces/kube-public/configmaps", json=warm), 201)
            rt_ms = []
            for _ in range(200):
                t0 = time.perf_counter()
                c.get("/healthz").raise_for_status()
                rt_ms.append((time.perf_counter() - t0) * 1000)
            rows["rtt"] = report.add(Row("HTTP round trip, GET /healthz (p50)", "ms", percentile(rt_ms, 50),
                                         note=f"p99 {percentile(rt_ms, 99):.2f} ms"))

            print(f"creating {n} ConfigMaps sequentially ...", flush=True)
            with metered(pid) as mt:
                rvs, lat = bench_creates_sequential(c, n)
            rows["create_seq"] = report.add(Row(
                "creates/s, sequential (1 keep-alive client)", "/s", n / mt.wall, None, mt.server_cpu, mt.client_cpu,
                mt.wall, f"p50 {percentile(lat, 50) * 1000:.2f} ms, p99 {percentile(lat, 99) * 1000:.2f} ms", n))
            template = check(c.get(f"/api/v1/namespaces/{NS}/configmaps/{name_of(0)}"), 200)

            print(f"creating {n} ConfigMaps from {CONCURRENCY} client threads ...", flush=True)
            with metered(pid) as mt:
                lat = creates_threads(base, n)
            rows["create_conc"] = report.add(Row(
                f"creates/s, {CONCURRENCY} concurrent clients (threads)", "/s", n / mt.wall, None, mt.server_cpu,
                mt.client_cpu, mt.wall,
                f"p50 {percentile(lat, 50) * 1000:.2f} ms, p99 {percentile(lat, 99) * 1000:.2f} ms", n))

            print(f"creating {n} ConfigMaps from {CONCURRENCY} client processes ...", flush=True)
            lat, mt = creates_processes(base, n, pid)
            rows["create_proc"] = report.add(Row(
                f"creates/s, {CONCURRENCY} concurrent clients (processes)", "/s", n / mt.wall, None, mt.server_cpu,
                None, mt.wall,
                f"p50 {percentile(lat, 50) * 1000:.2f} ms, p99 {percentile(lat, 99) * 1000:.2f} ms", n))

            print(f"updating {n} ConfigMaps with PUT ...", flush=True)
            with metered(pid) as mt:
                lat = bench_puts(c, n, rvs)
            rows["put"] = report.add(Row(
                "updates/s, PUT with resourceVersion", "/s", n / mt.wall, None, mt.server_cpu, mt.client_cpu,
                mt.wall, f"p50 {percentile(lat, 50) * 1000:.2f} ms, p99 {percentile(lat, 99) * 1000:.2f} ms", n))

            print(f"updating {n} ConfigMaps with merge PATCH ...", flush=True)
            with metered(pid) as mt:
                lat = bench_patches(c, n, rvs)
            rows["patch"] = report.add(Row(
                "updates/s, merge PATCH", "/s", n / mt.wall, None, mt.server_cpu, mt.client_cpu, mt.wall,
                f"p50 {percentile(lat, 50) * 1000:.2f} ms, p99 {percentile(lat, 99) * 1000:.2f} ms", n))

            path = f"/api/v1/namespaces/{NS}/configmaps"
            list_cases: list[tuple[str, str, dict[str, str], dict[str, str] | None, bool, int]] = [
                ("list_json", f"list {n:,} (JSON), GET + body read", {}, None, False, n),
                ("list_json_parse", f"list {n:,} (JSON), GET + client json.loads", {}, None, True, n),
                ("list_selector", "list, labelSelector matching 10 %", {"labelSelector": "tier=t3"}, None, False,
                 n // 10 + (1 if n % 10 > 3 else 0)),
                ("list_table", "list (as=Table, kubectl's form)", {}, {"Accept": TABLE_ACCEPT}, False, n),
            ]
            for key, label, params, headers, parse, want in list_cases:
                print(f"{label} x{runs} ...", flush=True)
                timed_get(c, path, params, headers, parse)  # warm-up
                times = []
                with metered(pid) as mt:
                    for _ in range(runs):
                        elapsed, count, size = timed_get(c, path, params, headers, parse)
                        if count != want:
                            raise RuntimeError(f"{label}: {count} items, expected {want}")
                        times.append(elapsed * 1000)
                rows[key] = report.add(Row(
                    f"{label} (median of {runs})", "ms", statistics.median(times), None, mt.server_cpu / runs,
                    mt.client_cpu / runs, mt.wall / runs, f"{size / 1e6:.2f} MB, min {min(times):.1f} ms"))
                report.details[key + "_ms_runs"] = times

            print(f"paged list, limit={PAGE} x{runs} ...", flush=True)
            times = []
            with metered(pid) as mt:
                for _ in range(runs):
                    elapsed, count, pages = paged_list(c, path)
                    if count != n:
                        raise RuntimeError(f"paged list: {count} items, expected {n}")
                    times.append(elapsed * 1000)
            rows["list_paged"] = report.add(Row(
                f"list, paged limit={PAGE}, all pages (median of {runs})", "ms", statistics.median(times), None,
                mt.server_cpu / runs, mt.client_cpu / runs, mt.wall / runs, f"{pages} pages, client parses"))
            report.details["list_paged_ms_runs"] = times

            print(f"watch latency over {m} back-to-back merge patches ...", flush=True)
            with metered(pid) as mt:
                w = bench_watch(base, c, m, n, rvs)
            if w.received != w.sent:
                print(f"  WARNING: {w.sent - w.received} of {w.sent} watch events never arrived", flush=True)
            note = f"{w.received}/{w.sent} events"
            series = (("arrival - ack", w.arrival_minus_ack_ms), ("arrival - send", w.arrival_minus_send_ms))
            for label, values in series:
                for p in (50, 99):
                    rows[f"watch_{label}_{p}"] = report.add(Row(
                        f"watch event latency, {label} p{p}", "ms", percentile(values, p) if values else float("nan"),
                        note=note + (f", max {max(values):.1f} ms" if p == 99 and values else "")))
            rows["watch_writes"] = report.add(Row(
                "writes/s while watched (merge PATCH)", "/s", w.sent / w.wall_s, None, mt.server_cpu, mt.client_cpu,
                mt.wall, f"write p50 {percentile(w.write_ms, 50):.2f} ms", w.sent))
            report.details["watch"] = {
                "sent": w.sent, "received": w.received,
                "arrival_minus_ack_ms": {f"p{p}": percentile(w.arrival_minus_ack_ms, p) for p in (1, 50, 90, 99, 100)},
                "arrival_minus_send_ms": {f"p{p}": percentile(w.arrival_minus_send_ms, p)
                                          for p in (1, 50, 90, 99, 100)},
            }
            report.details["server_rss_kb"] = memory_kb(pid)["VmRSS"]
    finally:
        server.stop()
        report.details["server_log_tail"] = server.log_tail()

    print(f"reference: plain SQLite, {n} single-row commits and {runs} full reads ...", flush=True)
    ref = reference(work / "reference.db", template, n, runs)
    report.details["reference"] = ref
    for key in ("create_seq", "create_conc", "create_proc", "put", "patch", "watch_writes"):
        rows[key].reference = ref["inserts_per_s"]
    for key in ("list_json", "list_json_parse", "list_selector", "list_table", "list_paged"):
        rows[key].reference = ref["list_ms"]
    return report


def _per_op(r: Row) -> str:
    v = r.server_cpu_per_op
    if v is None:
        return "—"
    return f"{v * 1e6:,.0f} µs" if r.unit == "/s" else f"{v * 1e3:,.1f} ms"


def render(report: Report) -> str:
    mf = report.machine
    lines = [
        "",
        f"apiserver benchmark: {report.config['objects']:,} objects, {report.config['watch_updates']:,} watched "
        f"updates, lists x{report.config['list_runs']}",
        f"machine: nproc {mf['nproc']} ({mf['cpu']}), Python {mf['python']}, SQLite {mf['sqlite']}, "
        f"uvicorn {mf['uvicorn']} (httptools {mf['httptools']}, uvloop {mf['uvloop']}), httpx {mf['httpx']}",
        load_line(mf),
        "reference: plain SQLite in-process, store's settings (WAL, synchronous=NORMAL, BEGIN/INSERT/COMMIT per row);"
        " list reference = SELECT all rows + json.loads",
        "cost × = ours/reference for times, reference/ours for rates (1.0 = as fast as the reference; higher = slower)",
        "",
    ]
    header = ("metric", "ours", "reference", "cost ×", "srv CPU", "cli CPU", "srv CPU/op", "note")
    table = [header]
    for r in report.rows:
        table.append((
            *lead_cells(r),
            cpu_share(r.server_cpu_s, r.wall_s),
            cpu_share(r.client_cpu_s, r.wall_s),
            _per_op(r),
            r.note,
        ))
    lines += render_table(table, left=(0, len(header) - 1))
    ref = report.details.get("reference", {})
    if ref:
        lines.append("")
        lines.append(f"reference bodies {ref['avg_body_bytes']:.0f} bytes. srv/cli CPU: CPU seconds of the server "
                     "process / of this client process per wall second of the phase (100% = one core).")
        lines.append("srv CPU/op: server CPU per request (rates) or per list (times); its inverse is the ceiling of "
                     "the one-threaded server.")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--objects", type=int, default=None, help="ConfigMaps per namespace (default 10000; quick 1000)")
    p.add_argument("--watch-updates", type=int, default=None, help="watched writes (default 1000; quick 200)")
    p.add_argument("--list-runs", type=int, default=None, help="repetitions per list (default 5; quick 3)")
    p.add_argument("--quick", action="store_true", help="1,000 objects and fewer iterations (< 30 s)")
    p.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    args = p.parse_args(argv)
    args.objects = args.objects or (1_000 if args.quick else 10_000)
    args.watch_updates = args.watch_updates or (200 if args.quick else 1_000)
    args.list_runs = args.list_runs or (3 if args.quick else 5)
    if args.objects < 10:
        p.error("--objects must be at least 10")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return report_main("apiserver", args.keep, lambda work: run(args, work), render, lambda r: {
        **asdict(r), "cost_ratio": r.cost_ratio, "server_cpu_per_op_s": r.server_cpu_per_op})


if __name__ == "__main__":
    sys.exit(main())
