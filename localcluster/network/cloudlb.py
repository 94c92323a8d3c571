"""The cluster's "cloud" load balancer: addresses for LoadBalancer Services from the cluster's pool.

Every ``type: LoadBalancer`` Service without ``spec.loadBalancerClass`` (or with our class
``local.volsync-addon.io/lb``) gets one stable address of ``172.20.k.0/24`` in
``status.loadBalancer.ingress[{ip, ipMode: VIP}]``, as a cloud controller writes it; the service
proxy then forwards it like the clusterIP. Services of another class are left alone, as a real
cloud ignores a class it does not own. The allocation is derived from the Services' own status
(restart-safe, no other state): an address is in use while a Service of ours carries it, so it is
released when the Service is deleted, and cleared here when the Service stops being ours.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Hashable, Iterable, Sequence
from typing import cast

from kube.controller import Runtime, Watch
from kube.rest import SERVICES, Kube, Obj, is_not_found
from localcluster.network.addressing import ClusterNet

log = logging.getLogger(__name__)

LB_CLASS = "local.volsync-addon.io/lb"


def is_ours(svc: Obj) -> bool:
    """A Service this load balancer must serve."""
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and spec.get("loadBalancerClass") in (None, "", LB_CLASS)


def ingress_ips(svc: Obj) -> list[str]:
    return [str(i.get("ip")) for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if i.get("ip")]


def choose_address(net: ClusterNet, svc: Obj, others: Iterable[Obj]) -> str | None:
    """The address `svc` should carry (its current one if valid and unique), None if the pool is empty (pure)."""
    key = (svc["metadata"].get("namespace"), svc["metadata"]["name"])
    used: set[str] = set()
    for other in others:
        if is_ours(other) and (other["metadata"].get("namespace"), other["metadata"]["name"]) != key:
            used.update(ip for ip in ingress_ips(other) if net.owns_lb_ip(ip))
    current = [ip for ip in ingress_ips(svc) if net.owns_lb_ip(ip) and ip not in used]
    if current:
        return current[0]
    return next((str(ip) for ip in net.lb_ips() if str(ip) not in used), None)


class CloudLoadBalancer:
    """Assigns and releases LoadBalancer addresses of one cluster (see the module docstring)."""

    name = "cloud-load-balancer"

    def __init__(self, runtime: Runtime, kube: Kube, net: ClusterNet) -> None:
        self.runtime = runtime
        self.kube = kube
        self.net = net
        self.watches: Sequence[Watch] = (Watch(SERVICES),)
        # Addresses written but maybe not yet seen by the cache (two workers must not pick the same).
        self._pending: dict[Hashable, str] = {}
        self._lock = threading.Lock()
        runtime.add(self)

    def stop(self) -> None:
        """Nothing to release: the allocation lives in the Services' status."""

    def reconcile(self, key: Hashable) -> float | None:
        namespace, name = cast(tuple[str, str], key)
        svc = self.runtime.cache(SERVICES).get(namespace, name)
        with self._lock:
            if svc is None or not is_ours(svc):
                self._pending.pop(key, None)
                if svc is not None:
                    self._release(svc)
                return None
            others = list(self.runtime.cache(SERVICES).items())
            others += [_placeholder(k, ip) for k, ip in self._pending.items() if k != key]
            ip = choose_address(self.net, svc, others)
            if ip is None:
                log.warning("cluster %d: LoadBalancer pool %s exhausted (%s/%s waits)", self.net.index,
                            self.net.lb_pool, namespace, name)
                return 30.0
            self._pending[key] = ip
        if ingress_ips(svc) != [ip]:
            self._write(svc, [{"ip": ip, "ipMode": "VIP"}])
            log.info("cluster %d: %s/%s gets load-balancer address %s", self.net.index, namespace, name, ip)
        return None

    def _release(self, svc: Obj) -> None:
        mine = [ip for ip in ingress_ips(svc) if self.net.owns_lb_ip(ip)]
        if mine:
            self._write(svc, [i for i in (svc.get("status") or {}).get("loadBalancer", {}).get("ingress", [])
                              if i.get("ip") not in mine])

    def _write(self, svc: Obj, ingress: list[Obj]) -> None:
        meta = svc["metadata"]
        try:
            self.kube.patch_status(SERVICES, meta["name"], {"loadBalancer": {"ingress": ingress or None}},
                                   meta.get("namespace"))
        except Exception as exc:
            if not is_not_found(exc):
                raise


def _placeholder(key: Hashable, ip: str) -> Obj:
    namespace, name = cast(tuple[str, str], key)
    return {"metadata": {"namespace": namespace, "name": f"{name}"},
            "spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}


def lb_pool_usage(net: ClusterNet, services: Iterable[Obj]) -> list[ipaddress.IPv4Address]:
    """The pool addresses in use by our Services (for reports and tests)."""
    return sorted({ipaddress.IPv4Address(ip) for s in services if is_ours(s) for ip in ingress_ips(s)
                   if net.owns_lb_ip(ip)})
