"""What a cluster's Services mean for the fabric (pure: Kubernetes objects in, a plan and nft text out).

`plan_services` turns Services and their EndpointSlices (or, for a Service without slices, its v1
Endpoints) into frontends (``clusterIP:port`` and every ``status.loadBalancer.ingress[].ip:port``)
with their ready backends, and the *host backends* only a user-space forwarder can reach (see below).
Load-balancer addresses count only for our class's ``type: LoadBalancer`` Services and only inside
the cluster's own pool (another cluster's Pod or Service address must never become a frontend in the
shared fabric).

Host backends. Processes of the installation that serve the cluster from the host (the API server,
the hub's REST API) listen on the host's ``127.0.0.1`` only. Two kinds of Service may lead there:

- ``default/kubernetes``: its loopback endpoint (``127.0.0.1:<port>``, written by the API server
  itself) is forwarded, as always;
- the *loopback Services* the installation names (`plan_services`'s `loopback_services`, from the
  cluster process's ``--loopback-service NAMESPACE/NAME`` flag, which no cluster user can set): an
  endpoint at the cluster's own node address (``10.k.127.254``, the node's InternalIP: what a real
  selector-less Service names to reach a host-network process on the node; the API server refuses
  loopback endpoint addresses from clients, as kube-apiserver does) or at ``127.0.0.1`` is served
  from ``127.0.0.1:<port>`` on the host. Any other loopback address stays ignored.

Loopback endpoints of every other Service are ignored (they would open the host's loopback to the
cluster's users), and a node-address endpoint of an unlisted Service is an ordinary DNAT backend (in
the fabric nothing listens there: unreachable). What this trusts: whoever may write the Endpoints of
a listed Service (the hub cluster's admin, for ``volsync-system/volsync-hub``) can point it at any
port of the host's loopback: the API server, a kubelet API, another installation's hub. Each of those
still authenticates its clients (tokens, client certificates), and the hub cluster's admin is the
installation's admin, who holds those credentials anyway; a cluster user without that right gains
nothing. `render_table`
writes the cluster's whole nft table; applying it with ``nft -f`` replaces the previous one in one
transaction:

- DNAT: each frontend jumps to its Service port's chain, which picks a backend at random
  (``numgen random mod N vmap``) and DNATs to it;
- hairpin: a Pod reaching itself through its Service is marked, and SNATed to the node's address;
- isolation: Pod-IP traffic from another cluster's Pod CIDR is dropped unless it was DNATed (LB).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from localcluster.network.addressing import ClusterNet, cluster_table_name
from localcluster.network.cloudlb import ingress_ips, is_ours

Obj = Mapping[str, Any]
HAIRPIN_MARK = 0x4000
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
HOST_LOOPBACK = "127.0.0.1"  # the one host address a loopback Service leads to
API_SERVICE = "default/kubernetes"  # forwarded to its loopback endpoint (127.0.0.0/8) unconditionally


@dataclass(frozen=True, order=True)
class Backend:
    ip: str
    port: int


@dataclass(frozen=True)
class PortRule:
    """One Service port: where it is reached (frontends) and where it leads (ready backends)."""

    service: str  # namespace/name:port-name
    protocol: str  # tcp | udp
    frontends: tuple[tuple[str, int], ...]
    backends: tuple[Backend, ...]


@dataclass(frozen=True, order=True)
class LoopbackForward:
    """A frontend served in user space: listen in the fabric, connect to the host's loopback."""

    listen_ip: str
    listen_port: int
    target_ip: str
    target_port: int


@dataclass(frozen=True)
class ProxyPlan:
    rules: tuple[PortRule, ...] = ()
    forwards: tuple[LoopbackForward, ...] = ()
    ignored: tuple[str, ...] = field(default=())  # "namespace/name: reason"


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def service_key(text: str) -> str:
    """``NAMESPACE/NAME`` checked (two DNS labels), as `plan_services` keys a Service; ValueError if not."""
    namespace, _, name = text.partition("/")
    if not (_DNS_LABEL.fullmatch(namespace) and _DNS_LABEL.fullmatch(name)):
        raise ValueError(f"{text!r} is not NAMESPACE/NAME")
    return f"{namespace}/{name}"


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def _ipv4(text: object) -> ipaddress.IPv4Address | None:
    try:
        ip = ipaddress.ip_address(str(text))
    except ValueError:
        return None
    return ip if isinstance(ip, ipaddress.IPv4Address) else None


def _frontend_ips(net: ClusterNet, svc: Obj) -> tuple[list[str], str | None]:
    """The Service's addresses, or a reason to ignore it."""
    spec = svc.get("spec") or {}
    ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip and ip != "None"]
    if not ips:
        return [], None  # headless or not yet allocated: nothing to forward
    v4 = [str(a) for a in (_ipv4(ip) for ip in ips) if a is not None]
    if not v4 or not all(net.owns_service_ip(ip) for ip in v4):
        return [], f"clusterIP {ips[0]} is outside the service CIDR {net.service_cidr}"
    if is_ours(dict(svc)):  # only our load balancer's addresses, from this cluster's own pool
        v4 += [ip for ip in ingress_ips(dict(svc)) if _ipv4(ip) is not None and net.owns_lb_ip(ip)]
    return list(dict.fromkeys(v4)), None


def _slice_backends(slices: Iterable[Obj], port_name: str, fallback: int | None) -> list[Backend]:
    out: list[Backend] = []
    for sl in slices:
        if sl.get("addressType", "IPv4") != "IPv4":
            continue
        ports = sl.get("ports")
        number = next((p.get("port") for p in ports or [] if (p.get("name") or "") == port_name), None)
        if number is None:
            number = fallback if not ports else None
        if not isinstance(number, int):
            continue
        for ep in sl.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            out += [Backend(a, number) for a in ep.get("addresses") or [] if _ipv4(a) is not None]
    return out


def _endpoints_backends(endpoints: Obj, port_name: str, fallback: int | None) -> list[Backend]:
    out: list[Backend] = []
    for subset in endpoints.get("subsets") or []:
        ports = subset.get("ports")
        number = next((p.get("port") for p in ports or [] if (p.get("name") or "") == port_name), None)
        if number is None:
            number = fallback if not ports else None
        if not isinstance(number, int):
            continue
        out += [Backend(a["ip"], number) for a in subset.get("addresses") or [] if _ipv4(a.get("ip")) is not None]
    return out


def _split_host(net: ClusterNet, key: str, listed: bool,
                found: list[Backend]) -> tuple[Backend | None, tuple[Backend, ...], str | None]:
    """The backend served on the host's loopback (None: none allowed), the fabric backends, and why a
    loopback endpoint was ignored (see "Host backends" in the module docstring)."""
    loop = sorted({b for b in found if ipaddress.ip_address(b.ip) in _LOOPBACK})
    node = sorted({b for b in found if listed and b.ip == str(net.node_ip)})
    remote = tuple(sorted({b for b in found if b not in loop and b not in node}))
    if key == API_SERVICE:
        return (loop[0] if loop else None), remote, None
    if listed:
        host = sorted({Backend(HOST_LOOPBACK, b.port) for b in node} | {b for b in loop if b.ip == HOST_LOOPBACK})
        odd = [b.ip for b in loop if b.ip != HOST_LOOPBACK]
        why = f"{key}: loopback endpoint {odd[0]} ignored (only {HOST_LOOPBACK} is forwarded)" if odd else None
        return (host[0] if host else None), remote, why
    if loop:
        return None, remote, f"{key}: loopback endpoint {loop[0].ip} ignored (only {API_SERVICE} is forwarded)"
    return None, remote, None


def plan_services(net: ClusterNet, services: Iterable[Obj], slices: Iterable[Obj],
                  endpoints: Iterable[Obj], loopback_services: Collection[str] = ()) -> ProxyPlan:
    """The rules and forwarders for a cluster's Services; `loopback_services` ("namespace/name") may
    lead to the host's loopback besides ``default/kubernetes`` (see the module docstring)."""
    listed = frozenset(loopback_services)
    by_service: dict[str, list[Obj]] = {}
    for sl in slices:
        name = ((sl.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
        if name:
            by_service.setdefault(f"{(sl.get('metadata') or {}).get('namespace') or ''}/{name}", []).append(sl)
    eps = {_key(e): e for e in endpoints}
    rules: list[PortRule] = []
    forwards: set[LoopbackForward] = set()
    ignored: list[str] = []
    taken: set[tuple[str, int, str]] = set()
    for svc in sorted(services, key=_key):
        key = _key(svc)
        ips, reason = _frontend_ips(net, svc)
        if reason:
            ignored.append(f"{key}: {reason}")
        for port in (svc.get("spec") or {}).get("ports") or [] if ips else []:
            proto = str(port.get("protocol") or "TCP").lower()
            number = port.get("port")
            if proto not in ("tcp", "udp") or not isinstance(number, int):
                continue
            name = port.get("name") or ""
            target = port.get("targetPort")
            fallback = target if isinstance(target, int) else (number if target is None else None)
            if key in by_service:
                found = _slice_backends(by_service[key], name, fallback)
            else:
                found = _endpoints_backends(eps[key], name, fallback) if key in eps else []
            host, remote, why = _split_host(net, key, key in listed, found)
            if why:
                ignored.append(why)
            fronts = tuple((ip, number) for ip in ips if (ip, number, proto) not in taken)
            taken.update((ip, number, proto) for ip, _ in fronts)
            if host is not None and proto == "tcp":
                forwards.update(LoopbackForward(ip, p, host.ip, host.port) for ip, p in fronts)
            elif fronts:
                rules.append(PortRule(f"{key}:{name}", proto, fronts, remote))
    return ProxyPlan(tuple(rules), tuple(sorted(forwards)), tuple(ignored))


def render_table(net: ClusterNet, plan: ProxyPlan) -> str:
    """The cluster's whole nft table, as one atomic ``nft -f`` program (replaces the old table)."""
    table = cluster_table_name(net)
    pre: list[str] = []
    chains: list[str] = []
    for i, rule in enumerate(plan.rules):
        if not rule.backends:
            continue  # no ready endpoint: the address stays unrouted (the client gets unreachable)
        for ip, port in rule.frontends:
            pre.append(f"ip daddr {ip} {rule.protocol} dport {port} goto svc{i}")
        picks = ", ".join(f"{j} : goto svc{i}ep{j}" for j in range(len(rule.backends)))
        chains.append(f"    chain svc{i} {{\n        comment \"{_quote(rule.service)}\"\n"
                      f"        numgen random mod {len(rule.backends)} vmap {{ {picks} }}\n    }}")
        for j, b in enumerate(rule.backends):
            chains.append(f"    chain svc{i}ep{j} {{\n"
                          f"        ip saddr {b.ip} meta mark set meta mark | {HAIRPIN_MARK:#x}\n"
                          f"        meta l4proto {rule.protocol} dnat to {b.ip}:{b.port}\n    }}")
    pods, node = net.pod_cidr, net.node_ip
    lines = [f"table ip {table}", f"delete table ip {table}", f"table ip {table} {{",
             "    chain prerouting {", "        type nat hook prerouting priority dstnat; policy accept;",
             *(f"        {r}" for r in pre), "    }",
             "    chain postrouting {", "        type nat hook postrouting priority srcnat; policy accept;",
             f"        meta mark & {HAIRPIN_MARK:#x} == {HAIRPIN_MARK:#x} ip daddr {pods} snat to {node}", "    }",
             "    chain forward {", "        type filter hook forward priority filter; policy accept;",
             f"        ip saddr 10.0.0.0/8 ip saddr != {pods} ip daddr {pods} ct status & dnat == 0 drop",
             "    }", *chains, "}", ""]
    return "\n".join(lines)


def _quote(text: str) -> str:
    return "".join(c for c in text if c.isalnum() or c in "/:-_.")[:120]
