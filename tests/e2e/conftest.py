"""The `fleet` fixture: an API server (hub, cluster1, cluster2) and an agent process per managed cluster,
with the namespaces the seed procedure uses (`dest` on cluster2, `src` on cluster1)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.agents import Fleet


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    f = Fleet(tmp_path_factory.mktemp("fleet")).start()
    f.kubectl("create", "ns", "dest", context="cluster2")
    f.kubectl("create", "ns", "src", context="cluster1")
    yield f
    f.stop()
