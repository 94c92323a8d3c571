"""`kubectl exec` (stdout, stderr, exit code, stdin) and `kubectl port-forward` into a Pod's network
namespace, through the API server's WebSocket relay and the kubelet server, with real kubectl 1.32."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import threading
from typing import Any

import kubernetes
import pytest
from conftest import Cluster, running
from kubernetes.stream import portforward, stream
from support.waiting import eventually

pytestmark = pytest.mark.kubectl


@pytest.fixture
def sleeper(cluster: Cluster, namespace: str) -> dict[str, Any]:
    pod = cluster.create_pod(namespace, "sleeper", ["main"])
    cluster.start(pod, "main", ["sleep", "3600"])
    cluster.set_status(pod, [running("main")])
    return pod


def test_exec_streams_and_exit_code(cluster: Cluster, namespace: str, sleeper: dict[str, Any]) -> None:
    out = cluster.kubectl("exec", "sleeper", "-n", namespace, "-v=8", "--", "sh", "-c",
                          "echo out; echo err >&2; exit 3", check=False)
    assert out.returncode == 3, out.stderr
    assert out.stdout == "out\n"
    assert "err\n" in out.stderr and "command terminated with exit code 3" in out.stderr
    assert "v5.channel.k8s.io" in out.stderr  # the protocol kubectl negotiated (-v=8 prints the upgrade)
    ok = cluster.kubectl("exec", "sleeper", "-n", namespace, "--", "hostname")
    assert ok.stdout == "pod\n"


def test_exec_with_stdin(cluster: Cluster, namespace: str, sleeper: dict[str, Any]) -> None:
    payload = "".join(f"line {i}\n" for i in range(2000))
    out = cluster.kubectl("exec", "-i", "sleeper", "-n", namespace, "--", "sh", "-c", "cat; echo end", input=payload)
    assert out.stdout == payload + "end\n"


def test_exec_refusals(cluster: Cluster, namespace: str, sleeper: dict[str, Any]) -> None:
    out = cluster.kubectl("exec", "sleeper", "-n", namespace, "-c", "nope", "--", "true", check=False)
    assert out.returncode != 0 and "container nope is not valid for pod sleeper" in out.stderr
    created = cluster.create_pod(namespace, "creating", ["main"])  # bound, no container started yet
    out = cluster.kubectl("exec", "creating", "-n", namespace, "--", "true", check=False)
    # the kubelet's refusal of the WebSocket upgrade, also after kubectl's SPDY retry
    assert out.returncode != 0 and 'container not found ("main")' in out.stderr, out.stderr
    assert created["metadata"]["name"] == "creating"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_port_forward_reaches_the_pods_namespace(cluster: Cluster, namespace: str) -> None:
    pod = cluster.create_pod(namespace, "server", ["main"])
    # one answer per connection (a persistent listener), that only exists inside the Pod's network namespace
    cluster.start(pod, "main", ["nc", "-ll", "-p", "8080", "-e", "echo", "hello-from-pod"])
    cluster.set_status(pod, [running("main")])

    def listening() -> bool:  # kubectl port-forward ends at the first failed connection: wait for nc first
        probe = ["exec", "server", "-n", namespace, "--", "sh", "-c", "netstat -ltn | grep -q ':8080 '"]
        return cluster.kubectl(*probe, check=False).returncode == 0

    eventually(listening, timeout=20, what="nc listening in the Pod")
    local = _free_port()
    argv = cluster.api.kubectl_argv("port-forward", "server", "-n", namespace, f"{local}:8080", "-v=8",
                                    context="cluster1")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cluster.api.kubectl_env())
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"Forwarding from 127.0.0.1:{local} -> 8080" in first, first

        def answer() -> str | None:
            with socket.create_connection(("127.0.0.1", local), timeout=10) as conn:
                data = b""
                while chunk := conn.recv(4096):
                    data += chunk
            return data.decode() or None

        assert eventually(answer, timeout=20, what="an answer through the port-forward") == "hello-from-pod\n"
        assert eventually(answer, timeout=20, what="a second connection") == "hello-from-pod\n"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "SPDY/3.1+portforward.k8s.io" in err  # negotiated over WebSocket, as kubectl -v=8 shows
    assert "an error occurred forwarding" not in err


def test_port_forward_to_a_closed_port_reports_the_error(cluster: Cluster, namespace: str,
                                                          sleeper: dict[str, Any]) -> None:
    local = _free_port()
    argv = cluster.api.kubectl_argv("port-forward", "sleeper", "-n", namespace, f"{local}:9", context="cluster1")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cluster.api.kubectl_env())
    try:
        assert proc.stdout is not None
        assert "Forwarding from" in proc.stdout.readline()
        with socket.create_connection(("127.0.0.1", local), timeout=10) as conn:
            assert conn.recv(4096) == b""
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert "error forwarding port 9 to pod sleeper" in err and "Connection refused" in err


def test_port_forward_moves_megabytes_both_ways(cluster: Cluster, namespace: str) -> None:
    pod = cluster.create_pod(namespace, "sink", ["main", "source"])
    cluster.start(pod, "main", ["nc", "-ll", "-p", "8081", "-e", "md5sum"])
    cluster.start(pod, "source", ["nc", "-ll", "-p", "8082", "-e", "head", "-c", "8388608", "/dev/zero"])
    cluster.set_status(pod, [running("main"), running("source")])

    def listening() -> bool:
        probe = ["exec", "sink", "-n", namespace, "--", "sh", "-c", "netstat -ltn | grep ':808[12] ' | wc -l"]
        return cluster.kubectl(*probe, check=False).stdout.strip() == "2"

    eventually(listening, timeout=20, what="nc listening in the Pod")
    local = _free_port()
    download = _free_port()
    argv = cluster.api.kubectl_argv("port-forward", "sink", "-n", namespace, f"{local}:8081", f"{download}:8082",
                                    context="cluster1")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cluster.api.kubectl_env())
    payload = bytes(range(256)) * (8 * 4096)  # 8 MiB: far beyond SPDY's 64 KiB initial window
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # both listeners are up once the second is announced
            if f"127.0.0.1:{download} ->" in line:
                break
        with socket.create_connection(("127.0.0.1", local), timeout=30) as conn:
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := conn.recv(4096):
                answer += chunk
        received = 0
        with socket.create_connection(("127.0.0.1", download), timeout=30) as conn:
            while chunk := conn.recv(65536):
                assert chunk.count(0) == len(chunk)
                received += len(chunk)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert answer.split()[0].decode() == hashlib.md5(payload).hexdigest(), err
    assert received == 8 * 1024 * 1024, err


def test_python_client_exec_and_port_forward(cluster: Cluster, namespace: str) -> None:
    """The official Python client's `stream` (exec over v4/v5 channels) and `portforward` (the
    channel flavour of port-forward) through the same path."""
    pod = cluster.create_pod(namespace, "pyserver", ["main"])
    cluster.start(pod, "main", ["nc", "-ll", "-p", "8093", "-e", "echo", "hello-python"])
    cluster.set_status(pod, [running("main")])
    client = cluster.api.api_client("cluster1")
    try:
        _python_client_session(kubernetes.client.CoreV1Api(client), namespace)
    finally:
        client.close()


def _python_client_session(api: kubernetes.client.CoreV1Api, namespace: str) -> None:

    def listening() -> bool:
        session = stream(api.connect_get_namespaced_pod_exec, "pyserver", namespace,
                         command=["sh", "-c", "netstat -ltn | grep -c ':8093 '"], stderr=True, stdout=True,
                         _preload_content=False)
        try:  # preloaded, the client would leave its socket open after the server's close
            session.run_forever(timeout=30)
            return bool(session.read_stdout().strip() == "1" and session.returncode == 0)
        finally:
            session.close()
            session.sock.shutdown()  # close() skips the socket once the server has closed the session

    eventually(listening, timeout=20, what="nc listening in the Pod (checked through the Python client's exec)")
    forward = portforward(api.connect_get_namespaced_pod_portforward, "pyserver", namespace, ports="8093")
    conn = forward.socket(8093)
    conn.setblocking(True)
    data = b""
    while chunk := conn.recv(4096):
        data += chunk
    conn.close()
    for thread in threading.enumerate():  # the client's proxy thread ends once both sides closed
        if thread.name.startswith("Kubernetes port forward proxy"):
            thread.join(timeout=20)
    forward.websocket.shutdown()
    assert data == b"hello-python\n"
    assert forward.error(8093) is None
