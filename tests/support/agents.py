"""Real `volsync-agent` processes, one per managed cluster, beside a real embedded API server."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from localcluster.launcher import Fleet as Clusters
from support import processes
from support.apiserver import ROOT, ApiServer


class Agent:
    def __init__(self, server: ApiServer, cluster: str, data_root: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.server = server
        self.cluster = cluster
        self.data_root = data_root
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self.log = data_root.parent / f"agent-{cluster}.log"

    def start(self, timeout: float = 30.0) -> Agent:
        self.data_root.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "agent.main", "--kubeconfig", str(self.server.kubeconfig),
               "--context", self.cluster, "--cluster-name", self.cluster, "--data-root", str(self.data_root),
               "--log-level", "info", *self.extra_args]
        self.proc, self.ready = processes.start_ready(cmd, "volsync-agent ready", self.log, ROOT, timeout)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        rc = processes.stop(self.proc, sig, timeout)
        self.proc = None
        return rc

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


_pools = itertools.count()


def unique_pool() -> str:
    """A loopback /24 no other fleet of this test run (or of a parallel run) uses."""
    n = next(_pools)
    return f"127.{128 + os.getpid() % 64}.{(os.getpid() // 64 * 16 + n) % 256}.0/24"


class Fleet:
    """An API server serving hub, cluster1 and cluster2, their cluster processes (node, controllers,
    network, storage: as in the embedded default), and an agent on each managed cluster."""

    def __init__(self, base: Path, agent_args: tuple[str, ...] = ()) -> None:
        self.base = base
        api_dir = base / "apiserver"
        self.clusters = Clusters(base / "clusters", ["hub", "cluster1", "cluster2"], api_dir / "kubeconfig",
                                 api_dir / "pki")
        self.server = ApiServer(api_dir, auth=True, extra_args=tuple(self.clusters.apiserver_args()))
        self.agents: dict[str, Agent] = {}
        self.agent_args = agent_args

    def start(self) -> Fleet:
        self.server.start()
        self.clusters.start()
        for cluster in ("cluster1", "cluster2"):
            args = ("--mover-host", unique_pool(), *self.agent_args)
            self.agents[cluster] = Agent(self.server, cluster, self.base / "agents" / cluster, args).start()
        return self

    def stop(self) -> None:
        for agent in self.agents.values():
            agent.stop()
        self.clusters.stop()
        self.server.stop()

    def kubectl(self, *args: str, context: str, input: str | None = None, check: bool = True) -> Any:
        return self.server.kubectl(*args, context=context, input=input, check=check)

    def get(self, *args: str, context: str) -> Any:
        return self.server.get(*args, context=context)
