"""Closing a destination through the local platform: no completion the source got is dropped, one
destination's close does not stall the others, a restarted agent cleans up what the killed one left,
and a torn state file does not wedge the destination.

Real sshd, ssh and rsync; where the test needs a step to land at a given moment, it runs the real
step (a real `shutdown 0` over ssh) from inside the platform's call to the mover.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from storage_helpers import Cluster, settle, volume_dir
from support.endpoints import free_endpoint
from support.waiting import eventually

from agent import localplatform
from agent.localplatform import LocalPlatform
from agent.plans import Serve
from kube.rest import Kube
from localcluster.storage.driver import StorageDriver
from movers import forced, keys, processes
from movers.destination import DestinationServer
from movers.source import SourceTransfer

Obj = dict[str, Any]
PAIR = keys.generate()
SECRET = {"data": {k: base64.b64encode(v).decode() for k, v in PAIR.main_secret_data().items()}}


@dataclass
class Served:
    key: str
    serve: Serve
    pvc: Obj
    volume: Path
    client: SourceTransfer

    def ssh(self, *command: str) -> subprocess.CompletedProcess[str]:
        cmd = self.client.ssh_command("-o", "ControlMaster=no", "-o", "ControlPath=none",
                                      f"{self.client.user}@{self.serve.address}", *command)
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)

    def send(self, tree: Path) -> None:
        rsh = (f"ssh -F {self.client.config_file} -o ControlMaster=no -o ControlPath=none "
               f"-p {self.serve.port}")
        sent = subprocess.run(["rsync", "-a", "-e", rsh, f"{tree}/", f"{self.client.user}@{self.serve.address}:."],
                              capture_output=True, text=True, timeout=60, check=False)
        assert sent.returncode == 0, sent.stderr


def _serve(platform: LocalPlatform, storage: StorageDriver, cluster: Cluster, namespace: str, name: str,
           tmp_path: Path) -> Served:
    cluster.create_pvc(namespace, name)
    settle(storage.reconcile_pvc, namespace, name)
    pvc = cluster.pvc(namespace, name)
    endpoint = free_endpoint()
    action = Serve(f"{namespace}/{name}", "it-1", name, namespace, endpoint.address, endpoint.port, "keys")
    platform.serve(action, pvc, SECRET)
    client = SourceTransfer(data_dir=tmp_path, address=endpoint.address, port=endpoint.port, source_key=PAIR.source,
                            destination_pub=PAIR.destination_pub, workdir=tmp_path / f"client-{name}", retries=1,
                            backoff=(0.05,))
    client.prepare()
    return Served(action.key, action, pvc, volume_dir(storage.layout.root, pvc), client)


def _server(platform: LocalPlatform, key: str) -> DestinationServer:
    return platform.destinations._servers[key]


def _returns_within(seconds: float, fn: Callable[[], object]) -> bool:
    """Whether `fn` returns within `seconds` (it keeps running in the background otherwise)."""
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


def test_pausing_keeps_a_completion_the_source_got_while_the_iteration_closed(
        platform: LocalPlatform, storage: StorageDriver, cluster: Cluster, namespace: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    dst = _serve(platform, storage, cluster, namespace, "dst", tmp_path)
    srv = _server(platform, dst.key)
    signalled: list[subprocess.CompletedProcess[str]] = []

    def source_completes() -> None:  # the source's `shutdown 0`, landing as the agent starts to pause
        if not signalled:
            signalled.append(dst.ssh("shutdown 0"))

    real_completion, real_close = srv.completion, srv.close_iteration

    def completion() -> int | None:
        code = real_completion()
        source_completes()
        return code

    def close_iteration(*args: Any, **kwargs: Any) -> int | None:
        source_completes()
        return real_close(*args, **kwargs)

    monkeypatch.setattr(srv, "completion", completion)
    monkeypatch.setattr(srv, "close_iteration", close_iteration)

    platform.stop_receiving(dst.key, "it-1")  # the ReplicationDestination is paused

    assert signalled[0].returncode == 0, signalled[0].stderr  # the source counts its iteration complete
    view = platform.server(dst.key)
    assert view is not None and (view.iteration, view.completion) == ("it-1", 0)
    platform.serve(dst.serve, dst.pvc, SECRET)  # resumed: the completion is still there, to be published
    view = platform.server(dst.key)
    assert view is not None and (view.iteration, view.completion) == ("it-1", 0)
    assert dst.ssh("rsync", "--server", "-logDtpre.iLsfxC", ".", ".").stderr.strip() == forced.BUSY


def test_one_destinations_close_does_not_stall_the_others(
        platform: LocalPlatform, storage: StorageDriver, cluster: Cluster, namespace: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    slow = _serve(platform, storage, cluster, namespace, "slow", tmp_path)
    other = _serve(platform, storage, cluster, namespace, "other", tmp_path)
    srv = _server(platform, slow.key)
    entered, gate = threading.Event(), threading.Event()
    real_close = srv.close_iteration

    def close_iteration(*args: Any, **kwargs: Any) -> int | None:  # e.g. unmunging a large volume
        entered.set()
        gate.wait(60)
        return real_close(*args, **kwargs)

    monkeypatch.setattr(srv, "close_iteration", close_iteration)
    closing = threading.Thread(target=platform.stop_receiving, args=(slow.key, "it-1"))
    closing.start()
    try:
        assert entered.wait(30)
        assert _returns_within(2, lambda: platform.server(other.key))
        assert _returns_within(2, lambda: platform.transfer(f"{namespace}/some-source"))
        assert _returns_within(2, lambda: platform.serve(other.serve, other.pvc, SECRET))
        assert _returns_within(2, lambda: platform.stop_receiving(other.key, "it-1"))
    finally:
        gate.set()
        closing.join(60)
    assert not closing.is_alive()


def test_close_stops_every_server_at_once_within_its_bound(
        platform: LocalPlatform, storage: StorageDriver, cluster: Cluster, namespace: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    served = [_serve(platform, storage, cluster, namespace, f"dst{i}", tmp_path) for i in range(3)]
    servers = [_server(platform, s.key) for s in served]
    gate = threading.Event()
    started: list[str] = []
    for srv in servers:
        real_stop = srv.stop

        def stop(real_stop: Callable[[], None] = real_stop) -> None:  # a volume whose links take long to give back
            started.append("stop")
            gate.wait(60)
            real_stop()

        monkeypatch.setattr(srv, "stop", stop)
    began = time.monotonic()
    try:
        assert _returns_within(localplatform.CLOSE_WAIT + 3, platform.close)
        assert time.monotonic() - began >= localplatform.CLOSE_WAIT - 0.5
        assert len(started) == 3  # all of them were asked at once, not one after another
    finally:
        gate.set()
    assert eventually(lambda: all(not s.alive() for s in servers), timeout=30)


def test_a_restarted_agent_deleting_a_destination_stops_the_old_sshd_and_gives_the_links_back(
        api: kubernetes.client.ApiClient, storage: StorageDriver, cluster: Cluster, namespace: str,
        tmp_path: Path) -> None:
    data_root = tmp_path / "data"
    first = LocalPlatform(Kube(api), data_root, address_pool="127.254.254.0/30")
    first.controllers()
    second: LocalPlatform | None = None
    orphan: DestinationServer | None = None
    try:
        dst = _serve(first, storage, cluster, namespace, "dst", tmp_path)
        tree = tmp_path / "tree"
        (tree / "sub").mkdir(parents=True)
        (tree / "sub/link").symlink_to("../target")
        dst.send(tree)
        assert os.readlink(dst.volume / "sub/link") == f"{forced.PREFIX}../target"
        orphan = _server(first, dst.key)
        sshd = orphan.pid
        assert sshd is not None
        first._stop.set()  # as after kill -9: nothing is stopped, the sshd goes on listening
        first.destinations.take_all()

        second = LocalPlatform(Kube(api), data_root, address_pool="127.254.254.0/30")
        second.stop_serving(dst.key)  # the ReplicationDestination is deleted; its PVC is kept

        assert eventually(lambda: not processes.running(sshd), timeout=10)
        assert os.readlink(dst.volume / "sub/link") == "../target"
        assert dst.ssh("true").returncode != 0  # nobody listens for the source key any more
    finally:
        if orphan is not None:
            orphan.stop()
        if second is not None:
            second.close()
        first.close()


def test_a_torn_completion_file_counts_as_not_completed(platform: LocalPlatform, storage: StorageDriver,
                                                       cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    dst = _serve(platform, storage, cluster, namespace, "dst", tmp_path)
    completed = platform.destinations.files(dst.key)[1]
    completed.write_text("")  # a crash between truncating and writing, as the old writer could leave it

    view = platform.server(dst.key)

    assert view is not None and (view.iteration, view.completion) == ("it-1", None)
    assert dst.ssh("shutdown 0").returncode == 0
    view = platform.server(dst.key)
    assert view is not None and view.completion == 0
