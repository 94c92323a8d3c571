"""The whole path with the real kubelet: Pods created with `kubectl run` are bound and run by the
node (`localcluster.node.kubelet.Node`), whose kubelet server (wired as the cluster process wires
it: the node's container runtime, the Pod informer cache, `set_kubelet_port`) serves `kubectl logs`,
`exec` and `port-forward` through the API server."""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import NODE, issue_kubelet_pki
from support.apiserver import ApiServer
from support.loopnet import LoopbackPodNetwork
from support.waiting import eventually

from kube.controller import Runtime
from kube.rest import PODS, Kube
from localcluster.node.kubelet import Node
from localcluster.node.kubeletserver import KubeletServer

pytestmark = pytest.mark.kubectl


@dataclass
class Env:
    api: ApiServer
    namespace: str

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return self.api.kubectl("-n", self.namespace, *args, context="cluster1", check=check, timeout=timeout)

    def wait_ready(self, pod: str) -> None:
        self.kubectl("wait", "--for=condition=Ready", f"pod/{pod}", "--timeout=60s", timeout=90)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    data_dir = tmp_path_factory.mktemp("withkubelet")
    tls = issue_kubelet_pki(data_dir / "api")
    api = ApiServer(data_dir / "api", clusters=("cluster1",), auth=True, extra_args=[
        "--kubelet-client-certificate", str(tls["client_cert"]), "--kubelet-client-key", str(tls["client_key"]),
        "--kubelet-certificate-authority", str(tls["ca"])]).start()
    kube = Kube(api.api_client("cluster1"), field_manager="kubelet")
    network, runtime = LoopbackPodNetwork(), Runtime(kube)
    node = Node(runtime, kube, name=NODE, state_dir=data_dir / "node", network=network)
    server = KubeletServer(node.containers, cert=tls["serving_cert"], key=tls["serving_key"], client_ca=tls["ca"],
                           pods=runtime.cache(PODS).get)
    try:
        node.start()
        node.set_kubelet_port(server.start())
        runtime.start()
        namespace = f"wk-{uuid.uuid4().hex[:6]}"
        api.kubectl("create", "namespace", namespace, context="cluster1")
        yield Env(api, namespace)
    finally:
        server.stop()
        runtime.stop()
        node.stop(kill_pods=True)
        network.cleanup()
        api.stop()


def test_logs_follow_and_previous(env: Env) -> None:
    env.kubectl("run", "counter", "--image=busybox", "--restart=Never", "--",
                "sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.5; done")
    env.kubectl("wait", "--for=jsonpath={.status.phase}=Running", "pod/counter", "--timeout=60s", timeout=90)
    assert env.kubectl("logs", "-f", "counter", timeout=60).stdout == "tick 1\ntick 2\ntick 3\n"
    assert env.kubectl("logs", "counter", "--tail=1").stdout == "tick 3\n"
    env.kubectl("run", "crasher", "--image=busybox", "--restart=Always", "--", "sh", "-c", "echo started; exit 1")

    def restarted() -> bool:
        pod = json.loads(env.kubectl("get", "pod", "crasher", "-o", "json").stdout)
        return any(s.get("restartCount", 0) >= 1 for s in pod["status"].get("containerStatuses") or [])

    eventually(restarted, timeout=60, interval=0.5, what="crasher restarted once")
    assert env.kubectl("logs", "crasher", "--previous").stdout == "started\n"


def test_kubectl_cp_both_ways(env: Env, tmp_path: Path) -> None:
    env.kubectl("run", "box", "--image=busybox", "--", "sleep", "3600")
    env.wait_ready("box")
    source = tmp_path / "payload.bin"
    source.write_bytes(bytes(range(256)) * 4096)  # 1 MiB, every byte value
    env.kubectl("cp", str(source), f"{env.namespace}/box:/tmp/payload.bin")
    back = tmp_path / "back.bin"
    env.kubectl("cp", f"{env.namespace}/box:/tmp/payload.bin", str(back))
    assert back.read_bytes() == source.read_bytes()


def test_attach_streams_output_until_the_container_ends(env: Env) -> None:
    env.kubectl("run", "talker", "--image=busybox", "--restart=Never", "--", "sh", "-c",
                "echo before; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo after-1; echo after-2 >&2")
    env.wait_ready("talker")
    argv = env.api.kubectl_argv("attach", "talker", "-n", env.namespace, "-v=6", context="cluster1")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env.api.kubectl_env())
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # connected once the upgrade is answered
            if "101 Switching Protocols" in line:
                break
        touched = env.kubectl("exec", "talker", "--", "touch", "/tmp/go", check=False)
        # 137: the container saw the file and ended while `touch` was still being reaped, so the node
        # killed what was left in the sandbox (a real kubelet's exec can end the same way)
        assert touched.returncode in (0, 137), touched.stderr
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.communicate()  # reaped and its pipes closed, also when an assertion failed above
    assert proc.returncode == 0, err
    assert out == "after-1\n" and "after-2" in err  # output from the attach on, not before
    refused = env.kubectl("attach", "-i", "talker", check=False)
    assert refused.returncode != 0


def test_exec_and_port_forward(env: Env) -> None:
    env.kubectl("run", "web", "--image=busybox", "--", "nc", "-ll", "-p", "8080", "-e", "echo", "hello-from-web")
    env.wait_ready("web")

    def listening() -> bool:
        return env.kubectl("exec", "web", "--", "sh", "-c", "netstat -ltn | grep -q ':8080 '", check=False) \
            .returncode == 0

    eventually(listening, timeout=30, what="nc listening in the Pod")
    out = env.kubectl("exec", "web", "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (out.returncode, out.stdout) == (3, "out\n") and "err" in out.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        local = s.getsockname()[1]
    argv = env.api.kubectl_argv("port-forward", "web", "-n", env.namespace, f"{local}:8080", context="cluster1")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env.api.kubectl_env())
    try:
        assert proc.stdout is not None and "Forwarding from" in proc.stdout.readline()
        with socket.create_connection(("127.0.0.1", local), timeout=10) as conn:
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
        assert data == b"hello-from-web\n"
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
