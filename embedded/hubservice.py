"""The hub's REST API published on the hub cluster, so that agent Pods of every cluster reach it.

In the embedded default the hub is a host process listening on ``127.0.0.1:<port>``, which no Pod
can reach (Pods live in the installation's network fabric). As a real hub is published, the
platform makes it the LoadBalancer Service ``volsync-system/volsync-hub`` of the hub cluster, port
443, with no selector and hand-written Endpoints, the way a selector-less Service names a process
running on a node's host network:

- Endpoints ``<hub node InternalIP>:<port>`` (the API server refuses loopback endpoint addresses
  from any client, as kube-apiserver does), port name ``https``;
- the hub cluster's cloud load balancer (`localcluster/network/cloudlb.py`) gives the Service an
  ingress address in the hub cluster's pool, reachable from every cluster's Pods through the fabric;
- the hub cluster's service proxy, started with ``--loopback-service volsync-system/volsync-hub``
  (`Fleet(loopback_services=...)`), serves the clusterIP and that address from ``127.0.0.1:<port>``
  (`localcluster/network/servicerules.py` says what this trusts).

`publish_hub_rest` is idempotent (server-side apply, our field manager): calling it again with
another port moves the Endpoints, the address stays. It returns the agents' hub URL,
``https://<ingress IP>:443``, which the hub puts into its serving certificate (`hub/hubtls.py`, an IP
SAN from ``--hub-url``).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any

from kube.rest import ENDPOINTS, NAMESPACES, NODES, SERVICES, Kube

HUB_NAMESPACE = "volsync-system"
HUB_SERVICE = "volsync-hub"
PORT_NAME = "https"
SERVICE_PORT = 443
_POLL = 0.1


def service_body() -> dict[str, Any]:
    """The Service: type LoadBalancer (our cloud's class), no selector, port 443."""
    return {"metadata": {"name": HUB_SERVICE, "namespace": HUB_NAMESPACE,
                         "labels": {"app.kubernetes.io/name": HUB_SERVICE, "app.kubernetes.io/part-of": "volsync"}},
            "spec": {"type": "LoadBalancer",
                     "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": SERVICE_PORT,
                                "protocol": "TCP"}]}}


def endpoints_body(node_ip: str, port: int) -> dict[str, Any]:
    """The Service's Endpoints: the hub node's address, the REST API's port on the host."""
    return {"metadata": {"name": HUB_SERVICE, "namespace": HUB_NAMESPACE,
                         "labels": {"app.kubernetes.io/name": HUB_SERVICE}},
            "subsets": [{"addresses": [{"ip": node_ip}],
                         "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]}]}


def node_address(node: dict[str, Any]) -> str | None:
    """A Node's IPv4 InternalIP, if it reports one."""
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            try:
                if isinstance(ipaddress.ip_address(str(addr.get("address"))), ipaddress.IPv4Address):
                    return str(addr["address"])
            except ValueError:
                continue
    return None


def ingress_address(svc: dict[str, Any] | None) -> str | None:
    """The first ingress IP the load balancer wrote into a Service's status."""
    for ingress in ((svc or {}).get("status") or {}).get("loadBalancer", {}).get("ingress") or []:
        if ingress.get("ip"):
            return str(ingress["ip"])
    return None


def _until(what: str, timeout: float, probe: Callable[[], str | None]) -> str:
    """`probe()` polled until it returns a value; RuntimeError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{what} within {timeout:.0f}s")
        time.sleep(_POLL)  # polling the hub cluster's API for another process's write, with a deadline


def _hub_node_address(admin: Kube) -> str | None:
    nodes = sorted(admin.list(NODES)[0], key=lambda n: str(n["metadata"]["name"]))
    return next((ip for ip in map(node_address, nodes) if ip), None)


def publish_hub_rest(admin: Kube, port: int, *, timeout: float = 30.0) -> str:
    """Publish ``127.0.0.1:port`` as Service volsync-system/volsync-hub of the hub cluster `admin`
    talks to; the agents' hub URL ``https://<ingress IP>:443`` (see the module docstring)."""
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is outside 1..65535")
    deadline = time.monotonic() + timeout
    node_ip = _until("no Node of the hub cluster reported an InternalIP", timeout, lambda: _hub_node_address(admin))
    admin.apply(NAMESPACES, {"metadata": {"name": HUB_NAMESPACE}})
    admin.apply(SERVICES, service_body())
    admin.apply(ENDPOINTS, endpoints_body(node_ip, port))
    left = max(deadline - time.monotonic(), 1.0)
    ip = _until(f"Service {HUB_NAMESPACE}/{HUB_SERVICE} got no load-balancer address (is the hub cluster's "
                "cloud load balancer running?)", left,
                lambda: ingress_address(admin.get(SERVICES, HUB_SERVICE, HUB_NAMESPACE)))
    return f"https://{ip}:{SERVICE_PORT}"
