"""Service addresses of one cluster: ClusterIPs from the cluster's own Service CIDR and NodePorts.

kube-apiserver allocates `spec.clusterIP` from `--service-cluster-ip-range` and `nodePort`s from
`--service-node-port-range` (30000-32767) when a Service is written, keeping the allocations in
etcd. Here the allocations are derived from the stored Services themselves: the index is rebuilt
from the store at start (so a restart, even after kill -9, never hands out an address twice) and
kept current from committed events (a deleted Service frees its address and ports at once).

Rules, as upstream applies them:
- the first address of the range is the `default/kubernetes` Service's; no other Service gets it;
- a Service without `clusterIP` gets a free one; `clusterIP: None` is headless (no address);
  `ExternalName` gets none;
- a requested address inside the range that another Service holds is a 422 `provided IP is
  already allocated`; one outside the range a 422 `is not in the valid range`;
- on update an omitted clusterIP or nodePort keeps the allocated one; changing a set clusterIP is
  a 422 `may not change once set`;
- NodePort and LoadBalancer Services (unless `allocateLoadBalancerNodePorts: false`) get a unique
  `nodePort` per port; a requested one outside the range, or taken, is a 422.
"""

from __future__ import annotations

import ipaddress
import random
import threading
import time
from collections.abc import Iterable
from typing import Any

from apiserver import errors
from apiserver.errors import FieldCause
from apiserver.resources import Obj
from apiserver.store import Event

DEFAULT_SERVICE_CIDR = "10.96.0.0/16"
NODE_PORTS = range(30000, 32768)
_PENDING_SECONDS = 30.0  # an address handed out by an admission whose commit has not been seen yet


def kubernetes_ip(cidr: str) -> str:
    """The first address of a Service CIDR: the `kubernetes` Service's ClusterIP."""
    return str(ipaddress.ip_network(cidr, strict=False).network_address + 1)


def _name(svc: Obj) -> tuple[str, str]:
    meta = svc.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _cluster_ip(svc: Obj) -> str:
    ip = (svc.get("spec") or {}).get("clusterIP")
    return ip if isinstance(ip, str) else ""


def _node_ports(svc: Obj) -> set[int]:
    ports = (svc.get("spec") or {}).get("ports") or []
    return {p["nodePort"] for p in ports if isinstance(p, dict) and isinstance(p.get("nodePort"), int)}


def _invalid(svc: Obj, field: str, value: str, detail: str) -> errors.ApiError:
    cause = FieldCause(field, "FieldValueInvalid", f"Invalid value: {value}: {detail}")
    return errors.invalid("Service", "", _name(svc)[1], [cause])


class ServiceAddresses:
    """ClusterIP and NodePort allocation for one cluster (`cidr`: its Service CIDR)."""

    def __init__(self, cidr: str, services: Iterable[Obj] = ()) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        self.kubernetes_ip = kubernetes_ip(cidr)
        self._ips: dict[str, tuple[str, str]] = {}  # address -> the Service holding it
        self._ports: dict[int, tuple[str, str]] = {}
        # handed out by an admission whose commit has not been seen yet: holder and deadline
        self._pending_ips: dict[str, tuple[tuple[str, str], float]] = {}
        self._pending_ports: dict[int, tuple[tuple[str, str], float]] = {}
        self._lock = threading.Lock()  # admissions of large bodies run in worker threads
        for svc in services:
            self._hold(svc)

    # -- index ------------------------------------------------------------------------------------
    def _hold(self, svc: Obj) -> None:
        ip = _cluster_ip(svc)
        if ip and ip != "None":
            self._ips[ip] = _name(svc)
            self._pending_ips.pop(ip, None)
        for port in _node_ports(svc):
            self._ports[port] = _name(svc)
            self._pending_ports.pop(port, None)

    def _drop(self, svc: Obj) -> None:
        key = _name(svc)
        ip = _cluster_ip(svc)
        if self._ips.get(ip) == key:
            del self._ips[ip]
        for port in _node_ports(svc):
            if self._ports.get(port) == key:
                del self._ports[port]

    def observe(self, events: Iterable[Event]) -> None:
        """Keep the index current from committed Service events (a delete frees at once)."""
        with self._lock:
            for ev in events:
                if ev.resource != "/services":
                    continue
                if ev.prev is not None:
                    self._drop(ev.prev)
                if ev.type == "DELETED":
                    self._drop(ev.obj)
                else:
                    self._hold(ev.obj)

    def in_range(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in self.network
        except ValueError:
            return False

    # -- admission --------------------------------------------------------------------------------
    def admit(self, old: Obj | None, new: Obj, *, dry_run: bool = False) -> None:
        """Allocate or check `new`'s clusterIP and nodePorts in place (422 on a refused request)."""
        spec = new.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        old_spec: dict[str, Any] = (old or {}).get("spec") or {}
        with self._lock:
            self._expire()
            self._admit_ip(new, spec, old_spec, dry_run)
            self._admit_node_ports(new, spec, old_spec, dry_run)

    def _expire(self) -> None:
        now = time.monotonic()
        self._pending_ips = {k: v for k, v in self._pending_ips.items() if v[1] >= now}
        self._pending_ports = {k: v for k, v in self._pending_ports.items() if v[1] >= now}

    def _holder(self, ip: str) -> tuple[str, str] | None:
        held = self._ips.get(ip)
        return held if held is not None else (self._pending_ips.get(ip) or (None, 0.0))[0]

    def _port_holder(self, port: int) -> tuple[str, str] | None:
        held = self._ports.get(port)
        return held if held is not None else (self._pending_ports.get(port) or (None, 0.0))[0]

    def _admit_ip(self, svc: Obj, spec: dict[str, Any], old_spec: dict[str, Any], dry_run: bool) -> None:
        if spec.get("type") == "ExternalName":
            return
        old_ip = old_spec.get("clusterIP") or ""
        if not spec.get("clusterIP") and old_ip:
            spec["clusterIP"] = old_ip
            spec["clusterIPs"] = list(old_spec.get("clusterIPs") or [old_ip])
        requested = spec.get("clusterIP") or ""
        if old_ip and requested != old_ip:
            raise _invalid(svc, "spec.clusterIPs[0]", f'[]string{{"{requested}"}}', "may not change once set")
        if not requested:
            requested = self._free_ip()
            spec["clusterIP"] = requested
        elif requested != "None" and not old_ip:
            self._check_requested_ip(svc, requested)
        spec["clusterIPs"] = [requested]
        if requested != "None" and not dry_run and requested not in self._ips:
            self._pending_ips[requested] = (_name(svc), time.monotonic() + _PENDING_SECONDS)

    def _check_requested_ip(self, svc: Obj, ip: str) -> None:
        try:
            if not isinstance(ip, str):
                raise ValueError(ip)
            ipaddress.ip_address(ip)
        except ValueError:
            raise _invalid(svc, "spec.clusterIPs[0]", f'"{ip}"', "must be a valid IP address") from None
        if not self.in_range(ip):
            raise _invalid(svc, "spec.clusterIPs", f'[]string{{"{ip}"}}',
                           f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. "
                           f"The range of valid IPs is {self.network}")
        holder = self._holder(ip)
        taken = holder is not None and holder != _name(svc)
        if ip == self.kubernetes_ip and _name(svc) != ("default", "kubernetes"):
            taken = True
        if taken:
            raise _invalid(svc, "spec.clusterIPs", f'[]string{{"{ip}"}}',
                           f"failed to allocate IP {ip}: provided IP is already allocated")

    def _free_ip(self) -> str:
        for host in self.network.hosts():
            ip = str(host)
            if ip != self.kubernetes_ip and self._holder(ip) is None:
                return ip
        raise errors.ApiError(500, "InternalError",
                              f"Internal error occurred: failed to allocate a serviceIP: range {self.network} is full")

    def _admit_node_ports(self, svc: Obj, spec: dict[str, Any], old_spec: dict[str, Any], dry_run: bool) -> None:
        kind = spec.get("type")
        wants = kind == "NodePort" or (kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True))
        if kind == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
        if not wants:
            if kind not in ("NodePort", "LoadBalancer"):
                for port in ports:
                    port.pop("nodePort", None)
            return
        previous = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                    for p in old_spec.get("ports") or [] if isinstance(p, dict)}
        mine = _name(svc)
        for i, port in enumerate(ports):
            if not port.get("nodePort") and previous.get((port.get("port"), port.get("protocol", "TCP"))):
                port["nodePort"] = previous[(port.get("port"), port.get("protocol", "TCP"))]
            wanted = port.get("nodePort")
            if not wanted:
                port["nodePort"] = wanted = self._free_port({p.get("nodePort") for p in ports})
            elif not isinstance(wanted, int) or wanted not in NODE_PORTS:
                raise _invalid(svc, f"spec.ports[{i}].nodePort", str(wanted),
                               "provided port is not in the valid range. The range of valid ports is 30000-32767")
            elif (self._port_holder(wanted) not in (None, mine)
                  or sum(1 for p in ports if p.get("nodePort") == wanted) > 1):
                raise _invalid(svc, f"spec.ports[{i}].nodePort", str(wanted), "provided port is already allocated")
            if not dry_run and wanted not in self._ports:
                self._pending_ports[wanted] = (mine, time.monotonic() + _PENDING_SECONDS)

    def _free_port(self, claimed: set[Any]) -> int:
        free = [p for p in NODE_PORTS if self._port_holder(p) is None and p not in claimed]
        if not free:
            raise errors.ApiError(500, "InternalError", "Internal error occurred: failed to allocate a nodePort: "
                                  "range 30000-32767 is full")
        return random.choice(free)
