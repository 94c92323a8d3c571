"""`osutil.certs.issue_certificate`: certificates signed by the installation's private CA, made once
and re-issued only when missing, near expiry, not the CA's, or asked for with other names."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from osutil import certs


def _openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], check=True, capture_output=True, text=True).stdout


def _text(cert: Path) -> str:
    return _openssl("x509", "-noout", "-text", "-in", str(cert))


def test_a_serving_certificate_names_its_sans_and_is_signed_by_the_apis_ca(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    ca = certs.ensure(pki, ["127.0.0.1"]).ca
    ca_before = ca.read_bytes()
    cert, key = certs.issue_certificate(pki, "cluster1-listener", cn="kube-apiserver",
                                        sans=["127.0.0.1", "10.1.128.1", "kubernetes.default.svc"])
    assert (cert, key) == (pki / "cluster1-listener.crt", pki / "cluster1-listener.key")
    text = _text(cert)
    assert "IP Address:127.0.0.1, IP Address:10.1.128.1, DNS:kubernetes.default.svc" in text
    assert "TLS Web Server Authentication" in text and "CA:FALSE" in text
    assert "Subject: CN = kube-apiserver" in text
    _openssl("verify", "-CAfile", str(ca), "-purpose", "sslserver", str(cert))
    assert ca.read_bytes() == ca_before  # the API server's CA is the issuer, not a new one
    assert all(p.stat().st_mode & 0o077 == 0 for p in pki.iterdir())
    assert not [p.name for p in pki.iterdir() if p.suffix in (".new", ".csr", ".ext")]


def test_a_tls_client_verifies_the_certificate_for_an_ip_san(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    cert, key = certs.issue_certificate(pki, "srv", cn="kube-apiserver", sans=["127.0.0.1", "kubernetes"])
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def accept() -> None:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        client_ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        with (socket.create_connection(("127.0.0.1", port)) as raw,
              client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls):
            peer = tls.getpeercert()
            assert peer is not None
            assert peer["subjectAltName"] == (("IP Address", "127.0.0.1"), ("DNS", "kubernetes"))
            tls.send(b"x")
        thread.join(timeout=10)


def test_issuing_again_keeps_the_pair_and_other_sans_reissue_it(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    cert, key = certs.issue_certificate(pki, "srv", cn="kube-apiserver", sans=["127.0.0.1"])
    first = (cert.read_bytes(), key.read_bytes())
    certs.issue_certificate(pki, "srv", cn="kube-apiserver", sans=["127.0.0.1"])
    assert (cert.read_bytes(), key.read_bytes()) == first
    certs.issue_certificate(pki, "srv", cn="kube-apiserver", sans=["127.0.0.1", "10.2.128.1"])
    assert cert.read_bytes() != first[0] and key.read_bytes() != first[1]
    assert "IP Address:10.2.128.1" in _text(cert)


def test_a_certificate_near_expiry_or_from_another_ca_is_reissued(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    cert, key = certs.issue_certificate(pki, "srv", cn="kube-apiserver", sans=["127.0.0.1"])
    csr = tmp_path / "srv.csr"
    _openssl("req", "-new", "-key", str(key), "-subj", "/CN=kube-apiserver", "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"),
             "-set_serial", "7", "-days", "2", "-out", str(cert))  # same key, same CA, 2 days left
    certs.issue_certificate(pki, "srv", cn="kube-apiserver", sans=["127.0.0.1"])
    assert _openssl("x509", "-noout", "-checkend", str(30 * 24 * 3600), "-in", str(cert))  # exit 0: valid a month
    other = certs.ensure(tmp_path / "other", ["127.0.0.1"])
    cert.write_bytes(other.cert.read_bytes())
    key.write_bytes(other.key.read_bytes())
    certs.issue_certificate(pki, "srv", cn="kube-apiserver", sans=["127.0.0.1"])
    _openssl("verify", "-CAfile", str(pki / "ca.crt"), str(cert))


def test_a_client_certificate_carries_user_and_group(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    cert, _ = certs.issue_certificate(pki, "kubelet-client", cn="kube-apiserver-kubelet-client", client=True,
                                      organization="system:masters")
    text = _text(cert)
    assert "Subject: CN = kube-apiserver-kubelet-client, O = system:masters" in text
    assert "TLS Web Client Authentication" in text and "Subject Alternative Name" not in text
    _openssl("verify", "-CAfile", str(pki / "ca.crt"), "-purpose", "sslclient", str(cert))


@pytest.mark.parametrize(("name", "cn", "sans"), [
    ("../escape", "x", ["127.0.0.1"]),
    ("ca", "x", ["127.0.0.1"]),
    ("srv", "a/b", ["127.0.0.1"]),
    ("srv", "x", []),  # a serving certificate for no name
])
def test_bad_requests_are_refused(tmp_path: Path, name: str, cn: str, sans: list[str]) -> None:
    with pytest.raises(ValueError):
        certs.issue_certificate(tmp_path / "pki", name, cn=cn, sans=sans)
