"""Fixtures for the local deployer: a real API server (contexts hub, cluster1) that does NOT
pre-install VolSync's CRDs (only the snapshot ones the agent needs), so the deployer's apply is what
puts them there; a stub hub REST endpoint (support.local_hub) recording the agent's heartbeats; and a
sweep that ends any agent process a failed test left behind (found by its data root)."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.apiserver import ROOT, ApiServer
from support.local_hub import CLUSTER, StubHub, agent_pids

from hub.deployers.supervisor import wait_gone


@pytest.fixture
def apiserver(tmp_path: Path) -> Iterator[ApiServer]:
    crds = tmp_path / "crds"
    crds.mkdir()
    for path in (ROOT / "manifests" / "crds").glob("snapshot.storage.k8s.io_*.yaml"):
        shutil.copy(path, crds)
    server = ApiServer(tmp_path / "apiserver", clusters=("hub", CLUSTER), extra_args=("--crd-dir", str(crds)),
                       auth=True)  # as in the embedded default: HTTPS and a token per cluster
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stub_hub() -> Iterator[StubHub]:
    hub = StubHub()
    yield hub
    hub.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "hub-data"
    yield path
    for pid in agent_pids(path):  # a failed test's leftovers: ours, ended by pid
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 10)
