"""Fixtures for the lifecycle tests: a raw HTTP client on the shared server's hub cluster and a
namespace of the test's own there (created over HTTP, which is much quicker than kubectl)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import httpx
import pytest
from support.apiserver import ApiServer
from support.objects import http

_numbers = itertools.count()


@pytest.fixture
def hub(apiserver: ApiServer) -> Iterator[httpx.Client]:
    with http(apiserver, "hub") as client:
        yield client


@pytest.fixture
def ns(hub: httpx.Client, request: pytest.FixtureRequest) -> str:
    """A fresh namespace on the hub, named after the test."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"lc-{base}-{next(_numbers)}"
    resp = hub.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert resp.status_code == 201, resp.text
    return name
