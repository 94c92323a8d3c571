"""Servers of a test's own for the durability tests: one cluster (hub), extra flags, stopped at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.apiserver import ApiServer


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ApiServer]]:
    """`make_server(*extra_args, name="apiserver")`: an ApiServer (not started) on its own data dir."""
    servers: list[ApiServer] = []

    def make(*extra_args: str, name: str = "apiserver") -> ApiServer:
        server = ApiServer(tmp_path / name, clusters=["hub"], extra_args=extra_args)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
