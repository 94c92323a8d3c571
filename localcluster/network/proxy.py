"""The service proxy of one cluster: its Services' rules in the fabric (kube-proxy's job).

A `Reconciler` on the cluster's `Runtime` watching Services, EndpointSlices and v1 Endpoints. Any
change re-plans the whole cluster (`servicerules.plan_services`) and, when the program differs from
the last one applied, replaces the cluster's nft table in the fabric in one ``nft -f`` transaction;
host backends (the API server's ``default/kubernetes`` and the installation's *loopback Services*,
`loopback_services`: see `servicerules`) get user-space forwarders (`forwarder.LoopbackForwarder`) on
their Service addresses (clusterIP, load-balancer ingress), which are put on the fabric's lo. The
table is left in place on `stop()` (a restarted proxy adopts it and rewrites it on start);
forwarders are closed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Hashable, Sequence

from kubernetes.client.exceptions import ApiException

from kube.controller import Runtime, Watch
from kube.rest import ENDPOINT_SLICES, ENDPOINTS, SERVICES, Kube, Obj, Resource
from localcluster.network import netcmd
from localcluster.network.addressing import ClusterNet
from localcluster.network.fabric import Fabric
from localcluster.network.forwarder import LoopbackForwarder
from localcluster.network.servicerules import LoopbackForward, ProxyPlan, plan_services, render_table

log = logging.getLogger(__name__)

_ALL = "all-services"


def _whole_cluster(_obj: Obj) -> list[Hashable]:
    return [_ALL]


def _serves(kube: Kube, res: Resource) -> bool:
    """Whether the API server serves `res` (an old or minimal server may not serve EndpointSlices)."""
    try:
        found = kube.request("GET", f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}")
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return any(r.get("name") == res.plural for r in (found or {}).get("resources") or [])


class ServiceProxy:
    """Programs one cluster's Service addresses in the fabric (see the module docstring)."""

    name = "service-proxy"

    def __init__(self, runtime: Runtime, kube: Kube, fabric: Fabric, net: ClusterNet,
                 loopback_services: Collection[str] = ()) -> None:
        self.runtime = runtime
        self.loopback_services = frozenset(loopback_services)  # "namespace/name" (see servicerules)
        self.kube = kube
        self.fabric = fabric
        self.net = net
        self._slices = _serves(kube, ENDPOINT_SLICES)
        if not self._slices:
            log.warning("cluster %d: the API serves no EndpointSlices; v1 Endpoints only", net.index)
        self.watches: Sequence[Watch] = (Watch(SERVICES, _whole_cluster), Watch(ENDPOINTS, _whole_cluster),
                                         *([Watch(ENDPOINT_SLICES, _whole_cluster)] if self._slices else []))
        self._lock = threading.Lock()
        self._applied: str | None = None
        self._forwarders: dict[LoopbackForward, LoopbackForwarder] = {}
        self._reported: set[str] = set()
        fabric.ensure()
        runtime.add(self).add(_ALL)

    def reconcile(self, key: Hashable) -> float | None:
        slices = self.runtime.cache(ENDPOINT_SLICES).items() if self._slices else []
        plan = plan_services(self.net, self.runtime.cache(SERVICES).items(), slices,
                             self.runtime.cache(ENDPOINTS).items(), self.loopback_services)
        with self._lock:
            self._report_ignored(plan)
            program = render_table(self.net, plan)
            if program != self._applied:
                netcmd.nft_apply(self.fabric.netns, program)
                self._applied = program
                log.info("cluster %d: %d service ports programmed", self.net.index, len(plan.rules))
            complete = self._sync_forwarders(plan)
        return None if complete else 5.0

    def stop(self) -> None:
        """Close the forwarders (the nft table stays, to be adopted by the next proxy)."""
        with self._lock:
            for fwd in self._forwarders.values():
                fwd.stop()
            self._forwarders.clear()

    def _report_ignored(self, plan: ProxyPlan) -> None:
        for reason in plan.ignored:
            if reason not in self._reported:
                self._reported.add(reason)
                log.warning("cluster %d: service ignored: %s", self.net.index, reason)

    def _sync_forwarders(self, plan: ProxyPlan) -> bool:
        """Open the missing forwarders, close the unwanted ones; False if one could not be opened."""
        complete = True
        wanted = set(plan.forwards)
        for spec in [s for s in self._forwarders if s not in wanted]:
            self._forwarders.pop(spec).stop()
        for spec in sorted(wanted - self._forwarders.keys()):
            self.fabric.add_local_address(spec.listen_ip)
            try:
                self._forwarders[spec] = LoopbackForwarder(self.fabric.netns_path, spec.listen_ip, spec.listen_port,
                                                           spec.target_ip, spec.target_port)
            except OSError as exc:
                log.warning("cluster %d: cannot forward %s:%s: %s", self.net.index, spec.listen_ip,
                            spec.listen_port, exc)
                complete = False
        return complete
