"""The module-scoped identity server (see identitykit.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from identitykit import Identity, identity_server


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Identity]:
    server = identity_server(tmp_path_factory.mktemp("identity")).start()
    yield Identity(server)
    server.stop()
