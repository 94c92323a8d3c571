"""The data path with real namespaces and real nft: Pod to Pod, Services, hairpin, LB, isolation."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

from nethelpers import fetch, fetch_until, host_view, start_echo_server

from localcluster.network import netcmd
from localcluster.network.addressing import ClusterNet, fabric_name
from localcluster.network.fabric import Fabric, lock_path
from localcluster.network.forwarder import LoopbackForwarder
from localcluster.network.podnet import PodNetwork
from localcluster.network.servicerules import plan_services, render_table


def service(ns: str, name: str, cluster_ip: str, port: int, target: Any, port_name: str = "",
            lb_ip: str | None = None) -> dict[str, Any]:
    status = {"loadBalancer": {"ingress": [{"ip": lb_ip, "ipMode": "VIP"}]}} if lb_ip else {}
    return {"metadata": {"namespace": ns, "name": name},
            "spec": {"type": "LoadBalancer" if lb_ip else "ClusterIP", "clusterIP": cluster_ip,
                     "ports": [{"name": port_name, "port": port, "targetPort": target}]},
            "status": status}


def slice_for(ns: str, name: str, ips: list[str], port: int, port_name: str = "",
              ready: bool = True) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": f"{name}-abc", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip in ips]}


def program(fabric: Fabric, net: ClusterNet, services: list[dict[str, Any]], slices: list[dict[str, Any]],
            endpoints: list[dict[str, Any]] | None = None) -> None:
    netcmd.nft_apply(fabric.netns, render_table(net, plan_services(net, services, slices, endpoints or [])))


def test_pods_reach_each_other_by_pod_ip(cluster_nets: tuple[PodNetwork, PodNetwork], servers: list[Any]) -> None:
    c1, _ = cluster_nets
    a, b = c1.attach("pod-a"), c1.attach("pod-b")
    assert a.ip != b.ip and ClusterNet(1).owns_pod_ip(a.ip) and ClusterNet(1).owns_pod_ip(b.ip)
    ping = subprocess.run(["ip", "netns", "exec", Path(a.netns_path).name, "busybox", "ping", "-c1", "-W3", b.ip],
                          capture_output=True, text=True)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    servers.append(start_echo_server(b.netns_path, b.ip, 7000))
    assert fetch_until(a.netns_path, b.ip, 7000) == f"reply-from-{b.ip}-to-{a.ip}"


def test_cluster_ip_reaches_ready_endpoint_by_number_and_by_name(
        fabric: Fabric, cluster_nets: tuple[PodNetwork, PodNetwork], servers: list[Any]) -> None:
    c1, _ = cluster_nets
    client, web, idle = c1.attach("client"), c1.attach("web"), c1.attach("idle")
    servers.append(start_echo_server(web.netns_path, web.ip, 8080))
    servers.append(start_echo_server(idle.netns_path, idle.ip, 8080))
    fetch_until(client.netns_path, web.ip, 8080)
    net = ClusterNet(1)
    svcs = [service("a", "by-number", "10.1.128.10", 80, 8080),
            service("a", "by-name", "10.1.128.11", 81, "http-alt", port_name="web")]
    # by-number comes from v1 Endpoints (no slices); by-name from a slice whose not-ready endpoint is skipped
    endpoints = [{"metadata": {"namespace": "a", "name": "by-number"},
                  "subsets": [{"addresses": [{"ip": web.ip}], "notReadyAddresses": [{"ip": idle.ip}],
                               "ports": [{"name": "", "port": 8080}]}]}]
    slices = [slice_for("a", "by-name", [web.ip], 8080, port_name="web"),
              slice_for("a", "by-name", [idle.ip], 8080, port_name="web", ready=False)]
    program(fabric, net, svcs, slices, endpoints)
    for _ in range(8):  # random balancing would show the not-ready one within a few tries
        assert fetch(client.netns_path, "10.1.128.10", 80) == f"reply-from-{web.ip}-to-{client.ip}"
        assert fetch(client.netns_path, "10.1.128.11", 81) == f"reply-from-{web.ip}-to-{client.ip}"


def test_hairpin_reaches_itself_through_its_service(
        fabric: Fabric, cluster_nets: tuple[PodNetwork, PodNetwork], servers: list[Any]) -> None:
    c1, _ = cluster_nets
    web = c1.attach("web")
    servers.append(start_echo_server(web.netns_path, web.ip, 8080))
    program(fabric, ClusterNet(1), [service("a", "web", "10.1.128.12", 80, 8080)],
            [slice_for("a", "web", [web.ip], 8080)])
    assert fetch_until(web.netns_path, "10.1.128.12", 80) == f"reply-from-{web.ip}-to-{c1.host_ip()}"


def test_lb_address_reachable_from_other_cluster_but_pod_ip_is_not(
        fabric: Fabric, cluster_nets: tuple[PodNetwork, PodNetwork], servers: list[Any]) -> None:
    c1, c2 = cluster_nets
    client, web = c1.attach("client"), c2.attach("web")
    servers.append(start_echo_server(web.netns_path, web.ip, 8022))
    peer = c2.attach("peer")  # same cluster: the server is up and reachable by Pod IP there
    fetch_until(peer.netns_path, web.ip, 8022)
    program(fabric, ClusterNet(1), [], [])
    program(fabric, ClusterNet(2), [service("b", "lb", "10.2.128.20", 22, 8022, lb_ip="172.20.2.1")],
            [slice_for("b", "lb", [web.ip], 8022)])
    assert fetch_until(client.netns_path, "172.20.2.1", 22) == f"reply-from-{web.ip}-to-{client.ip}"
    assert fetch(client.netns_path, web.ip, 8022, timeout=2) is None
    ping = subprocess.run(["ip", "netns", "exec", Path(client.netns_path).name, "busybox", "ping", "-c1", "-W2",
                           web.ip], capture_output=True, text=True)
    assert ping.returncode != 0


def test_loopback_forwarder_reaches_host_loopback(
        fabric: Fabric, cluster_nets: tuple[PodNetwork, PodNetwork], host_listener: socket.socket) -> None:
    c1, _ = cluster_nets
    pod = c1.attach("client")
    port = host_listener.getsockname()[1]
    kube_svc = service("default", "kubernetes", "10.1.128.1", 443, 443, port_name="https")
    eps = [{"metadata": {"namespace": "default", "name": "kubernetes"},
            "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": port}]}]}]
    plan = plan_services(ClusterNet(1), [kube_svc], [], eps)
    assert [(f.listen_ip, f.listen_port, f.target_port) for f in plan.forwards] == [("10.1.128.1", 443, port)]
    assert plan.rules == ()
    fabric.add_local_address("10.1.128.1")
    fwd = LoopbackForwarder(fabric.netns_path, "10.1.128.1", 443, "127.0.0.1", port)
    try:
        assert fetch_until(pod.netns_path, "10.1.128.1", 443) == "host-api"
    finally:
        fwd.stop()


def test_restart_adopts_allocations(fabric: Fabric, tmp_path: Path) -> None:
    first = PodNetwork(fabric, ClusterNet(3), tmp_path / "state")
    a, b = first.attach("a"), first.attach("b")
    again = PodNetwork(fabric, ClusterNet(3), tmp_path / "state")
    assert again.attach("a") == a and again.attach("b") == b
    again.detach("a")
    assert not Path(a.netns_path).exists()
    assert PodNetwork(fabric, ClusterNet(3), tmp_path / "state").attached() == {"b": b.ip}
    (tmp_path / "state" / "pod-ips.json").unlink()  # a lost state file: re-derived from the namespaces
    assert PodNetwork(fabric, ClusterNet(3), tmp_path / "state").attach("b") == b


def test_host_namespace_unchanged(tmp_path: Path, host_listener: socket.socket) -> None:
    before = host_view()
    fab = Fabric(fabric_name(f"host-check-{tmp_path.name}"))
    try:
        fab.ensure()
        pods = PodNetwork(fab, ClusterNet(4), tmp_path / "state")
        web = pods.attach("web")
        program(fab, ClusterNet(4), [service("a", "s", "10.4.128.9", 80, 80, lb_ip="172.20.4.1")],
                [slice_for("a", "s", [web.ip], 80)])
        fab.add_local_address("10.4.128.1")
        fwd = LoopbackForwarder(fab.netns_path, "10.4.128.1", 443, "127.0.0.1", host_listener.getsockname()[1])
        during = host_view()
        fwd.stop()
    finally:
        fab.remove()
        lock_path(fab.name).unlink(missing_ok=True)
    assert during == before
    assert host_view() == before
