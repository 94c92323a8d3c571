"""The kubelet learns a container's end from its shim's pidfd (evented PLEG), not at its next
one-second look: a Pod's `Succeeded` follows the container's `finished` within a fraction of that."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Hashable
from functools import partial

from kubeletenv import KubeletEnv
from support.waiting import eventually

from localcluster.node import procinfo
from localcluster.node.exitwatch import ExitWatch
from localcluster.node.layout import NodeLayout


def test_a_shims_exit_wakes_its_key_at_once() -> None:
    woken: list[Hashable] = []
    exits = ExitWatch(woken.append).start()
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        started = procinfo.start_time(proc.pid)
        assert started is not None
        exits.watch((proc.pid, started), "ns/p")
        exits.watch((proc.pid, started), "ns/p")  # once only
        exits.watch((proc.pid, started + 1), "ns/other")  # not that process: ignored
        assert woken == []
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
        eventually(lambda: woken == ["ns/p"], 5, interval=0.01, what="woken")
    finally:
        exits.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _succeeded(kubelet: KubeletEnv, name: str) -> bool:
    return bool(kubelet.get(name)["status"].get("phase") == "Succeeded")


def test_a_pods_end_is_seen_well_within_the_relist_period(kubelet: KubeletEnv) -> None:
    """Wall clock from the shim's `exit` file (written as the container ended) to the API's Succeeded,
    polled every 20 ms; the one-second relist alone gives half a second on average."""
    delays = []
    for index in range(3):
        name = f"quick-{index}"
        uid = kubelet.pod(name, "sleep 0.3")["metadata"]["uid"]
        exit_file = NodeLayout(kubelet.state_dir).container_dir(uid, "main", 0) / "exit"
        eventually(partial(_succeeded, kubelet, name), 30, interval=0.02, what=f"{name} Succeeded")
        delays.append(time.time() - exit_file.stat().st_mtime)
    assert statistics.median(delays) < 0.35, delays
