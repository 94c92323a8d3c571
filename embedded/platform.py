"""The embedded platform the hub runs on: one API server process serving the hub cluster and the
managed clusters, and one cluster process per cluster (`localcluster`: node, controllers, network,
storage, and the OCM parts), the way a real OCM fleet is laid out:

- the hub cluster's process runs the cluster manager (`--ocm-hub`): it accepts the clusters that
  register (the embedded default stands in for `clusteradm accept`), makes their namespaces and
  marks a cluster whose lease stopped being renewed `Unknown`;
- each managed cluster's process runs a registration agent (creates and keeps its ManagedCluster,
  renews its lease) and a work agent (applies the ManifestWorks of its cluster namespace, reports
  their status); the hub's agent Deployment then runs as a Pod on the cluster's node.

Nothing here registers a cluster or starts an agent: `start_platform` only waits (bounded) until
every managed cluster is accepted, joined and available, so that `kubectl get managedclusters` is
right when the hub prints its ready line. `publish_rest` makes the hub's REST API (a host process
on 127.0.0.1) reachable from the clusters' Pods as the LoadBalancer Service
`volsync-system/volsync-hub` of the hub cluster (`embedded/hubservice.py`; the hub cluster's
service proxy forwards it to the loopback listener, `Fleet(loopback_services=...)`).

Identities, as on a real fleet: the user's kubeconfig (`kubeconfig`) is an admin (`system:masters`),
and so are the platform's own parts (the cluster processes, as kube-controller-manager, the kubelet
and OCM's agents are). The hub's controllers get `hub_kubeconfig`: a token of the `volsync-hub`
ServiceAccount with the RBAC of `manifests/hub` (applied here at start; `embedded/credentials.py`).
An agent's identity is its Pod's projected ServiceAccount token; the work agent deletes that
ServiceAccount with the addon, and the API server refuses its tokens from then on.
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedded import credentials
from embedded.apiprocess import EmbeddedApi, start_api
from embedded.hubservice import publish_hub_rest
from hub import ocm
from kube import clients, objects
from kube.rest import Kube
from localcluster.launcher import Fleet
from manifests import HUB_RBAC
from osutil.files import private_dir

HUB_NAMESPACE = "volsync-system"  # manifests/hub
HUB_SERVICE_ACCOUNT = "volsync-hub"
HUB_SERVICE = (HUB_NAMESPACE, "volsync-hub")  # the REST API's Service on the hub cluster
JOIN_CONDITIONS = ("HubAcceptedManagedCluster", "ManagedClusterJoined", "ManagedClusterConditionAvailable")
JOIN_TIMEOUT = 90.0


@dataclass
class Platform:
    """The hub's `EmbeddedPlatform`: kubeconfigs, clusters, the REST API's publication, shutdown."""

    api: EmbeddedApi
    fleet: Fleet
    hub_context: str
    cluster_names: list[str]
    _kubes: dict[str, Kube] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (every cluster): the user's, and the cluster processes'."""
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
                                                  (self.api.data_dir / "pki" / "ca.crt").read_bytes(),
                                                  HUB_SERVICE_ACCOUNT)

    def wait_joined(self, timeout: float = JOIN_TIMEOUT, poll: float = 0.1) -> None:
        """Return once every managed cluster's ManagedCluster is accepted, joined and available (their
        registration agents and the hub's cluster manager did it; `not_joined`); a `RuntimeError`
        naming what is missing, and where to look, after `timeout`."""
        hub = self.admin(self.hub_context)
        deadline = time.monotonic() + timeout
        while True:
            missing = {name: lacking for name in self.cluster_names
                       if (lacking := not_joined(hub.get(ocm.MANAGED_CLUSTERS, name)))}
            if not missing:
                return
            if time.monotonic() >= deadline:
                detail = "; ".join(f"{name}: {', '.join(lacking)}" for name, lacking in missing.items())
                raise RuntimeError(f"managed clusters not joined within {timeout:.0f}s ({detail}); see their "
                                   f"logs under {self.fleet.data_dir}/<cluster>/cluster.log")
            time.sleep(poll)  # polling the hub for the cluster processes' writes, with a deadline

    def publish_rest(self, port: int) -> str:
        """The REST API on the host's 127.0.0.1:`port` as Service volsync-system/volsync-hub of the hub
        cluster (LoadBalancer, port 443); the agents' hub URL, `https://<ingress IP>:443`."""
        return publish_hub_rest(self.admin(self.hub_context), port)

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


def not_joined(cluster: dict[str, Any] | None) -> list[str]:
    """The join conditions `cluster` (a ManagedCluster, None when absent) lacks: accepted and joined
    True, availability known. Available `Unknown` (its lease expired: a cluster frozen while an
    earlier hub ran) counts as known, so a restarted hub comes up and reports it as it is."""
    if cluster is None:
        return ["not registered"]
    conditions = (cluster.get("status") or {}).get("conditions")
    wanted = {t: ("True",) for t in JOIN_CONDITIONS} | {JOIN_CONDITIONS[-1]: ("True", "Unknown")}
    return [t for t, ok in wanted.items() if (objects.condition(conditions, t) or {}).get("status") not in ok]


def start_platform(args: argparse.Namespace) -> Platform:
    """Start (or adopt, after a crash) the API server and the cluster processes of the hub and the
    managed clusters named in `args`, give the hub its identity, and wait for the clusters to join."""
    data_dir = private_dir(args.data_dir.resolve())
    names = [n.strip() for n in args.clusters.split(",") if n.strip()]
    api_dir = data_dir / "api"
    fleet = Fleet(data_dir / "clusters", [args.hub_name, *names], api_dir / "kubeconfig", api_dir / "pki",
                  hide=[data_dir],  # Pods never read the hub's files either
                  hub=args.hub_name, loopback_services=[HUB_SERVICE])
    api = start_api(api_dir, [args.hub_name, *names], port=args.api_port, extra_args=fleet.apiserver_args())
    try:
        fleet.start()
    except BaseException:
        api.stop()
        raise
    platform = Platform(api, fleet, args.hub_name, names)
    try:
        platform.install_hub_identity()
        platform.wait_joined()
    except BaseException:
        platform.stop()
        raise
    return platform
