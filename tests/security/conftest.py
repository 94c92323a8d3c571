"""Fixtures of the security suite: a real `volsync-hub` on the embedded default with the addon
enabled on cluster1 (so an agent runs), shared by the identity and file-mode tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.hubprocess import Hub
from support.waiting import eventually


@pytest.fixture(scope="session")
def enabled_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """`volsync-hub` as `scripts/run` starts it (its own data dir), cluster1 labelled, its agent ready."""
    hub = Hub(tmp_path_factory.mktemp("security") / "run").start()
    try:
        hub.kubectl("label", "managedcluster", "cluster1", "addons.open-cluster-management.io/volsync=true")
        eventually(lambda: hub.addon_condition("cluster1", "Available").get("status") == "True", 90,
                   what="cluster1 addon Available (its agent ready and heartbeating)")
        yield hub
    finally:
        hub.stop()
