"""Identity first, capabilities after (as runc): a root container keeping nothing but DAC_READ_SEARCH
(a source mover) starts on every image kind with exactly that set in its bound, permitted and effective
sets and nothing inheritable or ambient; a non-root one keeps only the bound; `exec` gets the same."""

from __future__ import annotations

import subprocess

import pytest
from conftest import Node

PROJECT_IMAGE = "quay.io/volsync-addon/volsync-addon:0.1.0"
STATUS = ["grep", "-E", "^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb):", "/proc/self/status"]
DAC_READ_SEARCH = 1 << 2
NET_BIND_SERVICE = 1 << 10


def _status(text: str) -> dict[str, str]:
    return {line.split(":", 1)[0]: " ".join(line.split(":", 1)[1].split()) for line in text.splitlines()}


def _caps(status: dict[str, str]) -> tuple[int, ...]:
    return tuple(int(status[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"))


@pytest.mark.parametrize("image", ["busybox:1.36", "python:3.11", PROJECT_IMAGE])
def test_root_keeping_one_capability_starts_with_exactly_it(node: Node, image: str) -> None:
    record = node.run(STATUS, image=image, run_as_user=0, cap_drop=["ALL"], cap_add=["DAC_READ_SEARCH"])
    assert record.exit_code == 0, node.stdout(record, "stderr")
    status = _status(node.stdout(record))
    assert (status["Uid"], status["Gid"], status["Groups"]) == ("0 0 0 0", "0 0 0 0", "")
    assert _caps(status) == (0, DAC_READ_SEARCH, DAC_READ_SEARCH, DAC_READ_SEARCH, 0)


@pytest.mark.parametrize("image", ["busybox:1.36", PROJECT_IMAGE])
def test_non_root_with_groups_keeps_only_the_bound(node: Node, image: str) -> None:
    record = node.run(STATUS, image=image, run_as_user=1000, run_as_group=2000, supplementary_groups=[3000, 3456],
                      cap_drop=["ALL"], cap_add=["NET_BIND_SERVICE"])
    assert record.exit_code == 0, node.stdout(record, "stderr")
    status = _status(node.stdout(record))
    assert (status["Uid"], status["Gid"], status["Groups"]) == ("1000 1000 1000 1000", "2000 2000 2000 2000",
                                                                "3000 3456")
    assert _caps(status) == (0, 0, 0, NET_BIND_SERVICE, 0)


def test_exec_gets_the_containers_privileges(node: Node) -> None:
    record = node.runtime.start(node.launch(["sleep", "60"], run_as_user=0, cap_drop=["ALL"],
                                            cap_add=["DAC_READ_SEARCH"]))
    assert record.running  # start() returns once the main process runs
    done = subprocess.run(node.runtime.exec_argv(record, STATUS), capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert _caps(_status(done.stdout)) == (0, DAC_READ_SEARCH, DAC_READ_SEARCH, DAC_READ_SEARCH, 0)
