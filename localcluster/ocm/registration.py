"""The klusterlet's registration agent of an embedded managed cluster: joins the hub and keeps the
cluster's `ManagedCluster` status and lease there.

    agent = RegistrationAgent(hub_kube, own_kube, "cluster1", client_url=url, ca_bundle=ca_pem)
    agent.start()     # returns at once; a background thread
    ...
    agent.stop()

Each round (`sync_once`), as OCM's registration agent does:
1. create the cluster's ManagedCluster on the hub if missing (label `name`, `hubAcceptsClient:
   false`, the client config, `leaseDurationSeconds: 60`); a spec someone else set is kept, but,
   as OCM's klusterlet does, this agent's own client config (url + caBundle) is made sure of in
   `managedClusterClientConfigs` (put first when its url is missing, its caBundle corrected
   when it differs, other entries kept), so a spoke API server back on another port is current;
2. wait until the hub accepted it (`HubAcceptedManagedCluster` True);
3. renew Lease `managed-cluster-lease` in the cluster namespace on the hub (created if missing);
4. write `ManagedClusterJoined`, `ManagedClusterConditionAvailable` (from a /livez check of its own
   API), `version.kubernetes` and `capacity`/`allocatable` (its Nodes summed) through the `/status`
   subresource, only when something changed.
The next round comes after `spec.leaseDurationSeconds`, or sooner: between rounds the agent GETs
its ManagedCluster every `SPEC_POLL_SECONDS` and starts the next round at once when
`leaseDurationSeconds` differs from the one it last renewed with, so a shortened lease is renewed
with the new duration before the hub's shorter grace could find the old renewal stale. OCM's agent
watches its ManagedCluster; a GET poll is used here because `Kube.watch` has no field selector (a
user-created ManagedCluster need not carry the `name` label), and one small GET a second per
cluster costs the embedded hub little while needing no watch restarts or 410 relists.
A failing round (hub unreachable, …) is retried with a capped back-off and logged once per outage;
it never ends the thread (and no spec polls run during an outage).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from kubernetes.client.exceptions import ApiException

from kube.clock import Clock, SystemClock, rfc3339
from kube.objects import condition, set_condition
from kube.rest import NODES, Kube, Obj
from localcluster.node.envvars import quantity
from localcluster.ocm.leaseplan import (
    ACCEPTED,
    AVAILABLE,
    DEFAULT_LEASE_SECONDS,
    JOINED,
    conditions_differ,
    conditions_of,
    lease_seconds,
)
from localcluster.ocm.resources import CLUSTER_LEASE, LEASES, MANAGED_CLUSTERS

log = logging.getLogger("localcluster.ocm.registration")

CLUSTER_NAME_LABEL = "open-cluster-management.io/cluster-name"  # on the lease, as OCM's hub labels it
ACCEPT_POLL_SECONDS = 2.0  # how often a cluster not yet accepted looks again
SPEC_POLL_SECONDS = 1.0  # how often the wait between rounds looks for a changed leaseDurationSeconds
BACKOFF_FIRST = 0.5
CONFLICT_TRIES = 3  # client-config patches on a fresh read before a round gives up
BACKOFF_CAP = 10.0
_SUMMED = ("cpu", "memory")


@dataclass(frozen=True)
class SpokeFacts:
    """What the agent observed of its own cluster: None where it could not be read this round."""

    healthy: bool
    health_message: str = ""
    version: str | None = None
    capacity: Mapping[str, str] | None = None
    allocatable: Mapping[str, str] | None = None


@dataclass
class _Outage:
    """The capped back-off of failing rounds, and whether this outage was logged already."""

    failures: int = 0
    logged: bool = field(default=False)

    def failed(self, cluster: str, exc: BaseException) -> float:
        if not self.logged:
            log.warning("%s: registration with the hub failed, retrying with back-off: %s", cluster, _reason(exc))
            self.logged = True
        self.failures += 1
        return float(min(BACKOFF_FIRST * 2.0 ** (self.failures - 1), BACKOFF_CAP))

    def succeeded(self, cluster: str) -> None:
        if self.logged:
            log.info("%s: registration with the hub works again", cluster)
        self.failures, self.logged = 0, False


def desired_status(status: Obj, facts: SpokeFacts, now: datetime) -> Obj | None:
    """The status patch of an accepted cluster given `facts`; None when nothing would change."""
    stamp = rfc3339(now)
    conditions = conditions_of({"status": status})
    joined = {"type": JOINED, "status": "True", "reason": "ManagedClusterJoined", "message": "Managed cluster joined"}
    if facts.healthy:
        available = {"type": AVAILABLE, "status": "True", "reason": "ManagedClusterAvailable",
                     "message": "Managed cluster is available"}
    else:
        available = {"type": AVAILABLE, "status": "False", "reason": "ManagedClusterKubeAPIServerUnavailable",
                     "message": f"The kube-apiserver is not ok: {facts.health_message}"}
    after = set_condition(set_condition(conditions, joined, stamp), available, stamp)
    patch: Obj = {}
    if conditions_differ(conditions, after):
        patch["conditions"] = after
    if facts.version is not None and (status.get("version") or {}).get("kubernetes") != facts.version:
        patch["version"] = {"kubernetes": facts.version}
    for key, value in (("capacity", facts.capacity), ("allocatable", facts.allocatable)):
        if value is not None and status.get(key) != dict(value):
            patch[key] = dict(value)
    return patch or None


def with_client_config(configs: object, url: str, ca_bundle: str) -> list[Obj] | None:
    """`managedClusterClientConfigs` holding this agent's `{url, caBundle}`; None when it does already.

    A missing url is put first, an entry with the url but another caBundle gets this one; every
    other entry is kept as it is."""
    entries = [dict(entry) for entry in configs if isinstance(entry, Mapping)] if isinstance(configs, list) else []
    own = [entry for entry in entries if entry.get("url") == url]
    if not own:
        return [{"url": url, "caBundle": ca_bundle}, *entries]
    if all(entry.get("caBundle") == ca_bundle for entry in own):
        return None
    for entry in own:
        entry["caBundle"] = ca_bundle
    return entries


def summed_resources(nodes: Iterable[Obj], field_name: str) -> dict[str, str]:
    """cpu and memory of `status.<field_name>` summed over the Nodes, as quantities."""
    totals = dict.fromkeys(_SUMMED, 0.0)
    for node in nodes:
        values = (node.get("status") or {}).get(field_name) or {}
        for res in _SUMMED:
            if res in values:
                totals[res] += quantity(str(values[res]))
    return {"cpu": _cpu(totals["cpu"]), "memory": _memory(totals["memory"])}


def _cpu(cores: float) -> str:
    return str(int(cores)) if cores == int(cores) else f"{round(cores * 1000)}m"


def _memory(size: float) -> str:
    """Bytes in the largest binary unit that divides them exactly (as kubelets report memory)."""
    whole = int(size)
    for suffix, factor in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if whole and whole % factor == 0:
            return f"{whole // factor}{suffix}"
    return str(whole)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"{exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


class RegistrationAgent:
    """Keeps `cluster`'s ManagedCluster and lease on the hub (see the module docstring)."""

    def __init__(self, hub: Kube, spoke: Kube, cluster: str, *, client_url: str, ca_bundle: bytes,
                 clock: Clock | None = None) -> None:
        self.hub = hub
        self.spoke = spoke
        self.cluster = cluster
        self.client_url = client_url
        self.ca_bundle = base64.b64encode(ca_bundle).decode()
        self.clock = clock or SystemClock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outage = _Outage()
        self._renewed_with: int | None = None  # leaseDurationSeconds last renewed with; None after a failure

    def start(self) -> None:
        """Start the rounds in a background thread; returns at once."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"registration-{self.cluster}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.wait_round(self.round())

    def wait_round(self, delay: float) -> None:
        """Wait `delay` seconds (or until stopped), ending early when the hub's lease duration
        differs from the one last renewed with (polled every `SPEC_POLL_SECONDS`)."""
        deadline = time.monotonic() + delay
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self._stop.wait(min(left, SPEC_POLL_SECONDS)):
                return
            if self._lease_changed():
                return

    def _lease_changed(self) -> bool:
        """Whether the ManagedCluster's leaseDurationSeconds is no longer the one last renewed with
        (never raises: a failed GET is left to the next round)."""
        if self._renewed_with is None:
            return False
        try:
            found = self.hub.get(MANAGED_CLUSTERS, self.cluster)
        except Exception as exc:
            log.debug("%s: reading its ManagedCluster between rounds failed: %s", self.cluster, _reason(exc))
            return False
        if found is None or lease_seconds(found) == self._renewed_with:
            return False
        log.info("%s: leaseDurationSeconds is now %s, renewing at once", self.cluster, lease_seconds(found))
        return True

    def round(self) -> float:
        """One round that never raises: seconds until the next one (a back-off after a failure)."""
        self._renewed_with = None
        try:
            delay = self.sync_once()
        except ApiException as exc:
            if exc.status == 409:  # the cluster manager wrote the ManagedCluster meanwhile: read it again soon
                return BACKOFF_FIRST
            return self._outage.failed(self.cluster, exc)
        except Exception as exc:  # the hub being away must never end the agent
            return self._outage.failed(self.cluster, exc)
        self._outage.succeeded(self.cluster)
        return delay

    def sync_once(self) -> float:
        """One registration round (raises on hub errors); seconds until the next round."""
        cluster = self._ensure_cluster()
        accepted = condition(conditions_of(cluster), ACCEPTED) or {}
        if accepted.get("status") != "True":
            return ACCEPT_POLL_SECONDS
        seconds = lease_seconds(cluster)
        self._renew_lease(seconds)
        self._renewed_with = seconds
        patch = desired_status(cluster.get("status") or {}, self.observe(), self.clock.now())
        if patch is not None:
            rv = (cluster.get("metadata") or {}).get("resourceVersion")
            self.hub.patch(MANAGED_CLUSTERS, self.cluster, {"metadata": {"resourceVersion": rv}, "status": patch},
                           subresource="status")
        return float(seconds)

    def _ensure_cluster(self) -> Obj:
        """The ManagedCluster on the hub, created if missing, holding this agent's client config.

        The list is patched as a whole on the version read; a conflict (the cluster manager wrote
        meanwhile) reads it again, up to `CONFLICT_TRIES` times, then leaves it to the round's retry."""
        for attempt in range(1, CONFLICT_TRIES + 1):
            found = self._get_or_create()
            merged = with_client_config((found.get("spec") or {}).get("managedClusterClientConfigs"),
                                        self.client_url, self.ca_bundle)
            if merged is None:
                return found
            rv = (found.get("metadata") or {}).get("resourceVersion")
            body = {"metadata": {"resourceVersion": rv}, "spec": {"managedClusterClientConfigs": merged}}
            try:
                return self.hub.patch(MANAGED_CLUSTERS, self.cluster, body)
            except ApiException as exc:
                if exc.status != 409 or attempt == CONFLICT_TRIES:
                    raise
        raise AssertionError("unreachable")

    def _get_or_create(self) -> Obj:
        found = self.hub.get(MANAGED_CLUSTERS, self.cluster)
        if found is not None:
            return found
        body = {"metadata": {"name": self.cluster, "labels": {"name": self.cluster}},
                "spec": {"hubAcceptsClient": False,
                         "managedClusterClientConfigs": [{"url": self.client_url, "caBundle": self.ca_bundle}],
                         "leaseDurationSeconds": DEFAULT_LEASE_SECONDS}}
        try:
            return self.hub.create(MANAGED_CLUSTERS, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        found = self.hub.get(MANAGED_CLUSTERS, self.cluster)
        if found is None:
            raise ApiException(status=409, reason="ManagedCluster created and deleted meanwhile")
        return found

    def _renew_lease(self, seconds: int) -> None:
        spec = {"renewTime": self.clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "leaseDurationSeconds": seconds}
        try:
            self.hub.patch(LEASES, CLUSTER_LEASE, {"spec": spec}, self.cluster)
            return
        except ApiException as exc:
            if exc.status != 404:
                raise
        meta = {"name": CLUSTER_LEASE, "namespace": self.cluster, "labels": {CLUSTER_NAME_LABEL: self.cluster}}
        self.hub.create(LEASES, {"metadata": meta, "spec": {"holderIdentity": CLUSTER_LEASE, **spec}})

    def observe(self) -> SpokeFacts:
        """Health, version and summed Node resources of the agent's own cluster (never raises)."""
        healthy, message = self._livez()
        if not healthy:
            return SpokeFacts(False, message)
        try:
            version = str(self.spoke.request("GET", "/version", timeout=10.0).get("gitVersion") or "") or None
            nodes, _ = self.spoke.list(NODES)
        except Exception as exc:  # keep what the hub has; health alone decides Available
            log.debug("%s: reading its own cluster failed: %s", self.cluster, _reason(exc))
            return SpokeFacts(True, version=None)
        return SpokeFacts(True, version=version, capacity=summed_resources(nodes, "capacity"),
                          allocatable=summed_resources(nodes, "allocatable"))

    def _livez(self) -> tuple[bool, str]:
        api = self.spoke.api
        try:
            request = api.param_serialize("GET", "/livez", header_params={"Accept": "*/*"},
                                          auth_settings=["BearerToken"])
            resp = api.call_api(*request, _request_timeout=10.0)
            body = resp.read()  # type: ignore[no-untyped-call]
        except Exception as exc:
            return False, _reason(exc)
        if 200 <= resp.status <= 299:
            return True, ""
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        return False, f"status code {resp.status}: {text[:200]}"
