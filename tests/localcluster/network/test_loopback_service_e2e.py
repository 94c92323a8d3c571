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
from support.apiserver import ApiServer
from support.fleet import LocalFleet
from support.waiting import eventually

from embedded.hubservice import HUB_NAMESPACE, HUB_SERVICE, ingress_address, node_address, publish_hub_rest
from hub.hubtls import rest_tls
from kube import clients
from kube.rest import NODES, SERVICES, Kube
from localcluster.launcher import Fleet

pytestmark = pytest.mark.timeout(300)

ANSWER = b"hub-rest-ok"

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
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    """API server + cluster processes of ("hub", "cluster1"), the hub Service on the allow-list."""
    base = tmp_path_factory.mktemp("lbfleet")
    api_dir = base / "api"
    api_dir.mkdir()
    names = ("hub", "cluster1")
    clusters = Fleet(base / "clusters", list(names), api_dir / "kubeconfig", api_dir / "pki",
                     loopback_services=[(HUB_NAMESPACE, HUB_SERVICE)])
    api = ApiServer(api_dir, clusters=names, auth=True, extra_args=tuple(clusters.apiserver_args())).start()
    try:
        clusters.start()
        try:
            yield LocalFleet(api, clusters)
        finally:
            clusters.stop()
    finally:
        api.stop()


@pytest.fixture
def hub_admin(fleet: LocalFleet) -> Iterator[Kube]:
    api = clients.load(str(fleet.api.kubeconfig), "hub")
    yield Kube(api, field_manager="test-loopback-service")
    clients.close(api)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    yield sock
    sock.close()


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


def test_pod_on_another_cluster_reaches_the_host_hub_over_https(
        fleet: LocalFleet, hub_admin: Kube, listener: socket.socket, tmp_path: Path) -> None:
    port = listener.getsockname()[1]
    node_ip = node_address(hub_admin.list(NODES)[0][0])
    assert node_ip is not None
    other_ip = _unlisted_service(fleet, node_ip, port)
    url = publish_hub_rest(hub_admin, port)
    ip = url.removeprefix("https://").removesuffix(":443")
    assert ip.startswith("172.20.1.") and ip != other_ip
    assert publish_hub_rest(hub_admin, port) == url  # idempotent: same address
    tls = rest_tls(argparse.Namespace(tls_cert_file=None, tls_key_file=None, tls_ca_file=None, hub_url=url),
                   tmp_path, "127.0.0.1")
    server = _serve_tls(listener, tls.cert_file, tls.key_file)
    try:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reach-hub", "namespace": "default"},
               "spec": {"restartPolicy": "Never", "containers": [{
                   "name": "c", "image": "python", "command": ["python", "-c", POD_SCRIPT],
                   "env": [{"name": "CA", "value": tls.ca_bundle()}, {"name": "HUB", "value": url},
                           {"name": "OTHER", "value": other_ip}]}]}}
        fleet.apply(json.dumps(pod), context="cluster1")
        eventually(lambda: fleet.get("pod", "reach-hub", "-n", "default").get("status", {}).get("phase")
                   in ("Succeeded", "Failed"), timeout=90, interval=0.2, what="pod reach-hub done")
        logs = fleet.kubectl("logs", "reach-hub", "-n", "default").stdout
        seen = json.loads(logs.strip().splitlines()[-1])
        assert seen["hub"] == ANSWER.decode(), logs
        assert seen["other"] in ("ConnectionRefusedError", "TimeoutError"), logs  # never "connected"
    finally:
        server.shutdown()
        server.server_close()
        fleet.kubectl("delete", "pod", "reach-hub", "-n", "default", "--wait=false", context="cluster1", check=False)
    svc = hub_admin.get(SERVICES, HUB_SERVICE, HUB_NAMESPACE)
    assert svc is not None and "selector" not in svc["spec"] and svc["spec"]["type"] == "LoadBalancer"
