"""Fixtures for the local platform's storage: a LocalStorage on cluster1 of the shared API server,
with its data root in the test's temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
from storage_helpers import Cluster
from support.apiserver import ApiServer

from agent.localplatform import LocalPlatform
from agent.storage.local import LocalStorage
from kube.rest import Kube

CONTEXT = "cluster1"


@pytest.fixture
def api(apiserver: ApiServer) -> Iterator[kubernetes.client.ApiClient]:
    with apiserver.api_client(CONTEXT) as client:
        yield client


@pytest.fixture
def cluster(api: kubernetes.client.ApiClient) -> Cluster:
    return Cluster(api)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def storage(api: kubernetes.client.ApiClient, data_root: Path) -> LocalStorage:
    local = LocalStorage(api, data_root)
    local.ensure_defaults()
    return local


@pytest.fixture
def platform(api: kubernetes.client.ApiClient, data_root: Path) -> Iterator[LocalPlatform]:
    """A whole LocalPlatform (storage, Service addresses, movers) on cluster1, closed after the test."""
    local = LocalPlatform(Kube(api), data_root, address_pool="127.254.254.0/30")
    local.storage.ensure_defaults()
    try:
        yield local
    finally:
        local.close()
