"""Per-cluster listeners (`--cluster-listeners`): each serves only its own cluster at `/`, with a
certificate valid for the cluster's `kubernetes` Service address and names; the `default/kubernetes`
Service, Endpoints and EndpointSlice lead to it and are rewritten when the port changes."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
from pathlib import Path

from identitykit import SERVICE_IPS, Identity, identity_server


def _peer_sans(port: int, server_hostname: str, ca: Path) -> tuple[tuple[str, str], ...]:
    context = ssl.create_default_context(cafile=str(ca))  # verifies the chain and the name (an IP SAN here)
    with (socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
          context.wrap_socket(raw, server_hostname=server_hostname) as tls):
        peer = tls.getpeercert()
    assert peer is not None
    sans = peer["subjectAltName"]
    assert isinstance(sans, tuple)
    return sans


def test_listener_ports_are_in_the_ready_line_and_listeners_json(identity: Identity) -> None:
    ports = identity.ports
    assert set(ports) == {"cluster1", "cluster2"} and len(set(ports.values())) == 2
    assert (identity.server.data_dir / "listeners.json").stat().st_mode & 0o077 == 0
    assert identity.server.listeners == ports  # the ready line's


def test_the_certificate_is_valid_for_the_service_ip_and_names(identity: Identity) -> None:
    for cluster, service_ip in SERVICE_IPS.items():
        for name in ("127.0.0.1", service_ip, "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"):
            sans = _peer_sans(identity.ports[cluster], name, identity.server.ca_file)
        assert sans == (("IP Address", "127.0.0.1"), ("IP Address", service_ip), ("DNS", "kubernetes"),
                        ("DNS", "kubernetes.default"), ("DNS", "kubernetes.default.svc"),
                        ("DNS", "kubernetes.default.svc.cluster.local"))
    other = SERVICE_IPS["cluster2"]
    try:
        _peer_sans(identity.ports["cluster1"], other, identity.server.ca_file)
    except ssl.SSLCertVerificationError:
        pass
    else:
        raise AssertionError(f"cluster1's listener certificate must not be valid for {other}")


def test_a_listener_serves_only_its_cluster_at_the_root(identity: Identity) -> None:
    identity.server.kubectl("create", "namespace", "only-in-cluster2", context="cluster2")
    names = {n["metadata"]["name"] for n in identity.get("cluster2", "/api/v1/namespaces").json()["items"]}
    assert "only-in-cluster2" in names
    assert identity.get("cluster1", "/api/v1/namespaces/only-in-cluster2").status_code == 404
    assert identity.get("cluster1", "/clusters/cluster2/api/v1/namespaces").status_code == 404
    assert identity.get("cluster1", "/version").json()["major"] == "1"
    assert identity.get("cluster1", "/apis").status_code == 200
    # same authentication as /clusters/<name>: another cluster's credential is 401
    assert identity.get("cluster1", "/api/v1/namespaces", token=identity.server.tokens()["cluster2"]).status_code == 401
    assert identity.get("cluster1", "/api/v1/namespaces", token="a.b.c").status_code == 401


def test_kubectl_reaches_a_listener_by_its_service_name(identity: Identity, tmp_path: Path) -> None:
    # kubectl with --tls-server-name: the certificate is checked for the in-cluster DNS name
    res = subprocess.run(
        ["kubectl", "--server", identity.listener("cluster1"), "--certificate-authority", str(identity.server.ca_file),
         "--tls-server-name", "kubernetes.default.svc", "--token", identity.server.tokens()["cluster1"],
         "--cache-dir", str(tmp_path), "get", "service", "kubernetes", "-n", "default", "-o", "json"],
        capture_output=True, text=True, timeout=60, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["spec"]["clusterIP"] == SERVICE_IPS["cluster1"]


def _kubernetes_objects(identity: Identity, cluster: str) -> tuple[dict, dict, dict]:  # type: ignore[type-arg]
    base = "/api/v1/namespaces/default"
    svc = identity.get(cluster, f"{base}/services/kubernetes").json()
    ep = identity.get(cluster, f"{base}/endpoints/kubernetes").json()
    eps = identity.get(cluster, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes").json()
    return svc, ep, eps


def test_the_kubernetes_service_endpoints_and_slice_lead_to_the_listener(identity: Identity) -> None:
    for cluster, service_ip in SERVICE_IPS.items():
        port = identity.ports[cluster]
        svc, ep, eps = _kubernetes_objects(identity, cluster)
        assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["clusterIP"] == service_ip
        assert svc["spec"]["clusterIPs"] == [service_ip] and "selector" not in svc["spec"]
        assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]
        assert svc["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
        assert ep["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}],
                                  "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]
        assert eps["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes"}
        assert eps["addressType"] == "IPv4"
        assert eps["endpoints"] == [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]
        assert eps["ports"] == [{"name": "https", "port": port, "protocol": "TCP"}]


def test_a_restart_after_kill_9_moves_the_listeners_and_rewrites_the_objects(tmp_path: Path) -> None:
    server = identity_server(tmp_path / "api").start()
    try:
        view = Identity(server)
        before = view.ports
        uid = view.get("cluster1", "/api/v1/namespaces/default/services/kubernetes").json()["metadata"]["uid"]
        server.kill()  # kill -9: listeners.json and the objects are rewritten at the next start
        server.start()
        after = view.ports
        assert after != before  # fresh free ports
        svc, ep, eps = _kubernetes_objects(view, "cluster1")
        assert svc["metadata"]["uid"] == uid and svc["spec"]["ports"][0]["targetPort"] == after["cluster1"]
        assert ep["subsets"][0]["ports"][0]["port"] == after["cluster1"]
        assert eps["ports"][0]["port"] == after["cluster1"]
    finally:
        server.stop()


def test_cluster_listeners_need_authentication(tmp_path: Path) -> None:
    res = subprocess.run([".venv/bin/python", "-m", "apiserver.main", "--data-dir", str(tmp_path), "--clusters", "c1",
                          "--insecure-no-auth", "--cluster-listeners"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--cluster-listeners" in res.stderr
    res = subprocess.run([".venv/bin/python", "-m", "apiserver.main", "--data-dir", str(tmp_path), "--clusters", "c1",
                          "--service-cidr", "c9=10.9.0.0/16"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "NAME one of --clusters" in res.stderr
