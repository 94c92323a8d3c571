"""The container side's pure parts: the node-address load balancer's plan (`localcluster.network.nodelb`,
the node's own ports reserved) and the node's nft table (`localcluster.network.nodenet`), checked with
`nft --check` in a scratch network namespace; ``--node-network`` refused outside a container."""

from __future__ import annotations

import argparse
import ipaddress
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.loopnet import loopback_netns

from localcluster import main as localcluster_main
from localcluster.network.addressing import ClusterNet
from localcluster.network.nodelb import plan_node_lb
from localcluster.network.nodenet import NODE_LINK, NodePort, inside_container, render_node_table, reserved_port

NODE = "192.168.213.3"
SUBNET = ipaddress.IPv4Network("192.168.213.0/24")


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
                                         NodePort("udp", 53, "10.1.128.10", "kube-system/dns")], SUBNET)
    assert f"ip daddr {NODE} tcp dport 22 dnat to 10.1.128.5:22" in text
    assert f"ip daddr {NODE} udp dport 53 dnat to 10.1.128.10:53" in text
    assert f'ip saddr 10.1.0.0/16 ip daddr {SUBNET} oifname != "{NODE_LINK}" masquerade' in text
    assert f'iifname "{NODE_LINK}" ip daddr != {SUBNET} drop' in text  # Pods reach the compose network only
    assert f'oifname "{NODE_LINK}" drop' in text  # only DNATed or answering traffic enters the uplink
    with loopback_netns("vsa-nodelb") as netns:
        name = netns.rsplit("/", 1)[1]
        for program in (text, render_node_table(net, NODE, [], SUBNET)):
            done = subprocess.run(["ip", "netns", "exec", name, "nft", "-c", "-f", "-"], input=program,
                                  capture_output=True, text=True, check=False, timeout=30)
            assert done.returncode == 0, done.stderr


def test_the_node_address_must_be_an_ipv4_address() -> None:
    for bad in ("hub", "::1", ""):
        with pytest.raises(ValueError):
            render_node_table(ClusterNet(1), bad, [], SUBNET)


def test_the_node_s_own_ports_are_never_handed_to_a_service() -> None:
    api = _svc("api-squatter", [6443], cluster_ip="10.1.128.5", ingress=[{"ip": NODE}])
    kubelet = _svc("kubelet-squatter", [10250], cluster_ip="10.1.128.6")
    fine = _svc("fine", [22], cluster_ip="10.1.128.7")
    plan = plan_node_lb(NODE, [api, kubelet, fine], reserved=[("tcp", 6443), ("TCP", 10250)])
    assert dict(plan.ingress) == {("dest", "api-squatter"): None, ("dest", "kubelet-squatter"): None,
                                  ("dest", "fine"): NODE}
    assert plan.ports == (NodePort("tcp", 22, "10.1.128.7", "dest/fine"),)
    assert plan.waiting == ("dest/api-squatter: port 6443/tcp held by the node",
                            "dest/kubelet-squatter: port 10250/tcp held by the node")
    udp = _svc("udp-6443", [], cluster_ip="10.1.128.8")
    udp["spec"]["ports"] = [{"port": 6443, "protocol": "UDP"}]  # another protocol: not the API server's
    assert dict(plan_node_lb(NODE, [udp], reserved=[("tcp", 6443)]).ingress) == {("dest", "udp-6443"): NODE}


def test_reserved_port_flags() -> None:
    assert reserved_port("6443") == ("tcp", 6443)
    assert reserved_port("53/UDP") == ("udp", 53)
    for bad in ("", "0", "70000", "https", "80/sctp", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            reserved_port(bad)


def test_node_network_is_only_for_a_container(tmp_path: Path) -> None:
    assert not inside_container(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".containerenv").write_text("")
    assert inside_container(tmp_path)
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / ".dockerenv").write_text("")
    assert inside_container(docker)


def test_the_cluster_process_refuses_node_network_on_the_host(capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localcluster_main, "inside_container", lambda: False)  # the host: no marker file
    argv = ["--cluster", "c1", "--index", "1", "--kubeconfig", "/nonexistent", "--state-dir", "/nonexistent",
            "--fabric", "vsa-none", "--pki-dir", "/nonexistent", "--node-network"]
    assert localcluster_main.main(argv) == 2
    assert "--node-network only inside a container" in capsys.readouterr().err
