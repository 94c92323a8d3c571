"""TLS for the hub's REST API: which certificate it serves and which CA the agents verify it with.

The REST API is always HTTPS. With `--tls-cert-file`/`--tls-key-file` (a real hub) it serves that
pair, and hands agents the PEM of `--tls-ca-file` (none: agents trust their system CAs). Without
them (the embedded default, or a hub with no certificate of its own) a private CA and a serving
certificate for the listen address, `localhost` and the `--hub-url` host are made once under
`<data-dir>/hub-pki` (0700; `kube/certs.py`), and the agents get that CA. Either way the CA goes
into the agent's hub Secret (`ca.crt`), from which the agent's `--hub-ca-file` is read.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from osutil import certs

PKI_DIR = "hub-pki"


@dataclass(frozen=True)
class RestTls:
    """The REST API's serving pair, and the CA file whose PEM agents verify it with ("" for none)."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None

    def ca_bundle(self) -> str:
        return self.ca_file.read_text() if self.ca_file is not None else ""


def add_tls_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls-cert-file", type=Path,
                        help="the REST API's serving certificate (PEM; absent: one from a private CA in the data dir)")
    parser.add_argument("--tls-key-file", type=Path, help="the key of --tls-cert-file")
    parser.add_argument("--tls-ca-file", type=Path,
                        help="the CA agents verify the hub with (PEM; with --tls-cert-file; absent: system CAs)")


def rest_tls(args: argparse.Namespace, data_dir: Path, listen_host: str) -> RestTls:
    """The REST API's TLS from the flags, or a private CA's under the data dir."""
    cert, key, ca = args.tls_cert_file, args.tls_key_file, args.tls_ca_file
    if (cert is None) != (key is None):
        raise RuntimeError("--tls-cert-file and --tls-key-file go together")
    if cert is not None and key is not None:
        for path in (cert, key, *([ca] if ca is not None else [])):
            if not path.is_file():
                raise RuntimeError(f"{path} is not a readable file")
        return RestTls(cert.resolve(), key.resolve(), ca.resolve() if ca is not None else None)
    if ca is not None:
        raise RuntimeError("--tls-ca-file needs --tls-cert-file and --tls-key-file")
    hosts = [listen_host]
    if args.hub_url and (named := urlsplit(args.hub_url).hostname):
        hosts.append(named)
    made = certs.ensure(data_dir / PKI_DIR, hosts)
    return RestTls(made.cert, made.key, made.ca)


def https_url(host: str, port: int) -> str:
    """The REST API's https URL for a listen address."""
    return f"https://{'[' + host + ']' if ':' in host else host}:{port}"
