"""`volsync-cluster`: one embedded cluster alone in a container (the services of docker-compose.yml).

    volsync-cluster hub  --data-dir D --shared S [--published-port P] [volsync-hub flags...]
    volsync-cluster join --name cluster1 --data-dir D --shared S [--published-port P]

Each runs the cluster's own API server (HTTPS on 0.0.0.0:`--api-port`, its certificate naming
127.0.0.1, the container's name and its address) and its cluster process with ``--node-network``
(`localcluster.network.nodenet`: the container's namespace is the node's; LoadBalancer Services
get the container's address, Pods reach the other containers):

- ``hub``: the hub cluster (its process runs OCM's cluster manager) and `volsync-hub` on it, whose
  REST API (127.0.0.1 in the container) is published as Service volsync-system/volsync-hub, so the
  agents' hub URL is ``https://<hub container address>:443``. It removes an earlier run's join
  kubeconfig before its fleet starts and writes (atomically) ``S/join/hub.kubeconfig`` once its API
  serves (server ``https://<hub address>:<api port>``, no DNS needed);
- ``join``: a managed cluster whose process runs the registration and work agents against that
  kubeconfig (awaited until the hub wrote it), as a klusterlet joins its hub.

Both write ``S/kubeconfig/<name>.kubeconfig`` for the user: the cluster's admin credential at
``https://127.0.0.1:<published port>``, the port compose publishes on the host's loopback
(``KUBECONFIG=S/kubeconfig/hub.kubeconfig:S/kubeconfig/cluster1.kubeconfig:... kubectl --context cluster1``).

As a container's PID 1 (no init under Podman without one) the process forks: the parent reaps
every orphan (the node's Pod shims are re-parented to it) and forwards SIGTERM/SIGINT to the child,
which does the work and stops everything on them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from apiserver.authn import write_kubeconfig
from embedded.apiprocess import EmbeddedApi, start_api
from embedded.platform import HUB_SERVICE, Platform
from hub import main as hub_main
from localcluster.launcher import Fleet
from localcluster.network.nodenet import detect_node_address
from osutil.files import private_dir

HUB = "hub"
JOIN_WAIT = 600.0  # seconds a joining cluster waits for the hub's join kubeconfig
_POLL = 0.5


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(prog="volsync-cluster", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("role", choices=("hub", "join"))
    p.add_argument("--name", help="the cluster's name (hub: always 'hub')")
    p.add_argument("--data-dir", type=Path, required=True, help="the cluster's API stores, node, storage")
    p.add_argument("--shared", type=Path, required=True, help="the directory every container of the stack shares")
    p.add_argument("--api-port", type=int, default=6443, help="the API server's port in the container")
    p.add_argument("--published-port", type=int, help="the host loopback port compose publishes the API on "
                   "(default: --api-port)")
    p.add_argument("--tls-san", action="append", default=[], help="another name for the API's certificate")
    return p.parse_known_args(argv)


def _api(args: argparse.Namespace, name: str, fleet: Fleet, node_ip: str) -> EmbeddedApi:
    sans = [name, socket.gethostname(), node_ip, *args.tls_san]
    extra = ["--host", "0.0.0.0", *(a for san in dict.fromkeys(sans) for a in ("--tls-san", san))]
    return start_api(args.data_dir / "api", [name], port=args.api_port, extra_args=[*fleet.apiserver_args(), *extra])


def _admin_at(kubeconfig: Path, name: str, server: str, path: Path) -> Path:
    """The API server's kubeconfig (exactly the cluster `name`) with its server moved to `server`
    (``https://host:port``), written to `path` (0600 under a private directory)."""
    config: dict[str, Any] = yaml.safe_load(kubeconfig.read_text())
    if [c.get("name") for c in config.get("clusters") or []] != [name]:
        raise RuntimeError(f"{kubeconfig} does not hold exactly the cluster {name}")
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"{server}/clusters/{name}"
    private_dir(path.parent)
    write_kubeconfig(path, config)
    return path


def write_user_kubeconfig(kubeconfig: Path, name: str, shared: Path, port: int) -> Path:
    """``shared/kubeconfig/<name>.kubeconfig``: the API server's `kubeconfig` (cluster `name`) at
    ``127.0.0.1:port`` (the host's view)."""
    return _admin_at(kubeconfig, name, f"https://127.0.0.1:{port}", shared / "kubeconfig" / f"{name}.kubeconfig")


def write_join_kubeconfig(kubeconfig: Path, shared: Path, node_ip: str, port: int) -> Path:
    """``shared/join/hub.kubeconfig``: what the managed clusters' agents join with (the hub's address)."""
    return _admin_at(kubeconfig, HUB, f"https://{node_ip}:{port}", shared / "join" / f"{HUB}.kubeconfig")


def node_fleet(args: argparse.Namespace, data_dir: Path, name: str, **ocm: Any) -> Fleet:
    """The container's one-cluster fleet (node network); its host-root Pods may read neither the
    cluster's data nor the shared directory (every cluster's admin and the hub's join kubeconfig)."""
    api_dir = data_dir / "api"
    return Fleet(data_dir / "clusters", [name], api_dir / "kubeconfig", api_dir / "pki",
                 hide=[data_dir, args.shared.resolve()], node_network=True, **ocm)


def run_hub(args: argparse.Namespace, hub_argv: list[str]) -> int:
    """The hub cluster, its join kubeconfig, then `volsync-hub` on it until SIGTERM."""
    data_dir = private_dir(args.data_dir.resolve())
    node_ip = detect_node_address()
    # a join kubeconfig of an earlier run may name an old address: nobody joins until this run writes it
    (args.shared / "join" / f"{HUB}.kubeconfig").unlink(missing_ok=True)
    fleet = node_fleet(args, data_dir, HUB, hub=HUB, loopback_services=[HUB_SERVICE])
    api = _api(args, HUB, fleet, node_ip)
    try:
        fleet.start()
    except BaseException:
        api.stop()
        raise
    platform = Platform(api, fleet, HUB, [])
    try:
        platform.install_hub_identity()
        write_user_kubeconfig(api.kubeconfig, HUB, args.shared, args.published_port or args.api_port)
        write_join_kubeconfig(api.kubeconfig, args.shared, node_ip, args.api_port)
    except BaseException:
        platform.stop()
        raise
    hub_args = hub_main.parse_args(["--data-dir", str(data_dir / "hub"), "--clusters", "", *hub_argv])
    return hub_main.serve(hub_args, lambda: platform)


def run_join(args: argparse.Namespace, name: str) -> int:
    """A managed cluster joining the hub of the shared directory, until SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    data_dir = private_dir(args.data_dir.resolve())
    join = args.shared / "join" / f"{HUB}.kubeconfig"
    deadline = time.monotonic() + JOIN_WAIT
    while not join.exists():  # the hub container writes it once its API serves
        if stop.wait(_POLL) or time.monotonic() > deadline:
            print(f"volsync-cluster: no {join} (is the hub running?)", file=sys.stderr)
            return 1
    node_ip = detect_node_address()
    fleet = node_fleet(args, data_dir, name, join=(join, HUB))
    api = _api(args, name, fleet, node_ip)
    try:
        fleet.start()
        path = write_user_kubeconfig(api.kubeconfig, name, args.shared, args.published_port or args.api_port)
        print(f"volsync-cluster ready: {name} joins the hub; kubectl --kubeconfig {path} --context {name}", flush=True)
        stop.wait()
    finally:
        try:
            fleet.stop()
        finally:
            api.stop()
    return 0


def _reap_as_init(child: int) -> int:
    """PID 1's loop: forward SIGTERM/SIGINT to `child`, reap every process; `child`'s exit status."""
    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):  # reaped already: the loop returns its status
            os.kill(child, signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 1
        except InterruptedError:
            continue
        if pid == child:
            return os.waitstatus_to_exitcode(status)


def main(argv: list[str] | None = None) -> int:
    args, rest = parse_args(argv)
    if args.role == "join" and not args.name:
        print("volsync-cluster: join needs --name", file=sys.stderr)
        return 2
    if args.role == "join" and rest:
        print(f"volsync-cluster: unknown arguments {rest}", file=sys.stderr)
        return 2
    if os.getpid() == 1:
        child = os.fork()
        if child:
            return _reap_as_init(child)
    os.umask(0o077)
    if args.role == "hub":
        return run_hub(args, rest)
    return run_join(args, args.name)


if __name__ == "__main__":
    sys.exit(main())
