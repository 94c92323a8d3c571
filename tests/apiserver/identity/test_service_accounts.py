"""The default ServiceAccount and kube-root-ca.crt in every namespace, and the ServiceAccount
admission plugin on Pods (serviceAccountName default, 403 for a missing account, the projected
token volume and its mounts unless automount is off)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from identitykit import Identity

from apiserver.serviceaccounts import ServiceAccounts, mount_token
from apiserver.store import Change, Store

MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "image": "busybox"}], **spec}}


def _create_pod(identity: Identity, namespace: str, pod: dict[str, Any]) -> Any:
    res = identity.post("cluster1", f"/api/v1/namespaces/{namespace}/pods", pod)
    return res


def test_every_namespace_gets_the_default_account_and_the_root_ca(identity: Identity) -> None:
    server = identity.server
    server.kubectl("create", "namespace", "fresh", context="cluster1")
    account = server.get("serviceaccount", "default", "-n", "fresh", context="cluster1")
    assert account["metadata"]["namespace"] == "fresh"
    root_ca = server.get("configmap", "kube-root-ca.crt", "-n", "fresh", context="cluster1")
    assert root_ca["data"] == {"ca.crt": server.ca_file.read_text()}
    for namespace in ("default", "kube-system", "kube-public"):  # made at start
        server.get("serviceaccount", "default", "-n", namespace, context="cluster2")
        server.get("configmap", "kube-root-ca.crt", "-n", namespace, context="cluster2")


def test_a_deleted_default_account_or_changed_root_ca_comes_back(identity: Identity) -> None:
    server = identity.server
    server.kubectl("create", "namespace", "heal", context="cluster1")
    uid = server.get("serviceaccount", "default", "-n", "heal", context="cluster1")["metadata"]["uid"]
    server.kubectl("delete", "serviceaccount", "default", "-n", "heal", context="cluster1")
    again = server.get("serviceaccount", "default", "-n", "heal", context="cluster1")
    assert again["metadata"]["uid"] != uid
    server.kubectl("patch", "configmap", "kube-root-ca.crt", "-n", "heal", "--type=merge",
                   "-p", json.dumps({"data": {"ca.crt": "tampered"}}), context="cluster1")
    server.kubectl("delete", "configmap", "kube-root-ca.crt", "-n", "heal", context="cluster1")
    restored = server.get("configmap", "kube-root-ca.crt", "-n", "heal", context="cluster1")  # made at once
    assert restored["data"] == {"ca.crt": server.ca_file.read_text()}


def test_a_pod_gets_the_default_account_and_the_token_volume(identity: Identity) -> None:
    pod = _pod("web", initContainers=[{"name": "init", "image": "busybox"}])
    res = _create_pod(identity, "default", pod)
    assert res.status_code == 201, res.text
    spec = res.json()["spec"]
    assert spec["serviceAccountName"] == spec["serviceAccount"] == "default"
    [volume] = spec["volumes"]
    name = volume["name"]
    assert name.startswith("kube-api-access-") and len(name) == len("kube-api-access-") + 5
    assert volume["projected"] == {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}
    for container in (*spec["initContainers"], *spec["containers"]):
        assert container["volumeMounts"] == [{"name": name, "readOnly": True, "mountPath": MOUNT}]


def test_automount_false_on_the_pod_or_its_account_mounts_nothing(identity: Identity) -> None:
    off = _create_pod(identity, "default", _pod("quiet", automountServiceAccountToken=False)).json()["spec"]
    assert "volumes" not in off and "volumeMounts" not in off["containers"][0]
    identity.server.kubectl("create", "serviceaccount", "robot", context="cluster1")
    identity.server.kubectl("patch", "serviceaccount", "robot", "-p", '{"automountServiceAccountToken": false}',
                            context="cluster1")
    by_account = _create_pod(identity, "default", _pod("robot-pod", serviceAccountName="robot")).json()["spec"]
    assert by_account["serviceAccount"] == "robot" and "volumes" not in by_account
    pod_wins = _create_pod(identity, "default", _pod("robot-on", serviceAccountName="robot",
                                                     automountServiceAccountToken=True)).json()["spec"]
    assert pod_wins["volumes"][0]["name"].startswith("kube-api-access-")


def test_a_pod_with_a_missing_account_is_forbidden(identity: Identity) -> None:
    res = _create_pod(identity, "default", _pod("lost", serviceAccountName="ghost"))
    assert res.status_code == 403
    assert res.json()["message"] == ('pods "lost" is forbidden: error looking up service account default/ghost: '
                                     'serviceaccount "ghost" not found')
    assert identity.get("cluster1", "/api/v1/namespaces/default/pods/lost").status_code == 404


def test_an_existing_mount_at_the_token_path_is_kept() -> None:
    spec: dict[str, Any] = {"containers": [
        {"name": "own", "volumeMounts": [{"name": "mine", "mountPath": MOUNT}]}, {"name": "plain"}],
        "volumes": [{"name": "mine", "emptyDir": {}}]}
    mount_token(spec)
    assert spec["containers"][0]["volumeMounts"] == [{"name": "mine", "mountPath": MOUNT}]
    assert spec["containers"][1]["volumeMounts"][0]["mountPath"] == MOUNT
    assert [v["name"][:16] for v in spec["volumes"]] == ["mine", "kube-api-access-"]


def test_without_tls_no_token_is_mounted(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    try:
        store.commit([Change("ADDED", "/serviceaccounts", {"metadata": {"name": "default", "namespace": "x"}})])
        accounts = ServiceAccounts(store, lambda key, ns, obj: None, lambda key, ns, obj: None)
        plain: dict[str, Any] = {"metadata": {"name": "p", "namespace": "x"}, "spec": {"containers": [{}]}}
        accounts.admit_pod(plain)  # --insecure-no-auth: no CA published, no token to give
        assert plain["spec"] == {"containers": [{}], "serviceAccountName": "default", "serviceAccount": "default"}
        accounts.ca_pem = "-----BEGIN CERTIFICATE-----"
        accounts.admit_pod(plain)
        assert plain["spec"]["volumes"][0]["name"].startswith("kube-api-access-")
    finally:
        store.close()
