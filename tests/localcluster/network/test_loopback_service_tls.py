"""The hub's serving certificate names the load-balancer address agents dial (`--hub-url https://<ip>:443`):
a client verifying with the hub's CA accepts it for that IP, and for no other."""

from __future__ import annotations

import argparse
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.hubtls import RestTls, rest_tls


def _tls(data_dir: Path, hub_url: str) -> RestTls:
    args = argparse.Namespace(tls_cert_file=None, tls_key_file=None, tls_ca_file=None, hub_url=hub_url)
    return rest_tls(args, data_dir, "127.0.0.1")


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[RestTls, int]]:
    """A TLS listener on 127.0.0.1 with the hub's certificate for https://172.20.1.1:443; completes handshakes."""
    tls = _tls(tmp_path, "https://172.20.1.1:443")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    sock = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls_conn:
                    tls_conn.sendall(b"ok")
            except (ssl.SSLError, OSError):
                conn.close()  # the client refused our certificate

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield tls, sock.getsockname()[1]
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    thread.join(timeout=5)


def _dial(port: int, ca: Path, name: str) -> bytes:
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=name) as conn:
        return conn.recv(2)


def test_the_certificate_is_valid_for_the_load_balancer_ip_only(serving: tuple[RestTls, int]) -> None:
    tls, port = serving
    assert tls.ca_file is not None
    assert _dial(port, tls.ca_file, "172.20.1.1") == b"ok"
    assert _dial(port, tls.ca_file, "127.0.0.1") == b"ok"  # the listen address stays named
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        _dial(port, tls.ca_file, "172.20.1.2")


def test_another_hub_url_reissues_the_certificate_under_the_same_ca(tmp_path: Path) -> None:
    first = _tls(tmp_path, "https://172.20.1.1:443")
    ca = first.ca_bundle()
    second = _tls(tmp_path, "https://172.20.1.7:443")
    assert second.ca_bundle() == ca
    sans = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(second.cert_file)],
                          capture_output=True, text=True, check=True).stdout
    assert "IP Address:172.20.1.7" in sans and "IP Address:172.20.1.1" not in sans
