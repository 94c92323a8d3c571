"""Fixtures: `hub`, a fresh embedded API server of the test's own with two registered clusters and the REST
API in-process; `shared_hub`, one such hub per module for tests that leave nothing behind that matters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hubkit import Hub
from support.apiserver import ApiServer


def _serve(server: ApiServer) -> Iterator[Hub]:
    server.start()
    h = Hub(server)
    try:
        yield h
    finally:
        h.stop()
        # the informers' watches would hold a graceful stop for its full 2 s; the data dir is thrown away anyway
        server.kill()


@pytest.fixture
def hub(fresh_apiserver: ApiServer) -> Iterator[Hub]:
    yield from _serve(fresh_apiserver)


@pytest.fixture(scope="module")
def shared_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    yield from _serve(ApiServer(tmp_path_factory.mktemp("hub-api"), clusters=("hub",)))
