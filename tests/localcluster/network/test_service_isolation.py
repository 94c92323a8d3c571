"""A cluster's Services may lead only into its own addresses: no host loopback, no foreign frontends."""

from __future__ import annotations

from typing import Any

from localcluster.network.addressing import ClusterNet
from localcluster.network.cloudlb import LB_CLASS
from localcluster.network.servicerules import plan_services

NET = ClusterNet(2)


def _svc(ns: str, name: str, ip: str, **spec: Any) -> dict[str, Any]:
    ingress = spec.pop("ingress", ())
    return {"metadata": {"namespace": ns, "name": name},
            "spec": {"clusterIP": ip, "ports": [{"name": "https", "port": 443}], **spec},
            "status": {"loadBalancer": {"ingress": [{"ip": i} for i in ingress]}}}


def _loopback_endpoints(ns: str, name: str, port: int) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name},
            "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": port}]}]}


def test_only_the_kubernetes_service_is_forwarded_to_the_host_loopback() -> None:
    services = [_svc("default", "kubernetes", "10.2.128.1"), _svc("team", "sshd", "10.2.128.22"),
                _svc("default", "other", "10.2.128.23")]
    endpoints = [_loopback_endpoints("default", "kubernetes", 41234), _loopback_endpoints("team", "sshd", 22),
                 _loopback_endpoints("default", "other", 5432)]
    plan = plan_services(NET, services, [], endpoints)
    assert [(f.listen_ip, f.listen_port, f.target_ip, f.target_port) for f in plan.forwards] == [
        ("10.2.128.1", 443, "127.0.0.1", 41234)]
    assert all(r.backends == () for r in plan.rules)  # the loopback address is no DNAT backend either
    assert sorted(plan.ignored) == [
        "default/other: loopback endpoint 127.0.0.1 ignored (only default/kubernetes is forwarded)",
        "team/sshd: loopback endpoint 127.0.0.1 ignored (only default/kubernetes is forwarded)"]


def test_a_loopback_endpoint_slice_of_another_service_is_ignored() -> None:
    sl = {"metadata": {"namespace": "team", "name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
          "addressType": "IPv4", "ports": [{"name": "https", "port": 5432}],
          "endpoints": [{"addresses": ["127.0.0.5"]}, {"addresses": ["10.2.0.7"]}]}
    plan = plan_services(NET, [_svc("team", "db", "10.2.128.30")], [sl], [])
    assert plan.forwards == ()
    assert [(b.ip, b.port) for b in plan.rules[0].backends] == [("10.2.0.7", 5432)]


def _frontends(svc: dict[str, Any]) -> list[str]:
    plan = plan_services(NET, [svc], [], [])
    return [ip for rule in plan.rules for ip, _ in rule.frontends]


def test_ingress_addresses_count_only_for_our_load_balancers_inside_our_pool() -> None:
    # a ClusterIP Service claiming another cluster's Pod IP as its "ingress" (the reported hijack)
    assert _frontends(_svc("n", "a", "10.2.128.5", type="ClusterIP", ingress=("10.1.0.9",))) == ["10.2.128.5"]
    # our LoadBalancer, but an address outside this cluster's pool (another cluster's pool, a Pod IP)
    assert _frontends(_svc("n", "b", "10.2.128.6", type="LoadBalancer",
                           ingress=("172.20.1.4", "10.1.0.9", "10.3.128.1"))) == ["10.2.128.6"]
    # another load balancer's class: its addresses are not ours to program
    assert _frontends(_svc("n", "c", "10.2.128.7", type="LoadBalancer", loadBalancerClass="other.io/lb",
                           ingress=("172.20.2.8",))) == ["10.2.128.7"]
    # ours, in our pool: with or without the explicit class
    assert _frontends(_svc("n", "d", "10.2.128.8", type="LoadBalancer", ingress=("172.20.2.9",))) == [
        "10.2.128.8", "172.20.2.9"]
    assert _frontends(_svc("n", "e", "10.2.128.9", type="LoadBalancer", loadBalancerClass=LB_CLASS,
                           ingress=("172.20.2.10",))) == ["10.2.128.9", "172.20.2.10"]
