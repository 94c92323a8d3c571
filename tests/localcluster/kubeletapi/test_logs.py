"""`kubectl logs` (plain, --tail, --timestamps, -f, --previous, -c) through the API server and the
kubelet server, with real kubectl and real containers; the refusals kube-apiserver gives."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from conftest import Cluster, running, terminated
from support.apiserver import ApiServer, dump
from support.waiting import eventually

pytestmark = pytest.mark.kubectl


def test_logs_of_an_ended_container(cluster: Cluster, namespace: str) -> None:
    pod = cluster.create_pod(namespace, "done", ["main"])
    cluster.wait_ended(cluster.start(pod, "main", ["sh", "-c", "echo one; echo two >&2; sleep 0.3; echo three"]))
    cluster.set_status(pod, [terminated("main", 0)], phase="Succeeded")
    out = cluster.kubectl("logs", "done", "-n", namespace).stdout
    assert sorted(out.splitlines()) == ["one", "three", "two"] and out.endswith("\n")
    assert cluster.kubectl("logs", "done", "-n", namespace, "--tail=1").stdout == "three\n"
    stamped = cluster.kubectl("logs", "done", "-n", namespace, "--timestamps", "--tail=2").stdout.splitlines()
    assert len(stamped) == 2
    for line in stamped:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z (two|three)", line), line
    assert cluster.kubectl("logs", "done", "-n", namespace, "--since=1h").stdout == out
    assert cluster.kubectl("logs", "done", "-n", namespace, "--since-time=2999-01-01T00:00:00Z").stdout == ""


def test_follow_ends_when_the_container_ends(cluster: Cluster, namespace: str) -> None:
    pod = cluster.create_pod(namespace, "follow", ["main"])
    cluster.start(pod, "main", ["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.5; done"])
    cluster.set_status(pod, [running("main")])
    begun = time.monotonic()
    out = cluster.kubectl("logs", "-f", "follow", "-n", namespace, timeout=30).stdout
    assert out == "line1\nline2\nline3\n"
    assert time.monotonic() - begun < 20


def test_previous_shows_the_start_before(cluster: Cluster, namespace: str) -> None:
    pod = cluster.create_pod(namespace, "restarted", ["main"])
    cluster.wait_ended(cluster.start(pod, "main", ["sh", "-c", "echo first start"]))
    second = cluster.start(pod, "main", ["sh", "-c", "echo second start; exec sleep 60"], attempt=1)
    cluster.set_status(pod, [running("main", restarts=1)])
    eventually(lambda: second.log_path.exists() and second.log_path.read_bytes().endswith(b"\n"), timeout=20,
               what="the second start logged its line")
    assert cluster.kubectl("logs", "restarted", "-n", namespace).stdout == "second start\n"
    assert cluster.kubectl("logs", "restarted", "-n", namespace, "--previous").stdout == "first start\n"


def test_container_choice_and_refusals(cluster: Cluster, namespace: str) -> None:
    pod = cluster.create_pod(namespace, "two", ["a", "b"])
    cluster.wait_ended(cluster.start(pod, "a", ["echo", "from a"]))
    cluster.wait_ended(cluster.start(pod, "b", ["echo", "from b"]))
    cluster.set_status(pod, [terminated("a", 0), terminated("b", 0)], phase="Succeeded")
    assert cluster.kubectl("logs", "two", "-n", namespace, "-c", "b").stdout == "from b\n"
    bad = cluster.kubectl("logs", "two", "-n", namespace, "-c", "nope", check=False)
    assert bad.returncode != 0 and "container nope is not valid for pod two" in bad.stderr
    base = f"/api/v1/namespaces/{namespace}/pods/two/log"
    raw = cluster.raw_get(base)
    assert raw.status_code == 400
    assert raw.json()["message"] == "a container name must be specified for pod two, choose one of: [a b]"
    assert cluster.raw_get(base + "?container=a&tailLines=x").status_code == 400
    assert cluster.raw_get(base + "?container=a&follow=maybe").status_code == 400
    invalid = cluster.raw_get(base + "?container=a&tailLines=-1")
    assert invalid.status_code == 422 and invalid.json()["reason"] == "Invalid"
    assert cluster.raw_get(base + "?container=a&limitBytes=4").text == "from"
    previous = cluster.kubectl("logs", "two", "-n", namespace, "-c", "a", "--previous", check=False)
    assert 'previous terminated container "a" in pod "two" not found' in previous.stderr


def test_a_pod_not_started_yet_is_waiting(cluster: Cluster, namespace: str) -> None:
    cluster.create_pod(namespace, "pending", ["main"])
    out = cluster.kubectl("logs", "pending", "-n", namespace, check=False)
    assert out.returncode != 0
    assert 'container "main" in pod "pending" is waiting to start: ContainerCreating' in out.stderr


def test_without_kubelet_credentials_the_subresources_answer_503(tmp_path: Path) -> None:
    api = ApiServer(tmp_path / "api", clusters=("cluster1",), auth=True).start()
    try:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
               "spec": {"nodeName": "somewhere", "containers": [{"name": "c", "image": "busybox"}]}}
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "somewhere"}}
        api.kubectl("create", "-f", "-", context="cluster1", input=dump(pod) + "---\n" + dump(node))
        api.kubectl("patch", "node", "somewhere", "--subresource=status", "--type=merge", "-p",
                    '{"status":{"daemonEndpoints":{"kubeletEndpoint":{"Port":10250}}}}', context="cluster1")
        for args in (("logs", "p"), ("exec", "p", "--", "true")):
            out = api.kubectl(*args, context="cluster1", check=False)
            assert out.returncode != 0
            assert "ServiceUnavailable" in out.stderr or "no kubelet client credentials" in out.stderr, out.stderr
            assert "--kubelet-client-certificate" in out.stderr
    finally:
        api.stop()
