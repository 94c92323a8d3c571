"""The container side's pure parts: the node-address load balancer's plan (`localcluster.network.nodelb`)
and the node's nft table (`localcluster.network.nodenet`), checked with `nft --check` in a scratch
network namespace."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from support.loopnet import loopback_netns

from localcluster.network.addressing import ClusterNet
from localcluster.network.nodelb import plan_node_lb
from localcluster.network.nodenet import NODE_LINK, NodePort, render_node_table

NODE = "192.168.213.3"


def _svc(name: str, ports: list[int], *, created: str = "2026-01-01T00:00:00Z", cluster_ip: str = "10.1.128.9",
         kind: str = "LoadBalancer", ingress: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"metadata": {"namespace": "dest", "name": name, "creationTimestamp": created},
            "spec": {"type": kind, "clusterIP": cluster_ip,
                     "ports": [{"port": p, "protocol": "TCP"} for p in ports]},
            "status": {"loadBalancer": {"ingress": ingress} if ingress else {}}}


def test_each_load_balancer_service_gets_the_node_address_and_its_ports() -> None:
    plan = plan_node_lb(NODE, [_svc("a", [22], cluster_ip="10.1.128.5"), _svc("b", [80, 443], cluster_ip="10.1.128.6"),
                               _svc("plain", [8080], kind="ClusterIP")])
    assert dict(plan.ingress) == {("dest", "a"): NODE, ("dest", "b"): NODE}
    assert plan.ports == (NodePort("tcp", 22, "10.1.128.5", "dest/a"), NodePort("tcp", 80, "10.1.128.6", "dest/b"),
                          NodePort("tcp", 443, "10.1.128.6", "dest/b"))
    assert plan.waiting == ()


def test_a_port_is_first_come_first_served_and_freed_with_its_service() -> None:
    older = _svc("older", [22], created="2026-01-01T00:00:00Z", cluster_ip="10.1.128.5")
    newer = _svc("newer", [22, 2222], created="2026-01-02T00:00:00Z", cluster_ip="10.1.128.6",
                 ingress=[{"ip": NODE}])
    plan = plan_node_lb(NODE, [newer, older])
    assert dict(plan.ingress) == {("dest", "older"): NODE, ("dest", "newer"): None}
    assert [p.cluster_ip for p in plan.ports] == ["10.1.128.5"]
    assert plan.waiting == ("dest/newer: port 22/tcp held by dest/older",)
    assert dict(plan_node_lb(NODE, [newer]).ingress) == {("dest", "newer"): NODE}


def test_a_service_no_longer_ours_loses_the_node_address_and_one_without_cluster_ip_waits() -> None:
    gone = _svc("was-lb", [22], kind="ClusterIP", ingress=[{"ip": NODE}])
    other_class = _svc("other", [23], ingress=[{"ip": NODE}])
    other_class["spec"]["loadBalancerClass"] = "example.com/elsewhere"
    headless = _svc("headless", [24], cluster_ip="None")
    plan = plan_node_lb(NODE, [gone, other_class, headless])
    assert dict(plan.ingress) == {("dest", "was-lb"): None, ("dest", "other"): None, ("dest", "headless"): None}
    assert plan.ports == ()


def test_the_node_table_is_valid_nft_and_says_what_it_forwards() -> None:
    net = ClusterNet(1)
    text = render_node_table(net, NODE, [NodePort("tcp", 22, "10.1.128.5", "dest/a"),
                                         NodePort("udp", 53, "10.1.128.10", "kube-system/dns")])
    assert f"ip daddr {NODE} tcp dport 22 dnat to 10.1.128.5:22" in text
    assert f"ip daddr {NODE} udp dport 53 dnat to 10.1.128.10:53" in text
    assert f'ip saddr 10.1.0.0/16 oifname != "{NODE_LINK}" masquerade' in text
    assert f'oifname "{NODE_LINK}" drop' in text  # only DNATed or answering traffic enters the uplink
    with loopback_netns("vsa-nodelb") as netns:
        name = netns.rsplit("/", 1)[1]
        for program in (text, render_node_table(net, NODE, [])):
            done = subprocess.run(["ip", "netns", "exec", name, "nft", "-c", "-f", "-"], input=program,
                                  capture_output=True, text=True, check=False, timeout=30)
            assert done.returncode == 0, done.stderr


def test_the_node_address_must_be_an_ipv4_address() -> None:
    for bad in ("hub", "::1", ""):
        with pytest.raises(ValueError):
            render_node_table(ClusterNet(1), bad, [])
