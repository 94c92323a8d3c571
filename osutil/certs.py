"""A private CA and the certificates it signs (the embedded API server, the hub REST API), made with the `openssl` CLI.

kubectl (client-go) reads a kubeconfig user's credentials only when the server is reached over
TLS, so token authentication needs HTTPS. The CA and certificate are created once in the data
directory and reused across restarts (kubeconfigs handed out earlier stay valid); the certificate
names every listen address and `localhost`. Everything is private to our user: the directory is
0700 and every file in it 0600 (the CA key never leaves it).

`issue_certificate` signs further certificates with the same CA (a per-cluster serving certificate,
the API server's kubelet client certificate, ...): each is `<name>.crt`/`<name>.key` next to the
CA, re-issued only when missing, near expiry, not the CA's, or asked for with another subject.
"""

from __future__ import annotations

import fcntl
import ipaddress
import re
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from osutil.files import move_private, open_private, private_dir, write_private

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_RENEW_BEFORE_SECONDS = 7 * 24 * 3600  # re-issue a certificate that expires within a week


@dataclass(frozen=True)
class ServingCerts:
    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    res = subprocess.run(["openssl", *args], capture_output=True, text=True, umask=0o077)
    if res.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {res.stderr.strip()}")


def _san(hosts: Sequence[str]) -> str:
    return _san_list([*hosts, "127.0.0.1", "localhost"])


def _san_list(hosts: Sequence[str]) -> str:
    entries = []
    for h in dict.fromkeys(hosts):
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
    certs = ServingCerts(directory / "ca.crt", directory / "serving.crt", directory / "serving.key")
    ca_key = directory / "ca.key"
    with _locked(directory):
        if _ensure_ca(directory):
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


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialize the processes that create or sign in `directory` (one lock file, flock)."""
    private_dir(directory)
    with open_private(directory / ".lock") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        yield


def _ensure_ca(directory: Path) -> bool:
    """The CA (`ca.crt`, `ca.key`) under `directory`, made if missing or broken; True when made now."""
    private_dir(directory)
    ca_key, ca = directory / "ca.key", directory / "ca.crt"
    if _pair(ca_key, ca):
        return False
    _new_pair(ca_key, ca, "-x509", "-days", "3650", "-subj", "/CN=embedded-kube-ca",
              "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return True


def kubelet_server_name(cluster: str, node: str) -> str:
    """The DNS name in the serving certificate of cluster `cluster`'s kubelet of node `node`, which the
    API server verifies when it dials that node: a Node object of one cluster cannot lead the API
    server to another cluster's kubelet (all kubelets listen on 127.0.0.1 and share the CA)."""
    return f"{node}.{cluster}.kubelet.localcluster"


def issue_certificate(pki_dir: Path, name: str, *, cn: str, sans: Sequence[str] = (), client: bool = False,
                      organization: str | None = None) -> tuple[Path, Path]:
    """`(cert, key)`: `pki_dir/<name>.crt` and `.key`, signed by the CA of `pki_dir` (made if missing).

    `sans` are IP addresses and DNS names (a serving certificate needs at least one); `client` makes a
    client certificate (extendedKeyUsage clientAuth) whose user is `cn` and group `organization`.
    Idempotent and crash-safe like `ensure`: the pair is kept while it is the CA's, matches, has the
    same subject, SANs and usage (a stamp file records them) and does not expire within a week;
    otherwise it is made anew under temporary names and renamed into place, the stamp last. Callers
    in several processes are serialized by a lock file in `pki_dir`."""
    if not _NAME.fullmatch(name) or name in ("ca", "serving"):
        raise ValueError(f"certificate name {name!r}: letters, digits, '.', '_', '-' (not 'ca' or 'serving')")
    if not client and not sans:
        raise ValueError("a serving certificate needs at least one SAN")
    subject = "/CN=" + _rdn(cn) + ("" if organization is None else "/O=" + _rdn(organization))
    san = _san_list(list(sans))
    usage = "clientAuth" if client else "serverAuth"
    wanted = f"subject={subject}\nsan={san}\nusage={usage}\n"
    cert, key, stamp = pki_dir / f"{name}.crt", pki_dir / f"{name}.key", pki_dir / f"{name}.stamp"
    with _locked(pki_dir):
        _ensure_ca(pki_dir)
        current = stamp.exists() and stamp.read_text() == wanted
        if (not current or not _pair(key, cert) or not _signed(cert, pki_dir / "ca.crt")
                or _expires_soon(cert)):
            stamp.unlink(missing_ok=True)
            _sign(pki_dir, name, subject, san, usage)
            write_private(stamp, wanted)
    return cert, key


def _rdn(value: str) -> str:
    if not value or len(value) > 64 or any(c in value for c in "/\\+=\n\r\0"):
        raise ValueError(f"certificate subject value {value!r}: 1-64 characters, none of / \\ + = or newline")
    return value


def _sign(pki_dir: Path, name: str, subject: str, san: str, usage: str) -> None:
    """A new key and a certificate for it signed by the CA (random serial: no shared serial file)."""
    csr, ext = pki_dir / f"{name}.csr", pki_dir / f"{name}.ext"
    tmp_key, tmp_cert = pki_dir / f"{name}.key.new", pki_dir / f"{name}.crt.new"
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(tmp_key), "-out", str(csr), "-subj", subject)
    lines = [f"extendedKeyUsage={usage}", "keyUsage=critical,digitalSignature", "basicConstraints=critical,CA:FALSE"]
    if san:
        lines.insert(0, f"subjectAltName={san}")
    write_private(ext, "\n".join(lines) + "\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(pki_dir / "ca.crt"), "-CAkey", str(pki_dir / "ca.key"),
             "-set_serial", "0x" + secrets.token_hex(16), "-out", str(tmp_cert), "-days", "825", "-extfile", str(ext))
    move_private(tmp_key, pki_dir / f"{name}.key")
    move_private(tmp_cert, pki_dir / f"{name}.crt")
    csr.unlink(missing_ok=True)
    ext.unlink(missing_ok=True)


def _expires_soon(cert: Path) -> bool:
    res = subprocess.run(["openssl", "x509", "-noout", "-checkend", str(_RENEW_BEFORE_SECONDS), "-in", str(cert)],
                         capture_output=True, text=True)
    return res.returncode != 0


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
