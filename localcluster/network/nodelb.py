"""The node-address load balancer (``--node-network``): LoadBalancer Services served on the node's address.

Instead of the cloud pool (`cloudlb`), each LoadBalancer Service of our class gets the node's own
address as ``status.loadBalancer.ingress[{ip, ipMode: Proxy}]``, and the node DNATs
``<node address>:<port>`` to the Service's clusterIP (`nodenet.Uplink.program`), as k3s' ServiceLB
does on a node. Ports are first come, first served: the oldest Service (creation time, then name)
claims a (protocol, port); a Service any of whose ports another one holds gets no ingress and waits
(a warning), and takes them once that Service is gone. The node's own listening ports (its API
server's, its kubelet's: *reserved*) are held by the node itself and never handed out, so no
namespace user's Service can cut the node's clients off. Like `cloudlb`, the state is the Services'
own status: a restarted process plans the same.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

from kube.controller import Runtime, Watch
from kube.rest import SERVICES, Kube, Obj, is_not_found
from localcluster.network.cloudlb import ingress_ips, is_ours
from localcluster.network.nodenet import NodePort, Uplink

log = logging.getLogger(__name__)

_ALL = "node-load-balancer"


@dataclass(frozen=True)
class NodeLbPlan:
    """The ingress each of our Services should carry (None: none) and the node ports to forward."""

    ingress: tuple[tuple[tuple[str, str], str | None], ...]
    ports: tuple[NodePort, ...]
    waiting: tuple[str, ...]  # "namespace/name: port P/proto held by other"


def _ports(svc: Obj) -> list[tuple[str, int]]:
    out = []
    for port in (svc.get("spec") or {}).get("ports") or []:
        proto = str(port.get("protocol") or "TCP").lower()
        if proto in ("tcp", "udp") and isinstance(port.get("port"), int):
            out.append((proto, int(port["port"])))
    return out


def _order(svc: Obj) -> tuple[str, str, str]:
    meta = svc.get("metadata") or {}
    return (str(meta.get("creationTimestamp") or ""), str(meta.get("namespace") or ""), str(meta.get("name")))


NODE_HOLDER = "the node"  # who holds a reserved port, in the waiting messages


def plan_node_lb(node_address: str, services: Iterable[Obj],
                 reserved: Iterable[tuple[str, int]] = ()) -> NodeLbPlan:
    """Who gets the node's address and which node ports lead where (pure; see the module docstring);
    `reserved` (protocol, port) pairs are the node's own and never go to a Service."""
    held: dict[tuple[str, int], str] = {(proto.lower(), port): NODE_HOLDER for proto, port in reserved}
    ingress: list[tuple[tuple[str, str], str | None]] = []
    ports: list[NodePort] = []
    waiting: list[str] = []
    for svc in sorted(services, key=_order):
        meta = svc.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name")))
        if not is_ours(dict(svc)):
            if node_address in ingress_ips(dict(svc)):
                ingress.append((key, None))  # no longer ours: release the address
            continue
        cluster_ip = str((svc.get("spec") or {}).get("clusterIP") or "")
        wanted = _ports(svc)
        clash = next(((p, held[p]) for p in wanted if p in held), None)
        if clash is not None or not cluster_ip or cluster_ip == "None":
            if clash is not None:
                waiting.append(f"{key[0]}/{key[1]}: port {clash[0][1]}/{clash[0][0]} held by {clash[1]}")
            ingress.append((key, None))
            continue
        held.update((p, f"{key[0]}/{key[1]}") for p in wanted)
        ports += [NodePort(proto, number, cluster_ip, f"{key[0]}/{key[1]}") for proto, number in wanted]
        ingress.append((key, node_address))
    return NodeLbPlan(tuple(ingress), tuple(sorted(ports)), tuple(waiting))


class NodeLoadBalancer:
    """Writes the node address into our LoadBalancer Services and programs the node's ports."""

    name = "node-load-balancer"

    def __init__(self, runtime: Runtime, kube: Kube, uplink: Uplink,
                 reserved: Iterable[tuple[str, int]] = ()) -> None:
        self.runtime = runtime
        self.kube = kube
        self.uplink = uplink
        self.reserved: set[tuple[str, int]] = {(proto.lower(), port) for proto, port in reserved}
        self.watches: Sequence[Watch] = (Watch(SERVICES, lambda _obj: [_ALL]),)
        self._reported: set[str] = set()
        runtime.add(self).add(_ALL)

    def reserve(self, protocol: str, port: int) -> None:
        """Hold `port` for the node (a port it learns late, as the kubelet's); before the runtime starts."""
        self.reserved.add((protocol.lower(), port))

    def stop(self) -> None:
        """Nothing to release: the table stays for the next process, the allocation is in the Services."""

    def reconcile(self, key: Hashable) -> float | None:
        services = list(self.runtime.cache(SERVICES).items())
        plan = plan_node_lb(self.uplink.node_address, services, self.reserved)
        self.uplink.program(plan.ports)
        for reason in plan.waiting:
            if reason not in self._reported:
                self._reported.add(reason)
                log.warning("LoadBalancer Service waits for a node port: %s", reason)
        current = {(str(s["metadata"].get("namespace") or ""), str(s["metadata"]["name"])): s for s in services}
        for (namespace, name), ip in plan.ingress:
            svc = current.get((namespace, name))
            if svc is None:
                continue
            have = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or None
            want = [{"ip": ip, "ipMode": "Proxy"}] if ip else None
            if have != want:
                self._write(namespace, name, want)
        return None

    def _write(self, namespace: str, name: str, ingress: list[Obj] | None) -> None:
        try:
            self.kube.patch_status(SERVICES, name, {"loadBalancer": {"ingress": ingress}}, namespace)
            log.info("%s/%s: load-balancer ingress %s", namespace, name, ingress)
        except Exception as exc:
            if not is_not_found(exc):
                raise
