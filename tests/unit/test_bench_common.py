"""bench/: every script answers --help, and the pure helpers it shares (bench/common.py, bench/jobclock.py,
bench/replication_e2e.py) compute what they say. Cheap: no server is started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = ("apiserver", "authz", "hub", "network", "replication", "storage", "workloads")


@pytest.fixture(scope="module")
def bench_path() -> Any:
    """bench/ on sys.path as its scripts see it (their own directory), removed afterwards."""
    sys.path.append(str(BENCH))
    yield
    sys.path.remove(str(BENCH))


def test_every_script_answers_help() -> None:
    running = {name: subprocess.Popen([sys.executable, str(BENCH / f"{name}.py"), "--help"], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for name in SCRIPTS}  # side by side
    for name, proc in running.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and out.startswith("usage:"), (name, err[-2000:])


def test_numbers_and_tables(bench_path: None) -> None:
    import common

    assert common.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert common.percentile([1.0, 2.0], 99) == 2.0 and common.percentile([7.0], 1) == 7.0
    assert common.fmt_value(1234.4, "/s") == "1,234 /s" and common.fmt_value(12.34, "/s") == "12.3 /s"
    assert common.fmt_value(0.5, "s") == "0.50 s" and common.fmt_value(150.0, "ms") == "150 ms"
    assert common.fmt_value(None, "ms") == "—" and common.fmt_value(float("nan"), "ms") == "—"
    assert common.cpu_share(0.5, 2.0) == "25%" and common.cpu_share(None, 1.0) == "—"
    assert common.render_table([("a", "bb"), ("ccc", "d")]) == ["a    bb", "---  --", "ccc   d"]
    with pytest.raises(TimeoutError, match="never"):
        common.until(lambda: False, "never", timeout=0.05)
    assert common.until(lambda: 42, "at once") == 42


def _job(uid: str, name: str, complete: bool = False) -> dict[str, Any]:
    conditions = [{"type": "Complete", "status": "True"}] if complete else []
    return {"metadata": {"uid": uid, "name": name}, "status": {"conditions": conditions}}


def _pod(uid: str, state: str | None) -> dict[str, Any]:
    statuses: list[dict[str, Any]] = [{"state": {state: {}}}] if state else []
    return {"metadata": {"labels": {"controller-uid": uid}}, "status": {"containerStatuses": statuses}}


def test_job_timings_from_receive_times(bench_path: None) -> None:
    import jobclock

    jobs = [(0.5, "MODIFIED", _job("u0", "volsync-rsync-src-before")),  # created before the watch: left out
            (1.0, "ADDED", _job("u1", "volsync-rsync-src-a")), (1.1, "ADDED", _job("other", "busy")),
            (4.0, "MODIFIED", _job("u1", "volsync-rsync-src-a", complete=True))]
    pods = [(0.6, "MODIFIED", _pod("u0", "running")), (1.2, "ADDED", _pod("u1", None)),
            (1.5, "MODIFIED", _pod("u1", "running")),
            (3.0, "MODIFIED", _pod("u1", "terminated")), (3.5, "MODIFIED", _pod("u1", "terminated"))]
    [timing] = jobclock.job_timings(jobs, pods, "volsync-rsync-src-")
    assert (timing.seen, timing.running, timing.exited, timing.finished) == (1.0, 1.5, 3.0, 4.0)
    assert timing.start_up == pytest.approx(0.5)
    [fast] = jobclock.job_timings([(2.0, "ADDED", _job("u2", "j"))], [(2.4, "ADDED", _pod("u2", "terminated"))])
    assert fast.running == fast.exited == 2.4  # first seen already terminated: started and exited by then


def test_mover_seconds_from_the_log_tail(bench_path: None) -> None:
    import replication_e2e

    logs = "sent 1,234 bytes  received 56 bytes\ntotal size is 9\nRsync completed in 1.25s"
    assert replication_e2e.mover_seconds({"latestMoverStatus": {"logs": logs}}) == 1.25
    assert replication_e2e.mover_seconds({}) is None
    assert replication_e2e.median_of([None, 1.0, 3.0]) == 2.0 and replication_e2e.median_of([None]) is None
