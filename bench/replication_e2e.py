"""bench/replication.py's e2e rows: whole syncs through the agents and their mover Jobs, against plain rsync.

A `Fleet` of the e2e tests (tests/support/agents.py: the API server, the cluster processes with their
nodes, and one agent per managed cluster) with, per copyMethod (Direct and Snapshot, the same on both
sides as in the seed), a ReplicationDestination `rd-<method>` (ClusterIP) on cluster2 and a manually
triggered ReplicationSource `rs-<method>` on cluster1 whose PVC holds data set B. Per copyMethod:

- **first sync** (the destination PVC emptied before each run, not timed) and **no change**, each timed
  from the PATCH of `spec.trigger.manual` to the later of: the source's `status.lastManualSync` equal
  to the trigger, and the destination's `status.latestImageSourceIteration` equal to the source's
  iteration of that sync (its `latestImage` updated for that very copy);
- interleaved with **plain**: rsync over ssh of the same source directory to a plain sshd (+ flush);
- before every trigger (not timed) the previous iteration is fully idle on both sides: no source Job
  left running, and a destination mover Pod up and running (waiting for the next source).

Times come from watch events with local receive times (`jobclock.EventLog`), so the same streams give
the **Job start-up cost per iteration**: a mover Job first seen -> its Pod's container first seen
running, and the source Pod's container first seen terminated -> the source's status update, plus
a trivial busybox Job on cluster1's node (create -> Complete, bench/workloads.py) as the node's floor.
"""

from __future__ import annotations

import functools
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import ROOT, render_table, until
from jobclock import ClusterApi, EventLog, JobTiming, container_state, job_timings
from rsyncplain import PLAIN_FLAGS, PlainSshd, plain_method
from samples import BenchError, Case, CpuMeter, Dataset, Sampler, empty, run_case, verify

COPY_METHODS = ("Direct", "Snapshot")
SRC_JOB, DST_JOB = "volsync-rsync-src-", "volsync-rsync-dst-"
RS_API = "/apis/volsync.backube/v1alpha1/namespaces/src/replicationsources"
RD_API = "/apis/volsync.backube/v1alpha1/namespaces/dest/replicationdestinations"
TIMEOUT = 600.0
Obj = dict[str, Any]


@dataclass
class Pair:
    """One ReplicationDestination/ReplicationSource pair with one copyMethod on both sides."""

    method: str
    rd: str
    rs: str
    source_dir: Path
    dest_dir: Path
    triggers: int = 0


class Watches:
    """The event logs of both clusters: Jobs and Pods of the movers' namespaces, the RS and the RD."""

    def __init__(self, src: ClusterApi, dst: ClusterApi) -> None:
        self.logs = {
            "rs": EventLog(src, RS_API), "rd": EventLog(dst, RD_API),
            "src_jobs": EventLog(src, "/apis/batch/v1/namespaces/src/jobs"),
            "src_pods": EventLog(src, "/api/v1/namespaces/src/pods"),
            "dst_jobs": EventLog(dst, "/apis/batch/v1/namespaces/dest/jobs"),
            "dst_pods": EventLog(dst, "/api/v1/namespaces/dest/pods"),
        }

    def start(self) -> Watches:
        for log in self.logs.values():
            log.start()
        return self

    def stop(self) -> None:
        for log in self.logs.values():
            log.stop()

    def jobs(self, side: str, prefix: str) -> list[JobTiming]:
        return job_timings(self.logs[f"{side}_jobs"].snapshot(), self.logs[f"{side}_pods"].snapshot(), prefix)


def _named(name: str, test: Callable[[Obj], bool]) -> Callable[[Obj], bool]:
    return lambda obj: (obj.get("metadata") or {}).get("name") == name and test(obj)


def _status(obj: Obj) -> Obj:
    status: Obj = obj.get("status") or {}
    return status


class E2ERun:
    """Triggers, waits and timings of the pairs on a started fleet (see the module docstring)."""

    def __init__(self, watches: Watches, src: ClusterApi, dst: ClusterApi) -> None:
        self.watches, self.src, self.dst = watches, src, dst
        self.iterations: list[dict[str, Any]] = []  # per timed sync: its figures

    def idle(self, pair: Pair) -> None:
        """Not timed: no source Job still running, and the destination's mover Pod up and waiting."""
        def quiet() -> bool:
            jobs = self.src.get("/apis/batch/v1/namespaces/src/jobs")["items"]
            return not any(j["metadata"]["name"].startswith(SRC_JOB + pair.rs) and not _finished(j) for j in jobs)

        def listening() -> bool:
            pods = self.dst.get("/api/v1/namespaces/dest/pods")["items"]
            return any((p["metadata"].get("labels") or {}).get("job-name", "").startswith(DST_JOB + pair.rd)
                       and container_state(p) == "running" for p in pods)

        until(quiet, f"no source Job of {pair.rs} running", TIMEOUT, 0.02)
        until(listening, f"a destination mover Pod of {pair.rd} running", TIMEOUT, 0.02)

    def sync(self, pair: Pair, tag: str) -> dict[str, float]:
        """One timed sync: PATCH the trigger, wait for both sides (see the module docstring)."""
        pair.triggers += 1
        value = f"{tag}-{pair.triggers}"
        rs_log, rd_log = self.watches.logs["rs"], self.watches.logs["rd"]
        start = time.perf_counter()
        self.src.merge_patch(f"{RS_API}/{pair.rs}", {"spec": {"trigger": {"manual": value}}})
        synced = arrival(rs_log, _named(pair.rs, lambda o: _status(o).get("lastManualSync") == value), start,
                         f"{pair.rs} synced {value}")
        status = _status(self.src.get(f"{RS_API}/{pair.rs}"))
        if (status.get("latestMoverStatus") or {}).get("result") != "Successful":
            raise BenchError(f"sync {value} of {pair.rs} ended with {status.get('latestMoverStatus')}")
        iteration = (status.get("iteration") or {}).get("id")
        published = arrival(rd_log, _named(pair.rd, lambda o: _status(o).get("latestImageSourceIteration") ==
                                           iteration), start, f"{pair.rd} published {iteration}")
        self._record(pair, tag, start, synced, published, status)
        return {"e2e": max(synced, published) - start}

    def _record(self, pair: Pair, tag: str, start: float, synced: float, published: float, status: Obj) -> None:
        source = [j for j in self.watches.jobs("src", SRC_JOB + pair.rs) if start <= j.seen <= synced]
        job = source[-1] if source else None
        self.iterations.append({
            "method": pair.method, "case": tag, "e2e_s": max(synced, published) - start,
            "source_synced_s": synced - start, "destination_published_s": published - start,
            "trigger_to_source_job_s": None if job is None else job.seen - start,
            "source_job_start_up_s": None if job is None else job.start_up,
            "source_container_s": None if job is None or job.exited is None or job.running is None
            else job.exited - job.running,
            "source_exit_to_status_s": None if job is None or job.exited is None else synced - job.exited,
            "source_jobs": len(source), "mover_seconds": mover_seconds(status),
            "rd": pair.rd, "published_at": published,
        })

    def reopen_times(self) -> None:
        """Per iteration: its destination published -> the next destination mover Pod's container running
        (None where no new destination Job followed: a Pod kept across iterations)."""
        for record in self.iterations:
            after = [j for j in self.watches.jobs("dst", DST_JOB + record["rd"]) if j.seen >= record["published_at"]]
            running = after[0].running if after else None
            record["destination_reopen_s"] = None if running is None else running - record["published_at"]


def arrival(log: EventLog, match: Callable[[Obj], bool], after: float, what: str) -> float:
    """The receive time of the first matching event after `after` (waiting for it)."""
    found = until(lambda: log.first(match, after), what, TIMEOUT)
    assert found is not None
    return found


def _finished(job: Obj) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in _status(job).get("conditions") or [])


def mover_seconds(status: Obj) -> float | None:
    """The source's own "Rsync completed in N.NNs" (rsync plus completion signal), from its log tail."""
    logs = (status.get("latestMoverStatus") or {}).get("logs") or ""
    found = [line.rsplit(" ", 1)[-1].rstrip("s") for line in logs.splitlines() if "Rsync completed in" in line]
    try:
        return float(found[-1]) if found else None
    except ValueError:
        return None


def median_of(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


# -- the run -----------------------------------------------------------------------------------------


def setup_pairs(fleet: Any, dataset: Dataset) -> list[Pair]:
    """Per copyMethod an RD (ClusterIP) and an RS (manual), as the seed makes them; a warm-up sync of
    the empty PVC each; then data set B copied into the source PVCs."""
    from support.seed import copy_secret, create_destination, create_pvc, create_source, status, volume_dir

    fleet.kubectl("create", "ns", "dest", context="cluster2")
    fleet.kubectl("create", "ns", "src", context="cluster1")
    pairs: list[Pair] = []
    for method in COPY_METHODS:
        rd, rs, pvc = f"rd-{method.lower()}", f"rs-{method.lower()}", f"data-{method.lower()}"
        address, keys = create_destination(fleet, rd, "ClusterIP", copy_method=method)
        source_dir = create_pvc(fleet, pvc, "src", "cluster1")
        copy_secret(fleet, keys)
        create_source(fleet, rs, pvc, address, keys, "manual: warmup", copy_method=method)
        pairs.append(Pair(method, rd, rs, source_dir, Path()))
    def warm(rs: str) -> bool:
        return bool(status(fleet, "replicationsource", rs, "src", "cluster1").get("lastManualSync") == "warmup")

    for pair in pairs:
        until(functools.partial(warm, pair.rs), f"warm-up sync of {pair.rs}", TIMEOUT, 0.1)
        pair.dest_dir = volume_dir(fleet, f"volsync-{pair.rd}-dst", "dest", "cluster2")
        subprocess.run(["cp", "-a", f"{dataset.path}/.", f"{pair.source_dir}/"], check=True)
    return pairs


def busybox_floor(fleet: Any, runs: int) -> list[float]:
    """Seconds from create to Complete of trivial busybox Jobs on cluster1's node (bench/workloads.py)."""
    from workloads import job_to_complete

    from kube import clients
    from kube.rest import Kube

    api = clients.load(str(fleet.server.kubeconfig), "cluster1")
    try:
        return job_to_complete(Kube(api, field_manager="bench"), "src", runs, prefix="bench-floor-")
    finally:
        clients.close(api)


def bench_e2e(dataset: Dataset, tmp: Path, plain: PlainSshd, runs: int, cases: list[Case],
              meter: CpuMeter) -> dict[str, Any]:
    """The e2e cases (appended to `cases`) and the figures behind them (returned, for the JSON)."""
    sys.path.insert(1, str(ROOT / "tests"))
    from support.agents import Fleet

    fleet = Fleet(tmp / "fleet")
    watches: Watches | None = None
    plain_dest = tmp / "dst" / "e2e-plain"
    try:
        started = time.perf_counter()
        fleet.start()
        pairs = setup_pairs(fleet, dataset)
        tokens = fleet.server.tokens()
        src, dst = (ClusterApi(fleet.server.cluster_url(c), str(fleet.server.ca_file), tokens[c])
                    for c in ("cluster1", "cluster2"))
        watches = Watches(src, dst).start()
        run = E2ERun(watches, src, dst)
        print(f"  e2e fleet ready in {time.perf_counter() - started:.1f}s", flush=True)
        plain_dest.mkdir(parents=True)
        for pair in pairs:
            e2e_cases(run, pair, dataset, plain, plain_dest, runs, cases, meter)
        run.reopen_times()
        floor_s = busybox_floor(fleet, max(runs, 5))
        timings = {side: [vars(j) for j in watches.jobs(side, prefix)]
                   for side, prefix in (("src", SRC_JOB), ("dst", DST_JOB))}
        floor = watches.jobs("src", "bench-floor-")
        return {"iterations": run.iterations, "jobs": timings, "floor_complete_s": floor_s,
                "floor_start_up_s": [j.start_up for j in floor]}
    finally:
        if watches is not None:
            watches.stop()
        if fleet.agents:
            drain(fleet)
        fleet.stop()
        shutil.rmtree(plain_dest, ignore_errors=True)


def drain(fleet: Any) -> None:
    """Before the fleet stops: the replications and their mover Jobs deleted and their Pods gone. A node
    that stops leaves running containers behind (as a kubelet does), and with them the storage pool's
    mount; a waiting destination mover would outlive the benchmark."""
    sides = (("cluster1", "src", "replicationsources"), ("cluster2", "dest", "replicationdestinations"))
    for context, ns, kind in sides:
        for what in (kind, "jobs"):
            fleet.kubectl("delete", what, "--all", "-n", ns, "--wait=false", context=context, check=False)
    def gone(context: str, ns: str) -> bool:
        return not fleet.get("pods", "-n", ns, context=context)["items"]

    for context, ns, _kind in sides:
        try:
            until(functools.partial(gone, context, ns), f"the Pods in {ns} gone", 60, 0.2)
        except (TimeoutError, subprocess.CalledProcessError) as exc:
            print(f"  warning: {exc}; the fleet stops with them", flush=True)


def e2e_cases(run: E2ERun, pair: Pair, dataset: Dataset, plain: PlainSshd, plain_dest: Path, runs: int,
              cases: list[Case], meter: CpuMeter) -> None:
    """First sync into an emptied destination, then no change, each interleaved with plain."""
    dests = {"e2e": pair.dest_dir, "plain": plain_dest}
    plain_run = plain_method(plain, "plain", PLAIN_FLAGS, pair.source_dir, plain_dest)

    def prepare(method: str, emptied: bool) -> None:
        if method == "e2e":
            run.idle(pair)  # before emptying: no mover is writing into the destination
        if emptied:
            empty(dests[method])

    for tag, name, emptied in (("full", "e2e first sync", True), ("same", "e2e no change", False)):
        samplers: dict[str, Sampler] = {"e2e": functools.partial(run.sync, pair, tag), "plain": plain_run}
        note = f"agents + mover Jobs, copyMethod {pair.method}" + ("; destination emptied" if emptied else "")
        case = Case(f"{name} {pair.method}", dataset.name, note=note)
        cases.append(run_case(case, runs, samplers, meter,
                              before_method=functools.partial(prepare, emptied=emptied)))
        verify(case.name, pair.source_dir, dests, [])


# -- the figures ---------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def _spread(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    return "-" if not known else f"{statistics.median(known) * 1000:.0f}/{min(known) * 1000:.0f} ms"


def summary_lines(cases: list[Case], extra: dict[str, Any]) -> list[str]:
    """Per e2e case its difference to plain and where the time went; then the Job start-up costs, median/min
    over every timed sync, beside the node's floor (a busybox `true` Job on the same node)."""
    lines: list[str] = []
    iterations: list[dict[str, Any]] = extra.get("iterations") or []
    for c in cases:
        if "e2e" not in c.samples:
            continue
        method, tag = c.name.rsplit(" ", 1)[-1], "full" if "first" in c.name else "same"
        mine = [i for i in iterations if i["method"] == method and i["case"] == tag]
        e2e_med, plain_med = c.median("e2e"), c.median("plain")
        mover = median_of([i["mover_seconds"] for i in mine])
        diff = "-" if e2e_med is None or plain_med is None else f"{(e2e_med - plain_med) * 1000:+.0f} ms"
        synced = median_of([i["source_synced_s"] for i in mine])
        lines.append(f"{c.name}: e2e - plain = {diff}; source synced {_ms(synced)}"
                     f", destination published {_ms(median_of([i['destination_published_s'] for i in mine]))}"
                     f"; the source's own rsync + completion signal {'-' if mover is None else f'{mover:.2f}s'}")
    floor_up = extra.get("floor_start_up_s") or []
    dst_jobs = (extra.get("jobs") or {}).get("dst", [])
    rows = [("Job start-up, per timed sync", "med/min", "node floor (busybox Job)"),
            ("trigger -> source Job seen", _spread([i["trigger_to_source_job_s"] for i in iterations]), ""),
            ("source Job -> its container running", _spread([i["source_job_start_up_s"] for i in iterations]),
             _spread(floor_up)),
            ("source container running -> exited", _spread([i["source_container_s"] for i in iterations]), ""),
            ("  of which the mover's own rsync + completion (its log)",
             _spread([i["mover_seconds"] for i in iterations]), ""),
            ("source container exited -> source status", _spread([i["source_exit_to_status_s"] for i in iterations]),
             ""),
            ("destination published -> next dst container running",
             _spread([i.get("destination_reopen_s") for i in iterations]), ""),
            ("destination Job -> its container running",
             _spread([j["running"] - j["seen"] if j["running"] else None for j in dst_jobs]),
             _spread(floor_up)),
            ("busybox Job create -> Complete", "", _spread(extra.get("floor_complete_s") or []))]
    lines += ["", *render_table(rows, left=(0,))]
    return lines
