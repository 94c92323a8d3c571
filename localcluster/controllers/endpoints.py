"""The EndpointSlice and Endpoints controllers: for each Service with a selector, the Pods behind it
(`endpointplan.py`) written as EndpointSlices (owned by the Service, labelled with its name and our
manager) and as the v1 Endpoints of the same name. Services without a selector are left alone
(their Endpoints belong to whoever manages them, e.g. the API server's `default/kubernetes`)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence

from kube import objects
from kube.clock import Clock
from kube.controller import Runtime, Watch
from kube.informing import Informer
from kube.rest import ENDPOINT_SLICES, ENDPOINTS, PODS, SERVICES, Kube, Obj
from localcluster.controllers import endpointplan as ep
from localcluster.controllers.expectations import Expectations
from localcluster.controllers.plans import Action, Create, Delete, Patch, Plan, apply_plan


def services_selecting(services: Informer) -> Callable[[Obj], Iterable[Hashable]]:
    """Keys of the Services (in the Pod's namespace) whose selector matches a Pod."""

    def keys(pod: Obj) -> Iterable[Hashable]:
        ns = objects.namespace_of(pod)
        return [(ns, objects.name_of(s)) for s in services.items(ns) if ep.selects(s, pod)]

    return keys


def slice_service(obj: Obj) -> Iterable[Hashable]:
    labels = objects.labels_of(obj)
    if labels.get(ep.MANAGED_BY) != ep.SLICE_MANAGER or not labels.get(ep.SERVICE_NAME):
        return []
    return [(objects.namespace_of(obj), labels[ep.SERVICE_NAME])]


def plan_slices(service: Obj, found: Sequence[ep.Backend], existing: Sequence[Obj]) -> Plan:
    """Reuse the Service's slices in name order for the wanted bodies; create the missing, delete the rest."""
    ns, name = objects.namespace_of(service), objects.name_of(service)
    labels = {**objects.labels_of(service), ep.SERVICE_NAME: name, ep.MANAGED_BY: ep.SLICE_MANAGER}
    owner = objects.owner_ref({"apiVersion": "v1", "kind": "Service", **service})
    bodies = ep.slice_bodies(service, found)
    ordered = sorted(existing, key=objects.name_of)
    actions: list[Action] = []
    for current, body in zip(ordered, bodies, strict=False):
        if any(current.get(k) != body[k] for k in body) or objects.labels_of(current) != labels:
            patch = {**body, "metadata": {"labels": labels}}
            actions.append(Patch(ENDPOINT_SLICES, ns, objects.name_of(current), patch))
    for body in bodies[len(ordered):]:
        meta = {"generateName": f"{name}-", "namespace": ns, "labels": labels, "ownerReferences": [owner]}
        actions.append(Create(ENDPOINT_SLICES, {"metadata": meta, **body}))
    for extra in ordered[len(bodies):]:
        actions.append(Delete(ENDPOINT_SLICES, ns, objects.name_of(extra), objects.uid_of(extra)))
    return Plan(tuple(actions))


def plan_endpoints(service: Obj, found: Sequence[ep.Backend], current: Obj | None) -> Plan:
    ns, name = objects.namespace_of(service), objects.name_of(service)
    wanted = ep.subsets(found)
    labels = objects.labels_of(service)
    if current is None:
        meta = {"name": name, "namespace": ns, **({"labels": labels} if labels else {})}
        body = {"metadata": meta, "subsets": wanted}
        return Plan((Create(ENDPOINTS, body),))
    if (current.get("subsets") or []) == wanted and objects.labels_of(current) == labels:
        return Plan()
    return Plan((Patch(ENDPOINTS, ns, name, {"metadata": {"labels": labels or None}, "subsets": wanted}),))


class _ServiceReconciler:
    """What both Service-driven controllers share: the Service and Pod caches, the Service of a key."""

    name = "service-endpoints"

    def __init__(self, runtime: Runtime, kube: Kube, clock: Clock | None = None) -> None:
        self.kube = kube
        self.services = runtime.cache(SERVICES)
        self.pods = runtime.cache(PODS)
        self.expectations = Expectations()

    def _service(self, key: Hashable) -> tuple[str, str, Obj | None]:
        assert isinstance(key, tuple)
        ns, name = key
        return ns, name, self.services.get(ns, name)


class EndpointSliceController(_ServiceReconciler):
    """Writes the EndpointSlices of every Service with a selector; touches only slices labelled
    `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io` (user slices are left alone)."""

    name = "endpointslice-controller"

    def __init__(self, runtime: Runtime, kube: Kube, clock: Clock | None = None) -> None:
        super().__init__(runtime, kube, clock)
        self.slices = runtime.cache(ENDPOINT_SLICES)
        self.watches: Sequence[Watch] = (Watch(SERVICES), Watch(PODS, services_selecting(self.services)),
                                         Watch(ENDPOINT_SLICES, slice_service))

    def reconcile(self, key: Hashable) -> float | None:
        ns, name, service = self._service(key)
        if service is None or not (service.get("spec") or {}).get("selector") or objects.is_deleting(service):
            self.expectations.forget(key)
            return None  # the garbage collector removes the slices of a deleted Service
        wait = self.expectations.pending(key, lambda n: self.slices.get(ns, n))
        if wait is not None:
            return wait
        existing = [s for s in self.slices.items(ns) if slice_service(s) == [key] and not objects.is_deleting(s)]
        plan = plan_slices(service, ep.backends(service, self.pods.items(ns)), existing)
        apply_plan(self.kube, plan, self.expectations, key)
        return None


class EndpointsController(_ServiceReconciler):
    """Writes the v1 Endpoints of every Service with a selector. Endpoints it does not manage (of a
    selector-less Service, or created before their Service exists) are never touched: on a cache
    miss the Service is re-read from the API, and a Service's Endpoints are deleted only when the
    Service is gone and the Endpoints are ours (we saw the Service with a selector, or every
    address points at a Pod, as only this controller writes them)."""

    name = "endpoints-controller"

    def __init__(self, runtime: Runtime, kube: Kube, clock: Clock | None = None) -> None:
        super().__init__(runtime, kube, clock)
        self.endpoints = runtime.cache(ENDPOINTS)
        self.selected: set[Hashable] = set()  # keys whose Service we saw with a selector
        self.watches: Sequence[Watch] = (Watch(SERVICES), Watch(PODS, services_selecting(self.services)),
                                         Watch(ENDPOINTS))

    def reconcile(self, key: Hashable) -> float | None:
        ns, name, service = self._service(key)
        current = self.endpoints.get(ns, name)
        if service is None and current is not None:
            service = self.kube.get(SERVICES, name, ns)  # the cache may lag behind the API
            if service is None:
                if key in self.selected or _pod_addressed(current):
                    apply_plan(self.kube, Plan((Delete(ENDPOINTS, ns, name, objects.uid_of(current)),)))
                self.selected.discard(key)
                return None
        if service is None or not (service.get("spec") or {}).get("selector"):
            self.selected.discard(key)
            return None
        self.selected.add(key)
        apply_plan(self.kube, plan_endpoints(service, ep.backends(service, self.pods.items(ns)), current))
        return None


def _pod_addressed(endpoints: Obj) -> bool:
    """Whether Endpoints list addresses and every one of them targets a Pod (the shape this controller writes)."""
    addresses = [a for s in endpoints.get("subsets") or []
                 for a in (s.get("addresses") or []) + (s.get("notReadyAddresses") or [])]
    return bool(addresses) and all((a.get("targetRef") or {}).get("kind") == "Pod" for a in addresses)
