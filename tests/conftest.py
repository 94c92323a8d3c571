"""Fixtures that start real processes: the embedded API server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.apiserver import ApiServer


@pytest.fixture(scope="session")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """One server (hub, cluster1, cluster2) shared by a test session; tests use their own namespaces.
    cluster1 and cluster2 allocate Service addresses from the ranges the embedded clusters at
    positions 1 and 2 route (`localcluster.network.addressing.ClusterNet`)."""
    cidrs = ("--service-cidr", "cluster1=10.1.128.0/17", "--service-cidr", "cluster2=10.2.128.0/17")
    server = ApiServer(tmp_path_factory.mktemp("apiserver"), extra_args=cidrs).start()
    yield server
    server.stop()


@pytest.fixture
def fresh_apiserver(tmp_path: Path) -> Iterator[ApiServer]:
    """A server of the test's own, for tests that restart, kill or compact it."""
    server = ApiServer(tmp_path / "apiserver")
    yield server
    server.stop()


_counter = iter(range(1_000_000))


@pytest.fixture
def namespace(apiserver: ApiServer, request: pytest.FixtureRequest) -> str:
    """A fresh namespace on every cluster of the shared server, named after the test."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"{base}-{next(_counter)}"
    for cluster in apiserver.clusters:
        apiserver.kubectl("create", "namespace", name, context=cluster)
    return name


# The longest modules first, so that with several workers (scripts/test: -n 3 --dist loadfile) the run
# does not end on one worker finishing a long module alone; the tests of the image (and of the compose stack
# made of it) last, when its background build (started by scripts/test) is long done. Within a rank the
# collection order stays.
_FIRST = ("tests/e2e/", "tests/hub_e2e/", "tests/security/", "tests/localcluster/test_workloads_e2e.py",
          "tests/fuzz/", "tests/install/", "tests/localcluster/", "tests/durability/", "tests/agent/")
_LAST = ("tests/image/", "tests/compose/")


def _rank(nodeid: str) -> int:
    for i, prefix in enumerate(_FIRST):
        if nodeid.startswith(prefix):
            return i
    return len(_FIRST) + 1 if nodeid.startswith(_LAST) else len(_FIRST)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: _rank(item.nodeid))
