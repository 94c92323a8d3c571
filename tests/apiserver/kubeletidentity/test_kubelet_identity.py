"""A cluster's admin cannot reach another cluster's kubelet: the API server verifies that the kubelet
it dials presents a certificate naming the Pod's cluster and node, and the kubelet checks the Pod's
UID. Real API server (two clusters), real kubelet server, a real container in a netns of its own."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.apiserver import ApiServer, dump
from support.waiting import eventually

from localcluster.node.images import ImageMap
from localcluster.node.kubeletserver import KubeletServer
from localcluster.node.layout import NodeLayout
from localcluster.node.runtime import ContainerLaunch, ContainerRuntime
from osutil.certs import issue_certificate, kubelet_server_name

HUB, OTHER, NODE, NS, POD = "hub", "cluster1", "hub-node", "shared", "victim"
SECRET = "hub-secret-line"


@dataclass
class Env:
    api: ApiServer
    kubelet_port: int
    pod: dict[str, Any]
    client_cert: tuple[str, str]
    ca: Path

    def get(self, cluster: str, path: str) -> httpx.Response:
        return httpx.get(self.api.cluster_url(cluster) + path, timeout=30,
                         headers={"Authorization": f"Bearer {self.api.tokens()[cluster]}"},
                         verify=ssl.create_default_context(cafile=str(self.api.ca_file)))

    def create(self, cluster: str, obj: dict[str, Any]) -> dict[str, Any]:
        out = self.api.kubectl("create", "-f", "-", "-o", "json", context=cluster, input=dump(obj))
        created: dict[str, Any] = json.loads(out.stdout)
        return created

    def publish_node(self, cluster: str) -> None:
        self.create(cluster, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}})
        status = {"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}}}}
        self.api.kubectl("patch", "node", NODE, "--subresource=status", "--type=merge", "-p", json.dumps(status),
                         context=cluster)

    def create_pod(self, cluster: str) -> dict[str, Any]:
        self.create(cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        return self.create(cluster, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": POD, "namespace": NS},
                                     "spec": {"nodeName": NODE, "containers": [{"name": "main", "image": "busybox"}]}})


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    data_dir = tmp_path_factory.mktemp("kubeletid")
    pki = data_dir / "api" / "pki"
    client = issue_certificate(pki, "apiserver-kubelet-client", cn="kube-apiserver-kubelet-client", client=True,
                               organization="system:masters")
    serving = issue_certificate(pki, "kubelet-hub", cn=f"system:node:{NODE}",
                                sans=[kubelet_server_name(HUB, NODE), "127.0.0.1"])
    api = ApiServer(data_dir / "api", clusters=(HUB, OTHER), auth=True, extra_args=[
        "--kubelet-client-certificate", str(client[0]), "--kubelet-client-key", str(client[1]),
        "--kubelet-certificate-authority", str(pki / "ca.crt")]).start()
    netns = f"lckid-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    runtime = ContainerRuntime(NodeLayout(data_dir / "node"), ImageMap())
    pods: dict[tuple[str, str], dict[str, Any]] = {}
    server = KubeletServer(runtime, cert=serving[0], key=serving[1], client_ca=pki / "ca.crt",
                           pods=lambda ns, name: pods.get((ns, name)))
    record = None
    try:
        view = Env(api, server.start(), {}, (str(client[0]), str(client[1])), pki / "ca.crt")
        view.publish_node(HUB)
        view.pod = pods[(NS, POD)] = view.create_pod(HUB)
        record = runtime.start(ContainerLaunch(
            pod_uid=view.pod["metadata"]["uid"], name="main", attempt=0,
            argv=["sh", "-c", f"echo {SECRET}; exec sleep 600"], env={}, working_dir=None, image="busybox",
            netns_path=f"/run/netns/{netns}", hostname="pod"))
        eventually(lambda: SECRET.encode() in record.log_path.read_bytes() if record.log_path.exists() else False,
                   timeout=20, what="the hub container logged")
        yield view
    finally:
        server.stop()
        if record is not None:
            runtime.signal(record, signal.SIGKILL)
            eventually(lambda: (runtime.inspect(record.pod_uid, "main", 0) or record).exit_code is not None,
                       timeout=20, what="the container ended")
        api.stop()
        subprocess.run(["ip", "netns", "delete", netns], check=True)


LOG = f"/api/v1/namespaces/{NS}/pods/{POD}/log"


def test_the_hub_reaches_its_own_kubelet(env: Env) -> None:
    res = env.get(HUB, LOG)
    assert res.status_code == 200 and res.text == f"{SECRET}\n", res.text


def test_another_cluster_pointing_a_node_at_the_hub_kubelet_is_refused(env: Env) -> None:
    env.publish_node(OTHER)  # same node name, the hub kubelet's port
    env.create_pod(OTHER)  # same namespace and name as the hub's Pod
    res = env.get(OTHER, LOG)
    assert res.status_code == 503 and SECRET not in res.text, res.text
    assert "error dialing backend" in res.json()["message"]
    out = env.api.kubectl("exec", POD, "-n", NS, "--", "echo", "hijacked", context=OTHER, check=False)
    assert out.returncode != 0 and "hijacked" not in out.stdout, out.stdout


def test_the_kubelet_refuses_another_pods_uid(env: Env) -> None:
    url = f"https://127.0.0.1:{env.kubelet_port}/containerLogs/{NS}/{POD}/main"
    ctx = ssl.create_default_context(cafile=str(env.ca))
    ctx.load_cert_chain(*env.client_cert)
    with httpx.Client(verify=ctx, timeout=30) as http:
        wrong = http.get(url, params={"podUID": str(uuid.uuid4())})
        assert wrong.status_code == 404 and SECRET not in wrong.text, wrong.text
        right = http.get(url, params={"podUID": env.pod["metadata"]["uid"]})
        assert right.status_code == 200 and right.text == f"{SECRET}\n"
