"""The hub's REST API, a host process on 127.0.0.1, reached over HTTPS from a Pod of another cluster
through the hub cluster's LoadBalancer Service (`embedded.hubservice.publish_hub_rest` and the hub
cluster's ``--loopback-service``), with the hub's certificate (`hub.hubtls`) verified for that address;
a Service not on the allow-list, pointing at the very same host port, leads nowhere."""

from __future__ import annotations

import argparse
import http.server
import json
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.fleet import LocalFleet, local_fleet
from support.waiting import eventually

from embedded.hubservice import HUB_NAMESPACE, HUB_SERVICE, ingress_address, node_address, publish_hub_rest
from hub.hubtls import rest_tls
from kube import clients
from kube.rest import NODES, SERVICES, Kube

pytestmark = pytest.mark.timeout(300)

ANSWER = "hub-rest-ok"

# Run by the Pod: TLS to the hub URL verified with the CA (retried until the proxy forwards it), then one
# plain TCP connection to the unlisted Service's load-balancer address.
POD_SCRIPT = """
import http.client, json, os, socket, ssl, time
ctx = ssl.create_default_context(cadata=os.environ["CA"])
host = os.environ["HUB"].split("//")[1].split(":")[0]
deadline, hub = time.monotonic() + 30, None
while hub is None:
    try:
        conn = http.client.HTTPSConnection(host, 443, context=ctx, timeout=5)
        conn.request("GET", "/healthz")
        hub = conn.getresponse().read().decode()
    except OSError as exc:
        if time.monotonic() > deadline:
            hub = "failed: " + repr(exc)
        else:
            time.sleep(0.3)
try:
    socket.create_connection((os.environ["OTHER"], 443), timeout=3).close()
    other = "connected"
except OSError as exc:
    other = type(exc).__name__
print(json.dumps({"hub": hub, "other": other}))
"""


class _Answer(http.server.BaseHTTPRequestHandler):
    """Answers every GET with ANSWER and the port it listens on (which of two servers answered)."""

    def do_GET(self) -> None:
        body = f"{ANSWER} {self.connection.getsockname()[1]}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    """API server + cluster processes of ("hub", "cluster1"), the hub Service on the allow-list."""
    with local_fleet(tmp_path_factory.mktemp("lbfleet"), ("hub", "cluster1"),
                     loopback_services=[(HUB_NAMESPACE, HUB_SERVICE)]) as running:
        yield running


@pytest.fixture
def hub_admin(fleet: LocalFleet) -> Iterator[Kube]:
    api = clients.load(str(fleet.api.kubeconfig), "hub")
    yield Kube(api, field_manager="test-loopback-service")
    clients.close(api)


def _serve_tls(sock: socket.socket, cert: Path, key: Path) -> http.server.HTTPServer:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(sock.getsockname(), _Answer, bind_and_activate=False)
    server.socket.close()
    server.socket = ctx.wrap_socket(sock, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _unlisted_service(fleet: LocalFleet, node_ip: str, port: int) -> str:
    """Service default/other-<id>: like the hub's, but not on the allow-list; its ingress address."""
    name = f"other-{uuid.uuid4().hex[:6]}"
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
           "spec": {"type": "LoadBalancer", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}
    fleet.apply(json.dumps(svc), context="hub")

    def endpoints(ip: str) -> str:
        return json.dumps({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": "default"},
                           "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port}]}]})

    refused = fleet.kubectl("apply", "-f", "-", context="hub", input=endpoints("127.0.0.1"), check=False)
    assert refused.returncode != 0 and "may not be in the loopback range" in refused.stderr
    fleet.apply(endpoints(node_ip), context="hub")
    return str(eventually(lambda: ingress_address(fleet.get("service", name, "-n", "default", context="hub")),
                          timeout=30, interval=0.1, what=f"an ingress address for default/{name}"))


def _reach(fleet: LocalFleet, pod: str, ca: str, url: str, other_ip: str) -> dict[str, str]:
    """Run POD_SCRIPT in Pod `pod` on cluster1; what it saw."""
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": "default"},
            "spec": {"restartPolicy": "Never", "containers": [{
                "name": "c", "image": "python", "command": ["python", "-c", POD_SCRIPT],
                "env": [{"name": "CA", "value": ca}, {"name": "HUB", "value": url},
                        {"name": "OTHER", "value": other_ip}]}]}}
    fleet.apply(json.dumps(body), context="cluster1")
    try:
        eventually(lambda: fleet.get("pod", pod, "-n", "default").get("status", {}).get("phase")
                   in ("Succeeded", "Failed"), timeout=90, interval=0.2, what=f"pod {pod} done")
        logs = fleet.kubectl("logs", pod, "-n", "default").stdout
    finally:
        fleet.kubectl("delete", "pod", pod, "-n", "default", "--wait=false", context="cluster1", check=False)
    seen: dict[str, str] = json.loads(logs.strip().splitlines()[-1])
    return seen


def test_pod_on_another_cluster_reaches_the_host_hub_over_https(
        fleet: LocalFleet, hub_admin: Kube, tmp_path: Path) -> None:
    first, second = socket.create_server(("127.0.0.1", 0)), socket.create_server(("127.0.0.1", 0))
    port, port_again = first.getsockname()[1], second.getsockname()[1]  # wrapping detaches the sockets
    node_ip = node_address(hub_admin.list(NODES)[0][0])
    assert node_ip is not None
    other_ip = _unlisted_service(fleet, node_ip, port)
    url = publish_hub_rest(hub_admin, port)
    ip = url.removeprefix("https://").removesuffix(":443")
    assert ip.startswith("172.20.1.") and ip != other_ip
    tls = rest_tls(argparse.Namespace(tls_cert_file=None, tls_key_file=None, tls_ca_file=None, hub_url=url),
                   tmp_path, "127.0.0.1")
    servers = [_serve_tls(first, tls.cert_file, tls.key_file)]
    try:
        seen = _reach(fleet, "reach-hub", tls.ca_bundle(), url, other_ip)
        assert seen["hub"] == f"{ANSWER} {port}", seen
        assert seen["other"] in ("ConnectionRefusedError", "TimeoutError"), seen  # never "connected"
        # a restarted hub listens elsewhere: publishing again moves the Endpoints, the address stays
        servers.append(_serve_tls(second, tls.cert_file, tls.key_file))
        assert publish_hub_rest(hub_admin, port_again) == url
        seen = _reach(fleet, "reach-hub-again", tls.ca_bundle(), url, other_ip)
        assert seen["hub"] == f"{ANSWER} {port_again}", seen
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        first.close()
        second.close()
    svc = hub_admin.get(SERVICES, HUB_SERVICE, HUB_NAMESPACE)
    assert svc is not None and "selector" not in svc["spec"] and svc["spec"]["type"] == "LoadBalancer"
