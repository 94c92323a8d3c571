"""The addressing plan of the embedded clusters (pure: no I/O).

For the cluster at position k (1..200) of the fleet:

- Pod CIDR ``10.k.0.0/17``; the node's own address is its last usable one, ``10.k.127.254``;
- Service CIDR ``10.k.128.0/17``; its first address ``10.k.128.1`` is the ``kubernetes`` Service;
- LoadBalancer ("cloud") pool ``172.20.k.0/24``.

These addresses exist only inside the installation's fabric namespace and the Pods' namespaces.
The names of the namespaces and links are derived here too, so every component agrees on them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass

MAX_CLUSTERS = 200
GATEWAY_IP = ipaddress.IPv4Address("169.254.1.1")
"""The link-local next hop every Pod routes through (answered by proxy ARP on the fabric side)."""

_NAME_SAFE = re.compile(r"[^a-z0-9-]")


@dataclass(frozen=True)
class ClusterNet:
    """The address ranges of one embedded cluster, by its index in the fleet."""

    index: int

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, int):
            raise TypeError(f"cluster index must be an int, not {type(self.index).__name__}")
        if not 1 <= self.index <= MAX_CLUSTERS:
            raise ValueError(f"cluster index {self.index} is outside 1..{MAX_CLUSTERS}")

    @property
    def pod_cidr(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"10.{self.index}.0.0/17")

    @property
    def node_ip(self) -> ipaddress.IPv4Address:
        return ipaddress.IPv4Address(f"10.{self.index}.127.254")

    @property
    def service_cidr(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"10.{self.index}.128.0/17")

    @property
    def kubernetes_service_ip(self) -> ipaddress.IPv4Address:
        return ipaddress.IPv4Address(f"10.{self.index}.128.1")

    @property
    def lb_pool(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"172.20.{self.index}.0/24")

    def pod_ips(self) -> list[ipaddress.IPv4Address]:
        """Addresses a Pod may get, in allocation order (the node's address excluded)."""
        return [ip for ip in self.pod_cidr.hosts() if ip != self.node_ip and ip.packed[3] != 0]

    def lb_ips(self) -> list[ipaddress.IPv4Address]:
        """Addresses the cloud load balancer hands out, in allocation order."""
        return list(self.lb_pool.hosts())

    def owns_pod_ip(self, ip: str) -> bool:
        return _in(ip, self.pod_cidr)

    def owns_service_ip(self, ip: str) -> bool:
        return _in(ip, self.service_cidr)

    def owns_lb_ip(self, ip: str) -> bool:
        return _in(ip, self.lb_pool)


def _in(ip: str, net: ipaddress.IPv4Network) -> bool:
    try:
        return ipaddress.ip_address(ip) in net
    except ValueError:
        return False


def _short_hash(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def fabric_name(installation_id: str) -> str:
    """The fabric namespace's name for one installation (``vsa-fab-<hash>``)."""
    if not installation_id:
        raise ValueError("installation id must not be empty")
    return f"vsa-fab-{_short_hash(installation_id, 10)}"


def pod_netns_name(fabric: str, pod_uid: str) -> str:
    """The name (under /run/netns) of a Pod's network namespace in ``fabric``."""
    if not pod_uid:
        raise ValueError("pod uid must not be empty")
    uid = _NAME_SAFE.sub("", pod_uid.lower())[:36]
    return f"{fabric}-pod-{uid}"


def veth_name(pod_uid: str) -> str:
    """The fabric-side veth name of a Pod (``vp`` + 12 hex digits: 14 chars, under IFNAMSIZ)."""
    if not pod_uid:
        raise ValueError("pod uid must not be empty")
    return f"vp{_short_hash(pod_uid, 12)}"


def cluster_table_name(net: ClusterNet) -> str:
    """The nft table (family ip) holding one cluster's Service rules inside the fabric."""
    return f"vsa_svc_{net.index}"
