"""`volsync-agent`: the replication agent for one cluster.

    volsync-agent --cluster-name NAME [--kubeconfig FILE [--context NAME]] [--mover-image IMAGE]
                  [--metrics-address 127.0.0.1:0] [--hub-url URL --hub-token-file FILE [--hub-ca-file FILE]]

Runs the ReplicationSource/ReplicationDestination controller against the cluster's API (in-cluster
config without `--kubeconfig`); its movers are Jobs of `--mover-image` on the cluster (default: this
package's image, `api.images.default_image()`). Serves Prometheus metrics, prints one ready line, and
stops cleanly on SIGTERM or SIGINT (running mover Jobs go on; a restarted agent finds them). With
`--hub-url`, it heartbeats to the hub and reports each replication's status there
(`agent/reporting.py`). The agent keeps no files: its state is in the API objects.
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
from pathlib import Path

import httpx
from kubernetes.config import ConfigException
from prometheus_client import start_http_server

from agent.metrics import Metrics
from agent.reconciling import ReplicationController
from agent.reporting import Reporter
from api.images import default_image, package_version
from kube import clients
from kube.clock import SystemClock
from kube.events import Recorder
from kube.rest import Kube

log = logging.getLogger("volsync.agent")


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
    p.add_argument("--mover-image", default=default_image(), help="the image of the mover Jobs (default: %(default)s)")
    p.add_argument("--metrics-address", default="127.0.0.1:0", help="host:port of /metrics (port 0: any)")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--rsync-retries", type=int, default=5, help="attempts of a source mover before its Pod fails")
    p.add_argument("--hub-url", help="the hub's REST API: heartbeats and status reports go there (none: no hub)")
    p.add_argument("--hub-token-file", type=Path, help="the agent's bearer token for the hub (re-read on 401)")
    p.add_argument("--hub-ca-file", type=Path, help="the CA (PEM) the hub's certificate is verified with "
                                                    "(absent: the system CAs)")
    p.add_argument("--log-level", default="info")
    # retired with movers as Jobs: accepted (and ignored, with a warning) for one release
    for retired in ("--data-root", "--mover-host"):
        p.add_argument(retired, help=argparse.SUPPRESS)
    p.add_argument("--compress", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per heartbeat
    for retired in ("data_root", "mover_host", "compress"):
        if getattr(args, retired):
            log.warning("--%s is ignored: movers run as Jobs on the cluster", retired.replace("_", "-"))
    os.umask(0o077)
    try:
        api = clients.load(args.kubeconfig, args.context)
    except (ConfigException, OSError) as exc:  # no kubeconfig outside a Pod, an unreadable file, a bad context
        print(f"volsync-agent: no cluster to talk to ({exc}): run it in a Pod (in-cluster config) or give "
              "--kubeconfig", file=sys.stderr)
        return 1
    kube = Kube(api, field_manager="volsync-agent")
    metrics = Metrics()
    host, _, port = args.metrics_address.rpartition(":")
    try:
        server, _thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=metrics.registry)
    except (ValueError, OSError) as exc:
        print(f"volsync-agent: --metrics-address {args.metrics_address!r}: {exc}", file=sys.stderr)
        clients.close(api)
        return 1
    metrics_url = f"http://{host or '127.0.0.1'}:{server.server_port}/metrics"
    hub: httpx.Client | None = None
    reporter: Reporter | None = None
    if args.hub_url:
        try:
            hub = hub_client(args.hub_url, args.hub_ca_file)
        except OSError as exc:  # a missing or unreadable CA file, or not a certificate
            print(f"volsync-agent: --hub-ca-file {args.hub_ca_file}: {exc}", file=sys.stderr)
            server.shutdown()
            return 1
        reporter = Reporter(hub, args.cluster_name, agent_id=f"{socket.gethostname()}-{os.getpid()}",
                            clock=SystemClock(), token_file=args.hub_token_file, version=package_version())
        reporter.start()
    controller = ReplicationController(kube, mover_image=args.mover_image, rsync_retries=args.rsync_retries,
                                       metrics=metrics, workers=args.workers,
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
        server.shutdown()
        return 1
    ready = {"cluster": args.cluster_name, "metrics": metrics_url, "moverImage": args.mover_image}
    print(f"volsync-agent ready {json.dumps(ready)}", flush=True)
    stop.wait()
    controller.stop()
    _close_hub(reporter, hub)
    server.shutdown()
    clients.close(api)
    return 0


if __name__ == "__main__":
    sys.exit(main())
