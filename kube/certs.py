"""A private CA and a serving certificate (the embedded API server, the hub REST API), made with the `openssl` CLI.

kubectl (client-go) reads a kubeconfig user's credentials only when the server is reached over
TLS, so token authentication needs HTTPS. The CA and certificate are created once in the data
directory and reused across restarts (kubeconfigs handed out earlier stay valid); the certificate
names every listen address and `localhost`. Everything is private to our user: the directory is
0700 and every file in it 0600 (the CA key never leaves it).
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kube.files import private_dir, write_private


@dataclass(frozen=True)
class ServingCerts:
    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    res = subprocess.run(["openssl", *args], capture_output=True, text=True, umask=0o077)
    if res.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {res.stderr.strip()}")


def _san(hosts: list[str]) -> str:
    entries = []
    for h in dict.fromkeys(hosts + ["127.0.0.1", "localhost"]):
        try:
            ipaddress.ip_address(h)
            entries.append(f"IP:{h}")
        except ValueError:
            entries.append(f"DNS:{h}")
    return ",".join(entries)


def ensure(directory: Path, hosts: list[str]) -> ServingCerts:
    """The CA and a serving certificate for `hosts` under `directory`, created if missing."""
    private_dir(directory)
    certs = ServingCerts(directory / "ca.crt", directory / "serving.crt", directory / "serving.key")
    ca_key = directory / "ca.key"
    if not ca_key.exists() or not certs.ca.exists():
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", str(ca_key), "-out", str(certs.ca), "-days", "3650",
                 "-subj", "/CN=volsync-embedded-ca", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        certs.cert.unlink(missing_ok=True)
    san = _san(hosts)
    stamp = directory / "serving.san"
    if not certs.cert.exists() or not certs.key.exists() or not stamp.exists() or stamp.read_text() != san:
        csr = directory / "serving.csr"
        ext = directory / "serving.ext"
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", str(certs.key), "-out", str(csr), "-subj", "/CN=volsync-embedded-apiserver")
        write_private(ext, f"subjectAltName={san}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n")
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(certs.ca), "-CAkey", str(ca_key), "-CAcreateserial",
                 "-out", str(certs.cert), "-days", "3650", "-extfile", str(ext))
        csr.unlink(missing_ok=True)
        ext.unlink(missing_ok=True)
        write_private(stamp, san)
    for entry in directory.iterdir():  # the keys, and the rest too (older directories included)
        if entry.is_file():
            entry.chmod(0o600)
    return certs
