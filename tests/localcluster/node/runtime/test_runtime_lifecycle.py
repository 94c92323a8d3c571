"""Containers outlive the node process and are adopted from their files; a lost shim takes its
container with it; `exec_argv` enters a running container; `signal` reaches its processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Node, no_process_in, pid_namespace_of
from support.waiting import eventually

from localcluster.node import procinfo
from localcluster.node.images import ImageMap
from localcluster.node.layout import NodeLayout
from localcluster.node.runtime import ContainerRuntime, Mount

NODE_SCRIPT = """
import sys
from pathlib import Path
from localcluster.node.images import ImageMap
from localcluster.node.layout import NodeLayout
from localcluster.node.runtime import ContainerLaunch, ContainerRuntime
runtime = ContainerRuntime(NodeLayout(Path(sys.argv[1])), ImageMap())
record = runtime.start(ContainerLaunch(pod_uid=sys.argv[2], name="c", attempt=0, argv=["sleep", "300"], env={},
                                       working_dir=None, image="busybox", netns_path=sys.argv[3]))
print(record.pid, flush=True)
sys.stdin.read()
"""


def test_container_survives_the_node_process_and_is_adopted(node: Node) -> None:
    """A node process starts a container and is killed with SIGKILL; a new runtime (as after a restart)
    sees it running, signals it and sees its exit code."""
    state = node.runtime.layout.state_dir
    with subprocess.Popen([sys.executable, "-c", NODE_SCRIPT, str(state), node.uid, node.netns],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        main_pid = int(process.stdout.readline())
        process.kill()
    adopted = ContainerRuntime(NodeLayout(state), ImageMap())
    record = adopted.inspect(node.uid, "c", 0)
    assert record is not None and record.running and record.pid == main_pid
    assert [r.name for r in adopted.containers(node.uid)] == ["c"]
    entered = subprocess.run(adopted.exec_argv(record, ["sh", "-c", "echo $$; pidof sleep"]), capture_output=True,
                             text=True, check=True, timeout=30).stdout.split()
    assert entered[1] == "2"  # the adopted container's own PID namespace: bwrap's init is 1, sleep 2
    adopted.signal(record, signal.SIGTERM)
    ended = node.wait_ended(record)
    assert ended.exit_code == 128 + signal.SIGTERM
    assert not procinfo.alive(main_pid, procinfo.start_time(main_pid) or -1)


def test_kill_of_the_shim_kills_the_container(node: Node) -> None:
    record = node.runtime.start(node.launch(["sh", "-c", "sleep 300 & sleep 300"]))
    assert record.running and record.pid is not None
    namespace = pid_namespace_of(record.pid)
    eventually(lambda: len(procinfo.in_namespace(namespace)) >= 3, timeout=10, interval=0.01,
               what="bwrap's init and two sleeps run")
    directory = record.log_path.parent
    shim = procinfo.read_pid_file((directory / "shim.pid").read_text())
    assert shim is not None
    os.kill(shim[0], signal.SIGKILL)
    eventually(lambda: no_process_in(namespace), timeout=10, interval=0.01, what="no process left in the container")
    lost = node.wait_ended(record)
    assert (lost.exit_code, lost.reason) == (137, "ContainerStatusUnknown")
    again = node.runtime.inspect(node.uid, "c", 0)
    assert again == lost  # recorded once, stable afterwards


def test_signal_reaches_every_process_of_the_container(node: Node) -> None:
    record = node.runtime.start(node.launch(["sh", "-c", "trap 'echo term; exit 7' TERM; sleep 300 & wait"]))
    assert record.pid is not None
    namespace = pid_namespace_of(record.pid)
    eventually(lambda: len(procinfo.in_namespace(namespace)) >= 3, timeout=10, interval=0.01, what="sleep started")
    node.runtime.signal(record, signal.SIGTERM)
    ended = node.wait_ended(record)
    assert ended.exit_code == 7
    assert node.stdout(ended) == "term\n"
    eventually(lambda: no_process_in(namespace), timeout=10, interval=0.01, what="no process left in the container")


def test_exec_enters_the_running_container(node: Node, tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    volume.mkdir()
    (volume / "data").write_text("from the volume\n")
    record = node.runtime.start(node.launch(["sh", "-c", "echo inside > /tmp/marker; exec sleep 300"],
                                            env={"COLOUR": "blue"}, working_dir="/srv",
                                            mounts=[Mount(volume, "/srv")], hostname="pod-7"))
    eventually(lambda: "marker" in _exec(node, record, ["ls", "/tmp"]), timeout=10, interval=0.01)
    out = _exec(node, record, ["sh", "-c", 'cat /tmp/marker data; echo "$COLOUR $(hostname) $(pwd) $(id -u)"; '
                                           "readlink /proc/self/ns/net; grep CapEff /proc/self/status"])
    lines = out.splitlines()
    assert lines[:3] == ["inside", "from the volume", "blue pod-7 /srv 0"]
    assert lines[3] == f"net:[{os.stat(node.netns).st_ino}]"
    assert lines[4].split()[1] == "00000000a80425fb"
    assert node.runtime.netns_of(record) == node.netns


def test_exec_as_the_containers_user(node: Node) -> None:
    record = node.runtime.start(node.launch(["sleep", "300"], run_as_user=1000, run_as_group=3000))
    out = _exec(node, record, ["sh", "-c", "id -u; id -g; grep CapEff /proc/self/status"])
    assert out.split()[:2] == ["1000", "3000"]
    assert out.split()[3] == "0000000000000000"


def test_exec_into_an_ended_container_is_refused(node: Node) -> None:
    record = node.run(["true"])
    with pytest.raises(ValueError, match="not running"):
        node.runtime.exec_argv(record, ["true"])


def test_remove_pod_only_when_nothing_runs(node: Node) -> None:
    record = node.runtime.start(node.launch(["sleep", "300"]))
    with pytest.raises(RuntimeError, match="still runs"):
        node.runtime.remove_pod(node.uid)
    node.runtime.signal(record, signal.SIGKILL)
    assert node.wait_ended(record).exit_code == 137
    node.runtime.remove_pod(node.uid)
    assert not node.runtime.layout.pod_dir(node.uid).exists()
    assert node.runtime.containers(node.uid) == []


def _exec(node: Node, record: object, command: list[str]) -> str:
    argv = node.runtime.exec_argv(record, command)  # type: ignore[arg-type]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout


def test_containers_of_a_pod_share_its_network_but_not_their_processes(node: Node) -> None:
    server = node.runtime.start(node.launch(["sh", "-c", "echo pong | nc -l -p 8080"], name="server"))
    assert server.pid is not None
    sockets = ["cat", "/proc/net/tcp", "/proc/net/tcp6"]
    eventually(lambda: ":1F90 " in _exec(node, server, sockets), timeout=10, interval=0.01, what="listening on 8080")
    client = node.run(["sh", "-c", "nc 127.0.0.1 8080 </dev/null; pidof nc || echo alone"], name="client")
    assert node.stdout(client) == "pong\nalone\n"
    assert node.wait_ended(server).exit_code == 0


def test_kill_all_tears_the_node_down(node: Node) -> None:
    first = node.runtime.start(node.launch(["sleep", "300"], name="a"))
    second = node.runtime.start(node.launch(["sleep", "300"], name="b", pod_uid=node.uid + "-2"))
    node.run(["true"], name="done")
    killed = node.runtime.kill_all()
    assert sorted((r.pod_uid, r.name) for r in killed) == [(node.uid, "a"), (node.uid + "-2", "b")]
    assert node.wait_ended(first).exit_code == 137 and node.wait_ended(second).exit_code == 137
    assert sorted(node.runtime.pods()) == [node.uid, node.uid + "-2"]
