"""`volsync-apiserver`: run the embedded API server for a set of named clusters.

    volsync-apiserver --data-dir DIR --clusters hub,cluster1,cluster2 [--host 127.0.0.1] [--port N]

Writes `DIR/kubeconfig` (one context per cluster), prints one ready line, and stops cleanly on
SIGTERM or SIGINT. `--auth` turns on bearer-token authentication with a token per context kept
in `DIR/tokens.csv` (kube-apiserver's static token file format).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import signal
import socket
import sys
from pathlib import Path

import uvicorn

from kube import certs
from kube.apiserver.server import DEFAULT_CRD_DIR, Server, ensure_tokens, kubeconfig, write_kubeconfig


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="volsync-apiserver", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, required=True, help="where the stores and the kubeconfig live")
    p.add_argument("--clusters", default="hub,cluster1,cluster2", help="comma-separated cluster names")
    p.add_argument("--host", default="127.0.0.1", help="listen address (loopback by default)")
    p.add_argument("--port", type=int, default=0, help="listen port (0: pick a free one)")
    p.add_argument("--crd-dir", type=Path, default=DEFAULT_CRD_DIR, help="CRD YAML installed in every cluster")
    p.add_argument("--auth", action="store_true", help="serve HTTPS (a private CA in DIR/pki) and require "
                   "bearer tokens (DIR/tokens.csv); kubectl sends credentials only over TLS")
    p.add_argument("--history", type=int, default=50_000, help="revisions kept for watch resume")
    p.add_argument("--bookmark-interval", type=float, default=30.0, help="seconds between watch bookmarks")
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


async def serve(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.clusters.split(",") if n.strip()]
    if not names:
        print("volsync-apiserver: --clusters names no cluster", file=sys.stderr)
        return 2
    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    token_file = data_dir / "tokens.csv" if args.auth else None
    tokens = ensure_tokens(token_file, [f"{n}-admin" for n in names]) if token_file else None
    try:
        server = Server.open(
            data_dir,
            names,
            crd_dir=args.crd_dir,
            token_file=token_file,
            history=args.history,
            bookmark_interval=args.bookmark_interval,
        )
    except RuntimeError as exc:
        print(f"volsync-apiserver: {exc}", file=sys.stderr)
        return 1
    # The stores keep every current object (and recent watch history) in memory for good; move them
    # out of the collector's sight and collect less often, or full collections walking tens of
    # thousands of objects add 50-100 ms pauses to requests (measured by bench/apiserver.py).
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 50)
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    tls = certs.ensure(data_dir / "pki", [host]) if args.auth else None
    scheme = "https" if tls else "http"
    base = f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"
    kubeconfig_path = data_dir / "kubeconfig"
    write_kubeconfig(kubeconfig_path, kubeconfig(base, names, tokens, ca=tls.ca.read_bytes() if tls else None))
    config = uvicorn.Config(
        server, log_level=args.log_level, access_log=False, lifespan="on", timeout_graceful_shutdown=2,
        ssl_certfile=str(tls.cert) if tls else None, ssl_keyfile=str(tls.key) if tls else None,
    )
    uv = uvicorn.Server(config)
    # uvicorn captures SIGTERM/SIGINT while serving and re-raises them once it has shut down;
    # these handlers make that re-raise a no-op so the stores are closed and we exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: setattr(uv, "should_exit", True))
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    while not uv.started and not task.done():
        await asyncio.sleep(0.01)
    if uv.started:
        ready = {"url": base, "kubeconfig": str(kubeconfig_path), "contexts": names}
        if tls:
            ready["ca"] = str(tls.ca)
        print(f"volsync-apiserver ready {json.dumps(ready)}", flush=True)
    await task
    server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
