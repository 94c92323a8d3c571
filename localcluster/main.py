"""One embedded cluster's components in one process: what kube-controller-manager, the kubelet,
kube-proxy, a cloud controller and a CSI driver do on a real cluster.

    python -m localcluster.main --cluster cluster1 --index 2 --kubeconfig K --context cluster1 \\
        --state-dir DIR --fabric NETNS --pki-dir PKI

All of them read and write the cluster's API only (one `Kube`, one controller `Runtime`, so no
resource is watched twice). Prints `localcluster ready {json}` once serving. SIGTERM is a full node
shutdown (Pods stopped, the storage pool released); SIGKILL is a crash: containers keep running and
the next process adopts them (the launcher restarts it).

OCM: with `--ocm-hub` the process also runs the cluster manager; with `--hub-kubeconfig` (and
`--hub-context`) the cluster is a managed cluster and runs what a klusterlet runs, the registration
agent and the work agent (`localcluster.ocm`), which reach the hub in the background with back-off.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

from kube import clients
from kube.controller import Runtime
from kube.rest import PODS, Kube
from localcluster import controllers
from localcluster.network.addressing import ClusterNet
from localcluster.network.cloudlb import CloudLoadBalancer
from localcluster.network.fabric import Fabric
from localcluster.network.nodelb import NodeLoadBalancer
from localcluster.network.nodenet import Uplink, detect_node_address, inside_container, reserved_port
from localcluster.network.podnet import PodNetwork
from localcluster.network.proxy import ServiceProxy
from localcluster.network.servicerules import service_key
from localcluster.node.kubelet import Node
from localcluster.node.kubeletserver import KubeletServer
from localcluster.ocm import clustermanager
from localcluster.ocm.klusterlet import Klusterlet
from localcluster.storage.driver import StorageDriver
from osutil import procs
from osutil.certs import issue_certificate, kubelet_server_name
from osutil.files import private_dir

log = logging.getLogger("localcluster")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="localcluster", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--cluster", required=True, help="the cluster's name (its kubeconfig context by default)")
    p.add_argument("--index", type=int, required=True, help="position in the fleet: the addressing plan's index")
    p.add_argument("--kubeconfig", required=True, type=Path)
    p.add_argument("--context", help="kubeconfig context (default: the cluster's name)")
    p.add_argument("--state-dir", required=True, type=Path, help="node, network and storage state")
    p.add_argument("--fabric", required=True, help="the installation's fabric network namespace")
    p.add_argument("--pki-dir", required=True, type=Path, help="the installation CA (kubelet certificates)")
    p.add_argument("--node-name", help="default: <cluster>-node")
    p.add_argument("--hide", action="append", type=Path, default=[],
                   help="a host path Pods of host-root images may not read (repeatable; the state dir, the "
                   "CA's and the kubeconfig's directories always are)")
    p.add_argument("--loopback-service", action="append", type=service_key, default=[], metavar="NAMESPACE/NAME",
                   help="a selector-less Service whose endpoint at this node's address (or 127.0.0.1) the service "
                   "proxy serves from the host's 127.0.0.1, as it does default/kubernetes (repeatable; see "
                   "localcluster.network.servicerules)")
    p.add_argument("--ocm-hub", action="store_true",
                   help="this cluster is the OCM hub: run the cluster manager (auto-accept, cluster namespaces, "
                   "lease expiry)")
    p.add_argument("--hub-kubeconfig", type=Path,
                   help="this cluster is an OCM managed cluster of the hub this kubeconfig reaches: run the "
                   "registration agent and the work agent (both connect in the background, with back-off)")
    p.add_argument("--hub-context", help="the hub's context in --hub-kubeconfig (default: its current context)")
    p.add_argument("--work-status-sync-seconds", type=float, default=30.0,
                   help="the work agent's resync of every ManifestWork (status feedback Poll, drift repair)")
    p.add_argument("--node-network", action="store_true",
                   help="the cluster runs alone in a container whose network namespace is its node's: link the "
                   "fabric to it (Pod egress, masqueraded) and serve LoadBalancer Services on the node's address "
                   "instead of the cloud pool (localcluster.network.nodenet; never on a shared host)")
    p.add_argument("--node-address", help="with --node-network: the node's address (default: the namespace's "
                   "first global IPv4 address)")
    p.add_argument("--node-reserved-port", action="append", type=reserved_port, default=[], metavar="PORT[/PROTO]",
                   help="with --node-network: a port the node itself serves on its address, never given to a "
                   "LoadBalancer Service (repeatable; the API server's and the kubelet's always are)")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


class ClusterProcess:
    """The components of one cluster, built in dependency order and stopped in reverse."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.name: str = args.cluster
        self.node_name: str = args.node_name or f"{self.name}-node"
        state = private_dir(args.state_dir.resolve())
        self.api = clients.load(str(args.kubeconfig), args.context or self.name)
        self.kube = Kube(self.api, field_manager="localcluster")
        net = ClusterNet(args.index)
        self.fabric = Fabric(args.fabric)
        self.fabric.ensure()
        self.fabric.hold()
        self.runtime = Runtime(self.kube, workers=2)
        self.storage = StorageDriver(self.runtime, self.kube, state / "storage", node_name=self.node_name)
        self.podnet = PodNetwork(self.fabric, net, state / "network")
        # Pods of host-root images must not read the installation's keys, tokens, stores or other nodes
        hidden = [state.parent, args.pki_dir.resolve().parent, args.kubeconfig.resolve().parent, *args.hide]
        self.node = Node(self.runtime, self.kube, name=self.node_name, state_dir=state / "node", network=self.podnet,
                         hide=hidden)
        controllers.register(self.runtime, self.kube)
        if args.ocm_hub:
            clustermanager.register(self.runtime, self.kube)
        self.klusterlet = Klusterlet(self.runtime, self.api, self.name, hub_kubeconfig=args.hub_kubeconfig,
                                     hub_context=args.hub_context,
                                     status_sync_seconds=args.work_status_sync_seconds) if args.hub_kubeconfig else None
        self.proxy = ServiceProxy(self.runtime, self.kube, self.fabric, net, args.loopback_service)
        self.cloud: CloudLoadBalancer | NodeLoadBalancer
        if args.node_network:  # a container's own namespace only (see nodenet)
            uplink = Uplink(self.fabric, net, args.node_address or detect_node_address())
            uplink.ensure()
            api_port = urlsplit(self.api.configuration.host).port or 443  # the API server's, on 0.0.0.0
            self.cloud = NodeLoadBalancer(self.runtime, self.kube, uplink,
                                          [("tcp", api_port), *args.node_reserved_port])
        else:
            self.cloud = CloudLoadBalancer(self.runtime, self.kube, net)
        cert, key = issue_certificate(args.pki_dir, f"kubelet-{self.name}-{self.node_name}",
                                      cn=f"system:node:{self.node_name}",
                                      sans=[kubelet_server_name(self.name, self.node_name), "127.0.0.1"])
        self.kubelet_api = KubeletServer(self.node.containers, cert=cert, key=key,
                                         client_ca=args.pki_dir / "ca.crt", pods=self.runtime.cache(PODS).get)

    def start(self) -> int:
        self.storage.start()
        port = self.kubelet_api.start()
        if isinstance(self.cloud, NodeLoadBalancer):
            self.cloud.reserve("tcp", port)
        self.node.start()
        self.node.set_kubelet_port(port)
        self.runtime.start(timeout=60)
        if self.klusterlet is not None:  # background threads: an unreachable hub never blocks the cluster
            self.klusterlet.start()
        return port

    def stop(self) -> None:
        """A full node shutdown: Pods stopped, forwarders closed, the storage pool released."""
        if self.klusterlet is not None:
            self.klusterlet.stop()
        self.node.stop(kill_pods=True)
        self.runtime.stop()
        self.kubelet_api.stop()
        self.proxy.stop()
        self.cloud.stop()
        self.storage.stop(release=True)
        clients.close(self.api)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.node_network and not inside_container():
        print("localcluster: --node-network only inside a container (no /run/.containerenv or /.dockerenv): "
              "it routes and masquerades Pod traffic out of this network namespace", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    cluster = ClusterProcess(args)
    port = cluster.start()
    procs.announce("localcluster", cluster=cluster.name, node=cluster.node_name, kubeletPort=port)
    stop.wait()
    log.info("%s: shutting down the node", cluster.name)
    cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
