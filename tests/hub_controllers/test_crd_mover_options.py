"""VolSync's mover options (MoverConfig) in `spec.rsync` of both CRDs, as a real API server enforces
them: `kubectl apply` of a ReplicationSource and a ReplicationDestination carrying all five keeps
every field (nothing pruned, nested affinity terms included), and a wrong type in any of them is
refused with 422 Invalid naming the field. One embedded API server (the project's CRDs) for the module."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.apiserver import ApiServer

pytestmark = [pytest.mark.kubectl, pytest.mark.timeout(120)]

CLUSTER = "cluster1"
NAMESPACE = "movers"
KINDS = {"ReplicationSource": "replicationsources", "ReplicationDestination": "replicationdestinations"}
AFFINITY = {
    "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}},
    "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "podAffinityTerm": {
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchLabels": {"app.kubernetes.io/created-by": "volsync"}}}}]},
}
OPTIONS: dict[str, Any] = {
    "moverServiceAccount": "my-mover",
    "moverSecurityContext": {
        "runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True, "fsGroup": 2000,
        "fsGroupChangePolicy": "OnRootMismatch", "supplementalGroups": [3000, 3001],
        "seccompProfile": {"type": "RuntimeDefault"}, "seLinuxOptions": {"level": "s0:c1,c2"},
        "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65000"}],
    },
    "moverPodLabels": {"team": "storage", "tier": "backup"},
    "moverResources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": 1073741824}},
    "moverAffinity": AFFINITY,
}
# (field under spec.rsync, a wrong value, the path kube-apiserver names)
WRONG: list[tuple[str, Any, str]] = [
    ("moverServiceAccount", 5, "spec.rsync.moverServiceAccount"),
    ("moverSecurityContext", {"runAsUser": "root"}, "spec.rsync.moverSecurityContext.runAsUser"),
    ("moverSecurityContext", {"runAsNonRoot": "yes"}, "spec.rsync.moverSecurityContext.runAsNonRoot"),
    ("moverSecurityContext", {"supplementalGroups": ["wheel"]},
     "spec.rsync.moverSecurityContext.supplementalGroups[0]"),
    ("moverSecurityContext", {"seccompProfile": {"localhostProfile": "x"}},
     "spec.rsync.moverSecurityContext.seccompProfile.type"),
    ("moverPodLabels", {"team": 7}, "spec.rsync.moverPodLabels[team]"),
    ("moverResources", {"limits": {"cpu": "lots"}}, "spec.rsync.moverResources.limits[cpu]"),
    ("moverAffinity", "anywhere", "spec.rsync.moverAffinity"),
    ("moverAffinity", {"nodeAffinity": ["zone-a"]}, "spec.rsync.moverAffinity.nodeAffinity"),
]


def replication(kind: str, name: str, rsync: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"rsync": {"copyMethod": "Snapshot", **rsync}}
    if kind == "ReplicationSource":
        spec |= {"sourcePVC": "data"}
        spec["rsync"] |= {"address": "dst.example", "sshKeys": "keys"}
    else:
        spec["rsync"] |= {"capacity": "1Gi", "accessModes": ["ReadWriteOnce"]}
    return {"apiVersion": "volsync.backube/v1alpha1", "kind": kind,
            "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    api = ApiServer(tmp_path_factory.mktemp("mover-options"), clusters=(CLUSTER,)).start()
    try:
        api.kubectl("create", "namespace", NAMESPACE, context=CLUSTER)
        yield api
    finally:
        api.stop()


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_mover_option_is_kept(server: ApiServer, kind: str) -> None:
    name = f"{KINDS[kind][:-1]}-options"
    server.apply_yaml(json.dumps(replication(kind, name, copy.deepcopy(OPTIONS))), context=CLUSTER)
    stored = server.get(KINDS[kind], name, "-n", NAMESPACE, context=CLUSTER)
    rsync = stored["spec"]["rsync"]
    assert {key: rsync.get(key) for key in OPTIONS} == OPTIONS


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_wrong_type_is_refused_by_kubectl_apply(server: ApiServer, kind: str) -> None:
    for index, (field, value, path) in enumerate(WRONG):
        name = f"{KINDS[kind][:-1]}-wrong-{index}"
        res = server.kubectl("apply", "-f", "-", context=CLUSTER, check=False,
                             input=json.dumps(replication(kind, name, {field: value})))
        assert res.returncode == 1, (field, value, res.stdout)
        assert f'{kind} "{name}" is invalid' in res.stderr and path in res.stderr, (field, value, res.stderr)
    names = [o["metadata"]["name"] for o in server.get(KINDS[kind], "-n", NAMESPACE, context=CLUSTER)["items"]]
    assert not [n for n in names if "-wrong-" in n]


def test_the_refusal_is_a_422_status_naming_each_field(server: ApiServer) -> None:
    wrong = {field: value for field, value, _ in WRONG[:3]} | {"moverPodLabels": {"team": 7}}
    body = replication("ReplicationSource", "raw-wrong", wrong)
    url = f"{server.cluster_url(CLUSTER)}/apis/volsync.backube/v1alpha1/namespaces/{NAMESPACE}/replicationsources"
    with httpx.Client(trust_env=False, timeout=30) as http:
        got = http.post(url, json=body)
    assert got.status_code == 422, got.text
    status = got.json()
    assert status["kind"] == "Status" and status["reason"] == "Invalid" and status["code"] == 422
    fields = {cause["field"] for cause in status["details"]["causes"]}
    assert {"spec.rsync.moverServiceAccount", "spec.rsync.moverSecurityContext.runAsNonRoot",
            "spec.rsync.moverPodLabels[team]"} <= fields, status
