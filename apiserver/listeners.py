"""Per-cluster listeners: each cluster's API at the root path on a loopback port of its own, and
the `default/kubernetes` Service that leads there.

A Pod calling `load_incluster_config()` reaches `https://$KUBERNETES_SERVICE_HOST:443/api/...`:
the root path, verified against the CA in kube-root-ca.crt for the Service's address. The shared
port serves every cluster under `/clusters/<name>`, so with `--cluster-listeners` each cluster also
gets a listener on `127.0.0.1:<free port>` that serves that cluster at `/` (the request path is
rewritten to `/clusters/<name>/...` and handed to the same `Server`: same authentication, caps
and handlers), with a serving certificate of its own (`pki/listener-<name>.crt`, signed by the
installation's CA) naming `127.0.0.1`, the cluster's `kubernetes` Service IP and the Service's
DNS names. The network's service proxy forwards the Service IP's port 443 to that listener.

At every start (the ports change) the API server rewrites, in each cluster, the `kubernetes`
Service (ClusterIP = first address of the cluster's Service CIDR, port `https` 443 → the
listener's port, no selector), its Endpoints and its EndpointSlice (address 127.0.0.1), and the
ports go to `<data-dir>/listeners.json` (`{"cluster": port}`, written atomically) and the ready line.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import json
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import Receive, Scope, Send

from apiserver import errors
from apiserver.cluster import Cluster
from apiserver.resources import Obj
from apiserver.writing import Options
from osutil.certs import issue_certificate
from osutil.files import write_private

log = logging.getLogger("volsync.apiserver.listeners")

LISTENERS_FILE = "listeners.json"
SERVICE_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
ENDPOINTSLICE_KEY = "discovery.k8s.io/endpointslices"
LISTEN_ADDRESS = "127.0.0.1"


class RootedCluster:
    """ASGI app serving one cluster of `server` at the root path (`/api` → `/clusters/<name>/api`)."""

    def __init__(self, server: Any, cluster: str) -> None:
        self.server, self.prefix = server, f"/clusters/{cluster}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = dict(scope)
            path = scope.get("path") or "/"
            scope["path"] = self.prefix + (path if path != "/" else "")
            scope["raw_path"] = self.prefix.encode() + (scope.get("raw_path") or path.encode())
        await self.server(scope, receive, send)


def parse_service_cidrs(values: Sequence[str], names: Sequence[str]) -> dict[str, str]:
    """`--service-cidr NAME=CIDR` values → {cluster: CIDR}; ValueError naming the bad value."""
    cidrs: dict[str, str] = {}
    for value in values:
        name, sep, cidr = value.partition("=")
        if not sep or name not in names:
            raise ValueError(f"--service-cidr {value!r}: NAME=CIDR with NAME one of --clusters")
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ValueError(f"--service-cidr {value!r}: {cidr!r} is not a CIDR") from None
        if network.version != 4 or network.num_addresses < 4:
            raise ValueError(f"--service-cidr {value!r}: an IPv4 range of at least 4 addresses")
        cidrs[name] = str(network)
    return cidrs


@dataclass
class ClusterListeners:
    """The running per-cluster listeners: cluster → port, and their uvicorn servers."""

    ports: dict[str, int]
    servers: list[uvicorn.Server] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop(self) -> None:
        for uv in self.servers:
            uv.should_exit = True
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def open_listeners(server: Any, data_dir: Path, log_level: str) -> ClusterListeners:
    """Bind, certify, publish (`kubernetes` Service, listeners.json) and serve one listener per cluster.

    Each is a uvicorn server of its own (its own certificate) on the running loop; `_serve` rather
    than `serve`, so that only the main server handles SIGTERM/SIGINT (the caller stops these)."""
    running = ClusterListeners({})
    for name, cluster in server.clusters.items():
        sock = bind_loopback()
        port = sock.getsockname()[1]
        cert, key = certificate(data_dir / "pki", name, cluster.addresses.kubernetes_ip)
        publish_kubernetes_service(cluster, port)
        config = uvicorn.Config(RootedCluster(server, name), log_level=log_level, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2, ssl_certfile=str(cert), ssl_keyfile=str(key))
        uv = uvicorn.Server(config)
        running.ports[name] = port
        running.servers.append(uv)
        running.tasks.append(asyncio.create_task(uv._serve(sockets=[sock])))
    while not all(uv.started for uv in running.servers) and not any(t.done() for t in running.tasks):
        await asyncio.sleep(0.01)
    for task in running.tasks:
        if task.done():
            task.result()  # a listener that could not start: its error, not a silent missing port
    write_ports(data_dir, running.ports)
    return running


def bind_loopback() -> socket.socket:
    """A listening TCP socket on 127.0.0.1 at a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LISTEN_ADDRESS, 0))
    sock.listen(512)
    return sock


def certificate(pki_dir: Path, cluster: str, service_ip: str) -> tuple[Path, Path]:
    """The listener's serving certificate and key (issued once, re-issued if the names change)."""
    return issue_certificate(pki_dir, f"listener-{cluster}", cn="kube-apiserver",
                             sans=[LISTEN_ADDRESS, service_ip, *SERVICE_NAMES])


def write_ports(data_dir: Path, ports: dict[str, int]) -> Path:
    path = data_dir / LISTENERS_FILE
    write_private(path, json.dumps(ports, sort_keys=True) + "\n")
    return path


def kubernetes_objects(service_ip: str, port: int) -> dict[str, Obj]:
    """The `default/kubernetes` Service, Endpoints and EndpointSlice for a listener on `port`."""
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "kubernetes", "namespace": "default",
                            "labels": {"component": "apiserver", "provider": "kubernetes"}},
               "spec": {"type": "ClusterIP", "clusterIP": service_ip, "clusterIPs": [service_ip],
                        "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
                        "sessionAffinity": "None"}}
    endpoints = {"apiVersion": "v1", "kind": "Endpoints",
                 "metadata": {"name": "kubernetes", "namespace": "default",
                              "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                 "subsets": [{"addresses": [{"ip": LISTEN_ADDRESS}],
                              "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}
    slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": "kubernetes", "namespace": "default",
                           "labels": {"kubernetes.io/service-name": "kubernetes"}},
              "addressType": "IPv4",
              "endpoints": [{"addresses": [LISTEN_ADDRESS], "conditions": {"ready": True}}],
              "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}
    return {"/services": service, "/endpoints": endpoints, ENDPOINTSLICE_KEY: slice_}


def publish_kubernetes_service(cluster: Cluster, port: int) -> None:
    """Create or rewrite the cluster's `kubernetes` Service, Endpoints and EndpointSlice for `port`.

    A stored Service with another ClusterIP (the Service CIDR changed) is deleted and created anew,
    since a ClusterIP may not change."""
    for key, wanted in kubernetes_objects(cluster.addresses.kubernetes_ip, port).items():
        rt = cluster.registry.by_key(key)
        if rt is None:
            log.warning("cluster %s serves no %s: the kubernetes Service has none", cluster.name, key)
            continue
        current = cluster.store.get(key, "default", "kubernetes")
        if current is not None and key == "/services" and (current.get("spec") or {}).get("clusterIP") != (
                wanted["spec"]["clusterIP"]):
            cluster.writer.delete(rt, "default", "kubernetes", {}, False)
            current = None
        if current is None:
            try:
                cluster.writer.create(rt, "default", wanted, rt.storage_version, Options(internal=True))
            except errors.ApiError as exc:  # a Service still held by a finalizer, say: say so, serve on
                log.warning("cluster %s: cannot create the kubernetes %s: %s", cluster.name, key, exc)
            continue
        body = copy.deepcopy(current)
        for part, value in wanted.items():
            if part == "metadata":
                body["metadata"]["labels"] = {**(current["metadata"].get("labels") or {}), **value["labels"]}
            elif part == "spec":
                body["spec"] = {**(current.get("spec") or {}), **value}
            elif part not in ("apiVersion", "kind"):
                body[part] = value
        cluster.writer.update(rt, "default", "kubernetes", body, rt.storage_version, Options(internal=True),
                              require_rv=False)
