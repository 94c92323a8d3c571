"""The embedded platform the hub runs on: one API server process serving the hub cluster and the
managed clusters, one cluster process per cluster (`localcluster`: node, controllers, network,
storage), each managed cluster registered on the hub as OCM's registration would leave it.

Identities, as on a real fleet: the user's kubeconfig (`kubeconfig`) is an admin (`system:masters`);
so are the platform's own parts (registration, and the local deployer standing in for OCM's work
agent, which is cluster-admin on managed clusters in real OCM too). The hub's controllers get
`hub_kubeconfig`: a token of the `volsync-hub` ServiceAccount with the RBAC of `manifests/hub`
(applied here at start), and each agent `agent_kubeconfig`: a token of the agent ServiceAccount
the rendered manifests made, valid on its own cluster only and revoked (its token Secret deleted)
when the addon goes. See `embedded/credentials.py`.
"""

from __future__ import annotations

import argparse
import threading
from dataclasses import dataclass, field
from pathlib import Path

from embedded import credentials
from embedded.apiprocess import EmbeddedApi, register_cluster, start_api
from kube import clients
from kube.clock import SystemClock
from kube.rest import Kube
from localcluster.launcher import Fleet
from manifests import HUB_RBAC
from osutil.files import private_dir

HUB_NAMESPACE = "volsync-system"  # manifests/hub
HUB_SERVICE_ACCOUNT = "volsync-hub"
AGENT_COMPONENT = "volsync-agent"  # the credential label of the agents' token Secrets


@dataclass
class Platform:
    """The hub's `EmbeddedPlatform`: kubeconfigs, clusters, agent credentials, shutdown."""

    api: EmbeddedApi
    fleet: Fleet
    hub_context: str
    cluster_names: list[str]
    _kubes: dict[str, Kube] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (every cluster): the user's, registration's and the local deployer's."""
        return self.api.kubeconfig

    @property
    def hub_kubeconfig(self) -> Path:
        """The hub controllers' kubeconfig: the hub cluster only, as ServiceAccount volsync-hub."""
        return self.api.data_dir / "hub.kubeconfig"

    def admin(self, cluster: str) -> Kube:
        """The platform's own admin client of `cluster` (one per cluster, kept until `stop`)."""
        with self._lock:
            kube = self._kubes.get(cluster)
            if kube is None:
                kube = self._kubes[cluster] = Kube(clients.load(str(self.kubeconfig), cluster),
                                                   field_manager="volsync-embedded")
            return kube

    def install_hub_identity(self, timeout: float = 30.0) -> Path:
        """Apply the hub's Namespace, ServiceAccount and RBAC (`manifests/hub`) to the hub cluster and
        write `hub_kubeconfig` with its token (from a legacy token Secret, awaited up to `timeout`)."""
        kube = self.admin(self.hub_context)
        credentials.apply_files(kube, list(HUB_RBAC))
        token = credentials.service_account_token(kube, HUB_NAMESPACE, HUB_SERVICE_ACCOUNT, HUB_SERVICE_ACCOUNT,
                                                  timeout=timeout)
        return credentials.write_token_kubeconfig(self.hub_kubeconfig, self.api.url, self.hub_context, token,
                                                  self._ca(), HUB_SERVICE_ACCOUNT)

    def register_clusters(self) -> None:
        """Each managed cluster as OCM's registration leaves it (with the platform's admin client)."""
        clock = SystemClock()
        for name in self.cluster_names:
            register_cluster(self.admin(self.hub_context), name, f"{self.api.url}/clusters/{name}", clock)

    def agent_kubeconfig(self, cluster: str, namespace: str, service_account: str, path: Path) -> Path:
        """Write (when it changed) `cluster`'s agent kubeconfig: that cluster only, with a token of the
        agent's ServiceAccount `namespace/service_account` (which the deployer applied before asking)."""
        token = credentials.service_account_token(self.admin(cluster), namespace, service_account, AGENT_COMPONENT)
        private_dir(path.parent)
        return credentials.write_token_kubeconfig(path, self.api.url, cluster, token, self._ca(), service_account)

    def revoke_agent(self, cluster: str) -> None:
        """Delete `cluster`'s agent token Secrets: the token is refused from the next request on, and a
        re-enabled addon's agent gets a new Secret and a new token."""
        credentials.revoke(self.admin(cluster), AGENT_COMPONENT)

    def _ca(self) -> bytes:
        return (self.api.data_dir / "pki" / "ca.crt").read_bytes()

    def stop(self) -> None:
        """Everything stops: the clusters' Pods and storage pools, the fabric, then the API server."""
        with self._lock:
            kubes, self._kubes = list(self._kubes.values()), {}
        for kube in kubes:
            clients.close(kube.api)
        try:
            self.fleet.stop()
        finally:
            self.api.stop()


def start_platform(args: argparse.Namespace) -> Platform:
    """Start (or adopt, after a crash) the API server and the cluster processes of the hub and the
    managed clusters named in `args`, and give the hub its identity."""
    data_dir = private_dir(args.data_dir.resolve())
    names = [n.strip() for n in args.clusters.split(",") if n.strip()]
    api_dir = data_dir / "api"
    fleet = Fleet(data_dir / "clusters", [args.hub_name, *names], api_dir / "kubeconfig", api_dir / "pki",
                  hide=[data_dir])  # Pods never read the hub's or the agents' files either
    api = start_api(api_dir, [args.hub_name, *names], port=args.api_port, extra_args=fleet.apiserver_args())
    try:
        fleet.start()
    except BaseException:
        api.stop()
        raise
    platform = Platform(api, fleet, args.hub_name, names)
    try:
        platform.install_hub_identity()
    except BaseException:
        platform.stop()
        raise
    return platform
