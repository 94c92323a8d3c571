"""Fixtures for the container runtime tests: a network namespace of the test run's own (deleted
afterwards, also on failure), a runtime over the test's directory, and a finaliser that kills every
container a test left running and proves none survives."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.loopnet import loopback_netns
from support.waiting import eventually

from localcluster.node import procinfo
from localcluster.node.images import ImageMap
from localcluster.node.layout import NodeLayout
from localcluster.node.runtime import ContainerLaunch, ContainerRecord, ContainerRuntime


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    """A fresh network namespace (`/run/netns/<name>`) with only a loopback, brought up."""
    with loopback_netns("lcrt") as path:
        yield path


@dataclass
class Node:
    """The runtime under test plus helpers to start containers and wait for their end."""

    runtime: ContainerRuntime
    netns: str
    uid: str

    def launch(self, argv: list[str], **fields: Any) -> ContainerLaunch:
        defaults: dict[str, Any] = {"pod_uid": self.uid, "name": "c", "attempt": 0, "env": {}, "working_dir": None,
                                    "image": "busybox", "netns_path": self.netns, "hostname": "pod"}
        defaults.update(fields)
        return ContainerLaunch(argv=argv, **defaults)

    def run(self, argv: list[str], **fields: Any) -> ContainerRecord:
        """Start a container and wait until it ended; returns its final record."""
        record = self.runtime.start(self.launch(argv, **fields))
        return self.wait_ended(record)

    def wait_ended(self, record: ContainerRecord, timeout: float = 20.0) -> ContainerRecord:
        def ended() -> ContainerRecord | None:
            now = self.runtime.inspect(record.pod_uid, record.name, record.attempt)
            return now if now is not None and now.exit_code is not None else None

        return eventually(ended, timeout=timeout, interval=0.01, what=f"{record.name} ended")

    def stdout(self, record: ContainerRecord, stream: str = "stdout") -> str:
        """The text of one stream, from the CRI log (full lines joined, partial pieces glued)."""
        out = []
        for line in record.log_path.read_text().splitlines(keepends=True):
            _, name, tag, text = line.split(" ", 3)
            if name == stream:
                out.append(text if tag == "F" else text[:-1])
        return "".join(out)


@pytest.fixture
def node(tmp_path: Path, netns: str) -> Iterator[Node]:
    runtime = ContainerRuntime(NodeLayout(tmp_path / "node"), ImageMap())
    state = Node(runtime, netns, f"pod-{uuid.uuid4().hex[:8]}")
    yield state
    leftovers = [r for r in runtime.containers(state.uid) if r.running]
    for record in leftovers:
        runtime.signal(record, signal.SIGKILL)
    for record in leftovers:
        state.wait_ended(record)
    for pid in _shims(tmp_path / "node"):  # a shim exits right after writing `exit`
        eventually(lambda pid=pid: not procinfo.alive(*pid), timeout=10, interval=0.01, what=f"shim {pid} ended")


def _shims(state: Path) -> list[tuple[int, int]]:
    found = []
    for path in state.glob("pods/*/containers/*/*/shim.pid"):
        parsed = procinfo.read_pid_file(path.read_text())
        if parsed:
            found.append(parsed)
    return found


def no_process_in(namespace: str) -> bool:
    return procinfo.in_namespace(namespace) == []


def pid_namespace_of(pid: int) -> str:
    namespace = procinfo.pid_namespace(pid)
    assert namespace is not None and namespace != procinfo.pid_namespace(os.getpid())
    return namespace


Waiter = Callable[[ContainerRecord], ContainerRecord]
