"""EndpointSlice and Endpoints controllers: the ready Pods behind a Service, ports from targetPort."""

from __future__ import annotations

from typing import Any

from fake_kubelet import FakeKubelet
from support.waiting import eventually

from kube.controller import Runtime
from kube.rest import ENDPOINT_SLICES, ENDPOINTS, PODS, SERVICES, Kube, Obj
from localcluster.controllers import endpointplan
from localcluster.controllers.endpoints import EndpointsController, EndpointSliceController, plan_slices


def pod(name: str, labels: dict[str, str], http_port: int) -> Obj:
    container = {"name": "main", "image": "busybox",
                 "ports": [{"name": "http", "containerPort": http_port, "protocol": "TCP"}]}
    return {"metadata": {"name": name, "labels": labels}, "spec": {"nodeName": "node-a", "containers": [container]}}


def service(name: str, selector: dict[str, str] | None) -> Obj:
    spec: dict[str, Any] = {"ports": [{"name": "http", "port": 80, "targetPort": "http"},
                                      {"name": "raw", "port": 81, "targetPort": 9000}]}
    if selector:
        spec["selector"] = selector
    return {"metadata": {"name": name, "labels": {"tier": "front"}}, "spec": spec}


def backends(kube: Kube, kubelet: FakeKubelet, namespace: str) -> dict[str, Obj]:
    kube.create(SERVICES, service("web", {"app": "web"}), namespace)
    made = {name: kube.create(PODS, pod(name, {"app": labels}, port), namespace)
            for name, labels, port in (("a", "web", 8080), ("b", "web", 8080), ("c", "web", 8081),
                                       ("pending", "web", 8080), ("other", "db", 8080))}
    for name, ready in (("a", True), ("b", False), ("c", True), ("other", True)):
        made[name] = kubelet.run(made[name], ready=ready)
    return made


def ref(p: Obj) -> Obj:
    meta = p["metadata"]
    return {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}


def ip(kubelet: FakeKubelet, p: Obj) -> str:
    return kubelet.ips[p["metadata"]["uid"]]


def test_endpoints_list_ready_and_not_ready_addresses_per_port_set(kube: Kube, namespace: str, runtime: Runtime,
                                                                   kubelet: FakeKubelet) -> None:
    made = backends(kube, kubelet, namespace)

    def address(name: str) -> Obj:
        return {"ip": ip(kubelet, made[name]), "nodeName": "node-a", "targetRef": ref(made[name])}

    http8080 = [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "raw", "port": 9000, "protocol": "TCP"}]
    http8081 = [{"name": "http", "port": 8081, "protocol": "TCP"}, {"name": "raw", "port": 9000, "protocol": "TCP"}]
    wanted = [{"ports": http8080, "addresses": [address("a")], "notReadyAddresses": [address("b")]},
              {"ports": http8081, "addresses": [address("c")]}]

    def subsets() -> Any:
        found = kube.get(ENDPOINTS, "web", namespace)
        return found and found.get("subsets")

    assert eventually(lambda: subsets() == wanted or None, what="two subsets")
    assert (kube.get(ENDPOINTS, "web", namespace) or {})["metadata"]["labels"] == {"tier": "front"}
    kubelet.run(made["a"], ready=False)
    eventually(lambda: [s.get("addresses") for s in subsets()] == [None, [address("c")]])
    kube.delete(PODS, "c", namespace)
    eventually(lambda: len(subsets()) == 1, what="a terminating Pod leaves the Endpoints")
    kube.delete(SERVICES, "web", namespace)
    eventually(lambda: kube.get(ENDPOINTS, "web", namespace) is None, what="endpoints of a deleted service go")


def test_a_service_without_selector_keeps_its_own_endpoints(kube: Kube, namespace: str, runtime: Runtime,
                                                           kubelet: FakeKubelet) -> None:
    backends(kube, kubelet, namespace)
    kube.create(SERVICES, service("manual", None), namespace)
    manual = {"metadata": {"name": "manual"}, "subsets": [{"addresses": [{"ip": "192.0.2.7"}],
                                                           "ports": [{"port": 5432, "protocol": "TCP"}]}]}
    kube.create(ENDPOINTS, manual, namespace)
    eventually(lambda: kube.get(ENDPOINTS, "web", namespace))
    assert (kube.get(ENDPOINTS, "manual", namespace) or {})["subsets"] == manual["subsets"]
    slices = kube.list(ENDPOINT_SLICES, namespace, label_selector="kubernetes.io/service-name=manual")[0]
    assert slices == []


def test_endpointslices_carry_conditions_ports_and_owner(kube: Kube, namespace: str, runtime: Runtime,
                                                         kubelet: FakeKubelet) -> None:
    made = backends(kube, kubelet, namespace)
    web = kube.get(SERVICES, "web", namespace) or {}

    def slices() -> list[Obj]:
        return sorted(kube.list(ENDPOINT_SLICES, namespace, label_selector="kubernetes.io/service-name=web")[0],
                      key=lambda s: s["ports"][0]["port"] if s.get("ports") else 0)

    found = eventually(lambda: (lambda s: s if len(s) == 2 else None)(slices()), what="two slices")
    first, second = found
    for s in found:
        assert s["addressType"] == "IPv4"
        assert s["metadata"]["labels"] == {"tier": "front", "kubernetes.io/service-name": "web",
                                           "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
        assert s["metadata"]["generateName"] == "web-"
        assert s["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                                     "uid": web["metadata"]["uid"], "controller": True,
                                                     "blockOwnerDeletion": True}]
    assert first["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"},
                              {"name": "raw", "port": 9000, "protocol": "TCP"}]
    assert sorted(first["endpoints"], key=lambda e: e["targetRef"]["name"]) == [
        {"addresses": [ip(kubelet, made["a"])], "conditions": {"ready": True, "serving": True, "terminating": False},
         "nodeName": "node-a", "targetRef": ref(made["a"])},
        {"addresses": [ip(kubelet, made["b"])], "conditions": {"ready": False, "serving": False, "terminating": False},
         "nodeName": "node-a", "targetRef": ref(made["b"])},
    ]
    assert [e["targetRef"]["name"] for e in second["endpoints"]] == ["c"]
    kube.delete(PODS, "c", namespace)  # bound to a node: it terminates first, and says so
    eventually(lambda: [e["conditions"] for e in slices()[1]["endpoints"]]
               == [{"ready": False, "serving": True, "terminating": True}], what="c terminating")
    kubelet.remove("c")
    eventually(lambda: len(slices()) == 1, what="the emptied port set's slice is deleted")


class _LaggingCache:
    """A Service cache that has not seen any Service yet (an informer behind the API)."""

    def get(self, namespace: str, name: str) -> Obj | None:
        return None

    def items(self, namespace: str | None = None) -> list[Obj]:
        return []


def _external(name: str) -> Obj:
    return {"metadata": {"name": name}, "subsets": [{"addresses": [{"ip": "192.0.2.9"}],
                                                     "ports": [{"port": 5432, "protocol": "TCP"}]}]}


def test_user_endpoints_survive_a_lagging_service_cache_and_a_missing_service(kube: Kube, namespace: str,
                                                                               runtime: Runtime) -> None:
    """Endpoints of a selector-less Service the cache has not seen, and Endpoints created before
    their Service, are the user's: the controller re-reads the Service and leaves them alone."""
    kube.create(SERVICES, service("db", None), namespace)
    kube.create(ENDPOINTS, _external("db"), namespace)
    kube.create(ENDPOINTS, _external("early"), namespace)  # its Service comes later
    lagging = EndpointsController(runtime, kube)
    lagging.services = _LaggingCache()  # type: ignore[assignment]
    cache = runtime.cache(ENDPOINTS)
    eventually(lambda: cache.get(namespace, "db") and cache.get(namespace, "early"), what="endpoints cached")
    lagging.reconcile((namespace, "db"))
    lagging.reconcile((namespace, "early"))
    assert (kube.get(ENDPOINTS, "db", namespace) or {}).get("subsets") == _external("db")["subsets"]
    assert (kube.get(ENDPOINTS, "early", namespace) or {}).get("subsets") == _external("early")["subsets"]


def test_a_second_slice_reconcile_writes_nothing(kube: Kube, namespace: str, runtime: Runtime,
                                               kubelet: FakeKubelet) -> None:
    """Unnamed ports are written as `name: ""` (as the API server stores them), so a reconcile of an
    up-to-date slice is not a no-op PATCH."""
    svc = service("plain", {"app": "plain"})
    svc["spec"]["ports"] = [{"port": 80, "targetPort": 8080}]
    kube.create(SERVICES, svc, namespace)
    kubelet.run(kube.create(PODS, pod("p", {"app": "plain"}, 8080), namespace), ready=True)
    cache = runtime.cache(ENDPOINT_SLICES)

    def settled() -> Obj | None:
        found = kube.list(ENDPOINT_SLICES, namespace, label_selector="kubernetes.io/service-name=plain")[0]
        if len(found) != 1 or not found[0]["endpoints"]:
            return None
        cached = cache.get(namespace, found[0]["metadata"]["name"]) or {}
        same = cached.get("metadata", {}).get("resourceVersion") == found[0]["metadata"]["resourceVersion"]
        return found[0] if same else None

    first = eventually(settled, what="one cached slice with the Pod")
    assert first["ports"] == [{"name": "", "port": 8080, "protocol": "TCP"}]
    stored = kube.get(SERVICES, "plain", namespace) or {}
    found = endpointplan.backends(stored, kube.list(PODS, namespace)[0])
    assert plan_slices(stored, found, [first]).actions == ()  # the API server drops a no-op PATCH: plan nothing
    EndpointSliceController(runtime, kube).reconcile((namespace, "plain"))
    after = kube.get(ENDPOINT_SLICES, first["metadata"]["name"], namespace) or {}
    assert after["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
