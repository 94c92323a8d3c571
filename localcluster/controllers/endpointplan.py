"""Which Pods back a Service, on which ports, pure: the EndpointSlices and the Endpoints of a Service.

For a Service with a selector, every matching Pod that has an IP and has not finished is an
endpoint, with `conditions.ready` (`publishNotReadyAddresses`, or Ready and not terminating),
`serving` (Ready, whatever `publishNotReadyAddresses` says) and `terminating` (deletionTimestamp
set), its `nodeName` and a `targetRef`. A Service port's `targetPort` is a number or the name of
one of the Pod's container ports; Pods that resolve the ports differently end up in different
slices / subsets, as upstream groups them. Terminating Pods appear in slices only (Endpoints leave
them out unless `publishNotReadyAddresses`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kube import objects
from kube.rest import Obj
from localcluster.controllers import pods as podfacts

SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
SLICE_MANAGER = "endpointslice-controller.k8s.io"
MAX_PER_SLICE = 100

PortKey = tuple[tuple[str, int, str], ...]  # (name, port, protocol) per resolved Service port


@dataclass(frozen=True)
class Backend:
    """One Pod behind a Service: its endpoint and the ports it serves."""

    pod: Obj
    ports: PortKey
    ready: bool
    serving: bool
    terminating: bool


def target_port(service_port: Obj, pod: Obj) -> int | None:
    """The Pod's port for a Service port (`targetPort` number or container port name; default `port`)."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol", "TCP")
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and port.get("protocol", "TCP") == protocol:
                return int(port["containerPort"])
    return None


def backends(service: Obj, pods: Sequence[Obj]) -> list[Backend]:
    spec = service.get("spec") or {}
    selector = podfacts.map_selector(spec.get("selector"))
    publish = bool(spec.get("publishNotReadyAddresses"))
    out = []
    for pod in pods:
        if not podfacts.selector_matches(selector, objects.labels_of(pod)):
            continue
        if not (pod.get("status") or {}).get("podIP") or podfacts.is_finished(pod):
            continue
        ports: list[tuple[str, int, str]] = []
        for sp in spec.get("ports") or []:
            number = target_port(sp, pod)
            if number is not None:
                ports.append((str(sp.get("name") or ""), number, str(sp.get("protocol", "TCP"))))
        terminating = objects.is_deleting(pod)
        serving = podfacts.is_ready(pod)  # as upstream: serving ignores publishNotReadyAddresses, ready does not
        out.append(Backend(pod, tuple(ports), publish or (serving and not terminating), serving, terminating))
    return sorted(out, key=lambda b: (b.ports, str((b.pod.get("status") or {}).get("podIP"))))


def _target_ref(pod: Obj) -> Obj:
    return {"kind": "Pod", "namespace": objects.namespace_of(pod), "name": objects.name_of(pod),
            "uid": objects.uid_of(pod)}


def _ports(key: PortKey, *, empty_name: bool) -> list[Obj]:
    """Ports as the API server stores them: a slice port always has `name` (`""` when unnamed, as
    upstream writes it), an Endpoints port omits an empty one."""
    return [{**({"name": name} if name or empty_name else {}), "port": port, "protocol": protocol}
            for name, port, protocol in key]


def slice_bodies(service: Obj, found: Sequence[Backend]) -> list[Obj]:
    """The `endpoints` + `ports` of each EndpointSlice the Service should have (one, empty, when none)."""
    groups: dict[PortKey, list[Backend]] = {}
    for backend in found:
        groups.setdefault(backend.ports, []).append(backend)
    bodies = []
    for key, members in sorted(groups.items()):
        for start in range(0, len(members), MAX_PER_SLICE):
            endpoints = []
            for b in members[start:start + MAX_PER_SLICE]:
                endpoint: Obj = {"addresses": [b.pod["status"]["podIP"]],
                                 "conditions": {"ready": b.ready, "serving": b.serving, "terminating": b.terminating},
                                 "targetRef": _target_ref(b.pod)}
                node = (b.pod.get("spec") or {}).get("nodeName")
                if node:
                    endpoint["nodeName"] = node
                endpoints.append(endpoint)
            bodies.append({"addressType": "IPv4", "endpoints": endpoints, "ports": _ports(key, empty_name=True)})
    return bodies or [{"addressType": "IPv4", "endpoints": [], "ports": []}]


def subsets(found: Sequence[Backend]) -> list[Obj]:
    """The v1 Endpoints `subsets`: ready addresses and not-ready ones per port set; terminating Pods left out."""
    groups: dict[PortKey, Obj] = {}
    for b in found:
        if b.terminating and not b.ready:  # publishNotReadyAddresses keeps terminating Pods, as upstream
            continue
        address: Obj = {"ip": b.pod["status"]["podIP"], "targetRef": _target_ref(b.pod)}
        node = (b.pod.get("spec") or {}).get("nodeName")
        if node:
            address["nodeName"] = node
        subset = groups.setdefault(b.ports, {"ports": _ports(b.ports, empty_name=False)})
        subset.setdefault("addresses" if b.ready else "notReadyAddresses", []).append(address)
    return [groups[k] for k in sorted(groups)]


def selects(service: Obj, pod: Obj) -> bool:
    """Whether a Pod's labels put it behind `service` (a Service without a selector selects nothing)."""
    return podfacts.selector_matches(podfacts.map_selector((service.get("spec") or {}).get("selector")),
                                     objects.labels_of(pod))
