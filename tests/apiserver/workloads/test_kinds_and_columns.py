"""The workload, discovery, registration and storage kinds real clients use: served, discoverable by
kubectl's short names, CRUD through kubectl 1.32, and printed with kubectl 1.32's column headers."""

from __future__ import annotations

import json
import re

import pytest
from support.apiserver import ApiServer

pytestmark = pytest.mark.kubectl


def headers(apiserver: ApiServer, *args: str) -> list[str]:
    first = apiserver.kubectl("get", *args).stdout.splitlines()[0]
    return re.split(r"\s{2,}", first.strip())


def template(name: str) -> dict[str, object]:
    return {"metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}


def workload(kind: str, api_version: str, name: str, namespace: str) -> str:
    spec: dict[str, object] = {"template": template(name)}
    spec["selector"] = {"app": name} if kind == "ReplicationController" else {"matchLabels": {"app": name}}
    return json.dumps({"apiVersion": api_version, "kind": kind,
                       "metadata": {"name": name, "namespace": namespace}, "spec": spec})


@pytest.mark.parametrize(("kind", "api_version", "short", "columns"), [
    ("ReplicaSet", "apps/v1", "rs", ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]),
    ("ReplicationController", "v1", "rc", ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]),
    ("DaemonSet", "apps/v1", "ds",
     ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"]),
    ("Deployment", "apps/v1", "deploy", ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]),
])
def test_replicated_kinds_crud_and_columns(apiserver: ApiServer, namespace: str, kind: str, api_version: str,
                                           short: str, columns: list[str]) -> None:
    apiserver.apply_yaml(workload(kind, api_version, "web", namespace))
    obj = apiserver.get(short, "web", "-n", namespace)
    assert obj["kind"] == kind
    if kind != "DaemonSet":
        assert obj["spec"]["replicas"] == 1
    assert obj["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert headers(apiserver, short, "-n", namespace) == columns
    wide = headers(apiserver, short, "-n", namespace, "-o", "wide")
    assert wide == [*columns, "CONTAINERS", "IMAGES", "SELECTOR"]
    row = apiserver.kubectl("get", short, "web", "-n", namespace, "-o", "wide", "--no-headers").stdout.split()
    assert row[0] == "web" and "busybox:1.36" in row and "app=web" in row
    assert "web" in apiserver.kubectl("get", "all", "-n", namespace).stdout
    apiserver.kubectl("delete", short, "web", "-n", namespace)
    assert apiserver.kubectl("get", short, "-n", namespace, "-o", "name").stdout == ""


def test_pod_job_node_headers(apiserver: ApiServer, namespace: str) -> None:
    apiserver.kubectl("run", "p1", "-n", namespace, "--image=busybox", "--restart=Never", "--", "sleep", "1")
    assert headers(apiserver, "pods", "-n", namespace, "-o", "wide") == [
        "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    row = apiserver.kubectl("get", "pod", "p1", "-n", namespace, "-o", "wide", "--no-headers").stdout.split()
    assert row[:4] == ["p1", "0/1", "Pending", "0"] and row[5:] == ["<none>"] * 4
    apiserver.kubectl("create", "job", "j1", "-n", namespace, "--image=busybox", "--", "true")
    assert headers(apiserver, "jobs", "-n", namespace) == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert apiserver.kubectl("get", "job", "j1", "-n", namespace, "--no-headers").stdout.split()[1:3] == [
        "Running", "0/1"]
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"{namespace}-node",
            "labels": {"node-role.kubernetes.io/control-plane": ""}}}
    apiserver.apply_yaml(json.dumps(node))
    status = {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}],
                         "addresses": [{"type": "InternalIP", "address": "10.1.127.254"}],
                         "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian", "kernelVersion": "6.1",
                                      "containerRuntimeVersion": "bwrap://0.8.0"}}}
    apiserver.kubectl("patch", "node", f"{namespace}-node", "--subresource=status", "--type=merge",
                      "-p", json.dumps(status))
    assert headers(apiserver, "nodes") == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    row = apiserver.kubectl("get", "node", f"{namespace}-node", "-o", "wide", "--no-headers").stdout.split()
    assert row[1:3] == ["NotReady", "control-plane"] and row[4:7] == ["v1.32.0", "10.1.127.254", "<none>"]
    apiserver.kubectl("delete", "node", f"{namespace}-node")


def test_endpointslices(apiserver: ApiServer, namespace: str) -> None:
    eps = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
           "metadata": {"name": "svc-abc", "namespace": namespace, "labels": {"kubernetes.io/service-name": "svc"}},
           "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
           "endpoints": [{"addresses": [f"10.1.0.{i}"], "conditions": {"ready": True}} for i in range(2, 7)]}
    apiserver.apply_yaml(json.dumps(eps))
    assert headers(apiserver, "endpointslices", "-n", namespace) == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS",
                                                                      "AGE"]
    row = apiserver.kubectl("get", "endpointslices", "-n", namespace, "--no-headers").stdout
    assert row.split()[:4] == ["svc-abc", "IPv4", "80", "10.1.0.2,10.1.0.3,10.1.0.4"]
    assert "+ 2 more..." in row
    eps["metadata"]["name"] = "svc-def"  # type: ignore[index]
    eps["ports"] = [{"port": 8080}]
    apiserver.apply_yaml(json.dumps(eps))
    assert apiserver.get("endpointslice", "svc-def", "-n", namespace)["ports"] == [
        {"name": "", "port": 8080, "protocol": "TCP"}]
    apiserver.kubectl("delete", "endpointslice", "svc-abc", "-n", namespace)


def test_apiservices(apiserver: ApiServer, namespace: str) -> None:
    assert headers(apiserver, "apiservices") == ["NAME", "SERVICE", "AVAILABLE", "AGE"]
    listed = apiserver.kubectl("get", "apiservices", "--no-headers").stdout.splitlines()
    rows = {r.split()[0]: r.split() for r in listed}
    for local in ("v1.", "v1.apps", "v1.batch", "v1.discovery.k8s.io", "v1.apiregistration.k8s.io"):
        assert rows[local][1:3] == ["Local", "True"], rows.get(local)
    name = f"v1beta1.{namespace}.example.com"
    svc = {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": name},
           "spec": {"group": f"{namespace}.example.com", "version": "v1beta1", "groupPriorityMinimum": 1000,
                    "versionPriority": 15, "service": {"namespace": namespace, "name": "metrics"}}}
    apiserver.apply_yaml(json.dumps(svc))
    row = apiserver.kubectl("get", "apiservice", name, "--no-headers").stdout.split()
    assert row[1:4] == [f"{namespace}/metrics", "False", "(FailedDiscoveryCheck)"]
    apiserver.kubectl("patch", "apiservice", name, "--subresource=status", "--type=merge", "-p", json.dumps(
        {"status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints"}]}}))
    row = apiserver.kubectl("get", "apiservice", name, "--no-headers").stdout.split()
    assert row[1:4] == [f"{namespace}/metrics", "False", "(MissingEndpoints)"]
    apiserver.kubectl("delete", "apiservice", name)


def test_csi_kinds_and_leases(apiserver: ApiServer, namespace: str) -> None:
    driver = {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": f"{namespace}.csi"},
              "spec": {"attachRequired": False, "podInfoOnMount": True, "volumeLifecycleModes": ["Persistent"]}}
    apiserver.apply_yaml(json.dumps(driver))
    assert headers(apiserver, "csidrivers") == ["NAME", "ATTACHREQUIRED", "PODINFOONMOUNT", "STORAGECAPACITY",
                                                "TOKENREQUESTS", "REQUIRESREPUBLISH", "MODES", "AGE"]
    row = apiserver.kubectl("get", "csidriver", f"{namespace}.csi", "--no-headers").stdout.split()
    assert row[1:7] == ["false", "true", "false", "<none>", "false", "Persistent"]
    cap = {"apiVersion": "storage.k8s.io/v1", "kind": "CSIStorageCapacity",
           "metadata": {"name": "pool", "namespace": namespace}, "storageClassName": "local", "capacity": "10Gi"}
    apiserver.apply_yaml(json.dumps(cap))
    assert headers(apiserver, "csistoragecapacities", "-n", namespace) == ["NAME", "STORAGECLASSNAME", "CAPACITY",
                                                                           "AGE"]
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l", "namespace": namespace},
             "spec": {"holderIdentity": "me"}}
    apiserver.apply_yaml(json.dumps(lease))
    assert apiserver.kubectl("get", "lease", "l", "-n", namespace, "--no-headers").stdout.split()[:2] == ["l", "me"]
    apiserver.kubectl("delete", "csidriver", f"{namespace}.csi")
