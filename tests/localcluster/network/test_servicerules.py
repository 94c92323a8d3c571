"""Planning a cluster's Service rules (pure)."""

from __future__ import annotations

from typing import Any

from localcluster.network.addressing import ClusterNet
from localcluster.network.servicerules import Backend, plan_services, render_table

NET = ClusterNet(2)


def svc(name: str, ip: str, ports: list[dict[str, Any]], ingress: tuple[str, ...] = ()) -> dict[str, Any]:
    kind = "LoadBalancer" if ingress else "ClusterIP"
    return {"metadata": {"namespace": "n", "name": name}, "spec": {"type": kind, "clusterIP": ip, "ports": ports},
            "status": {"loadBalancer": {"ingress": [{"ip": i} for i in ingress]}}}


def test_outside_cidr_and_headless_are_ignored() -> None:
    plan = plan_services(NET, [svc("old", "10.96.0.5", [{"port": 80}]), svc("headless", "None", [{"port": 80}])],
                         [], [])
    assert plan.rules == () and plan.forwards == ()
    assert plan.ignored == ("n/old: clusterIP 10.96.0.5 is outside the service CIDR 10.2.128.0/17",)


def test_named_target_resolved_by_slice_port_name_and_lb_frontends() -> None:
    s = svc("web", "10.2.128.7", [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
                                  {"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"}],
            ingress=("172.20.2.9",))
    sl = {"metadata": {"namespace": "n", "name": "web-x", "labels": {"kubernetes.io/service-name": "web"}},
          "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}, {"name": "dns", "port": 5353}],
          "endpoints": [{"addresses": ["10.2.0.3"]}, {"addresses": ["10.2.0.4"], "conditions": {"ready": False}}]}
    plan = plan_services(NET, [s], [sl], [])
    http, dns = plan.rules
    assert http.frontends == (("10.2.128.7", 80), ("172.20.2.9", 80)) and http.backends == (Backend("10.2.0.3", 8080),)
    assert dns.protocol == "udp" and dns.backends == (Backend("10.2.0.3", 5353),)
    table = render_table(NET, plan)
    assert "ip daddr 172.20.2.9 tcp dport 80 goto svc0" in table and "dnat to 10.2.0.3:8080" in table
    assert table.startswith("table ip vsa_svc_2\ndelete table ip vsa_svc_2\n")


def test_loopback_endpoint_becomes_a_forwarder() -> None:
    k = svc("kubernetes", "10.2.128.1", [{"name": "https", "port": 443, "targetPort": 6443}])
    k["metadata"]["namespace"] = "default"
    eps = {"metadata": {"namespace": "default", "name": "kubernetes"},
           "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 41234}]}]}
    plan = plan_services(NET, [k], [], [eps])
    assert plan.rules == ()
    assert [(f.listen_ip, f.listen_port, f.target_ip, f.target_port) for f in plan.forwards] == [
        ("10.2.128.1", 443, "127.0.0.1", 41234)]
