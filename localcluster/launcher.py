"""Start, adopt, supervise and stop the embedded clusters' components.

Each embedded cluster runs as one *cluster process* (`python -m localcluster.main`): its node
(kubelet + container runtime + kubelet API), its workload controllers, its network (Pod
namespaces, service proxy, cloud load balancer) and its storage driver, all talking to the
cluster's API through the admin kubeconfig as kube-controller-manager and the kubelet would.
The API server itself is started by the composition root with `apiserver_args()`.

Crash safety: cluster processes run in their own sessions and are announced through a ready file
(`osutil.procs`), so a launcher killed with SIGKILL leaves them running and the next launcher adopts
them; a cluster process killed with SIGKILL is restarted by the launcher's supervisor thread (its
Pods, whose containers outlive it, are adopted by the new node). `stop()` is a full shutdown: the
cluster processes stop their Pods, release their storage pools, and the fabric is removed.

    fleet = Fleet(data_dir, ["hub", "cluster1", "cluster2"], kubeconfig, pki_dir)
    args = fleet.apiserver_args()          # before the API server starts
    fleet.start()                          # once the API server serves
    ...
    fleet.stop()
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from localcluster.network.addressing import ClusterNet, fabric_name
from localcluster.network.fabric import Fabric, sweep_stale
from osutil import procs
from osutil.certs import issue_certificate
from osutil.files import private_dir

log = logging.getLogger("localcluster.launcher")

READY = "localcluster"
RESTART_DELAY = 1.0
RESTART_DELAY_MAX = 30.0


@dataclass(frozen=True)
class ClusterSpec:
    """One embedded cluster: its name and its position in the fleet (the addressing index)."""

    name: str
    index: int

    @property
    def net(self) -> ClusterNet:
        return ClusterNet(self.index)

    @property
    def node_name(self) -> str:
        return f"{self.name}-node"


class Fleet:
    """The cluster processes of one installation (see the module docstring)."""

    def __init__(self, data_dir: Path, names: list[str], kubeconfig: Path, pki_dir: Path, *,
                 hide: Sequence[Path] = (), loopback_services: Sequence[tuple[str, str]] = (),
                 hub: str | None = None, join: tuple[Path, str] | None = None,
                 node_network: bool = False) -> None:
        self.data_dir = private_dir(data_dir.resolve())
        # a hub elsewhere (another container's API server): (its kubeconfig, its context), joined by every
        # cluster of this fleet; exclusive with `hub`
        if hub is not None and join is not None:
            raise ValueError("a fleet either holds its OCM hub (hub=) or joins one elsewhere (join=)")
        self.join = join
        # the clusters run alone in containers: their node's namespace is the container's (nodenet)
        self.node_network = node_network
        # the OCM hub cluster: it runs the cluster manager, every other cluster joins it (ocm_flags)
        self.hub = hub
        # (namespace, name) of Services the hub cluster's proxy serves from the host's loopback (servicerules)
        self.loopback_services = tuple(loopback_services)
        self.clusters = [ClusterSpec(name, i + 1) for i, name in enumerate(names)]
        self.kubeconfig = kubeconfig
        self.pki_dir = pki_dir
        self.hide = [p.resolve() for p in hide]  # host paths Pods may not read (besides our own state)
        installation = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:8]
        self.fabric = Fabric(fabric_name(installation))
        self.daemons: dict[str, procs.Daemon] = {}
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    # -- before the API server ---------------------------------------------------------------------
    def kubelet_client_certificate(self) -> tuple[Path, Path]:
        """The API server's client certificate for the kubelets (issued from the installation CA)."""
        return issue_certificate(self.pki_dir, "apiserver-kubelet-client", cn="kube-apiserver-kubelet-client",
                                 sans=[], client=True, organization="system:masters")

    def apiserver_args(self) -> list[str]:
        """The API server flags this fleet needs: each cluster's Service range, the per-cluster
        listeners Pods reach as `kubernetes.default`, and the kubelet client certificate."""
        cert, key = self.kubelet_client_certificate()
        args = ["--cluster-listeners", "--kubelet-client-certificate", str(cert), "--kubelet-client-key", str(key),
                "--kubelet-certificate-authority", str(self.pki_dir / "ca.crt")]
        for spec in self.clusters:
            args += ["--service-cidr", f"{spec.name}={spec.net.service_cidr}"]
        return args

    # -- cluster processes -------------------------------------------------------------------------
    def command(self, spec: ClusterSpec) -> list[str]:
        state = self.data_dir / spec.name
        return [sys.executable, "-m", "localcluster.main", "--cluster", spec.name, "--index", str(spec.index),
                "--kubeconfig", str(self.kubeconfig), "--context", spec.name, "--state-dir", str(state),
                "--fabric", self.fabric.name, "--pki-dir", str(self.pki_dir),
                *[arg for path in self.hide for arg in ("--hide", str(path))], *self._loopback_flags(spec),
                *self._ocm_flags(spec)]

    def _ocm_flags(self, spec: ClusterSpec) -> list[str]:
        """``--ocm-hub`` for the hub cluster; the hub's kubeconfig context for every managed cluster (the
        `join` one when the hub is elsewhere); ``--node-network`` in a container."""
        node = ["--node-network"] if self.node_network else []
        if self.join is not None:
            return [*node, "--hub-kubeconfig", str(self.join[0]), "--hub-context", self.join[1]]
        if self.hub is None:
            return node
        if spec.name == self.hub:
            return [*node, "--ocm-hub"]
        return [*node, "--hub-kubeconfig", str(self.kubeconfig), "--hub-context", self.hub]

    def _loopback_flags(self, spec: ClusterSpec) -> list[str]:
        """``--loopback-service`` for the hub cluster (`hub`), or for every cluster when no hub is named."""
        if self.hub is not None and spec.name != self.hub:
            return []
        return [arg for ns, name in self.loopback_services for arg in ("--loopback-service", f"{ns}/{name}")]

    def start(self, timeout: float = 60.0) -> Fleet:
        """Sweep what crashed runs left, make the fabric, start or adopt every cluster process."""
        sweep_stale()
        self.fabric.ensure()
        self.fabric.hold()
        for spec in self.clusters:
            self.daemons[spec.name] = self._start_one(spec, timeout)
        self._supervisor = threading.Thread(target=self._supervise, name="localcluster-supervisor", daemon=True)
        self._supervisor.start()
        return self

    def _start_one(self, spec: ClusterSpec, timeout: float) -> procs.Daemon:
        state = private_dir(self.data_dir / spec.name)
        return procs.start(self.command(spec), READY, state / "ready.json", state / "cluster.log", timeout=timeout)

    def _supervise(self) -> None:
        """Restart a cluster process that died (kill -9, crash), with a growing delay."""
        delays = {spec.name: RESTART_DELAY for spec in self.clusters}
        while not self._stopping.wait(0.5):
            for spec in self.clusters:
                daemon = self.daemons.get(spec.name)
                if daemon is None or daemon.alive() or self._stopping.is_set():
                    continue
                log.warning("cluster process of %s (pid %d) is gone; restarting it", spec.name, daemon.pid)
                daemon.stop(timeout=0)  # reaped already by alive(); closes its pipe
                try:
                    self.daemons[spec.name] = self._start_one(spec, 60.0)
                    delays[spec.name] = RESTART_DELAY
                except (RuntimeError, OSError) as exc:
                    log.error("restarting %s failed: %s", spec.name, exc)
                    self._stopping.wait(delays[spec.name])
                    delays[spec.name] = min(delays[spec.name] * 2, RESTART_DELAY_MAX)

    def stop(self, timeout: float = 60.0) -> None:
        """Full shutdown: every cluster process stops its Pods and storage; the fabric goes."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)
        for daemon in self.daemons.values():
            daemon.stop(timeout=timeout)
        self.fabric.remove()
