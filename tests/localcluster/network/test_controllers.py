"""The cloud load balancer and the service proxy as controllers against the embedded API server."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from kubernetes.client.exceptions import ApiException
from nethelpers import fetch, fetch_until, start_echo_server
from support.apiserver import ApiServer

from kube.controller import Runtime
from kube.rest import ENDPOINT_SLICES, ENDPOINTS, SERVICES, Kube
from localcluster.network.addressing import ClusterNet
from localcluster.network.cloudlb import LB_CLASS, CloudLoadBalancer
from localcluster.network.fabric import Fabric
from localcluster.network.podnet import PodNetwork
from localcluster.network.proxy import ServiceProxy

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, deadline: float = 20) -> T:
    end = time.monotonic() + deadline
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)  # polling interval of a condition with a deadline


@pytest.fixture
def kube1(apiserver: ApiServer) -> Kube:
    return Kube(apiserver.api_client("cluster1"), field_manager="network-test")


@pytest.fixture
def runtimes() -> Iterator[list[Runtime]]:
    made: list[Runtime] = []
    yield made
    for rt in made:
        rt.stop()


def lb_service(ns: str, name: str, cluster_ip: str, *, lb_class: str | None = None,
               target: Any = 80) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "LoadBalancer", "clusterIP": cluster_ip,
                            "ports": [{"name": "web", "port": 80, "targetPort": target}]}
    if lb_class:
        spec["loadBalancerClass"] = lb_class
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def ingress_ip(kube: Kube, ns: str, name: str) -> str | None:
    svc = kube.get(SERVICES, name, ns) or {}
    ing = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return ing[0].get("ip") if ing else None


def test_cloud_load_balancer_assigns_keeps_and_releases(kube1: Kube, namespace: str,
                                                        runtimes: list[Runtime]) -> None:
    net = ClusterNet(1)
    kube1.create(SERVICES, lb_service(namespace, "a", "10.1.128.101"))
    kube1.create(SERVICES, lb_service(namespace, "b", "10.1.128.102", lb_class=LB_CLASS))
    kube1.create(SERVICES, lb_service(namespace, "other", "10.1.128.103", lb_class="example.com/elsewhere"))
    rt = Runtime(kube1, namespace=namespace)
    runtimes.append(rt)
    CloudLoadBalancer(rt, kube1, net)
    rt.start()
    a = eventually(lambda: ingress_ip(kube1, namespace, "a"), "address of a")
    b = eventually(lambda: ingress_ip(kube1, namespace, "b"), "address of b")
    assert a != b and net.owns_lb_ip(a) and net.owns_lb_ip(b)
    svc = kube1.get(SERVICES, "a", namespace) or {}
    assert svc["status"]["loadBalancer"]["ingress"] == [{"ip": a, "ipMode": "VIP"}]
    rt.stop()
    # a new controller (restart) keeps the addresses: they are derived from the Services' status
    rt2 = Runtime(kube1, namespace=namespace)
    runtimes.append(rt2)
    CloudLoadBalancer(rt2, kube1, net)
    rt2.start()
    kube1.create(SERVICES, lb_service(namespace, "c", "10.1.128.104"))
    c = eventually(lambda: ingress_ip(kube1, namespace, "c"), "address of c")
    assert c not in (a, b)
    assert ingress_ip(kube1, namespace, "a") == a and ingress_ip(kube1, namespace, "b") == b
    assert ingress_ip(kube1, namespace, "other") is None
    kube1.patch(SERVICES, "a", {"spec": {"type": "ClusterIP"}}, namespace)
    eventually(lambda: ingress_ip(kube1, namespace, "a") is None, "release of a's address")


def _slices_served(kube: Kube) -> bool:
    try:
        kube.list(ENDPOINT_SLICES, "default")
    except ApiException:
        return False
    return True


def test_service_proxy_programs_cluster_ip_and_lb_and_the_api_refuses_loopback(
        kube1: Kube, namespace: str, runtimes: list[Runtime], fabric: Fabric,
        cluster_nets: tuple[PodNetwork, PodNetwork], servers: list[Any], host_listener: socket.socket) -> None:
    c1, _ = cluster_nets
    net = ClusterNet(1)
    client, web = c1.attach("client"), c1.attach("web")
    servers.append(start_echo_server(web.netns_path, web.ip, 8080))
    fetch_until(client.netns_path, web.ip, 8080)
    kube1.create(SERVICES, lb_service(namespace, "web", "10.1.128.111", target="http"))
    if _slices_served(kube1):
        kube1.create(ENDPOINT_SLICES, {
            "metadata": {"name": "web-1", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"name": "web", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [web.ip], "conditions": {"ready": True}}]})
    else:  # the proxy falls back to v1 Endpoints
        kube1.create(ENDPOINTS, {"metadata": {"name": "web", "namespace": namespace}, "subsets": [
            {"addresses": [{"ip": web.ip}], "ports": [{"name": "web", "port": 8080}]}]})
    kube1.create(SERVICES, {"metadata": {"name": "api", "namespace": namespace},
                            "spec": {"clusterIP": "10.1.128.112", "ports": [{"name": "https", "port": 443}]}})
    with pytest.raises(ApiException) as refused:  # only the API server's own default/kubernetes leads to loopback
        kube1.create(ENDPOINTS, {"metadata": {"name": "api", "namespace": namespace}, "subsets": [
            {"addresses": [{"ip": "127.0.0.1"}],
             "ports": [{"name": "https", "port": host_listener.getsockname()[1]}]}]})
    assert refused.value.status == 422
    rt = Runtime(kube1, namespace=namespace)
    runtimes.append(rt)
    CloudLoadBalancer(rt, kube1, net)
    proxy = ServiceProxy(rt, kube1, fabric, net)
    try:
        rt.start()
        expected = f"reply-from-{web.ip}-to-{client.ip}"
        assert fetch_until(client.netns_path, "10.1.128.111", 80) == expected
        lb = eventually(lambda: ingress_ip(kube1, namespace, "web"), "LB address")
        assert fetch_until(client.netns_path, lb, 80) == expected
        # a Service without ready endpoints any more is unprogrammed
        kube1.delete(SERVICES, "web", namespace)
        eventually(lambda: fetch(client.netns_path, "10.1.128.111", 80, timeout=1) is None, "web unprogrammed")
    finally:
        proxy.stop()
