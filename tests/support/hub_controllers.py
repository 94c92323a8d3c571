"""The `hub` fixture: the addon controller in-process against a real API server (hub + cluster1).

The controller runs with a `FakeClock` and no worker threads: tests step it (`drain`), so time
(Lease staleness) passes by `clock.advance` and "nothing changed" is asserted after a deterministic
reconcile. The ManifestWork deployer writes real ManifestWorks; tests play the work agent by
patching their status, and the REST API by writing Leases and report ConfigMaps.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from hub import ocm
from hub.addons import AddonManager
from kube.clock import FakeClock, rfc3339
from kube.informing import Informer
from kube.rest import CONFIGMAPS, LEASES, Kube
from support.apiserver import ApiServer
from support.waiting import eventually

T0 = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
HUB_URL = "https://hub.example.com:8443"
IMAGE = "quay.io/volsync-addon/agent:0.1.0"


def micro_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _versions(items: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(o["metadata"]["name"], o["metadata"]["resourceVersion"]) for o in items}


def _caught_up(inf: Informer, namespace: str, want: set[tuple[str, str]]) -> bool:
    return _versions(inf.items(namespace)) == want


@dataclass
class Hub:
    server: ApiServer
    kube: Kube
    clock: FakeClock
    make_manager: Callable[..., AddonManager]
    manager: AddonManager | None = None
    managers: list[AddonManager] = field(default_factory=list)

    def start(self, **options: Any) -> AddonManager:
        self.manager = self.make_manager(**options)
        self.managers.append(self.manager)
        self.manager.start()
        return self.manager

    # -- stepping -----------------------------------------------------------------------------------
    def drain(self) -> None:
        """Reconcile every key that is due now (no waiting for delayed ones)."""
        assert self.manager is not None
        while True:
            key = self.manager.queue.get(timeout=0.01)
            if key is None:
                return
            self.manager.run_one(key)

    def until(self, fn: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
        def step() -> Any:
            self.drain()
            return fn()

        return eventually(step, timeout, what=what)

    def settle(self, cluster: str) -> None:
        """Wait until the controller's caches have every object of the cluster namespace the server has,
        then drain: after this, a reconcile sees the current state."""
        assert self.manager is not None
        for name, inf in self.manager.informers.items():
            if name in ("clusters", "configs", "cmas"):
                continue
            items, _ = self.kube.list(inf.res, cluster, label_selector=inf.label_selector)
            eventually(partial(_caught_up, inf, cluster, _versions(items)), 10, what=f"{name} cache caught up")
        self.drain()

    # -- the user's and the agents' side ------------------------------------------------------------
    def cluster(self, name: str, *, labelled: bool = True) -> None:
        self.server.apply_yaml(f"apiVersion: cluster.open-cluster-management.io/v1\nkind: ManagedCluster\n"
                               f"metadata:\n  name: {name}\nspec:\n  hubAcceptsClient: true\n")
        self.server.kubectl("create", "namespace", name)
        if labelled:
            self.server.kubectl("label", "managedcluster", name, f"{ocm.INSTALL_LABEL}=true")

    def addon(self, cluster: str) -> dict[str, Any] | None:
        return self.kube.get(ocm.MANAGED_CLUSTER_ADDONS, ocm.ADDON, cluster)

    def work(self, cluster: str) -> dict[str, Any] | None:
        return self.kube.get(ocm.MANIFEST_WORKS, ocm.WORK_NAME, cluster)

    def condition(self, cluster: str, type_: str) -> dict[str, Any] | None:
        conditions = ((self.addon(cluster) or {}).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), None)

    def feature_label(self, cluster: str) -> str | None:
        mc = self.kube.get(ocm.MANAGED_CLUSTERS, cluster) or {}
        return ((mc.get("metadata") or {}).get("labels") or {}).get(ocm.FEATURE_LABEL)

    def renew_lease(self, cluster: str, when: datetime | None = None) -> None:
        spec = {"holderIdentity": f"{cluster}-agent", "leaseDurationSeconds": 300,
                "renewTime": micro_time(when or self.clock.now())}
        current = self.kube.get(LEASES, ocm.LEASE, cluster)
        if current is None:
            self.kube.create(LEASES, {"metadata": {"name": ocm.LEASE, "namespace": cluster}, "spec": spec})
        else:
            self.kube.patch(LEASES, ocm.LEASE, {"spec": spec}, cluster)

    def report(self, cluster: str, name: str, status: dict[str, Any], spec: dict[str, Any] | None = None) -> None:
        body = {"role": "source", "namespace": "apps", "name": name, "sequence": 1,
                "observedAt": rfc3339(self.clock.now()), "spec": spec or {}, "status": status}
        self.kube.create(CONFIGMAPS, {
            "metadata": {"name": f"volsync-status-{name}", "namespace": cluster,
                         "labels": {ocm.REPORT_LABEL: "true", "volsync-addon.io/role": "source"}},
            "data": {"report": json.dumps(body)}})

    def work_status(self, cluster: str, *, applied: str = "True", available: str = "True",
                    feedback: dict[str, int] | None = None, namespace: str = ocm.DEFAULT_INSTALL_NAMESPACE) -> None:
        """Play the work agent: the work's conditions and the agent Deployment's WellKnownStatus feedback."""
        work = self.work(cluster)
        assert work is not None
        generation = work["metadata"].get("generation", 1)
        stamp = rfc3339(self.clock.now() - timedelta(seconds=1))

        def cond(type_: str, status: str) -> dict[str, Any]:
            return {"type": type_, "status": status, "reason": f"Applied{status}", "message": f"{type_} {status}",
                    "lastTransitionTime": stamp, "observedGeneration": generation}

        manifests = []
        if feedback is not None:
            manifests.append({
                "resourceMeta": {"ordinal": 7, "group": "apps", "version": "v1", "kind": "Deployment",
                                 "resource": "deployments", "name": ocm.AGENT, "namespace": namespace},
                "statusFeedback": {"values": [{"name": k, "fieldValue": {"type": "Integer", "integer": v}}
                                              for k, v in feedback.items()]},
                "conditions": [cond("Available", available)]})
        status = {"conditions": [cond("Applied", applied), cond("Available", available)],
                  "resourceStatus": {"manifests": manifests}}
        self.server.kubectl("patch", "manifestwork", ocm.WORK_NAME, "-n", cluster, "--subresource=status",
                            "--type=merge", "-p", json.dumps({"status": status}))
