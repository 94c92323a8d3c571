"""The REST URL a hub running as a Pod hands its agents: its own LoadBalancer Service's address.

`manifests/hub` publishes the hub Pod's REST API as Service `volsync-system/volsync-hub` (type
LoadBalancer). The agents run on other clusters, so neither the Pod's IP nor the Service's
clusterIP reaches them: the load balancer's address does. With `--advertise-service NS/NAME` (and no
`--hub-url`) the hub waits here, before it makes its serving certificate, for that Service's
`status.loadBalancer.ingress[0]` (ip, else hostname, as the cloud or the embedded clusters'
`cloudlb` writes it) and advertises `https://<ingress>:<port>`: the port named `https`, else the
Service's first port. The address then is one of the certificate's SANs (`hub.hubtls.rest_tls`).

Reading the Service needs only `get` on it (manifests/hub/rbac.yaml narrows that to its name). A
Service that cannot get an address (not type LoadBalancer, no port) or a refusal (401/403) fails at
once; a Service not there yet, an address not given yet, or a hub API that does not answer is
waited for until `timeout`, then a `RuntimeError` naming the Service and what was last seen.

`add_advertise_flags` and `hub_url_of` are the seam `hub/main.py` uses: the flags, and the URL they
ask for (None without `--advertise-service`).
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from hub.hubtls import https_url
from kube.rest import SERVICES, Kube

Obj = dict[str, Any]
log = logging.getLogger("volsync.hub.advertise")

POLL_SECONDS = 0.5
DEFAULT_TIMEOUT = 120.0


def service_ref(value: str) -> tuple[str, str]:
    """`NAMESPACE/NAME` (the argparse type of `--advertise-service`) as (namespace, name)."""
    namespace, slash, name = value.partition("/")
    if not slash or not namespace or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"{value!r} is not NAMESPACE/NAME")
    return namespace, name


def add_advertise_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--advertise-service", type=service_ref, metavar="NAMESPACE/NAME",
                        help="a LoadBalancer Service of the hub cluster in front of the REST API (a hub in a Pod: "
                        "manifests/hub): agents get https://<its ingress>:<its port>; --hub-url wins")
    parser.add_argument("--advertise-timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="how long to wait for that Service's address (default: %(default)ss)")


def hub_url_of(args: argparse.Namespace, kube: Kube) -> str | None:
    """The agents' hub URL `--advertise-service` asks for (waited for); None without the flag."""
    if args.advertise_service is None:
        return None
    namespace, name = args.advertise_service
    return advertised_url(kube, namespace, name, timeout=args.advertise_timeout)


def ingress_address(service: Obj) -> str | None:
    """The Service's first load-balancer address (ip, else hostname), None while it has none."""
    for ingress in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        address = ingress.get("ip") or ingress.get("hostname")
        if address:
            return str(address)
    return None


def advertised_port(service: Obj) -> int | None:
    """The Service port agents connect to: the one named `https`, else the first; None without ports."""
    ports = (service.get("spec") or {}).get("ports") or []
    chosen = next((p for p in ports if p.get("name") == "https"), ports[0] if ports else None)
    return int(chosen["port"]) if chosen and chosen.get("port") else None


def service_url(service: Obj) -> str | None:
    """`https://<ingress>:<port>` of a LoadBalancer Service, None while it has no address yet.
    Raises RuntimeError for a Service that will never have one of ours (wrong type, no port)."""
    meta = service.get("metadata") or {}
    named = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    kind = (service.get("spec") or {}).get("type") or "ClusterIP"
    if kind != "LoadBalancer":
        raise RuntimeError(f"Service {named} is of type {kind}: only a LoadBalancer Service can be advertised")
    port = advertised_port(service)
    if port is None:
        raise RuntimeError(f"Service {named} has no port to advertise")
    address = ingress_address(service)
    return https_url(address, port) if address is not None else None


def advertised_url(kube: Kube, namespace: str, name: str, *, timeout: float) -> str:
    """Wait up to `timeout` seconds for Service namespace/name's load-balancer address; its https URL."""
    deadline = time.monotonic() + timeout
    while True:
        seen = _look(kube, namespace, name)
        if seen.startswith("https://"):
            log.info("advertising %s (Service %s/%s)", seen, namespace, name)
            return seen
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"Service {namespace}/{name} has no load-balancer ingress address after "
                               f"{timeout:g}s ({seen}): give --hub-url, or check the cluster's load balancer")
        time.sleep(min(POLL_SECONDS, left))  # polled: `get` on one name is all the hub may do


def _look(kube: Kube, namespace: str, name: str) -> str:
    """The Service's URL, or why there is none yet (RuntimeError when there never will be)."""
    try:
        service = kube.get(SERVICES, name, namespace)
    except ApiException as exc:
        if exc.status in (401, 403):
            raise RuntimeError(f"cannot read Service {namespace}/{name} to advertise it: "
                               f"{exc.status} {exc.reason}") from exc
        return f"the hub API answered {exc.status} {exc.reason}"
    except HTTPError as exc:
        return f"the hub API did not answer: {exc}"
    if service is None:
        return "no such Service yet"
    return service_url(service) or "no address assigned yet"
