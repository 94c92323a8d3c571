"""`sweep_stale` never deletes a fabric that running Pods are inside, nor one it lost a race for."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from localcluster.network import fabric as fabric_mod
from localcluster.network import netcmd
from localcluster.network.addressing import fabric_name
from localcluster.network.fabric import Fabric, lock_path, sweep_stale

ROOT = Path(__file__).resolve().parents[3]

# A cluster process that attaches a Pod, then is killed (the Pod's container keeps running).
_CLUSTER = """
import sys
from pathlib import Path
from localcluster.network.addressing import ClusterNet
from localcluster.network.fabric import Fabric
from localcluster.network.podnet import PodNetwork
fab = Fabric(sys.argv[1]).ensure()
print(PodNetwork(fab, ClusterNet(6), Path(sys.argv[2])).attach("running-pod").netns_path, flush=True)
sys.stdin.read()
"""


def test_a_process_inside_a_pod_netns_keeps_the_fabric_without_any_lock_holder(tmp_path: Path) -> None:
    name = fabric_name(f"podalive-{uuid.uuid4()}")
    cluster = subprocess.Popen([sys.executable, "-c", _CLUSTER, name, str(tmp_path / "state")], cwd=ROOT,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    container: subprocess.Popen[bytes] | None = None
    try:
        assert cluster.stdout is not None
        pod_ns = cluster.stdout.readline().strip()
        assert pod_ns.startswith(str(netcmd.NETNS_DIR / f"{name}-pod-"))
        # the Pod's container: a process in the Pod's namespace, holding no lock (started with close_fds)
        container = subprocess.Popen(["nsenter", f"--net={pod_ns}", "sleep", "600"])
        os.kill(cluster.pid, signal.SIGKILL)  # every cluster process dies; the container runs on
        cluster.wait()
        assert name not in sweep_stale()
        assert netcmd.netns_exists(name) and os.path.exists(pod_ns)
        container.kill()
        container.wait()
        assert name in sweep_stale()  # now nothing is inside: stale
        assert not netcmd.netns_exists(name) and not os.path.exists(pod_ns)
    finally:
        if container is not None and container.poll() is None:
            container.kill()
            container.wait()
        if cluster.poll() is None:
            cluster.kill()
        cluster.communicate()
        Fabric(name).remove()
        lock_path(name).unlink(missing_ok=True)


def test_a_sweeper_that_locked_an_unlinked_lock_file_deletes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The race: sweeper A opens the lock file; sweeper B sweeps and unlinks it; a new run creates
    the fabric again and holds a fresh lock file; A's flock on the old, unlinked file succeeds."""
    name = fabric_name(f"race-{uuid.uuid4()}")
    fab = Fabric(name).ensure()
    fab.release()  # no holder in this process: only the new run's hold below may keep it
    path = lock_path(name)
    real_flock = fcntl.flock
    new_hold: list[int] = []

    def racing_flock(fd: int, op: int) -> None:
        if op == fcntl.LOCK_EX | fcntl.LOCK_NB and not new_hold and path.exists() and (
                os.fstat(fd).st_ino == os.stat(path).st_ino):
            path.unlink()  # sweeper B's unlink ...
            new_hold.append(fabric_mod._lock(path, fcntl.LOCK_SH))  # ... and the new run's hold
        real_flock(fd, op)

    monkeypatch.setattr(fabric_mod.fcntl, "flock", racing_flock)
    try:
        assert name not in sweep_stale()
        assert new_hold and netcmd.netns_exists(name) and path.exists()
    finally:
        monkeypatch.undo()
        for fd in new_hold:
            os.close(fd)
        fab.remove()
        path.unlink(missing_ok=True)
