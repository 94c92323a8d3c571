"""What every benchmark script in bench/ shares: one copy of each helper.

- statistics and formatting: `percentile` (nearest rank), `fmt_value` (a figure with its unit),
  `cpu_share` (CPU seconds per wall second), `render_table` (aligned columns under a rule);
- processes: `process_cpu` (all threads a process ever had, 10 ms ticks) and `threads_cpu` (its live
  threads, ns resolution), `memory_kb` (VmRSS/VmHWM), `ServerProcess` (one of our servers started
  until its `<name> ready {json}` line, with tests/support/processes.py, the project's one way to do
  that) and `start_apiserver` (a fresh `volsync-apiserver` on 127.0.0.1);
- waiting: `until` polls a condition with a deadline (never a sleep to synchronise);
- HTTP: `http_client` (httpx, no proxy environment), `check` (the status code a call must return) and
  `watch_events` and `WatchThread` (one raw watch stream, each event with its local receive time);
- scaffolding: `Report` and `report_main` (bench/apiserver.py's and bench/hub.py's tables),
  `machine_facts`, `scratch` (a temporary work dir, kept with --keep), `terminate_as_exit`
  (SIGTERM runs the finally blocks), `write_results` (bench/results/<name>-<UTC stamp>.json).

Scripts import it as `common` (their own directory is first on sys.path when run as a script).
It adds the project root and tests/ at the END of sys.path, so a script's own precedence stands.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TypeVar

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
HOST = "127.0.0.1"
for _path in (str(ROOT), str(ROOT / "tests")):
    if _path not in sys.path:
        sys.path.append(_path)

from support import processes  # noqa: E402  (tests/support: stdlib only)

T = TypeVar("T")


class ReportRow(Protocol):
    metric: str
    unit: str
    ours: float
    reference: float | None
    note: str

    @property
    def cost_ratio(self) -> float | None: ...


R = TypeVar("R", bound=ReportRow)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- statistics and formatting ------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def fmt_value(value: float | None, unit: str) -> str:
    """A figure with its unit: "/s" rates, "s", "MB", else milliseconds; None or NaN is a dash."""
    if value is None or value != value:
        return "—"
    if unit == "/s":
        return f"{value:,.0f} /s" if value >= 100 else f"{value:,.1f} /s"
    if unit == "s":
        return f"{value:,.2f} s"
    if unit == "MB":
        return f"{value:,.0f} MB"
    return f"{value:,.2f} ms" if value < 100 else f"{value:,.0f} ms"


def cpu_share(cpu_s: float | None, wall_s: float | None) -> str:
    """CPU seconds per wall second as a percentage of one core."""
    return "—" if cpu_s is None or not wall_s else f"{100 * cpu_s / wall_s:.0f}%"


def render_table(rows: Sequence[Sequence[str]], left: Sequence[int] = (0,), rule_after: int = 1) -> list[str]:
    """Columns padded to their widest cell (the `left` ones left-aligned, the rest right-aligned), a rule
    of dashes after the first `rule_after` rows, trailing blanks cut."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i in left else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip() for row in rows]
    lines.insert(rule_after, "  ".join("-" * w for w in widths))
    return lines


# -- processes ------------------------------------------------------------------------------------------


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process, every thread it ever had included (/proc/<pid>/stat,
    10 ms ticks); 0.0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def threads_cpu(pid: int) -> float:
    """On-CPU seconds of the live threads of a process (/proc/<pid>/task/*/schedstat, ns resolution:
    fine enough for one short phase, but a thread that ended takes its share with it)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    return total / 1e9


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(line.split()[1])
    return out


class ServerProcess:
    """One of our servers (`volsync-apiserver`, `volsync-hub`), started until its ready line."""

    def __init__(self, name: str, cmd: list[str], log: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.log = log
        self.proc: Any = None  # subprocess.Popen[bytes] while it runs
        self.ready: dict[str, Any] = {}

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.proc, self.ready = processes.start_ready(self.cmd, f"{self.name} ready", self.log, ROOT, timeout)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return int(self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is not None:
            processes.stop(self.proc, signal.SIGTERM, timeout)
            self.proc = None

    def log_tail(self, n: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


def start_apiserver(data_dir: Path, clusters: Sequence[str] = ("hub",), *extra: str,
                    insecure: bool = True) -> tuple[ServerProcess, str]:
    """A fresh `volsync-apiserver` on 127.0.0.1 serving `clusters` from `data_dir` (plain HTTP without
    authentication unless `insecure` is False): the process and the base URL of its first cluster.
    Its ready JSON (`.ready`) holds `url`, `kubeconfig` and, with TLS, `ca`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "apiserver.main", "--data-dir", str(data_dir), "--clusters", ",".join(clusters),
           "--host", HOST, "--port", "0", *extra, *(["--insecure-no-auth"] if insecure else [])]
    server = ServerProcess("volsync-apiserver", cmd, data_dir / "apiserver.log").start()
    url = str(server.ready["url"])
    if not url.startswith((f"http://{HOST}:", f"https://{HOST}:")):
        server.stop()
        raise RuntimeError(f"apiserver is not on {HOST}: {url}")
    return server, f"{url}/clusters/{clusters[0]}"


# -- waiting and HTTP -----------------------------------------------------------------------------------


def until(probe: Callable[[], T], what: str, timeout: float = 120.0, interval: float = 0.005) -> T:
    """Poll `probe` until it returns something truthy and return that (a TimeoutError at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:.0f} s: {what}")
        time.sleep(interval)  # polling a condition with a deadline, not synchronisation


def http_client(base: str, timeout: float | httpx.Timeout = 60.0, **kwargs: Any) -> httpx.Client:
    """An httpx client for `base` that ignores the proxy environment (only 127.0.0.1 is contacted)."""
    limits = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
    return httpx.Client(base_url=base, trust_env=False, timeout=limits, **kwargs)


def watch_events(client: httpx.Client, path: str, params: dict[str, str], connected: threading.Event,
                 handle: Callable[[float, dict[str, Any]], bool | None]) -> None:
    """Read one raw watch stream (`?watch=true`) until it ends or `handle` returns True, handing it each
    event with the `time.perf_counter()` at which its line arrived. `connected` is set once the server
    answered 200; another status or an ERROR event raises."""
    with client.stream("GET", path, params={"watch": "true", **params}) as resp:
        if resp.status_code != 200:
            raise RuntimeError(f"watch {path}: {resp.status_code}")
        connected.set()
        for line in resp.iter_lines():
            arrived = time.perf_counter()
            if not line:
                continue
            event = json.loads(line)
            if event.get("type") == "ERROR":
                raise RuntimeError(f"watch {path}: {line[:300]}")
            if handle(arrived, event):
                return


class WatchThread:
    """One raw watch stream read by a daemon thread from a given resourceVersion; a subclass's `handle`
    gets each event with its receive time (True ends the stream). `failure` holds what broke it."""

    def __init__(self, client: httpx.Client, path: str, params: dict[str, str] | None = None) -> None:
        self.client, self.path, self.params = client, path, dict(params or {})
        self.failure: BaseException | None = None
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch {path}", daemon=True)

    def handle(self, arrived: float, event: dict[str, Any]) -> bool | None:
        raise NotImplementedError

    def start_at(self, resource_version: str) -> None:
        self.params["resourceVersion"] = resource_version
        self._thread.start()
        if not self._connected.wait(30) or self.failure:
            raise RuntimeError(f"watch {self.path} did not connect: {self.failure!r}")

    def stop(self) -> None:
        self._stopping.set()
        self.client.close()  # ends the stream the thread reads
        self._thread.join(10)

    def _run(self) -> None:
        try:
            watch_events(self.client, self.path, self.params, self._connected,
                         lambda t, ev: self._stopping.is_set() or self.handle(t, ev))
        except BaseException as exc:  # reported by the main thread
            if not self._stopping.is_set():
                self.failure = exc
        finally:
            self._connected.set()


def check(resp: httpx.Response, *want: int) -> Any:
    """The JSON body of a response whose status is one of `want`; anything else raises with the body."""
    if resp.status_code not in want:
        raise RuntimeError(f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text[:500]}")
    return resp.json()


# -- scaffolding ----------------------------------------------------------------------------------------


@dataclass
class Report:
    """A benchmark's rows (dataclasses with at least `metric`, `unit`, `ours` and `note`), its configuration,
    the machine's facts and any details, as bench/apiserver.py and bench/hub.py write them."""

    config: dict[str, Any]
    machine: dict[str, Any]
    rows: list[Any] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, row: R) -> R:
        self.rows.append(row)
        print(f"  {row.metric}: {fmt_value(row.ours, row.unit)}" + (f"  ({row.note})" if row.note else ""), flush=True)
        return row


def lead_cells(row: ReportRow) -> tuple[str, str, str, str]:
    """The first cells of a Report row: metric, ours, reference, cost ratio."""
    ratio = row.cost_ratio
    return (row.metric, fmt_value(row.ours, row.unit),
            fmt_value(row.reference, row.unit) if row.reference is not None else "—",
            f"{ratio:.1f}" if ratio is not None else "—")


def load_line(machine: dict[str, Any]) -> str:
    start = machine["loadavg_at_start"]
    return (f"load average (1/5/15 min) at start {start}, at end {machine.get('loadavg_at_end')}"
            + ("  <- other work on the machine: expect noise" if start[0] > 0.5 else ""))


def report_main(name: str, keep: bool, run: Callable[[Path], Report], render: Callable[[Report], str],
                row_json: Callable[[Any], dict[str, Any]]) -> int:
    """Run a Report-style benchmark in a scratch dir, print its table, write bench/results/<name>-<stamp>.json."""
    t0 = time.perf_counter()
    with scratch(f"volsync-bench-{name}-", keep) as work:
        report = run(work)
    report.details["total_s"] = time.perf_counter() - t0
    report.machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(render(report))
    stamp = utc_stamp()
    out = write_results(name, {"timestamp": stamp, "config": report.config, "machine": report.machine,
                               "rows": [row_json(r) for r in report.rows], "details": report.details}, stamp)
    print(f"\ntotal {report.details['total_s']:.1f} s; results written to {out.relative_to(ROOT)}")
    return 0


def machine_facts(*modules: str) -> dict[str, Any]:
    """The machine, the interpreter, the load at the start, and the installed version of each of `modules`."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), cpu)
    facts: dict[str, Any] = {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    for module in modules:
        try:
            facts[module] = version(module)
        except PackageNotFoundError:
            facts[module] = "absent"
    return facts


@contextlib.contextmanager
def scratch(prefix: str, keep: bool = False, parent: str | None = None) -> Iterator[Path]:
    """A temporary work directory, removed afterwards (also after a failure) unless `keep`."""
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield work
    finally:
        if keep:
            print(f"data kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so that the finally blocks stop every process and remove the data."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def write_results(name: str, doc: dict[str, Any], stamp: str | None = None) -> Path:
    """bench/results/<name>-<stamp>.json (JSON results are not committed: results/.gitignore)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    gitignore = RESULTS / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text("*.json\n")
    out = RESULTS / f"{name}-{stamp or utc_stamp()}.json"
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return out
