"""`hub.advertise.advertised_url` against the real API server (the session `apiserver`): the hub Pod
waits for its LoadBalancer Service's ingress and advertises `https://<ingress>:<port>`; a Service
that can never have an address fails at once, one that never gets one fails at the deadline with
its name. The load balancer's part (writing `status.loadBalancer`) is played by kubectl here."""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator

import pytest
from support.apiserver import ApiServer

from hub.advertise import add_advertise_flags, advertised_url, hub_url_of
from kube import clients
from kube.rest import Kube


@pytest.fixture
def kube(apiserver: ApiServer) -> Iterator[Kube]:
    api = clients.load(str(apiserver.kubeconfig), "hub")
    yield Kube(api, field_manager="volsync-hub")
    clients.close(api)


def _service(apiserver: ApiServer, namespace: str, name: str, kind: str = "LoadBalancer",
             ports: tuple[tuple[str, int], ...] = (("https", 443),)) -> None:
    spec: dict[str, object] = {"type": kind, "ports": [{"name": n, "port": p, "targetPort": 8443} for n, p in ports]}
    manifest = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
                "spec": spec}
    apiserver.apply_yaml(json.dumps(manifest), context="hub")


def _give_address(apiserver: ApiServer, namespace: str, name: str, ingress: dict[str, str]) -> None:
    patch = {"status": {"loadBalancer": {"ingress": [ingress]}}}
    apiserver.kubectl("patch", "service", name, "-n", namespace, "--subresource=status", "--type=merge",
                      "-p", json.dumps(patch), context="hub")


def test_an_assigned_address_is_advertised_with_the_https_port(apiserver: ApiServer, kube: Kube,
                                                                namespace: str) -> None:
    _service(apiserver, namespace, "by-ip", ports=(("metrics", 9090), ("https", 443)))
    _give_address(apiserver, namespace, "by-ip", {"ip": "172.20.0.7"})
    assert advertised_url(kube, namespace, "by-ip", timeout=5) == "https://172.20.0.7:443"
    _service(apiserver, namespace, "by-name", ports=(("rest", 8443),))
    _give_address(apiserver, namespace, "by-name", {"hostname": "hub.example.test"})
    assert advertised_url(kube, namespace, "by-name", timeout=5) == "https://hub.example.test:8443"


def test_the_hub_waits_for_a_service_and_address_that_come_later(apiserver: ApiServer, kube: Kube,
                                                                 namespace: str) -> None:
    got: list[str] = []
    waiter = threading.Thread(target=lambda: got.append(advertised_url(kube, namespace, "later", timeout=30)))
    waiter.start()
    _service(apiserver, namespace, "later")
    assert waiter.is_alive()  # a Service without an address is waited for
    _give_address(apiserver, namespace, "later", {"ip": "172.20.0.9"})
    waiter.join(30)
    assert got == ["https://172.20.0.9:443"]


def test_a_service_that_never_gets_an_address_fails_naming_it(apiserver: ApiServer, kube: Kube,
                                                                namespace: str) -> None:
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=rf"Service {namespace}/missing has no load-balancer ingress.*no such"):
        advertised_url(kube, namespace, "missing", timeout=1)
    _service(apiserver, namespace, "pending")
    with pytest.raises(RuntimeError, match=rf"Service {namespace}/pending .*no address assigned yet"):
        advertised_url(kube, namespace, "pending", timeout=1)
    assert time.monotonic() - started < 10


def test_a_service_that_can_never_have_an_address_fails_at_once(apiserver: ApiServer, kube: Kube,
                                                                 namespace: str) -> None:
    _service(apiserver, namespace, "internal", kind="ClusterIP")
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=rf"Service {namespace}/internal is of type ClusterIP"):
        advertised_url(kube, namespace, "internal", timeout=60)
    assert time.monotonic() - started < 5


def test_the_flags_name_one_service_and_without_them_nothing_is_waited_for(apiserver: ApiServer, kube: Kube,
                                                                          namespace: str) -> None:
    parser = argparse.ArgumentParser()
    add_advertise_flags(parser)
    assert hub_url_of(parser.parse_args([]), kube) is None
    for bad in ("volsync-hub", "/volsync-hub", "ns/", "a/b/c"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--advertise-service", bad])
    _service(apiserver, namespace, "flagged")
    _give_address(apiserver, namespace, "flagged", {"ip": "172.20.0.11"})
    args = parser.parse_args(["--advertise-service", f"{namespace}/flagged", "--advertise-timeout", "5"])
    assert hub_url_of(args, kube) == "https://172.20.0.11:443"
