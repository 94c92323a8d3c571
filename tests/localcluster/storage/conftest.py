"""Fixtures for the local CSI-style storage driver: `StorageDriver`s on cluster1 of the shared API server,
each with its pool (a loop-mounted XFS image) in the test's temporary directory, released after the test.

`storage` is a driver whose Runtime is not started: the tests step its reconciles themselves
(`settle`, `steps`), so every intermediate state a crash could leave is reached deterministically.
`running` is a driver driven by its started Runtime, as in a cluster process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from storage_helpers import Cluster, NewDriver
from support.apiserver import ApiServer

from kube.controller import Runtime
from kube.rest import Kube
from localcluster.storage import pool
from localcluster.storage.driver import StorageDriver

CONTEXT = "cluster1"
NODE = "cluster1"
POOL_SIZE = 4 << 30  # sparse: costs what the tests write


@pytest.fixture
def api(apiserver: ApiServer) -> Iterator[kubernetes.client.ApiClient]:
    with apiserver.api_client(CONTEXT) as client:
        yield client


@pytest.fixture
def cluster(api: kubernetes.client.ApiClient) -> Cluster:
    return Cluster(api)


@pytest.fixture
def storage_root(tmp_path: Path) -> Path:
    return tmp_path / "storage"


@pytest.fixture
def data_root(storage_root: Path) -> Path:
    """Where volumes and snapshots live: the pool's mount point."""
    return storage_root / pool.MOUNT_DIR


@pytest.fixture
def new_driver(api: kubernetes.client.ApiClient, storage_root: Path) -> Iterator[NewDriver]:
    """Make and start drivers (a new one on the same root is a restarted process); all released at the end."""
    made: list[StorageDriver] = []

    def make(root: Path | None = None, *, kube: Kube | None = None, start: bool = True, **kwargs: Any) -> StorageDriver:
        client = kube or Kube(api)
        kwargs.setdefault("pool_size", POOL_SIZE)
        driver = StorageDriver(Runtime(client), client, root or storage_root, node_name=NODE, **kwargs)
        made.append(driver)
        return driver.start() if start else driver

    try:
        yield make
    finally:
        for driver in made:
            driver.runtime.stop()
            driver.stop(release=True)
        for root in {d.root for d in made}:  # whatever a failed test left mounted or attached
            pool.release(pool.Pool(root / pool.IMAGE, root / pool.MOUNT_DIR, reflink=True))


@pytest.fixture
def storage(new_driver: NewDriver) -> StorageDriver:
    return new_driver()


@pytest.fixture
def running(new_driver: NewDriver) -> StorageDriver:
    """A driver whose Runtime runs its reconcilers (informers, work queues, workers)."""
    driver = new_driver()
    driver.runtime.start()
    return driver
