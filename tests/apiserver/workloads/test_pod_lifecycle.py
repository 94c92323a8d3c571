"""Pods as kube-apiserver's registry treats them: defaults, binding to a node, the fields an update may
change, and graceful deletion (deletionTimestamp kept until the kubelet's grace-0 delete), driven
through real kubectl 1.32 and raw HTTP."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime

import pytest
from support.apiserver import ApiServer
from support.objects import http
from support.waiting import eventually

pytestmark = pytest.mark.kubectl


def pod_path(namespace: str, name: str, sub: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}" + (f"/{sub}" if sub else "")


def bind(apiserver: ApiServer, namespace: str, name: str, node: str = "node1") -> tuple[int, dict[str, object]]:
    body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
    with http(apiserver) as h:
        resp = h.post(pod_path(namespace, name, "binding"), json=body)
    return resp.status_code, resp.json()


def test_kubectl_run_gets_upstream_defaults(apiserver: ApiServer, namespace: str) -> None:
    apiserver.kubectl("run", "p", "-n", namespace, "--image=busybox", "--restart=Never", "--port=8080",
                      "--", "sh", "-c", "echo hi")
    pod = apiserver.get("pod", "p", "-n", namespace)
    spec = pod["spec"]
    assert (spec["restartPolicy"], spec["dnsPolicy"], spec["schedulerName"]) == (
        "Never", "ClusterFirst", "default-scheduler")
    assert (spec["terminationGracePeriodSeconds"], spec["enableServiceLinks"], spec["priority"]) == (30, True, 0)
    assert spec["securityContext"] == {}
    assert {t["key"]: t["tolerationSeconds"] for t in spec["tolerations"]} == {
        "node.kubernetes.io/not-ready": 300, "node.kubernetes.io/unreachable": 300}
    c = spec["containers"][0]
    assert c["args"] == ["sh", "-c", "echo hi"]  # without --command, kubectl run passes args
    assert (c["imagePullPolicy"], c["terminationMessagePath"], c["terminationMessagePolicy"]) == (
        "Always", "/dev/termination-log", "File")
    assert c["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert pod["status"]["phase"] == "Pending" and pod["status"]["qosClass"] == "BestEffort"
    apiserver.kubectl("run", "q", "-n", namespace, "--image=busybox:1.36", "--restart=Never", "--", "true")
    assert apiserver.get("pod", "q", "-n", namespace)["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_binding_sets_the_node_once(apiserver: ApiServer, namespace: str) -> None:
    apiserver.kubectl("run", "p", "-n", namespace, "--image=busybox", "--restart=Never", "--", "true")
    code, body = bind(apiserver, namespace, "p")
    assert code == 201 and body["status"] == "Success"
    pod = apiserver.get("pod", "p", "-n", namespace)
    assert pod["spec"]["nodeName"] == "node1"
    assert any(c["type"] == "PodScheduled" and c["status"] == "True" for c in pod["status"]["conditions"])
    code, body = bind(apiserver, namespace, "p", "node2")
    assert code == 409 and body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on pods/binding "p": pod p is already assigned to node "node1"')
    assert bind(apiserver, namespace, "absent")[0] == 404


def test_pod_update_may_change_only_the_image(apiserver: ApiServer, namespace: str) -> None:
    apiserver.kubectl("run", "p", "-n", namespace, "--image=busybox", "--restart=Never", "--", "sleep", "9")
    apiserver.kubectl("set", "image", "pod/p", "p=busybox:1.36", "-n", namespace)
    assert apiserver.get("pod", "p", "-n", namespace)["spec"]["containers"][0]["image"] == "busybox:1.36"
    res = apiserver.kubectl("patch", "pod", "p", "-n", namespace, "--type=merge",
                            "-p", json.dumps({"spec": {"restartPolicy": "Always"}}), check=False)
    assert res.returncode != 0
    assert 'The Pod "p" is invalid: spec: Forbidden: pod updates may not change fields other than' in res.stderr


def test_graceful_deletion_timeline(apiserver: ApiServer, namespace: str) -> None:
    """Bound and running: DELETE keeps the Pod with deletionTimestamp = now + grace; a second delete with
    a longer period changes nothing, a shorter one moves the deadline; grace 0 (the kubelet's) removes it."""
    apiserver.kubectl("run", "p", "-n", namespace, "--image=busybox", "--restart=Never", "--", "sleep", "9")
    assert bind(apiserver, namespace, "p")[0] == 201
    with http(apiserver) as h:
        before = datetime.now(UTC).replace(microsecond=0)
        resp = h.request("DELETE", pod_path(namespace, "p"), json={"gracePeriodSeconds": 60})
        assert resp.status_code == 200
        meta = resp.json()["metadata"]
        assert meta["deletionGracePeriodSeconds"] == 60
        deadline = datetime.fromisoformat(meta["deletionTimestamp"].replace("Z", "+00:00"))
        assert 59 <= (deadline - before).total_seconds() <= 62
        assert h.get(pod_path(namespace, "p")).status_code == 200  # kept
        again = h.request("DELETE", pod_path(namespace, "p"), json={"gracePeriodSeconds": 90}).json()
        assert again["metadata"]["deletionTimestamp"] == meta["deletionTimestamp"]
        shorter = h.request("DELETE", pod_path(namespace, "p"), json={"gracePeriodSeconds": 10}).json()
        assert shorter["metadata"]["deletionGracePeriodSeconds"] == 10
        moved = datetime.fromisoformat(shorter["metadata"]["deletionTimestamp"].replace("Z", "+00:00"))
        assert (deadline - moved).total_seconds() == 50
        pod = h.get(pod_path(namespace, "p")).json()
        assert apiserver.kubectl("get", "pod", "p", "-n", namespace, "--no-headers").stdout.split()[2] == "Terminating"
        final = h.request("DELETE", pod_path(namespace, "p"),
                          json={"gracePeriodSeconds": 0, "preconditions": {"uid": pod["metadata"]["uid"]}})
        assert final.status_code == 200
        assert h.get(pod_path(namespace, "p")).status_code == 404


def test_unbound_pod_goes_at_once_and_kubectl_delete_waits(apiserver: ApiServer, namespace: str) -> None:
    apiserver.kubectl("run", "unbound", "-n", namespace, "--image=busybox", "--restart=Never", "--", "true")
    apiserver.kubectl("delete", "pod", "unbound", "-n", namespace, timeout=20)
    apiserver.kubectl("run", "bound", "-n", namespace, "--image=busybox", "--restart=Never", "--", "true")
    assert bind(apiserver, namespace, "bound")[0] == 201
    # kubectl delete waits until the Pod is gone: here the "kubelet" is this test, finishing with grace 0
    waiter = subprocess.Popen(apiserver.kubectl_argv("delete", "pod", "bound", "-n", namespace, "--timeout=30s"),
                              env=apiserver.kubectl_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pod = eventually(lambda: (p := apiserver.get("pod", "bound", "-n", namespace))["metadata"].get(
            "deletionTimestamp") and p, what="deletionTimestamp set")
        assert pod["metadata"]["deletionGracePeriodSeconds"] == 30
        assert waiter.poll() is None  # still waiting while the Pod terminates
        with http(apiserver) as h:
            assert h.request("DELETE", pod_path(namespace, "bound"), json={"gracePeriodSeconds": 0}).status_code == 200
        out, err = waiter.communicate(timeout=30)
        assert waiter.returncode == 0, err
        assert 'pod "bound" deleted' in out
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()


def test_force_delete_removes_a_bound_pod(apiserver: ApiServer, namespace: str) -> None:
    apiserver.kubectl("run", "p", "-n", namespace, "--image=busybox", "--restart=Never", "--", "true")
    assert bind(apiserver, namespace, "p")[0] == 201
    res = apiserver.kubectl("delete", "pod", "p", "-n", namespace, "--grace-period=0", "--force", timeout=20)
    assert 'pod "p" force deleted' in res.stdout
    assert apiserver.kubectl("get", "pod", "p", "-n", namespace, check=False).returncode != 0


def test_terminal_pod_goes_at_once(apiserver: ApiServer, namespace: str) -> None:
    apiserver.kubectl("run", "p", "-n", namespace, "--image=busybox", "--restart=Never", "--", "true")
    assert bind(apiserver, namespace, "p")[0] == 201
    apiserver.kubectl("patch", "pod", "p", "-n", namespace, "--subresource=status", "--type=merge",
                      "-p", json.dumps({"status": {"phase": "Succeeded"}}))
    apiserver.kubectl("delete", "pod", "p", "-n", namespace, timeout=20)
    assert apiserver.kubectl("get", "pod", "p", "-n", namespace, check=False).returncode != 0


def test_a_grace_zero_delete_of_a_pod_held_by_a_finalizer_ends_its_graceful_deletion() -> None:
    """The kubelet's grace-0 delete lowers the period to 0 even while a finalizer (e.g. Job tracking)
    holds the Pod, so removing that finalizer later deletes it (kube-apiserver's store does the same)."""
    from apiserver import podlifecycle

    now = datetime(2026, 1, 1, tzinfo=UTC)
    pod = {"metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:30Z", "deletionGracePeriodSeconds": 30,
                        "finalizers": ["batch.kubernetes.io/job-tracking"]}, "spec": {"nodeName": "n"}}
    kept = podlifecycle.graceful_deletion(pod, {"gracePeriodSeconds": 0}, now)
    assert kept is not None and kept["metadata"]["deletionGracePeriodSeconds"] == 0
    assert kept["metadata"]["deletionTimestamp"] == "2026-01-01T00:00:00Z"
    del pod["metadata"]["finalizers"]
    assert podlifecycle.graceful_deletion(pod, {"gracePeriodSeconds": 0}, now) is None  # deleted at once


def test_a_negative_grace_period_counts_as_one_second() -> None:
    from apiserver import podlifecycle

    now = datetime(2026, 1, 1, tzinfo=UTC)
    pod = {"metadata": {"name": "p"}, "spec": {"nodeName": "n", "terminationGracePeriodSeconds": -5}}
    kept = podlifecycle.graceful_deletion(pod, {}, now)
    assert kept is not None and kept["metadata"]["deletionGracePeriodSeconds"] == 1
