"""The hub REST API in-process (httpx's ASGITransport) over a fleet store on a real API server.

`Hub(server)` registers two managed clusters (namespace,
ManagedCluster, agent token Secret as the addon controller makes it; cluster1 also has its
ManagedClusterAddOn with conditions), ensures the admin token, and serves the app with a FakeClock.
`hub.restart()` builds a new fleet store, token store and app on the same API server. `AppClient`
is a synchronous face on `httpx.AsyncClient(transport=ASGITransport(app))` (Starlette's TestClient
warns that its httpx use is deprecated): each request runs the real app in a fresh event loop.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from support.apiserver import ApiServer
from support.waiting import eventually

from hub.fleet import FleetSettings, FleetStore
from hub.ocm import MANAGED_CLUSTER_ADDONS, MANAGED_CLUSTERS
from hub.rest import create_app
from hub.tokens import AGENT_TOKEN_SECRET, LABEL_AGENT_TOKEN, TokenStore, ensure_admin_token, new_token
from kube.clock import FakeClock, rfc3339
from kube.rest import NAMESPACES, SECRETS, Kube

CLUSTERS = ("cluster1", "cluster2")
ADDON_CONDITIONS = [
    {"type": "ManifestApplied", "status": "True", "reason": "AddonManifestApplied", "message": "applied",
     "lastTransitionTime": "2026-01-01T00:00:00Z"},
]


class AppClient:
    """A synchronous in-process client of an ASGI app; app exceptions propagate to the test."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(go())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


def register_cluster(kube: Kube, name: str) -> str:
    """What bootstrap and the addon controller leave on the hub for one cluster; returns its agent token."""
    kube.create(NAMESPACES, {"metadata": {"name": name}})
    kube.create(MANAGED_CLUSTERS, {"metadata": {"name": name}, "spec": {"hubAcceptsClient": True}})
    token = new_token()
    kube.create(SECRETS, {
        "metadata": {"name": AGENT_TOKEN_SECRET, "namespace": name, "labels": {LABEL_AGENT_TOKEN: "true"}},
        "data": {"token": base64.b64encode(token.encode()).decode()},
    })
    return token


class Hub:
    """The app under test, its stores, clock and credentials."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.kube = Kube(server.api_client("hub"))
        self.clock = FakeClock()
        self.settings = FleetSettings(stale_seconds=300, renew_interval_seconds=60, rpo_seconds=3600)
        self.tokens = {name: register_cluster(self.kube, name) for name in CLUSTERS}
        mca = self.kube.create(MANAGED_CLUSTER_ADDONS, {"metadata": {"name": "volsync", "namespace": "cluster1"}})
        self.kube.patch_status(MANAGED_CLUSTER_ADDONS, "volsync", {"conditions": ADDON_CONDITIONS}, "cluster1")
        assert mca["metadata"]["name"] == "volsync"
        self.admin = ensure_admin_token(self.kube)
        self.stores: list[FleetStore | TokenStore] = []
        self.fleet, self.token_store, self.app, self.client = self.build()

    def build(self, *, start: bool = True) -> tuple[FleetStore, TokenStore, FastAPI, AppClient]:
        fleet = FleetStore(self.kube, clock=self.clock, settings=self.settings)
        tokens = TokenStore(self.kube, self.admin)
        app = create_app(fleet, tokens, clock=self.clock, metrics_registry=CollectorRegistry())
        self.stores += [fleet, tokens]
        if start:
            fleet.start()
            tokens.start()
            assert fleet.wait_synced(15) and tokens.wait_synced(15)
            eventually(lambda: tokens.clusters() == list(CLUSTERS), what="agent tokens loaded")
        return fleet, tokens, app, AppClient(app)

    def restart(self) -> None:
        self.stop()
        self.fleet, self.token_store, self.app, self.client = self.build()

    def stop(self) -> None:
        for store in self.stores:
            store.stop()
        self.stores.clear()

    # -- requests -----------------------------------------------------------------------------------
    def auth(self, who: str) -> dict[str, str]:
        """Headers for `who`: "admin", a cluster name, or a literal token with "token:" in front."""
        if who == "admin":
            token = self.admin
        elif who.startswith("token:"):
            token = who.removeprefix("token:")
        else:
            token = self.tokens[who]
        return {"Authorization": f"Bearer {token}"}

    def heartbeat(self, cluster: str, agent_id: str = "agent-1") -> httpx.Response:
        body = {"agentId": agent_id, "version": "0.1.0", "sentAt": rfc3339(self.clock.now())}
        return self.client.post(f"/api/v1/agents/{cluster}/heartbeat", json=body, headers=self.auth(cluster))

    def send(self, cluster: str, *reports: dict[str, Any], as_: str | None = None) -> httpx.Response:
        body = {"agentId": "agent-1", "reports": list(reports)}
        return self.client.post(f"/api/v1/agents/{cluster}/reports", json=body, headers=self.auth(as_ or cluster))

    def get(self, path: str, who: str = "admin", **params: Any) -> httpx.Response:
        return self.client.get(path, params=params, headers=self.auth(who))

    def ago(self, seconds: float) -> str:
        return rfc3339(self.clock.now() - timedelta(seconds=seconds))


def until_not_busy(request: Callable[[], httpx.Response], timeout: float = 30.0) -> httpx.Response:
    """What an agent does with a 429 that names no report (the caller or its cluster is busy): try again,
    after a short pause, until the hub takes the request or refuses it for a reason."""
    deadline = time.monotonic() + timeout
    while True:
        resp = request()
        if resp.status_code != 429 or isinstance(resp.json().get("detail"), list):
            return resp
        assert time.monotonic() < deadline, f"still busy after {timeout}s: {resp.text}"
        time.sleep(0.01)


def report(name: str, sequence: int, *, role: str = "source", namespace: str = "apps", schedule: str | None = None,
           status: dict[str, Any] | None = None, deleted: bool = False,
           observed: datetime | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"trigger": {"schedule": schedule}} if schedule else {}
    return {
        "role": role, "namespace": namespace, "name": name, "sequence": sequence,
        "observedAt": rfc3339(observed or datetime(2026, 1, 1, tzinfo=UTC)), "deleted": deleted,
        "spec": spec, "status": status or {},
    }
