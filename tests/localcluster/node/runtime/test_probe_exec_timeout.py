"""An exec probe that times out is killed inside the container too (not only the `nsenter` that
entered it): nothing of the probe's command survives the timeout."""

from __future__ import annotations

import uuid
from pathlib import Path

from conftest import Node
from support.waiting import eventually

from localcluster.node.probes import ProbeTarget, run_probe


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_timed_out_exec_probe_leaves_no_process_in_the_container(node: Node) -> None:
    record = node.runtime.start(node.launch(["sleep", "1000"]))
    seconds = str(3000 + uuid.uuid4().int % 1000)  # a marker on the probe's command line
    target = ProbeTarget("key", "cid", {}, node.netns, "", lambda argv: node.runtime.exec_argv(record, argv))
    result = run_probe({"exec": {"command": ["sh", "-c", f"sleep {seconds}; true"]}, "timeoutSeconds": 1}, target)
    assert result == "command timed out after 1s"
    eventually(lambda: not _processes_with(f"sleep {seconds}"), timeout=5, interval=0.05,
               what="the probe's command is gone")
