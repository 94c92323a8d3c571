"""Fixtures for the network tests: a fabric of the test's own, removed afterwards (also on failure),
and a snapshot of the host namespace's addresses, routes and links to prove nothing was added."""

from __future__ import annotations

import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.network import fabric as fabric_mod
from localcluster.network.addressing import ClusterNet, fabric_name
from localcluster.network.fabric import Fabric
from localcluster.network.podnet import PodNetwork


@pytest.fixture
def fabric() -> Iterator[Fabric]:
    fab = Fabric(fabric_name(f"test-{uuid.uuid4()}"))
    try:
        yield fab.ensure()
    finally:
        fab.remove()
        fabric_mod.lock_path(fab.name).unlink(missing_ok=True)


@pytest.fixture
def cluster_nets(fabric: Fabric, tmp_path: Path) -> tuple[PodNetwork, PodNetwork]:
    """Two clusters (indexes 1 and 2) on one fabric."""
    return (PodNetwork(fabric, ClusterNet(1), tmp_path / "c1"), PodNetwork(fabric, ClusterNet(2), tmp_path / "c2"))


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; killed afterwards."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        p.kill()
        p.wait()


@pytest.fixture
def host_listener() -> Iterator[socket.socket]:
    """A server on the host's 127.0.0.1 answering 'host-api'."""
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"host-api\n")

    threading.Thread(target=serve, daemon=True).start()
    yield srv
    srv.close()
