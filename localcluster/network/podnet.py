"""Per-Pod network namespaces joined to the fabric by routed veth pairs (Calico-style, no bridge).

`attach(uid)`: the Pod gets a namespace ``<fabric>-pod-<uid>`` whose ``eth0`` holds its address as
a /32, with a link-local gateway (169.254.1.1, a local address of the fabric answered by plain ARP)
and the default route through it; the fabric side of the pair (``vp<hash>``) carries the /32 route
back to the Pod. Allocations are persisted (atomic writes) in ``<state_dir>/pod-ips.json`` before
any link is made, so a restarted process gets the same address back for a Pod that is still
attached; a half-made attachment found on the way is torn down and made again. Namespaces of this
cluster that exist but are not recorded (a lost state file) are adopted at construction.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from pathlib import Path

from localcluster.network import netcmd
from localcluster.network.addressing import GATEWAY_IP, ClusterNet, pod_netns_name, veth_name
from localcluster.network.fabric import Fabric
from localcluster.node.netseam import PodAttachment
from osutil.files import private_dir, write_private

log = logging.getLogger(__name__)


class PodNetwork:
    """The Pod network of one cluster on one fabric (implements `localcluster.node.netseam.PodNetwork`)."""

    def __init__(self, fabric: Fabric, net: ClusterNet, state_dir: Path) -> None:
        self.fabric = fabric
        self.net = net
        self.state_dir = private_dir(Path(state_dir))
        self._file = self.state_dir / "pod-ips.json"
        self._lock = threading.Lock()
        fabric.ensure()
        fabric.add_local_address(str(net.node_ip))
        self._adopt_namespaces()

    # ----- the seam -----

    def host_ip(self) -> str:
        return str(self.net.node_ip)

    def attach(self, pod_uid: str) -> PodAttachment:
        with self._lock:
            allocations = self._load()
            ip = allocations.get(pod_uid)
            if ip is None:
                ip = self._free_ip(allocations)
                allocations[pod_uid] = ip
                self._save(allocations)
            ns = pod_netns_name(self.fabric.name, pod_uid)
            if not self._plumbed(pod_uid, ip):
                self._teardown(pod_uid, ip)
                self._plumb(pod_uid, ip)
            return PodAttachment(netns_path=str(netcmd.NETNS_DIR / ns), ip=ip)

    def detach(self, pod_uid: str) -> None:
        with self._lock:
            allocations = self._load()
            self._teardown(pod_uid, allocations.get(pod_uid))
            if allocations.pop(pod_uid, None) is not None:
                self._save(allocations)

    def attached(self) -> dict[str, str]:
        """Pod uid → IP of every Pod this network has an address for."""
        with self._lock:
            return dict(self._load())

    # ----- allocation state -----

    def _adopt_namespaces(self) -> None:
        """Add to the allocations the Pod namespaces of this cluster that exist but are not recorded
        (a lost or older state file): the address is read back from their ``eth0``."""
        prefix = self.fabric.pod_prefix
        with self._lock:
            allocations = self._load()
            found: dict[str, str] = {}
            for ns in netcmd.netns_names():
                uid = ns[len(prefix):] if ns.startswith(prefix) else ""
                if not uid or uid in allocations or pod_netns_name(self.fabric.name, uid) != ns:
                    continue
                out = netcmd.run(["ip", "-n", ns, "-o", "-4", "addr", "show", "dev", "eth0"], check=False)
                ips = [w.split("/")[0] for w in out.split() if w.endswith("/32")]
                if ips and self.net.owns_pod_ip(ips[0]) and ips[0] not in allocations.values():
                    found[uid] = ips[0]
            if found:
                log.info("adopting %d pod namespaces not in %s", len(found), self._file)
                self._save({**allocations, **found})

    def _load(self) -> dict[str, str]:
        try:
            raw = json.loads(self._file.read_text())
        except FileNotFoundError:
            return {}
        return {str(k): str(v) for k, v in raw.items() if self.net.owns_pod_ip(str(v))}

    def _save(self, allocations: dict[str, str]) -> None:
        write_private(self._file, json.dumps(allocations, indent=1, sort_keys=True) + "\n")

    def _free_ip(self, allocations: dict[str, str]) -> str:
        used = {ipaddress.IPv4Address(v) for v in allocations.values()}
        for ip in self.net.pod_ips():
            if ip not in used:
                return str(ip)
        raise RuntimeError(f"pod CIDR {self.net.pod_cidr} is exhausted")

    # ----- links and routes -----

    def _plumbed(self, pod_uid: str, ip: str) -> bool:
        ns = pod_netns_name(self.fabric.name, pod_uid)
        if not netcmd.netns_exists(ns):
            return False
        addrs = netcmd.run(["ip", "-n", ns, "-o", "-4", "addr", "show", "dev", "eth0"], check=False)
        route = netcmd.run(["ip", "-n", self.fabric.name, "-4", "route", "show", f"{ip}/32"], check=False)
        return f" {ip}/32 " in addrs and f"dev {veth_name(pod_uid)}" in route

    def _plumb(self, pod_uid: str, ip: str) -> None:
        fab, ns, veth = self.fabric.name, pod_netns_name(self.fabric.name, pod_uid), veth_name(pod_uid)
        netcmd.netns_add(ns)
        netcmd.run(["ip", "-n", fab, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
        netcmd.run(["ip", "-n", ns, "link", "set", "lo", "up"])
        netcmd.run(["ip", "-n", ns, "addr", "add", f"{ip}/32", "dev", "eth0"])
        netcmd.run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        netcmd.run(["ip", "-n", ns, "route", "add", f"{GATEWAY_IP}/32", "dev", "eth0", "scope", "link"])
        netcmd.run(["ip", "-n", ns, "route", "add", "default", "via", str(GATEWAY_IP), "dev", "eth0"])
        netcmd.run(["ip", "-n", fab, "link", "set", veth, "up"])
        netcmd.run(["ip", "-n", fab, "route", "replace", f"{ip}/32", "dev", veth, "scope", "link"])
        log.info("pod %s attached: %s in %s", pod_uid, ip, ns)

    def _teardown(self, pod_uid: str, ip: str | None) -> None:
        fab = self.fabric.name
        netcmd.netns_delete(pod_netns_name(fab, pod_uid))
        netcmd.run(["ip", "-n", fab, "link", "delete", veth_name(pod_uid)], check=False)
        if ip is not None:
            netcmd.run(["ip", "-n", fab, "route", "delete", f"{ip}/32"], check=False)
