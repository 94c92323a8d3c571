"""Endpoints and EndpointSlices may not name loopback, link-local or link-local multicast addresses
(upstream's validation), except in the API server's own `default/kubernetes` objects."""

from __future__ import annotations

from typing import Any

import pytest
from identitykit import Identity

EPS = "/api/v1/namespaces/default/endpoints"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"


def _endpoints(name: str, ip: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name},
            "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "p", "port": 22}]}]}


def _slice(name: str, ip: str) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": name},
            "addressType": "IPv4", "ports": [{"name": "p", "port": 22}], "endpoints": [{"addresses": [ip]}]}


@pytest.mark.parametrize("ip", ["127.0.0.1", "127.3.4.5", "169.254.169.254", "224.0.0.251", "0.0.0.0"])
def test_special_addresses_are_refused_with_422(identity: Identity, ip: str) -> None:
    tag = ip.replace(".", "-")
    res = identity.post("cluster1", EPS, _endpoints(f"ep-{tag}", ip))
    assert res.status_code == 422, res.text
    assert res.json()["details"]["causes"][0]["field"] == "subsets[0].addresses[0].ip"
    res = identity.post("cluster1", SLICES, _slice(f"sl-{tag}", ip))
    assert res.status_code == 422, res.text
    assert res.json()["details"]["causes"][0]["field"] == "endpoints[0].addresses[0]"


def test_ordinary_addresses_are_accepted(identity: Identity) -> None:
    assert identity.post("cluster1", EPS, _endpoints("ep-pod", "10.1.0.7")).status_code == 201
    assert identity.post("cluster1", SLICES, _slice("sl-pod", "10.1.0.7")).status_code == 201


def test_a_client_cannot_retarget_the_kubernetes_endpoints_but_the_server_wrote_them(identity: Identity) -> None:
    ep = identity.get("cluster1", f"{EPS}/kubernetes").json()
    assert ep["subsets"][0]["addresses"] == [{"ip": "127.0.0.1"}]  # the server's own write passed
    ep["subsets"][0]["ports"][0]["port"] = 22  # a client pointing it at the host's sshd
    with identity.http() as http:
        res = http.put(identity.listener("cluster1") + f"{EPS}/kubernetes", headers=identity.admin("cluster1"),
                       json=ep)
    assert res.status_code == 422, res.text
