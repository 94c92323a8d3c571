"""Fixtures for the kubelet tests: a real API server, a real container runtime, and a small real
Pod network of the test's own (one named netns per Pod, loopback up with the Pod's address on it:
no veth, nothing added to the host namespace), removed afterwards, also on failure."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kubeletenv import KubeletEnv, uids_on_disk
from support.apiserver import ApiServer
from support.loopnet import LoopbackPodNetwork
from support.waiting import eventually

from kube.controller import Runtime
from kube.rest import NAMESPACES, Kube
from localcluster.node.kubelet import Node
from localcluster.node.layout import NodeLayout


@pytest.fixture
def kubelet(apiserver: ApiServer, tmp_path: Path) -> Iterator[KubeletEnv]:
    """A Node on the session's API server (plain HTTP, no authentication)."""
    with kubelet_on(apiserver, tmp_path) as env:
        yield env


@pytest.fixture(scope="module")
def authed_apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """An API server with its default identity (HTTPS, tokens): service-account tokens exist only there."""
    server = ApiServer(tmp_path_factory.mktemp("authed-apiserver"), clusters=("cluster1",), auth=True).start()
    yield server
    server.stop()


@pytest.fixture
def authed_kubelet(authed_apiserver: ApiServer, tmp_path: Path) -> Iterator[KubeletEnv]:
    with kubelet_on(authed_apiserver, tmp_path) as env:
        yield env


@contextmanager
def kubelet_on(apiserver: ApiServer, tmp_path: Path) -> Iterator[KubeletEnv]:
    kube = Kube(apiserver.api_client("cluster1"), field_manager="kubelet")
    suffix = uuid.uuid4().hex[:6]
    namespace, node_name = f"kl-{suffix}", f"node-{suffix}"
    kube.create(NAMESPACES, {"metadata": {"name": namespace}})
    network = LoopbackPodNetwork()
    runtime = Runtime(kube)
    state = tmp_path / "node"
    node = Node(runtime, kube, name=node_name, state_dir=state, network=network)
    env = KubeletEnv(apiserver, kube, namespace, node_name, state, network, runtime, node)
    try:
        node.start()
        runtime.start()
        yield env
    finally:
        for rt, nd in [(runtime, node), *env.extra]:
            rt.stop()
            nd.stop(kill_pods=True)
        layout = NodeLayout(state)
        eventually(lambda: not any(r.running for uid in uids_on_disk(layout) for r in node.containers.containers(uid)),
                   timeout=20, what="every container of the test ended")
        network.cleanup()
        kube.delete(NAMESPACES, namespace)
