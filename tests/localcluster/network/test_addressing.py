"""The addressing plan (pure)."""

from __future__ import annotations

import ipaddress

import pytest

from localcluster.network.addressing import ClusterNet, fabric_name, pod_netns_name, veth_name


def test_plan_for_index() -> None:
    net = ClusterNet(7)
    assert str(net.pod_cidr) == "10.7.0.0/17" and str(net.node_ip) == "10.7.127.254"
    assert str(net.service_cidr) == "10.7.128.0/17" and str(net.kubernetes_service_ip) == "10.7.128.1"
    assert str(net.lb_pool) == "172.20.7.0/24"
    assert net.node_ip not in net.pod_ips() and all(ip in net.pod_cidr for ip in net.pod_ips()[:10])
    assert not net.pod_cidr.overlaps(net.service_cidr)
    assert net.owns_service_ip("10.7.200.1") and not net.owns_service_ip("10.8.128.1")
    assert not net.owns_pod_ip("nonsense")


@pytest.mark.parametrize("bad", [0, 201, -1, True, "3"])
def test_index_validated(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        ClusterNet(bad)  # type: ignore[arg-type]


def test_names() -> None:
    uid = "0b5e7c2a-61d3-4f8e-9a7b-123456789abc"
    assert len(veth_name(uid)) <= 15 and veth_name(uid) != veth_name(uid[:-1] + "d")
    fab = fabric_name("install-1")
    assert fab == fabric_name("install-1") != fabric_name("install-2")
    assert pod_netns_name(fab, uid).startswith(f"{fab}-pod-")
    assert all(ipaddress.ip_address(str(ip)).is_private for ip in ClusterNet(200).lb_ips()[:3])
