"""Fixtures for the kubelet API tests: a real API server (HTTPS, tokens) started with the kubelet
client flags, a real container runtime running busybox containers in a network namespace of the
test run's own, the kubelet server over that runtime (client certificates required), and a Node
object publishing its port. Pods are created through the API; the test starts their containers
with the runtime and writes their status as the kubelet would (the kubelet itself is tested
elsewhere). Everything started is stopped, and the namespace deleted, also on failure."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.apiserver import ApiServer, dump
from support.loopnet import loopback_netns
from support.waiting import eventually

from localcluster.node.images import ImageMap
from localcluster.node.kubeletserver import KubeletServer
from localcluster.node.layout import NodeLayout
from localcluster.node.runtime import ContainerLaunch, ContainerRecord, ContainerRuntime
from osutil.certs import issue_certificate, kubelet_server_name

CLUSTER = "cluster1"
NODE = "node-kubeletapi"


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    """One network namespace for every Pod of a module (so listeners need distinct ports)."""
    with loopback_netns("lckapi") as path:
        yield path


@dataclass
class Cluster:
    """The API server, the runtime and the kubelet server of one test module."""

    api: ApiServer
    runtime: ContainerRuntime
    netns: str
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    started: list[ContainerRecord] = field(default_factory=list)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return self.api.kubectl(*args, context=CLUSTER, check=check, input=input, timeout=timeout)

    def create_pod(self, namespace: str, name: str, containers: list[str]) -> dict[str, Any]:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
               "spec": {"nodeName": NODE, "containers": [{"name": c, "image": "busybox"} for c in containers]}}
        out = self.kubectl("create", "-f", "-", "-o", "json", input=dump(pod))
        created: dict[str, Any] = json.loads(out.stdout)
        self.pods[(namespace, name)] = created
        return created

    def start(self, pod: dict[str, Any], container: str, argv: list[str], attempt: int = 0) -> ContainerRecord:
        launch = ContainerLaunch(pod_uid=pod["metadata"]["uid"], name=container, attempt=attempt, argv=argv, env={},
                                 working_dir=None, image="busybox", netns_path=self.netns, hostname="pod")
        record = self.runtime.start(launch)
        self.started.append(record)
        return record

    def wait_ended(self, record: ContainerRecord) -> ContainerRecord:
        def ended() -> ContainerRecord | None:
            now = self.runtime.inspect(record.pod_uid, record.name, record.attempt)
            return now if now is not None and now.exit_code is not None else None

        return eventually(ended, timeout=20, interval=0.02, what=f"{record.name} ended")

    def raw_get(self, path: str) -> httpx.Response:
        """A GET of a cluster-relative API path with the cluster's token (what `kubectl get --raw`
        cannot do here: it drops the kubeconfig server's `/clusters/<name>` prefix)."""
        token = self.api.tokens()[CLUSTER]
        return httpx.get(self.api.cluster_url(CLUSTER) + path, headers={"Authorization": f"Bearer {token}"},
                         verify=ssl.create_default_context(cafile=str(self.api.ca_file)), timeout=30)

    def set_status(self, pod: dict[str, Any], statuses: list[dict[str, Any]], phase: str = "Running") -> None:
        """Write the Pod's status as the kubelet would, and keep the node's view of it current."""
        meta = pod["metadata"]
        patch = {"status": {"phase": phase, "containerStatuses": statuses}}
        out = self.kubectl("patch", "pod", meta["name"], "-n", meta["namespace"], "--subresource=status",
                           "--type=merge", "-p", json.dumps(patch), "-o", "json")
        self.pods[(meta["namespace"], meta["name"])] = json.loads(out.stdout)


def running(name: str, restarts: int = 0) -> dict[str, Any]:
    status: dict[str, Any] = {"name": name, "ready": True, "restartCount": restarts, "image": "busybox",
                              "imageID": "", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}
    if restarts:
        status["lastState"] = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    return status


def terminated(name: str, code: int) -> dict[str, Any]:
    return {"name": name, "ready": False, "restartCount": 0, "image": "busybox", "imageID": "",
            "state": {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}}}


def issue_kubelet_pki(data_dir: Path) -> dict[str, Path]:
    """The kubelet client certificate (the API server's) and the kubelet's serving certificate,
    signed by the CA the API server then adopts (`data_dir/pki`)."""
    pki = data_dir / "pki"
    client_cert, client_key = issue_certificate(pki, "apiserver-kubelet-client", cn="kube-apiserver-kubelet-client",
                                                client=True, organization="system:masters")
    serving_cert, serving_key = issue_certificate(pki, "kubelet-serving", cn=NODE,
                                                  sans=[kubelet_server_name(CLUSTER, NODE), "127.0.0.1"])
    return {"ca": pki / "ca.crt", "client_cert": client_cert, "client_key": client_key,
            "serving_cert": serving_cert, "serving_key": serving_key}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, netns: str) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("kubeletapi")
    tls = issue_kubelet_pki(data_dir / "api")
    api = ApiServer(data_dir / "api", clusters=(CLUSTER,), auth=True, extra_args=[
        "--kubelet-client-certificate", str(tls["client_cert"]), "--kubelet-client-key", str(tls["client_key"]),
        "--kubelet-certificate-authority", str(tls["ca"])]).start()
    layout = NodeLayout(data_dir / "node")
    runtime = ContainerRuntime(layout, ImageMap())
    state = Cluster(api, runtime, netns)
    server = KubeletServer(runtime, cert=tls["serving_cert"], key=tls["serving_key"], client_ca=tls["ca"],
                           pods=lambda ns, name: state.pods.get((ns, name)))
    try:
        port = server.start()
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}
        state.kubectl("create", "-f", "-", input=dump(node))
        status = {"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}
        state.kubectl("patch", "node", NODE, "--subresource=status", "--type=merge", "-p", json.dumps(status))
        yield state
    finally:
        server.stop()
        for record in state.started:
            runtime.signal(record, signal.SIGKILL)
        for record in state.started:
            state.wait_ended(record)
        api.stop()


_counter = iter(range(1_000_000))


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> str:
    name = f"kapi-{next(_counter)}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    return name
