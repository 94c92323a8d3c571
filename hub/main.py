"""`volsync-hub`: the addon manager, its REST API, and (by default) the whole embedded platform.

    volsync-hub [--data-dir run] [--clusters cluster1,cluster2]          # the embedded default
    volsync-hub --kubeconfig FILE [--context C] --hub-url URL            # a real OCM hub
    python -m hub.main --advertise-service volsync-system/volsync-hub    # a hub Pod (manifests/hub)

One code path: the hub delivers its agents as a ManifestWork (`hub/deployers/manifestwork.py`)
whether it runs on a real OCM hub (`--kubeconfig`, or in-cluster) or on the embedded default. The
embedded default's composition root (`embedded/main.py`) first starts (or adopts) the emulated
fleet: one API server for `hub` and the managed clusters, and a cluster process per cluster, whose
OCM registration agents join the hub by themselves and whose work agents apply the ManifestWork
(the agent then runs as its Deployment's Pod on the cluster's node). The hub does not know which
of the two it runs on, except for where its REST API is published: on the embedded default the
platform publishes the listening port as a LoadBalancer Service of the hub cluster and the agents
get that Service's address (`EmbeddedPlatform.publish_rest`). Agents appear only when a cluster is
enabled (the volsync label or a ManagedClusterAddOn). Either way it serves the REST API and prints
one ready line: kubeconfig, contexts, REST URL, where the admin token is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import uvicorn
from kubernetes.config import ConfigException
from prometheus_client import CollectorRegistry

from api import images
from hub import clusters, rpo
from hub.addons import AddonManager
from hub.advertise import add_advertise_flags, hub_url_of
from hub.deployers.manifestwork import ManifestWorkDeployer
from hub.fleet import FleetSettings, FleetStore
from hub.hubtls import add_tls_flags, https_url, rest_tls
from hub.limits import add_limit_flags, limits_from_args
from hub.rest import create_app
from hub.tokens import TokenStore, ensure_admin_token
from kube import clients
from kube.clock import SystemClock
from kube.rest import Kube
from osutil.files import private_dir, write_private

log = logging.getLogger("volsync.hub")

DEFAULT_IMAGE = images.default_image()  # the agent Deployment's image, and so its movers'
GUIDE = """
The embedded default is running: a hub and managed clusters {clusters}.

  export KUBECONFIG={kubeconfig}
  kubectl --context hub get managedclusters
  kubectl --context hub label managedcluster {first} "addons.open-cluster-management.io/volsync"="true"
  kubectl --context hub get managedclusteraddon -A
  kubectl --context hub get manifestwork -n {first}
  curl --cacert {ca} -H "Authorization: Bearer $(cat {token})" {rest}/api/v1/replications

Agents start on a cluster (a Deployment in volsync-system, applied by its work agent) once its addon is
enabled. Ctrl-C stops everything."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="volsync-hub", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--kubeconfig", help="a real hub's kubeconfig (absent: the embedded default with volsync-hub, "
                                        "in-cluster with python -m hub.main)")
    p.add_argument("--context", help="kubeconfig context of the hub")
    p.add_argument("--data-dir", type=Path, default=Path("run"), help="embedded stores, agents, tokens (embedded)")
    p.add_argument("--hub-name", default="hub", help="the hub cluster's name (embedded)")
    p.add_argument("--clusters", default="cluster1,cluster2", help="managed clusters (embedded)")
    p.add_argument("--api-port", type=int, default=0, help="the embedded API server's port (0: any)")
    p.add_argument("--rest-host", default="127.0.0.1", help="where the REST API listens")
    p.add_argument("--rest-port", type=int, default=0, help="the REST API's port (0: any)")
    p.add_argument("--hub-url", help="the REST URL agents use (default: the listening address)")
    p.add_argument("--namespace", default="volsync-system", help="the hub's own namespace (admin token Secret)")
    p.add_argument("--image", default=DEFAULT_IMAGE, help="the agent Deployment's image, also its --mover-image "
                   "(ADC OPERAND_IMAGE_VOLSYNC and registries apply; default: %(default)s)")
    p.add_argument("--stale-seconds", type=float, default=300.0, help="heartbeat age after which Available=False")
    p.add_argument("--renew-seconds", type=float, default=60.0, help="heartbeat interval asked of agents")
    p.add_argument("--rpo-seconds", type=float, default=rpo.DEFAULT_RPO_SECONDS,
                   help="lag after which a continuous source (no schedule, no manual trigger) is late; per "
                   f"replication: annotation {rpo.ANNOTATION_RPO} on the RS/RD (default: %(default)ss)")
    p.add_argument("--grace-seconds", type=float, default=rpo.DEFAULT_GRACE_SECONDS,
                   help="time a destination has to publish the image of its source's last sync before it is "
                   "late (default: %(default)ss)")
    p.add_argument("--clock-skew-seconds", type=float, default=rpo.DEFAULT_CLOCK_SKEW_SECONDS,
                   help="how far the clusters' clocks may disagree: an image published up to this long before its "
                   "source's sync began still counts as that sync's (default: %(default)ss)")
    p.add_argument("--uninstall-on-unlabel", action="store_true",
                   help="removing the volsync label deletes the ManagedClusterAddOn the hub created (ACM: keeps it)")
    add_limit_flags(p)
    add_tls_flags(p)
    add_advertise_flags(p)
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


class EmbeddedPlatform(Protocol):
    """What the embedded default's composition root (`embedded/main.py`) hands the hub: the admin
    kubeconfig (the user's), the hub's own (`hub_kubeconfig`: ServiceAccount volsync-hub with the
    RBAC of `manifests/hub`, what the controllers use), the hub cluster's context, the managed
    clusters (which registered themselves), and `publish_rest`: the REST API's listening port made
    reachable from the clusters' Pods, answering the URL agents use. A real hub (`--kubeconfig`, or
    in-cluster) has none: its REST address is `--hub-url`."""

    @property
    def kubeconfig(self) -> Path: ...

    @property
    def hub_kubeconfig(self) -> Path: ...

    @property
    def hub_context(self) -> str: ...

    @property
    def cluster_names(self) -> list[str]: ...

    def publish_rest(self, port: int) -> str:
        """Publish the REST API listening on the host's loopback `port`; the agents' hub URL."""
        ...

    def stop(self) -> None: ...


def _listen(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP; without
    # it a small response on a kept-alive connection waits ~40 ms for a delayed ACK (as in apiserver).
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    return sock


async def run(args: argparse.Namespace, api: EmbeddedPlatform | None = None) -> int:
    """The hub: on a real hub cluster (`--kubeconfig`), or on the embedded platform `api` (stopped
    when the hub stops, or when it fails to start)."""
    try:
        return await _run(args, api)
    finally:
        if api is not None:
            api.stop()


def _hub_api(args: argparse.Namespace, api: EmbeddedPlatform | None) -> tuple[Any, Path | None, str | None, list[str]]:
    """The hub controllers' API client, and the kubeconfig, context and managed clusters for the ready line."""
    if api is not None:
        return clients.load(str(api.hub_kubeconfig), api.hub_context), api.kubeconfig, api.hub_context, \
            api.cluster_names
    kubeconfig = Path(args.kubeconfig) if args.kubeconfig else None
    try:  # no --kubeconfig: in-cluster (a Pod of manifests/hub/deployment.yaml), else $KUBECONFIG
        return clients.load(str(kubeconfig) if kubeconfig else None, args.context), kubeconfig, args.context, []
    except ConfigException as exc:
        raise RuntimeError(f"no hub: give --kubeconfig, run in a Pod of the hub cluster, or run the embedded "
                           f"default (volsync-hub): {exc}") from exc


async def _run(args: argparse.Namespace, api: EmbeddedPlatform | None) -> int:
    clock = SystemClock()
    data_dir: Path = private_dir(args.data_dir.resolve())
    limits = limits_from_args(args)
    hub_api, kubeconfig, context, names = _hub_api(args, api)
    kube = Kube(hub_api, field_manager="volsync-hub")
    # listen first: the agents' hub URL (and so the serving certificate's names) may depend on the port
    sock = _listen(args.rest_host, args.rest_port)
    host, port = sock.getsockname()[:2]
    rest_url = https_url(host, port)
    # a hub Pod (--advertise-service): its LoadBalancer Service's address, waited for
    hub_url = args.hub_url or (api.publish_rest(port) if api is not None else hub_url_of(args, kube) or rest_url)
    tls = rest_tls(argparse.Namespace(**{**vars(args), "hub_url": hub_url}), data_dir, args.rest_host)
    clusters.ensure_cluster_management_addon(kube)
    admin_token = ensure_admin_token(kube, args.namespace)
    token_path = data_dir / "admin-token"
    write_private(token_path, admin_token)
    settings = FleetSettings(stale_seconds=args.stale_seconds, renew_interval_seconds=args.renew_seconds,
                             rpo_seconds=args.rpo_seconds, grace_seconds=args.grace_seconds,
                             clock_skew_seconds=args.clock_skew_seconds)
    fleet = FleetStore(kube, clock=clock, settings=settings).start()
    tokens = TokenStore(kube, admin_token).start()
    manager = AddonManager(kube, ManifestWorkDeployer(kube), clock=clock, hub_url=hub_url, ca_bundle=tls.ca_bundle(),
                           image=args.image, stale_seconds=args.stale_seconds, rpo_seconds=args.rpo_seconds,
                           grace_seconds=args.grace_seconds, clock_skew_seconds=args.clock_skew_seconds,
                           uninstall_on_unlabel=args.uninstall_on_unlabel)
    manager.start()
    app = create_app(fleet, tokens, clock=clock, metrics_registry=CollectorRegistry(), limits=limits)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                           timeout_graceful_shutdown=2, ssl_certfile=str(tls.cert_file),
                                           ssl_keyfile=str(tls.key_file)))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: setattr(server, "should_exit", True))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started:
        ready = {"kubeconfig": str(kubeconfig) if kubeconfig else None, "contexts": [context, *names],
                 "rest": rest_url, "hubUrl": hub_url, "adminTokenFile": str(token_path), "embedded": api is not None,
                 "caFile": str(tls.ca_file) if tls.ca_file is not None else None}
        print(f"volsync-hub ready {json.dumps(ready)}", flush=True)
        if api is not None:
            print(GUIDE.format(kubeconfig=kubeconfig, rest=rest_url, token=token_path, ca=tls.ca_file,
                               clusters=", ".join(names), first=names[0] if names else "cluster1"), flush=True)
    try:
        await task
    finally:
        manager.stop()
        fleet.stop()
        tokens.stop()
        clients.close(hub_api)
    return 0


def serve(args: argparse.Namespace, start_platform: Callable[[], EmbeddedPlatform] | None = None) -> int:
    """Run the hub until SIGTERM/SIGINT, on the platform `start_platform` starts (embedded) or on
    `--kubeconfig`; a start-up failure is one line on stderr and exit code 1."""
    os.umask(0o077)  # stores, logs, tokens, kubeconfigs, agents' files: private to our user
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        platform = start_platform() if start_platform is not None and not args.kubeconfig else None
        return asyncio.run(run(args, platform))
    except RuntimeError as exc:
        print(f"volsync-hub: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    """The hub on a real hub cluster (`--kubeconfig`); the embedded default is `embedded.main`."""
    return serve(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
