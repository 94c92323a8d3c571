"""The addon controller's I/O layer: informers in, one reconcile per cluster, MCA status out.

Watches ManagedClusters, ManagedClusterAddOns, the addon's ManifestWorks, AddOnDeploymentConfigs,
the ClusterManagementAddOn, the agents' Leases, the replication-report ConfigMaps and the agent
token Secrets on the hub, and queues the cluster each change concerns. Reconciling a cluster:

1. the cluster controller's plan (`hub/clusters.py`): the install label creates the MCA (or, opted
   in, its removal deletes a hub-made one); a write ends the pass, the MCA's watch event brings
   the cluster back;
2. no MCA (or a deleting one): `deployer.remove(cluster)` and the feature label goes; the
   ManifestWork and the token Secret are garbage-collected through their ownerReferences;
3. the token Secret `volsync-agent-token` is ensured (random if absent, never rotated), the
   AddOnDeploymentConfig resolved (an MCA reference to a missing one holds the deployment back
   rather than deploying defaults first), the manifests rendered (`hub/rendering.py`) and handed to
   the deployer;
4. the MCA's conditions (`hub/health.py`) are written with one status patch carrying the observed
   resourceVersion (a decision taken on a stale cache is refused with 409 and retried), and the
   ManagedCluster's feature label follows Available;
5. the cluster is looked at again when its Lease would go stale (so Available turns False on time
   with no event at all), when a replication of it would turn late by time alone (`hub/rpo.py`), and
   every `resync_seconds` while it has replications.

Replications are judged with their peers (`hub/pairing.py`): a destination against its source's last
sync, so a report from one cluster also queues the cluster of its peer (before and after the change).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from hub import agenttoken, clusters, health, ocm, pairing, rendering, reports, rpo, views
from hub.deployers import Deployer, DeployState
from kube import objects
from kube.clock import Clock, SystemClock
from kube.informing import Informer, WorkQueue, drain_forever, reconcile_one, start_controller, stop_controller
from kube.patches import changes
from kube.rest import CONFIGMAPS, LEASES, SECRETS, Kube, Resource

log = logging.getLogger("volsync.hub.addons")

Obj = dict[str, Any]


class AddonManager:
    def __init__(
        self,
        kube: Kube,
        deployer: Deployer,
        *,
        clock: Clock | None = None,
        hub_url: str,
        ca_bundle: str = "",
        image: str,
        stale_seconds: float = health.DEFAULT_STALE_SECONDS,
        workers: int = 2,
        uninstall_on_unlabel: bool = False,
        rpo_seconds: float = rpo.DEFAULT_RPO_SECONDS,
        grace_seconds: float = rpo.DEFAULT_GRACE_SECONDS,
        clock_skew_seconds: float = rpo.DEFAULT_CLOCK_SKEW_SECONDS,
        resync_seconds: float = 60.0,
    ) -> None:
        self.kube = kube
        self.deployer = deployer
        self.clock = clock or SystemClock()
        self.hub_url = hub_url
        self.ca_bundle = ca_bundle
        self.image = image
        self.stale_seconds = stale_seconds
        self.workers = workers
        self.uninstall_on_unlabel = uninstall_on_unlabel
        self.rpo_seconds = rpo_seconds
        self.grace_seconds = grace_seconds
        self.clock_skew_seconds = clock_skew_seconds
        self.resync_seconds = resync_seconds
        self.queue = WorkQueue(self.clock)
        self._removed: set[str] = set()  # clusters whose agent was removed since the MCA went
        # the reports (decoded once, by the informer's handler) by cluster (namespace) and ConfigMap name: a
        # reconcile reads its own cluster's, not a copy of the whole fleet's (O(fleet) per reconcile), and
        # finds their peers in the index
        self._reports: dict[str, dict[str, pairing.Side]] = {}
        self._peers = pairing.PeerIndex()
        self._reports_lock = threading.Lock()
        self._due: dict[str, float] = {}  # cluster -> when (queue clock) its pending look-again timer fires
        self._threads: list[threading.Thread] = []
        by_ns = self._namespace_of
        self.informers: dict[str, Informer] = {
            "clusters": self._informer(ocm.MANAGED_CLUSTERS, objects.name_of),
            "addons": self._informer(ocm.MANAGED_CLUSTER_ADDONS, by_ns(ocm.ADDON)),
            "works": self._informer(ocm.MANIFEST_WORKS, by_ns(ocm.WORK_NAME), f"{ocm.ADDON_NAME_LABEL}={ocm.ADDON}"),
            "configs": Informer(kube, ocm.ADDON_DEPLOYMENT_CONFIGS, self._config_changed),
            "cmas": Informer(kube, ocm.CLUSTER_MANAGEMENT_ADDONS, self._cma_changed),
            "leases": Informer(kube, LEASES, self._lease_changed),
            "reports": Informer(kube, CONFIGMAPS, self._report_changed, label_selector=f"{ocm.REPORT_LABEL}=true"),
            "tokens": self._informer(SECRETS, by_ns(ocm.TOKEN_SECRET), f"{ocm.TOKEN_LABEL}=true"),
        }

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        clusters.ensure_cluster_management_addon(self.kube)
        self._threads = start_controller(self.informers.values(), self._work, self.workers, "addons", timeout)

    def stop(self) -> None:
        stop_controller(self.queue, self.informers.values(), self._threads)

    def synced(self) -> bool:
        return all(inf.wait_synced(0) for inf in self.informers.values())

    # -- event routing ------------------------------------------------------------------------------
    def _informer(self, res: Resource, key: Callable[[Obj], str | None], selector: str | None = None) -> Informer:
        def handle(_kind: str, obj: Obj, _prev: Obj | None) -> None:
            cluster = key(obj)
            if cluster:
                self.queue.add(cluster)

        return Informer(self.kube, res, handle, label_selector=selector)

    def _lease_changed(self, kind: str, obj: Obj, prev: Obj | None) -> None:
        cluster = objects.namespace_of(obj)
        if not cluster or objects.name_of(obj) != ocm.LEASE:
            return
        if (kind == "MODIFIED" and self._fresh(prev) and reports.holder(prev) == reports.holder(obj)
                and self._fresh(obj)):
            # A renewal of a Lease that was already fresh cannot change Available: skip the reconcile
            # (most of the hub's CPU at scale, per bench/hub.py). The re-check the last reconcile
            # scheduled at the stale boundary looks again and moves the boundary forward.
            return
        self.queue.add(cluster)

    def _fresh(self, lease: Obj | None) -> bool:
        renewed = reports.renew_time(lease)
        return renewed is not None and (self.clock.now() - renewed).total_seconds() < self.stale_seconds

    @staticmethod
    def _namespace_of(name: str | None) -> Callable[[Obj], str | None]:
        """The cluster of a namespaced object: its namespace (when it has the expected name, if any)."""
        return lambda o: objects.namespace_of(o) if name is None or objects.name_of(o) == name else None

    def _addons(self) -> list[Obj]:
        return [a for a in self.informers["addons"].items() if objects.name_of(a) == ocm.ADDON]

    def _report_changed(self, kind: str, obj: Obj, _prev: Obj | None) -> None:
        cluster, name = objects.namespace_of(obj), objects.name_of(obj)
        if not cluster:
            return
        new = None if kind == "DELETED" else _decode(obj)
        touched = {cluster}
        with self._reports_lock:
            bucket = self._reports.setdefault(cluster, {})
            for side in filter(None, (bucket.pop(name, None), new)):
                touched |= self._peer_clusters(side.ref)  # the peer before the change, then after it
                self._peers.remove(side.ref)
                if side is new:
                    bucket[name] = new
                    self._peers.put(new)
                    touched |= self._peer_clusters(new.ref)
            if not bucket:
                del self._reports[cluster]
        for c in sorted(touched):
            self.queue.add(c)

    def _peer_clusters(self, ref: pairing.Ref) -> set[str]:
        peer = self._peers.peer(ref).peer
        return {peer.ref.cluster} if peer is not None else set()

    def _config_changed(self, _kind: str, obj: Obj, _prev: Obj | None) -> None:
        key = (objects.namespace_of(obj), objects.name_of(obj))
        cma = self.informers["cmas"].get("", ocm.ADDON)
        for addon in self._addons():
            if rendering.adc_reference(addon, cma) == key:
                self.queue.add(objects.namespace_of(addon))

    def _cma_changed(self, _kind: str, obj: Obj, _prev: Obj | None) -> None:
        if objects.name_of(obj) == ocm.ADDON:
            for addon in self._addons():
                self.queue.add(objects.namespace_of(addon))

    # -- workers ------------------------------------------------------------------------------------
    def _work(self) -> None:
        drain_forever(self.queue, self.run_one)

    def run_one(self, key: str) -> None:
        """Reconcile a cluster taken from the queue: errors requeue it, and it is marked done."""
        reconcile_one(self.queue, key, self.process, key)

    def process(self, cluster: str) -> None:
        now = self.clock.now()
        managed = self.informers["clusters"].get("", cluster)
        addon = self.informers["addons"].get(cluster, ocm.ADDON)
        actions = clusters.plan(cluster, managed, addon, uninstall_on_unlabel=self.uninstall_on_unlabel)
        if actions:
            clusters.apply(self.kube, actions)
            return
        if addon is None or objects.is_deleting(addon):
            self._remove(cluster, managed)
            return
        self._removed.discard(cluster)
        if managed is not None and objects.is_deleting(managed):
            return  # as addon-framework: no deployment changes while the cluster (and its namespace) goes
        deploy, apply_error = self._deploy(cluster, addon)
        judged = self._verdicts(cluster, now)
        verdicts = [v for _, v in judged]
        states = [v.state for v in verdicts]
        lease = self.informers["leases"].get(cluster, ocm.LEASE)
        cluster_available = objects.condition(((managed or {}).get("status") or {}).get("conditions"),
                                              ocm.CLUSTER_AVAILABLE)
        verdict = health.assess(addon, deploy, lease, cluster_available, states, now, names=[n for n, _ in judged],
                                stale_seconds=self.stale_seconds, apply_error=apply_error)
        if changes(addon.get("status") or {}, verdict.status):
            patch = {"metadata": {"resourceVersion": objects.meta(addon).get("resourceVersion")},
                     "status": verdict.status}
            self.kube.patch(ocm.MANAGED_CLUSTER_ADDONS, ocm.ADDON, patch, cluster, subresource="status")
        self._label(managed, verdict.label)
        if apply_error is not None:
            self.queue.add_rate_limited(cluster)
            return
        self.queue.forget(cluster)
        turns = min((v.changes_in for v in verdicts if v.changes_in is not None), default=None)
        delays = [d for d in (verdict.recheck_after, self.resync_seconds if verdicts else None, turns) if d is not None]
        if delays:
            self._look_again(cluster, min(delays))

    def _look_again(self, cluster: str, delay: float) -> None:
        """Queue the cluster after `delay` unless a look is already due no later. The queue keeps every
        timer it is given and each one that fires reconciles (which sets another), so one timer per
        reconcile would pile up: every heartbeat and report burst would add a reconcile that repeats for
        good. A key is never reconciled by two workers at once, so `_due` needs no lock."""
        now = self.queue.clock.monotonic()
        pending = self._due.get(cluster)
        if pending is not None and now < pending <= now + delay:
            return
        self._due[cluster] = now + delay
        self.queue.add_after(cluster, delay)

    # -- steps --------------------------------------------------------------------------------------
    def _deploy(self, cluster: str, addon: Obj) -> tuple[DeployState | None, str | None]:
        """Render and hand over the manifests: (what the deployer knows, or why nothing was handed over)."""
        ref = rendering.adc_reference(addon, self.informers["cmas"].get("", ocm.ADDON))
        adc = self.informers["configs"].get(*ref) if ref else None
        if ref and adc is None:
            return None, f"AddOnDeploymentConfig {ref[0]}/{ref[1]} not found"
        try:
            token = agenttoken.ensure(self.kube, self.informers["tokens"], cluster, addon)
            manifests = rendering.render(cluster, addon, adc, hub_url=self.hub_url, token=token,
                                         ca_bundle=self.ca_bundle, image=self.image)
            return self.deployer.apply(cluster, addon, manifests), None
        except ApiException as exc:
            if exc.status == 409:
                raise  # a write raced another: simply retried
            log.warning("deploying to %s failed: %s %s", cluster, exc.status, exc.reason)
            return None, f"failed to deploy the agent: {exc.status} {exc.reason}"
        except Exception as exc:  # a deployer's own failure (files, processes, a broken token Secret)
            log.warning("deploying to %s failed: %s", cluster, exc, exc_info=not isinstance(exc, (OSError, ValueError)))
            return None, f"failed to deploy the agent: {exc}"

    def _verdicts(self, cluster: str, now: datetime) -> list[tuple[str, rpo.Verdict]]:
        """(name, RPO verdict) of every replication the cluster's agent reported, each judged with its peer,
        in name order."""
        with self._reports_lock:
            found = [(side, self._peers.peer(side.ref)) for side in self._reports.get(cluster, {}).values()]
        judging = views.Judging(self.rpo_seconds, self.grace_seconds, self.clock_skew_seconds)
        judged = [(f"{s.ref.role} {s.ref.namespace}/{s.ref.name}", views.verdict(s, p, now, judging)) for s, p in found]
        return sorted(judged, key=lambda j: j[0])

    def _label(self, managed: Obj | None, value: str | None) -> None:
        if managed is not None and objects.labels_of(managed).get(ocm.FEATURE_LABEL) != value:
            patch = {"metadata": {"labels": {ocm.FEATURE_LABEL: value}}}
            self.kube.patch(ocm.MANAGED_CLUSTERS, objects.name_of(managed), patch)

    def _remove(self, cluster: str, managed: Obj | None) -> None:
        if cluster not in self._removed:
            self.deployer.remove(cluster)
            self._removed.add(cluster)
        self._label(managed, None)


def _decode(cm: Obj) -> pairing.Side | None:
    """The replication a report ConfigMap holds, validated as the REST API reads it (None, logged, when damaged)."""
    stored = reports.decode_configmap(cm)
    return views.side(stored.cluster, stored.report) if stored is not None else None
