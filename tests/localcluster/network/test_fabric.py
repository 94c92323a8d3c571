"""Fabric lifecycle: idempotent creation, liveness by flock, sweeping what a crashed run left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from localcluster.network import netcmd
from localcluster.network.addressing import ClusterNet, fabric_name
from localcluster.network.fabric import Fabric, lock_path, sweep_stale

ROOT = Path(__file__).resolve().parents[3]

_HOLDER = """
import sys
from pathlib import Path
from localcluster.network.addressing import ClusterNet
from localcluster.network.fabric import Fabric
from localcluster.network.podnet import PodNetwork
fab = Fabric(sys.argv[1]).ensure()
PodNetwork(fab, ClusterNet(5), Path(sys.argv[2])).attach("crashed-pod")
print("ready", flush=True)
sys.stdin.read()
"""


def test_ensure_is_idempotent(fabric: Fabric) -> None:
    fabric.ensure()
    fabric.ensure()
    assert netcmd.in_netns(fabric.netns, ["sysctl", "-n", "net.ipv4.ip_forward"]).strip() == "1"
    assert "vsa_fabric" in netcmd.in_netns(fabric.netns, ["nft", "list", "tables"])
    routes = netcmd.run(["ip", "-n", fabric.netns, "-4", "route", "show", "default"])
    assert routes.strip() == ""  # no way off the fabric


def test_sweep_removes_fabric_whose_holder_died(tmp_path: Path) -> None:
    name = fabric_name(f"crash-{uuid.uuid4()}")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, name, str(tmp_path / "state")], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        pods = [ns for ns in netcmd.netns_names() if ns.startswith(f"{name}-pod-")]
        assert netcmd.netns_exists(name) and len(pods) == 1
        assert name not in sweep_stale()  # held by a live process: kept
        assert netcmd.netns_exists(name)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        assert name in sweep_stale()
        assert not netcmd.netns_exists(name) and not netcmd.netns_exists(pods[0])
        assert not lock_path(name).exists()
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate()
        Fabric(name).remove()
        lock_path(name).unlink(missing_ok=True)


def test_fabric_name_validated() -> None:
    with pytest.raises(ValueError):
        Fabric("host")
    with pytest.raises(ValueError):
        ClusterNet(0)
    with pytest.raises(ValueError):
        ClusterNet(201)


def test_inherited_lock_keeps_fabric_alive(tmp_path: Path) -> None:
    name = fabric_name(f"inherit-{uuid.uuid4()}")
    fab = Fabric(name).ensure()
    # a long-lived child (as a container's shim would be) inherits the hold
    child = subprocess.Popen(["sleep", "600"], pass_fds=[fab.lock_fd()])
    try:
        fab.release()
        assert name not in sweep_stale() and netcmd.netns_exists(name)
        child.kill()
        child.wait()
        assert name in sweep_stale() and not netcmd.netns_exists(name)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        fab.remove()
        lock_path(name).unlink(missing_ok=True)
