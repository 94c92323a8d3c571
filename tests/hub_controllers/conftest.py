"""The `hub` fixture: the hub's controllers in-process against a real API server (see support.hub_controllers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.apiserver import ApiServer
from support.hub_controllers import HUB_URL, IMAGE, T0, Hub

from hub.addons import AddonManager
from hub.deployers import Deployer
from hub.deployers.manifestwork import ManifestWorkDeployer
from kube import clients
from kube.clock import FakeClock
from kube.rest import Kube


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    server = ApiServer(tmp_path / "api", clusters=("hub", "cluster1")).start()
    api = clients.load(str(server.kubeconfig), "hub")
    kube = Kube(api, field_manager="volsync-hub")
    clock = FakeClock(T0)

    def make(deployer: Deployer | None = None, **options: Any) -> AddonManager:
        settings: dict[str, Any] = {"clock": clock, "hub_url": HUB_URL, "image": IMAGE, "workers": 0,
                                    "ca_bundle": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}
        return AddonManager(kube, deployer or ManifestWorkDeployer(kube), **(settings | options))

    h = Hub(server, kube, clock, make)
    try:
        yield h
    finally:
        for manager in h.managers:
            manager.stop()
        clients.close(api)
        server.kill()  # the watches would hold a graceful stop for its 2 s timeout; the data is the test's
