"""`volsync-apiserver`: run the embedded API server for a set of named clusters.

    volsync-apiserver --data-dir DIR --clusters hub,cluster1,cluster2 [--host 127.0.0.1] [--port N]

Serves HTTPS with a private CA (`DIR/pki/`) and requires bearer tokens: one static token file per
cluster (`DIR/tokens/<cluster>.csv`, kube-apiserver's format), so each credential is valid on its
own cluster only. Writes `DIR/kubeconfig` (one cluster, user and context per served cluster),
prints one ready line, and stops cleanly on SIGTERM or SIGINT. `--insecure-no-auth` serves plain
HTTP to anyone (loopback only; for tests of the raw protocol) and implies `--authorization-mode
AlwaysAllow`; otherwise every request is authorized by RBAC (`authorization.py`). Everything it writes is private
to its user (0600 files, 0700 directories).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path

import uvicorn

from apiserver.authn import ensure_tokens, kubeconfig, token_file, write_kubeconfig
from apiserver.clientcaps import DEFAULT_MAX_INFLIGHT, DEFAULT_MAX_WATCHES, ClientCaps
from apiserver.kubeletdial import KubeletCredentials
from apiserver.listeners import open_listeners, parse_service_cidrs
from apiserver.server import Server
from osutil import certs
from osutil.files import private_dir


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="volsync-apiserver", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, required=True, help="where the stores and the kubeconfig live")
    p.add_argument("--clusters", default="hub,cluster1,cluster2", help="comma-separated cluster names")
    p.add_argument("--host", default="127.0.0.1", help="listen address (loopback by default)")
    p.add_argument("--port", type=int, default=0, help="listen port (0: pick a free one)")
    p.add_argument("--tls-san", action="append", default=[], metavar="NAME_OR_IP",
                   help="another name or address the serving certificate names (repeatable; e.g. the host name "
                   "other containers reach it by). Listening on 0.0.0.0, the kubeconfig names 127.0.0.1")
    p.add_argument("--crd-dir", type=Path, default=None, help="CRD YAML installed in every cluster (none by default)")
    p.add_argument("--service-cidr", action="append", default=[], metavar="NAME=CIDR",
                   help="the Service CIDR of cluster NAME (repeatable; default 10.96.0.0/16); its first address "
                   "is the cluster's kubernetes Service")
    p.add_argument("--cluster-listeners", action="store_true", help="also serve each cluster at the root path "
                   "on 127.0.0.1:<free port> with a certificate for its kubernetes Service (ports in "
                   "DIR/listeners.json and the ready line), the target of its default/kubernetes Service")
    p.add_argument("--auth", action="store_true", help="the default, kept for old scripts: serve HTTPS (a "
                   "private CA in DIR/pki) and require bearer tokens (DIR/tokens/<cluster>.csv)")
    p.add_argument("--insecure-no-auth", action="store_true", help="plain HTTP, no authentication: anyone "
                   "reaching the port may do anything (refused unless --host is a loopback address)")
    p.add_argument("--authorization-mode", choices=("RBAC", "AlwaysAllow"), default=None,
                   help="RBAC (the default with authentication: system:masters may do everything, everyone else "
                   "what the cluster's Roles and bindings grant) or AlwaysAllow (the mode of --insecure-no-auth)")
    p.add_argument("--max-watches-per-client", type=int, default=DEFAULT_MAX_WATCHES,
                   help="concurrent watches of one user on one cluster; more get 429 (default %(default)s)")
    p.add_argument("--max-inflight-per-client", type=int, default=DEFAULT_MAX_INFLIGHT,
                   help="concurrent non-watch requests of one user on one cluster; more get 429 "
                   "(default %(default)s)")
    p.add_argument("--history", type=int, default=50_000, help="revisions kept for watch resume")
    p.add_argument("--bookmark-interval", type=float, default=30.0, help="seconds between watch bookmarks")
    p.add_argument("--kubelet-client-certificate", type=Path, default=None,
                   help="client certificate for kubelets (pods/log, exec, port-forward); without the three "
                   "--kubelet-* flags those subresources answer 503")
    p.add_argument("--kubelet-client-key", type=Path, default=None, help="its private key")
    p.add_argument("--kubelet-certificate-authority", type=Path, default=None,
                   help="the CA that signs the kubelets' serving certificates")
    p.add_argument("--log-level", default="warning")
    return p.parse_args(argv)


def _bind(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP;
    # without it every response on a kept-alive connection waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def _usage_error(args: argparse.Namespace, names: list[str]) -> str | None:
    if not names:
        return "--clusters names no cluster"
    if args.insecure_no_auth and args.auth:
        return "--auth and --insecure-no-auth exclude each other"
    if args.insecure_no_auth and args.authorization_mode == "RBAC":
        return "--insecure-no-auth serves anonymous callers: only with --authorization-mode AlwaysAllow"
    if args.insecure_no_auth and not _loopback(args.host):
        return f"--insecure-no-auth serves anyone: only on a loopback address, not {args.host}"
    kubelet = (args.kubelet_client_certificate, args.kubelet_client_key, args.kubelet_certificate_authority)
    if any(kubelet) and not all(kubelet):
        return ("--kubelet-client-certificate, --kubelet-client-key and --kubelet-certificate-authority "
                "go together")
    if args.max_watches_per_client < 1 or args.max_inflight_per_client < 1:
        return "--max-watches-per-client and --max-inflight-per-client must be at least 1"
    if args.cluster_listeners and args.insecure_no_auth:
        return "--cluster-listeners serves HTTPS with authentication: not with --insecure-no-auth"
    try:
        parse_service_cidrs(args.service_cidr, names)
    except ValueError as exc:
        return str(exc)
    return None


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def serve(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.clusters.split(",") if n.strip()]
    problem = _usage_error(args, names)
    if problem is not None:
        print(f"volsync-apiserver: {problem}", file=sys.stderr)
        return 2
    data_dir = private_dir(args.data_dir.resolve())
    token_files = None if args.insecure_no_auth else {n: token_file(data_dir, n) for n in names}
    try:
        server = Server.open(
            data_dir,
            names,
            crd_dir=args.crd_dir,
            token_files=token_files,
            caps=ClientCaps(args.max_watches_per_client, args.max_inflight_per_client),
            history=args.history,
            bookmark_interval=args.bookmark_interval,
            service_cidrs=parse_service_cidrs(args.service_cidr, names),
            kubelet=KubeletCredentials(args.kubelet_client_certificate, args.kubelet_client_key,
                                       args.kubelet_certificate_authority)
            if args.kubelet_client_certificate else None,
            authorization_mode=args.authorization_mode or ("AlwaysAllow" if args.insecure_no_auth else "RBAC"),
        )
    except RuntimeError as exc:
        print(f"volsync-apiserver: {exc}", file=sys.stderr)
        return 1
    tokens = ({n: ensure_tokens(f, [f"{n}-admin"])[f"{n}-admin"] for n, f in token_files.items()}
              if token_files is not None else None)
    # The stores keep every current object (and recent watch history) in memory for good; move them
    # out of the collector's sight and collect less often, or full collections walking tens of
    # thousands of objects add 50-100 ms pauses to requests (measured by bench/apiserver.py).
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 50)
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    host = "127.0.0.1" if host == "0.0.0.0" else host  # every address: the kubeconfig's is loopback
    sans = list(dict.fromkeys([host, *args.tls_san]))
    tls = certs.ensure(data_dir / "pki", sans) if token_files is not None else None
    if tls is not None:  # kube-root-ca.crt in every namespace, and token volumes in Pods: with TLS only
        server.publish_root_ca(tls.ca.read_text())
    scheme = "https" if tls else "http"
    base = f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"
    kubeconfig_path = data_dir / "kubeconfig"
    write_kubeconfig(kubeconfig_path, kubeconfig(base, names, tokens, ca=tls.ca.read_bytes() if tls else None))
    config = uvicorn.Config(
        server, log_level=args.log_level, access_log=False, lifespan="on", timeout_graceful_shutdown=2, ws="wsproto",
        ssl_certfile=str(tls.cert) if tls else None, ssl_keyfile=str(tls.key) if tls else None,
    )
    uv = uvicorn.Server(config)
    # uvicorn captures SIGTERM/SIGINT while serving and re-raises them once it has shut down;
    # these handlers make that re-raise a no-op so the stores are closed and we exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: setattr(uv, "should_exit", True))
    listeners = await open_listeners(server, data_dir, args.log_level) if args.cluster_listeners else None
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    while not uv.started and not task.done():
        await asyncio.sleep(0.01)
    if uv.started:
        ready: dict[str, object] = {"url": base, "kubeconfig": str(kubeconfig_path), "contexts": names}
        if tls:
            ready["ca"] = str(tls.ca)
        if listeners is not None:
            ready["listeners"] = listeners.ports
        print(f"volsync-apiserver ready {json.dumps(ready)}", flush=True)
    await task
    if listeners is not None:
        await listeners.stop()
    server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.umask(0o077)  # stores, logs, keys and kubeconfigs: private to our user, whoever creates them
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
