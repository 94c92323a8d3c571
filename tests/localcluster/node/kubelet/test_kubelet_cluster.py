"""The kubelet's cluster-facing side: the Node object and its Lease, binding unscheduled Pods,
the service-account volume the API server's admission adds, a Pod deleted at once (orphan)."""

from __future__ import annotations

from typing import Any

import pytest
from kubeletenv import KubeletEnv
from support.waiting import eventually

from kube.rest import LEASES, NODES, PODS, Resource
from localcluster.node.layout import NodeLayout


def test_the_node_is_registered_ready_with_capacity_and_a_lease(kubelet: KubeletEnv) -> None:
    node = kubelet.kube.get(NODES, kubelet.node_name)
    assert node is not None
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == kubelet.node_name and labels["kubernetes.io/os"] == "linux"
    status = node["status"]
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
    assert {"cpu", "memory", "pods", "ephemeral-storage"} <= set(status["capacity"])
    assert {"type": "InternalIP", "address": "10.250.255.254"} in status["addresses"]
    assert status["nodeInfo"]["operatingSystem"] == "linux"
    lease = kubelet.kube.get(LEASES, kubelet.node_name, "kube-node-lease")
    assert lease is not None and lease["spec"]["holderIdentity"] == kubelet.node_name
    kubelet.node.set_kubelet_port(10250)
    node = kubelet.kube.get(NODES, kubelet.node_name)
    assert node is not None and node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250


def test_an_unscheduled_pod_is_bound_to_the_node_and_runs(kubelet: KubeletEnv) -> None:
    kubelet.pod("unbound", "echo scheduled", node=False)
    pod = kubelet.wait_phase("unbound", "Succeeded")
    assert pod["spec"]["nodeName"] == kubelet.node_name
    conds = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conds["PodScheduled"] == "True"
    assert kubelet.log(pod) == "scheduled\n"


def test_the_service_account_volume_holds_token_ca_and_namespace(authed_kubelet: KubeletEnv) -> None:
    kubelet = authed_kubelet
    sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount"
    accounts = Resource("", "v1", "serviceaccounts", "ServiceAccount")
    try:  # the API server's controller creates `default` in a new namespace shortly after it
        eventually(lambda: kubelet.kube.get(accounts, "default", kubelet.namespace), timeout=10, what="default SA")
    except AssertionError:
        pytest.skip("the API server creates no default ServiceAccount")
    kubelet.pod("sa", f"ls {sa_dir}; cat {sa_dir}/namespace; echo; test -s {sa_dir}/token && echo has-token; true")
    pod = kubelet.wait_phase("sa", "Succeeded")
    mounts = pod["spec"]["containers"][0].get("volumeMounts") or []
    if not any(m["mountPath"] == sa_dir for m in mounts):
        pytest.skip("the API server adds no service-account volume (its admission is not there)")
    out = kubelet.log(pod).splitlines()
    assert {"ca.crt", "namespace", "token"} <= set(out[:3])
    assert kubelet.namespace in out and "has-token" in out, out


def test_a_pod_removed_at_once_is_killed_as_an_orphan(kubelet: KubeletEnv) -> None:
    pod = kubelet.pod("orphan", "trap '' TERM; while true; do sleep 0.2; done", terminationGracePeriodSeconds=1)
    kubelet.wait_phase("orphan", "Running")
    uid = pod["metadata"]["uid"]
    kubelet.kube.request("DELETE", PODS.path(kubelet.namespace, "orphan"),
                         body={"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})
    eventually(lambda: not NodeLayout(kubelet.state_dir).pod_dir(uid).exists(), timeout=20,
               what="the orphan's containers killed and its files removed")


def test_a_claim_that_is_not_bound_keeps_the_pod_pending_with_failed_mount(kubelet: KubeletEnv) -> None:
    from kube.rest import EVENTS, PVCS

    kubelet.kube.create(PVCS, {"metadata": {"name": "data", "namespace": kubelet.namespace},
                               "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "no-such-class",
                                        "resources": {"requests": {"storage": "1Mi"}}}})
    kubelet.pod("claims", "ls /data", containers=[{"name": "main", "image": "busybox", "command": ["ls", "/data"],
                                                   "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
                volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])

    def failed_mount() -> list[dict[str, Any]]:
        items, _ = kubelet.kube.list(EVENTS, kubelet.namespace)
        return [e for e in items if e.get("reason") == "FailedMount"]

    events = eventually(failed_mount, timeout=20, interval=0.2, what="a FailedMount event")
    assert "not bound" in events[0]["message"]
    assert kubelet.get("claims")["status"]["phase"] == "Pending"
