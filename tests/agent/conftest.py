"""The `harness` fixture: the replication controller in-process (see support.harness), on one embedded
cluster shared by the package's tests (each harness has namespaces of its own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.fleet import LocalFleet, local_fleet
from support.harness import Harness, running_harness


@pytest.fixture(scope="package")
def agent_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    with local_fleet(tmp_path_factory.mktemp("agent-cluster"), names=("cluster1",)) as fleet:
        yield fleet


@pytest.fixture
def harness(agent_cluster: LocalFleet) -> Iterator[Harness]:
    with running_harness(agent_cluster) as h:
        yield h
