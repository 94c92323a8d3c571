"""Service ClusterIPs from each cluster's own Service CIDR and NodePorts (serviceips.py), unit-level
and through a real server: allocation, 422s as upstream words them, release, restart safety."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from identitykit import SERVICE_IPS, Identity, identity_server

from apiserver import errors
from apiserver.serviceips import ServiceAddresses
from apiserver.store import Event


def _svc(name: str, ip: str | None = None, kind: str = "ClusterIP", node_port: int | None = None) -> dict[str, Any]:
    port: dict[str, Any] = {"port": 80, "protocol": "TCP"}
    if node_port is not None:
        port["nodePort"] = node_port
    spec: dict[str, Any] = {"type": kind, "ports": [port]}
    if ip is not None:
        spec["clusterIP"] = ip
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": spec}


def _added(addresses: ServiceAddresses, svc: dict[str, Any]) -> dict[str, Any]:
    addresses.admit(None, svc)
    addresses.observe([Event(1, "ADDED", "/services", svc)])
    return svc


def test_addresses_come_from_the_range_and_skip_the_kubernetes_address() -> None:
    addresses = ServiceAddresses("10.7.128.0/17")
    assert addresses.kubernetes_ip == "10.7.128.1"
    first, second = _added(addresses, _svc("a")), _added(addresses, _svc("b"))
    assert first["spec"]["clusterIP"] == "10.7.128.2" and first["spec"]["clusterIPs"] == ["10.7.128.2"]
    assert second["spec"]["clusterIP"] == "10.7.128.3"
    with pytest.raises(errors.ApiError) as refused:
        addresses.admit(None, _svc("c", "10.7.128.1"))  # only default/kubernetes holds the first address
    assert refused.value.code == 422
    kubernetes = {"metadata": {"name": "kubernetes", "namespace": "default"}, "spec": {"clusterIP": "10.7.128.1"}}
    addresses.admit(None, kubernetes)


def test_a_taken_address_is_422_as_upstream_words_it_and_free_again_after_delete() -> None:
    addresses = ServiceAddresses("10.7.128.0/17")
    held = _added(addresses, _svc("a", "10.7.200.9"))
    with pytest.raises(errors.ApiError) as refused:
        addresses.admit(None, _svc("b", "10.7.200.9"))
    assert refused.value.code == 422
    assert refused.value.message == ('Service "b" is invalid: spec.clusterIPs: Invalid value: []string{"10.7.200.9"}: '
                                     "failed to allocate IP 10.7.200.9: provided IP is already allocated")
    addresses.observe([Event(2, "DELETED", "/services", held)])
    addresses.admit(None, _svc("b", "10.7.200.9"))


def test_outside_the_range_headless_and_external_name() -> None:
    addresses = ServiceAddresses("10.7.128.0/17")
    with pytest.raises(errors.ApiError) as outside:
        addresses.admit(None, _svc("lo", "127.0.0.5"))
    assert outside.value.code == 422
    assert outside.value.message == (
        'Service "lo" is invalid: spec.clusterIPs: Invalid value: []string{"127.0.0.5"}: failed to allocate IP '
        "127.0.0.5: the provided IP (127.0.0.5) is not in the valid range. The range of valid IPs is 10.7.128.0/17")
    headless = _added(addresses, _svc("h", "None"))
    assert headless["spec"]["clusterIPs"] == ["None"]
    external = _added(addresses, {"metadata": {"name": "e", "namespace": "ns"}, "spec": {"type": "ExternalName"}})
    assert "clusterIP" not in external["spec"]
    for bad in ("not-an-ip", 5):
        with pytest.raises(errors.ApiError) as refused:
            addresses.admit(None, _svc("bad", bad))  # type: ignore[arg-type]
        assert refused.value.code == 422


def test_an_update_keeps_the_address_and_may_not_change_it() -> None:
    addresses = ServiceAddresses("10.7.128.0/17")
    old = _added(addresses, _svc("a", kind="NodePort"))
    new = _svc("a", kind="NodePort")  # a PUT without the allocated values
    addresses.admit(old, new)
    assert new["spec"]["clusterIP"] == old["spec"]["clusterIP"]
    assert new["spec"]["ports"][0]["nodePort"] == old["spec"]["ports"][0]["nodePort"]
    with pytest.raises(errors.ApiError) as refused:
        addresses.admit(old, _svc("a", "10.7.128.77", kind="NodePort"))
    assert "may not change once set" in refused.value.message


def test_node_ports_are_unique_in_range_and_refused_when_taken_or_outside() -> None:
    addresses = ServiceAddresses("10.7.128.0/17")
    ports = {_added(addresses, _svc(f"s{i}", kind="NodePort"))["spec"]["ports"][0]["nodePort"] for i in range(50)}
    assert len(ports) == 50 and all(30000 <= p <= 32767 for p in ports)
    lb = _added(addresses, _svc("lb", kind="LoadBalancer"))
    assert lb["spec"]["ports"][0]["nodePort"] not in ports and lb["spec"]["allocateLoadBalancerNodePorts"] is True
    taken = next(iter(ports))
    with pytest.raises(errors.ApiError) as refused:
        addresses.admit(None, _svc("x", kind="NodePort", node_port=taken))
    assert refused.value.message.endswith(f"spec.ports[0].nodePort: Invalid value: {taken}: provided port is "
                                          "already allocated")
    with pytest.raises(errors.ApiError) as outside:
        addresses.admit(None, _svc("y", kind="NodePort", node_port=8080))
    assert "provided port is not in the valid range" in outside.value.message
    plain = _added(addresses, _svc("plain", node_port=31000))  # a ClusterIP Service has no nodePort
    assert "nodePort" not in plain["spec"]["ports"][0]


def test_the_index_is_rebuilt_from_stored_services() -> None:
    before = ServiceAddresses("10.7.128.0/17")
    stored = [_added(before, _svc("a", kind="NodePort")), _added(before, _svc("b"))]
    after = ServiceAddresses("10.7.128.0/17", stored)
    fresh = _added(after, _svc("c"))
    assert fresh["spec"]["clusterIP"] not in {s["spec"]["clusterIP"] for s in stored}
    with pytest.raises(errors.ApiError):
        after.admit(None, _svc("d", kind="NodePort", node_port=stored[0]["spec"]["ports"][0]["nodePort"]))


# -- through the real server ----------------------------------------------------------------------------
def test_each_cluster_allocates_from_its_own_range(identity: Identity) -> None:
    for cluster, kubernetes_ip in SERVICE_IPS.items():
        identity.server.kubectl("create", "service", "clusterip", "web", "--tcp=80", context=cluster)
        ip = identity.server.get("service", "web", context=cluster)["spec"]["clusterIP"]
        assert ip.startswith(kubernetes_ip.rsplit(".", 2)[0] + ".") and ip != kubernetes_ip


def test_a_taken_address_is_422_from_the_server_and_survives_kill_9(tmp_path: Path) -> None:
    server = identity_server(tmp_path / "api").start()
    try:
        server.kubectl("create", "service", "nodeport", "first", "--tcp=80", context="cluster1")
        first = server.get("service", "first", context="cluster1")["spec"]
        server.kill()  # kill -9: the allocations are rebuilt from the stored Services
        server.start()
        server.kubectl("create", "service", "clusterip", "second", "--tcp=80", context="cluster1")
        second = server.get("service", "second", context="cluster1")["spec"]
        assert second["clusterIP"] != first["clusterIP"]
        manifest = ("apiVersion: v1\nkind: Service\nmetadata: {name: third}\n"
                    f"spec: {{clusterIP: {first['clusterIP']}, ports: [{{port: 80}}]}}\n")
        refused = server.kubectl("create", "-f", "-", context="cluster1", input=manifest, check=False)
        assert refused.returncode != 0
        assert "provided IP is already allocated" in refused.stderr and "is invalid" in refused.stderr
        node_port = first["ports"][0]["nodePort"]
        again = server.kubectl("create", "service", "nodeport", "fourth", "--tcp=80", f"--node-port={node_port}",
                               context="cluster1", check=False)
        assert "provided port is already allocated" in again.stderr
        server.kubectl("delete", "service", "first", context="cluster1")
        server.kubectl("create", "-f", "-", context="cluster1", input=manifest)  # released on delete
        assert server.get("service", "third", context="cluster1")["spec"]["clusterIP"] == first["clusterIP"]
    finally:
        server.stop()
