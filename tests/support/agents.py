"""Real `volsync-agent` processes, one per managed cluster, beside a real embedded API server.

Each agent runs under exactly the RBAC the hub renders for it: the rendered Namespace,
ServiceAccount, ClusterRole and ClusterRoleBinding are applied to its cluster (as admin, as the
work agent would), and the agent's kubeconfig holds a token of that ServiceAccount minted with
`kubectl create token`, valid on that cluster only.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from apiserver.authn import kubeconfig, write_kubeconfig
from hub import ocm, rendering
from localcluster.launcher import Fleet as Clusters
from support import processes
from support.apiserver import ROOT, ApiServer

RBAC_KINDS = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding")


def agent_rbac(cluster: str) -> list[dict[str, Any]]:
    """The rendered manifests that give `cluster`'s agent its identity and rights."""
    manifests = rendering.render(cluster, {"metadata": {"name": ocm.ADDON, "namespace": cluster}}, None,
                                 hub_url="https://hub.invalid", token="unused", ca_bundle="", image="unused")
    return [m for m in manifests if m.get("kind") in RBAC_KINDS]


def agent_kubeconfig(server: ApiServer, cluster: str, path: Path) -> Path:
    """Apply the agent's rendered RBAC to `cluster` (admin) and write a kubeconfig (0600) holding only
    that cluster and a token of the rendered ServiceAccount (`kubectl create token`, 24 h)."""
    server.apply_yaml(yaml.safe_dump_all(agent_rbac(cluster)), context=cluster)
    namespace = rendering.install_namespace(None)
    token = server.kubectl("create", "token", ocm.AGENT, "-n", namespace, "--duration", "24h",
                           context=cluster).stdout.strip()
    write_kubeconfig(path, kubeconfig(server.url, [cluster], {cluster: token}, server.ca_file.read_bytes(),
                                      user=ocm.AGENT))
    return path


class Agent:
    """A `volsync-agent` process for `cluster`; its log and kubeconfig live in `base`."""

    def __init__(self, server: ApiServer, cluster: str, base: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.server = server
        self.cluster = cluster
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self.log = base / f"agent-{cluster}.log"
        self.kubeconfig = base / f"agent-{cluster}.kubeconfig"

    def start(self, timeout: float = 30.0) -> Agent:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        if not self.kubeconfig.exists():
            agent_kubeconfig(self.server, self.cluster, self.kubeconfig)
        cmd = [sys.executable, "-m", "agent.main", "--kubeconfig", str(self.kubeconfig),
               "--context", self.cluster, "--cluster-name", self.cluster, "--log-level", "info", *self.extra_args]
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
        """Start everything; if any part fails to start, stop what did (no process outlives a failed start)."""
        try:
            self.server.start()
            self.clusters.start()
            for cluster in ("cluster1", "cluster2"):
                self.agents[cluster] = Agent(self.server, cluster, self.base / "agents", self.agent_args).start()
        except BaseException:
            self.stop()
            raise
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
