"""Fixtures for the workload controllers: a Kube on cluster1 of the session's API server, a fake
clock, the controllers running on one Runtime scoped to the test's namespace, and a fake kubelet."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fake_kubelet import FakeKubelet
from support.apiserver import ApiServer

from kube.clock import FakeClock
from kube.controller import Runtime
from kube.rest import Kube
from localcluster import controllers


@pytest.fixture
def kube(apiserver: ApiServer) -> Kube:
    return Kube(apiserver.api_client("cluster1"), field_manager="controller-test")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def runtime(kube: Kube, clock: FakeClock, namespace: str) -> Iterator[Runtime]:
    """Every workload controller, watching the test's namespace only."""
    rt = Runtime(kube, clock=clock, namespace=namespace)
    controllers.register(rt, kube, clock=clock)
    rt.start()
    yield rt
    rt.stop()


@pytest.fixture
def kubelet(kube: Kube, clock: FakeClock, namespace: str) -> FakeKubelet:
    return FakeKubelet(kube, namespace, clock)
