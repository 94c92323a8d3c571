"""The `harness` fixture: the replication controller in-process (see support.harness)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.apiserver import ApiServer
from support.harness import POOL, T0, Harness, cluster_storage

from agent.localplatform import LocalPlatform
from agent.reconciling import ReplicationController
from kube import clients
from kube.clock import FakeClock
from kube.rest import Kube


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    server = ApiServer(tmp_path / "api", clusters=("cluster1",)).start()
    api = clients.load(str(server.kubeconfig), "cluster1")
    kube = Kube(api)
    clock = FakeClock(T0)
    try:
        with cluster_storage(kube, tmp_path / "storage"):  # the cluster's CSI driver, as its process runs it
            platform = LocalPlatform(kube, tmp_path / "data", address_pool=POOL, clock=clock,
                                     retries=2, backoff=(0.05, 0.1), poll_interval=0.02)
            controller = ReplicationController(kube, platform, clock=clock, workers=0)
            controller.start()
            try:
                yield Harness(server, kube, clock, controller, platform)
            finally:
                controller.stop()
                platform.close()
    finally:
        clients.close(api)
        server.stop()
