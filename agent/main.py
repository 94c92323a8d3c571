"""`volsync-agent`: the replication agent for one cluster.

    volsync-agent --kubeconfig FILE --context NAME --cluster-name NAME --data-root DIR
                  [--mover-host 127.64.1.0/24] [--metrics-address 127.0.0.1:0]
                  [--hub-url URL --hub-token-file FILE [--hub-ca-file FILE]]

Runs the ReplicationSource/ReplicationDestination controller and the local platform (directories
for volumes, rsync and sshd for movers) against the cluster's API, serves Prometheus metrics,
prints one ready line, and stops cleanly (movers included) on SIGTERM or SIGINT. With `--hub-url`,
it heartbeats to the hub and reports each replication's status there (`agent/reporting.py`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import zlib
from importlib import metadata
from pathlib import Path

import httpx
from prometheus_client import start_http_server

from agent.localplatform import LocalPlatform
from agent.metrics import Metrics
from agent.reconciling import ReplicationController
from agent.reporting import Reporter
from kube import clients
from kube.clock import SystemClock
from kube.events import Recorder
from kube.rest import Kube
from movers.errors import MoverError

log = logging.getLogger("volsync.agent")


def default_pool(cluster: str, data_root: Path) -> str:
    """A loopback /24 of this agent's own, stable across restarts (the cluster name and the data root
    pick it, so two installations on one machine do not collide): 127.<64..127>.<0..255>.0/24."""
    crc = zlib.crc32(f"{cluster}\0{data_root.resolve()}".encode())
    return f"127.{64 + crc % 64}.{(crc >> 8) % 256}.0/24"


def _version() -> str:
    try:
        return metadata.version("volsync-addon")
    except metadata.PackageNotFoundError:
        return ""


def hub_client(url: str, ca_file: Path | None) -> httpx.Client:
    """The client of the hub's REST API: its certificate verified with `ca_file` (else the system CAs)."""
    verify = ssl.create_default_context(cafile=ca_file) if ca_file is not None else True
    return httpx.Client(base_url=url, timeout=10.0, verify=verify)


def _close_hub(reporter: Reporter | None, hub: httpx.Client | None) -> None:
    if reporter is not None:
        reporter.close()
    if hub is not None:
        hub.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="volsync-agent", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--kubeconfig", help="kubeconfig of the cluster (default: in-cluster or $KUBECONFIG)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("--cluster-name", required=True, help="the managed cluster's name")
    p.add_argument("--data-root", type=Path, required=True, help="volumes, snapshots and mover state live here")
    p.add_argument("--mover-host", help="where movers listen: a pool (CIDR) handing each Service its own "
                                        "address, or one address (default: a loopback /24 derived from the name)")
    p.add_argument("--metrics-address", default="127.0.0.1:0", help="host:port of /metrics (port 0: any)")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--rsync-retries", type=int, default=5)
    p.add_argument("--compress", action="store_true", help="rsync -z (helps on slow links, costs CPU on fast ones)")
    p.add_argument("--hub-url", help="the hub's REST API: heartbeats and status reports go there (none: no hub)")
    p.add_argument("--hub-token-file", type=Path, help="the agent's bearer token for the hub (re-read on 401)")
    p.add_argument("--hub-ca-file", type=Path, help="the CA (PEM) the hub's certificate is verified with "
                                                    "(absent: the system CAs)")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per heartbeat
    pool = args.mover_host or default_pool(args.cluster_name, args.data_root)
    if "/" not in pool:
        pool += "/32" if ":" not in pool else "/128"
    os.umask(0o077)  # the agent's state, logs and keys: private to its user
    args.data_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    args.data_root.chmod(0o700)
    api = clients.load(args.kubeconfig, args.context)
    kube = Kube(api, field_manager="volsync-agent")
    metrics = Metrics()
    host, _, port = args.metrics_address.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=metrics.registry)
    metrics_url = f"http://{host or '127.0.0.1'}:{server.server_port}/metrics"
    try:
        platform = LocalPlatform(kube, args.data_root.resolve(), address_pool=pool, retries=args.rsync_retries,
                                 compress=args.compress)
    except MoverError as exc:  # e.g. rsync missing or too old
        print(f"volsync-agent: {exc}", file=sys.stderr)
        server.shutdown()
        return 1
    hub: httpx.Client | None = None
    reporter: Reporter | None = None
    try:  # whatever fails from here on, the platform releases its mount and stops its movers
        if args.hub_url:
            try:
                hub = hub_client(args.hub_url, args.hub_ca_file)
            except OSError as exc:  # a missing or unreadable CA file, or not a certificate
                print(f"volsync-agent: --hub-ca-file {args.hub_ca_file}: {exc}", file=sys.stderr)
                return 1
            reporter = Reporter(hub, args.cluster_name, agent_id=f"{socket.gethostname()}-{os.getpid()}",
                                clock=SystemClock(), token_file=args.hub_token_file, version=_version(),
                                sequence_file=args.data_root / "hub-report-sequence")
            reporter.start()
        controller = ReplicationController(kube, platform, metrics=metrics, workers=args.workers,
                                           recorder=Recorder(kube, "volsync-agent", host=args.cluster_name),
                                           reporter=reporter)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        try:
            controller.start()
        except RuntimeError as exc:
            print(f"volsync-agent: {exc}", file=sys.stderr)
            _close_hub(reporter, hub)
            return 1
        ready = {"cluster": args.cluster_name, "metrics": metrics_url, "addresses": pool}
        print(f"volsync-agent ready {json.dumps(ready)}", flush=True)
        stop.wait()
        controller.stop()
        _close_hub(reporter, hub)
    finally:
        platform.close()
    server.shutdown()
    clients.close(api)
    return 0


if __name__ == "__main__":
    sys.exit(main())
