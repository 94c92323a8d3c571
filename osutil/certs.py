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

from osutil.files import move_private, private_dir, write_private


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
    """The CA and a serving certificate for `hosts` under `directory`, created if missing.

    Crash-safe: each key and certificate is made under a temporary name and renamed into place (the
    SAN stamp last), and a key that does not match its certificate (a kill -9 between two renames),
    or a serving certificate the CA did not sign, is made anew rather than served broken."""
    private_dir(directory)
    certs = ServingCerts(directory / "ca.crt", directory / "serving.crt", directory / "serving.key")
    ca_key = directory / "ca.key"
    if not _pair(ca_key, certs.ca):
        _new_pair(ca_key, certs.ca, "-x509", "-days", "3650", "-subj", "/CN=embedded-kube-ca",
                  "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        certs.cert.unlink(missing_ok=True)
    san = _san(hosts)
    stamp = directory / "serving.san"
    current = stamp.exists() and stamp.read_text() == san
    if not current or not _pair(certs.key, certs.cert) or not _signed(certs.cert, certs.ca):
        stamp.unlink(missing_ok=True)
        _new_serving(directory, certs, ca_key, san)
        write_private(stamp, san)
    for entry in directory.iterdir():  # the keys, and the rest too (older directories included)
        if entry.is_file():
            entry.chmod(0o600)
    return certs


def _new_pair(key: Path, out: Path, *args: str) -> None:
    """`openssl req` making a new EC key and `out` (a CSR or a self-signed certificate) under
    temporary names, then both moved into place, the key first."""
    tmp_key, tmp_out = key.with_name(key.name + ".new"), out.with_name(out.name + ".new")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(tmp_key), "-out", str(tmp_out), *args)
    move_private(tmp_key, key)
    move_private(tmp_out, out)


def _new_serving(directory: Path, certs: ServingCerts, ca_key: Path, san: str) -> None:
    csr, ext, tmp_cert = directory / "serving.csr", directory / "serving.ext", directory / "serving.crt.new"
    tmp_key = directory / "serving.key.new"
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(tmp_key), "-out", str(csr), "-subj", "/CN=embedded-kube-apiserver")
    write_private(ext, f"subjectAltName={san}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(certs.ca), "-CAkey", str(ca_key), "-CAcreateserial",
             "-out", str(tmp_cert), "-days", "3650", "-extfile", str(ext))
    move_private(tmp_key, certs.key)
    move_private(tmp_cert, certs.cert)
    csr.unlink(missing_ok=True)
    ext.unlink(missing_ok=True)


def _pair(key: Path, cert: Path) -> bool:
    """Both files exist and the certificate's public key is the key's."""
    if not key.exists() or not cert.exists():
        return False
    try:
        return _public(("pkey", "-pubout", "-in", str(key))) == _public(("x509", "-noout", "-pubkey", "-in", str(cert)))
    except RuntimeError:
        return False


def _public(args: tuple[str, ...]) -> str:
    res = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if res.returncode != 0 or "PUBLIC KEY" not in res.stdout:
        raise RuntimeError(f"openssl {args[0]}: {res.stderr.strip()}")
    return res.stdout


def _signed(cert: Path, ca: Path) -> bool:
    res = subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(cert)], capture_output=True, text=True)
    return res.returncode == 0
