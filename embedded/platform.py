"""The embedded platform the hub runs on: one API server process serving the hub cluster and the
managed clusters, one cluster process per cluster (`localcluster`: node, controllers, network,
storage), each managed cluster registered on the hub as OCM's registration would leave it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from embedded.apiprocess import EmbeddedApi, register_cluster, start_api
from kube.clock import SystemClock
from kube.rest import Kube
from localcluster.launcher import Fleet
from osutil.files import private_dir


@dataclass
class Platform:
    """The hub's `EmbeddedPlatform`: kubeconfig, clusters, agent credentials, shutdown."""

    api: EmbeddedApi
    fleet: Fleet
    hub_context: str
    cluster_names: list[str]

    @property
    def kubeconfig(self) -> Path:
        return self.api.kubeconfig

    def register_clusters(self, kube: Kube) -> None:
        clock = SystemClock()
        for name in self.cluster_names:
            register_cluster(kube, name, f"{self.api.url}/clusters/{name}", clock)

    def agent_kubeconfig(self, cluster: str, path: Path) -> Path:
        return self.api.agent_kubeconfig(cluster, path)

    def revoke_agent(self, cluster: str) -> None:
        self.api.revoke_agent(cluster)

    def stop(self) -> None:
        """Everything stops: the clusters' Pods and storage pools, the fabric, then the API server."""
        try:
            self.fleet.stop()
        finally:
            self.api.stop()


def start_platform(args: argparse.Namespace) -> Platform:
    """Start (or adopt, after a crash) the API server and the cluster processes of the hub and the
    managed clusters named in `args`."""
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
    return Platform(api, fleet, args.hub_name, names)
