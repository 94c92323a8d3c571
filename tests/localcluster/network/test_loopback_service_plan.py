"""Loopback Services (pure planning): only the installation's listed Services lead to the host's 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest

from localcluster.network.addressing import ClusterNet
from localcluster.network.servicerules import plan_services, service_key

NET = ClusterNet(1)
NODE = str(NET.node_ip)
HUB = "volsync-system/volsync-hub"


def _lb_svc(ns: str, name: str, cluster_ip: str, lb_ip: str) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name},
            "spec": {"type": "LoadBalancer", "clusterIP": cluster_ip, "ports": [{"name": "https", "port": 443}]},
            "status": {"loadBalancer": {"ingress": [{"ip": lb_ip, "ipMode": "VIP"}]}}}


def _eps(ns: str, name: str, *addresses: tuple[str, int]) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name},
            "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port}]}
                        for ip, port in addresses]}


def _forwards(plan: Any) -> list[tuple[str, int, str, int]]:
    return [(f.listen_ip, f.listen_port, f.target_ip, f.target_port) for f in plan.forwards]


def test_a_listed_service_at_the_node_address_is_served_from_the_host_loopback() -> None:
    svc = _lb_svc("volsync-system", "volsync-hub", "10.1.128.40", "172.20.1.1")
    plan = plan_services(NET, [svc], [], [_eps("volsync-system", "volsync-hub", (NODE, 40123))], [HUB])
    assert _forwards(plan) == [("10.1.128.40", 443, "127.0.0.1", 40123), ("172.20.1.1", 443, "127.0.0.1", 40123)]
    assert plan.rules == () and plan.ignored == ()


def test_the_same_service_unlisted_is_an_ordinary_backend_and_its_loopback_endpoint_ignored() -> None:
    svc = _lb_svc("volsync-system", "volsync-hub", "10.1.128.40", "172.20.1.1")
    at_node = plan_services(NET, [svc], [], [_eps("volsync-system", "volsync-hub", (NODE, 40123))])
    assert at_node.forwards == ()
    assert [(b.ip, b.port) for b in at_node.rules[0].backends] == [(NODE, 40123)]  # nothing listens there
    looped = plan_services(NET, [svc], [], [_eps("volsync-system", "volsync-hub", ("127.0.0.1", 40123))],
                           ["other/svc"])
    assert looped.forwards == ()
    assert looped.ignored == (
        "volsync-system/volsync-hub: loopback endpoint 127.0.0.1 ignored (only default/kubernetes is forwarded)",)


def test_a_listed_service_leads_only_to_127_0_0_1_never_to_another_loopback_address() -> None:
    svc = _lb_svc("volsync-system", "volsync-hub", "10.1.128.40", "172.20.1.1")
    odd = plan_services(NET, [svc], [], [_eps("volsync-system", "volsync-hub", ("127.0.0.53", 53))], [HUB])
    assert odd.forwards == ()
    assert odd.ignored == ("volsync-system/volsync-hub: loopback endpoint 127.0.0.53 ignored "
                           "(only 127.0.0.1 is forwarded)",)
    direct = plan_services(NET, [svc], [], [_eps("volsync-system", "volsync-hub", ("127.0.0.1", 40123))], [HUB])
    assert _forwards(direct)[0] == ("10.1.128.40", 443, "127.0.0.1", 40123)


def test_another_clusters_node_address_is_not_the_host() -> None:
    svc = _lb_svc("volsync-system", "volsync-hub", "10.1.128.40", "172.20.1.1")
    plan = plan_services(NET, [svc], [], [_eps("volsync-system", "volsync-hub", (str(ClusterNet(2).node_ip), 1))],
                         [HUB])
    assert plan.forwards == ()


def test_service_key_accepts_namespace_slash_name_only() -> None:
    assert service_key("volsync-system/volsync-hub") == HUB
    for bad in ("volsync-hub", "/x", "a/", "A/b", "a/b/c", "a/b:443"):
        with pytest.raises(ValueError):
            service_key(bad)
