"""The node's own network, for a cluster that runs alone in a container (``--node-network``).

On the host (`scripts/run`, the tests) the fabric has no link anywhere and Service addresses exist
only inside it. In a container of `docker-compose.yml` the container's network namespace is the
node's "host network", and the cluster must be reachable from, and reach, the other containers as
a real cluster's nodes are. Only then, behind the explicit ``--node-network`` flag, this module:

- joins the fabric to the node's namespace by a veth pair, the *uplink* (``vsa-uplink`` in the
  node's namespace, ``vsa-egress`` in the fabric, link-local addresses): the fabric's default route
  leads to the node, the node routes the cluster's Pod and Service ranges (``10.k.0.0/16``) back;
- masquerades what Pods send out of the node (Pod egress, as a node's SNAT does), so that a mover
  Pod reaches another container's address and the agent Pod the hub's; only to the node address's
  own subnet (the compose network): the node forwards nothing from the fabric anywhere else;
- replaces the cloud load balancer by a *node-address* load balancer, as k3s' ServiceLB does:
  every LoadBalancer Service of ours gets the node's address (``--node-address``) as its ingress,
  and the node DNATs ``<node address>:<port>`` to the Service's clusterIP, which the fabric's
  service proxy serves. One Service per port and protocol: a later one waits (no ingress, a
  warning), as on a ServiceLB node.

The nft table ``vsa_node`` (`render_node_table`, pure) is the whole node-side program, replaced in
one transaction; a forward filter drops what enters the uplink unless it was DNATed here or answers
a connection from inside. `Uplink.ensure` is idempotent (a restarted cluster process re-runs it).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from localcluster.network import netcmd
from localcluster.network.addressing import ClusterNet
from localcluster.network.fabric import Fabric

log = logging.getLogger(__name__)

NODE_LINK = "vsa-uplink"  # the uplink's end in the node's namespace
FABRIC_LINK = "vsa-egress"  # its end in the fabric (the fabric's forward chain accepts it)
NODE_SIDE = "169.254.2.1"
FABRIC_SIDE = "169.254.2.2"
NODE_TABLE = "vsa_node"


@dataclass(frozen=True, order=True)
class NodePort:
    """``<node address>:port`` forwarded to ``cluster_ip:port`` (one LoadBalancer Service port)."""

    protocol: str  # tcp | udp
    port: int
    cluster_ip: str
    service: str  # namespace/name, for the rule's comment


def cluster_range(net: ClusterNet) -> ipaddress.IPv4Network:
    """The Pod and Service ranges of the cluster (``10.k.0.0/16``): what the node routes to the fabric."""
    return ipaddress.IPv4Network(f"10.{net.index}.0.0/16")


def render_node_table(net: ClusterNet, node_address: str, ports: Iterable[NodePort],
                      subnet: ipaddress.IPv4Network) -> str:
    """The node's nft table: DNAT of the node ports, Pod egress masquerade to `subnet` (the node
    address's network) and nothing beyond it, the uplink's filter (pure)."""
    ipaddress.IPv4Address(node_address)  # ValueError on anything else
    inner = cluster_range(net)
    dnat = [f'        ip daddr {node_address} {p.protocol} dport {p.port} dnat to {p.cluster_ip}:{p.port} '
            f'comment "{_quote(p.service)}"' for p in sorted(set(ports))]
    lines = [f"table ip {NODE_TABLE}", f"delete table ip {NODE_TABLE}", f"table ip {NODE_TABLE} {{",
             "    chain prerouting {", "        type nat hook prerouting priority dstnat; policy accept;",
             *dnat, "    }",
             "    chain postrouting {", "        type nat hook postrouting priority srcnat; policy accept;",
             f'        ip saddr {inner} ip daddr {subnet} oifname != "{NODE_LINK}" masquerade', "    }",
             "    chain forward {", "        type filter hook forward priority filter; policy accept;",
             f'        iifname "{NODE_LINK}" ct state established,related accept',
             f'        iifname "{NODE_LINK}" ip daddr != {subnet} drop',
             f'        oifname "{NODE_LINK}" ct state established,related accept',
             f'        oifname "{NODE_LINK}" ct status dnat accept',
             f'        oifname "{NODE_LINK}" drop', "    }", "}", ""]
    return "\n".join(lines)


def _quote(text: str) -> str:
    return "".join(c for c in text if c.isalnum() or c in "/:-_.")[:120]


CONTAINER_MARKERS = ("run/.containerenv", ".dockerenv")  # Podman's, Docker's


def inside_container(root: Path = Path("/")) -> bool:
    """Whether this process runs in a container (Podman's or Docker's marker file under `root`): the
    only place ``--node-network`` may route and masquerade (never the shared host's namespace)."""
    return any((root / marker).exists() for marker in CONTAINER_MARKERS)


def reserved_port(text: str) -> tuple[str, int]:
    """``PORT[/PROTO]`` (tcp by default) as (protocol, port), for ``--node-reserved-port``."""
    number, _, proto = text.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp") or not number.isdigit() or not 0 < int(number) < 65536:
        raise argparse.ArgumentTypeError(f"not PORT[/tcp|udp]: {text!r}")
    return proto, int(number)


def node_subnet(address: str) -> ipaddress.IPv4Network:
    """The network of the namespace's interface address `address` (the compose network); RuntimeError
    when no interface of this namespace holds it."""
    out = netcmd.run(["ip", "-j", "-4", "addr", "show"])
    for link in json.loads(out or "[]"):
        for info in link.get("addr_info") or []:
            if info.get("family") == "inet" and info.get("local") == address:
                return ipaddress.IPv4Network(f"{address}/{info['prefixlen']}", strict=False)
    raise RuntimeError(f"no interface of this network namespace holds the node address {address}")


def detect_node_address() -> str:
    """The node's address: the first global IPv4 address of the namespace (the container's, on its
    compose network), the uplink's own excluded; RuntimeError when there is none."""
    out = netcmd.run(["ip", "-j", "-4", "addr", "show", "scope", "global"])
    for link in json.loads(out or "[]"):
        if link.get("ifname") == NODE_LINK:
            continue
        for info in link.get("addr_info") or []:
            if info.get("family") == "inet" and info.get("local"):
                return str(info["local"])
    raise RuntimeError("no global IPv4 address in this network namespace: give --node-address")


class Uplink:
    """The fabric's link to the node's namespace and the node's nft table (see the module docstring)."""

    def __init__(self, fabric: Fabric, net: ClusterNet, node_address: str) -> None:
        self.fabric = fabric
        self.net = net
        self.node_address = str(ipaddress.IPv4Address(node_address))
        self.subnet = node_subnet(self.node_address)
        self._applied: str | None = None

    def ensure(self) -> None:
        """Make the veth pair, addresses and routes if missing, forwarding on, the table applied."""
        fab = self.fabric.name
        if not _link_exists(NODE_LINK):
            netcmd.run(["ip", "-n", fab, "link", "delete", FABRIC_LINK], check=False)  # a half-made pair
            netcmd.run(["ip", "link", "add", NODE_LINK, "type", "veth", "peer", "name", FABRIC_LINK, "netns", fab])
        netcmd.run(["ip", "addr", "replace", f"{NODE_SIDE}/30", "dev", NODE_LINK])
        netcmd.run(["ip", "link", "set", NODE_LINK, "up"])
        netcmd.run(["ip", "-n", fab, "addr", "replace", f"{FABRIC_SIDE}/30", "dev", FABRIC_LINK])
        netcmd.run(["ip", "-n", fab, "link", "set", FABRIC_LINK, "up"])
        netcmd.run(["ip", "-n", fab, "route", "replace", "default", "via", NODE_SIDE, "dev", FABRIC_LINK])
        netcmd.run(["ip", "route", "replace", str(cluster_range(self.net)), "via", FABRIC_SIDE, "dev", NODE_LINK])
        netcmd.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        self.program([])
        log.info("cluster %d: node network up (node address %s, uplink %s)", self.net.index, self.node_address,
                 NODE_LINK)

    def program(self, ports: Sequence[NodePort]) -> None:
        """Replace the node's table with one forwarding `ports` (no-op when unchanged)."""
        text = render_node_table(self.net, self.node_address, ports, self.subnet)
        if text != self._applied:
            netcmd.run(["nft", "-f", "-"], stdin=text)
            self._applied = text


def _link_exists(name: str) -> bool:
    return bool(netcmd.run(["ip", "-o", "link", "show", "dev", name], check=False).strip())
