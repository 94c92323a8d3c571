"""Legacy ServiceAccount token Secrets (legacytokens.py, satokens.py) on a real server with real kubectl:
the token controller fills a `kubernetes.io/service-account-token` Secret (token, ca.crt, namespace, uid
annotation), the token authenticates (`kubectl auth whoami --token`) with upstream's legacy claims, and
stops (401) once its Secret is deleted or changed, or its ServiceAccount is deleted (which deletes the
Secret); a Secret for a missing ServiceAccount is deleted; a TokenRequest bound to such a Secret works
and dies with it; the ServiceAccount name annotation is required (422); a restart reconciles what a
kill interrupted (in-process, on the same SQLite store)."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from identitykit import Identity

from apiserver.cluster import Cluster
from apiserver.satokens import subject
from apiserver.store import Change, Store

CLUSTER = "cluster1"
TOKEN_TYPE = "kubernetes.io/service-account-token"
NAME_NOTE, UID_NOTE = "kubernetes.io/service-account.name", "kubernetes.io/service-account.uid"
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    """Poll `probe` until it answers something truthy (no fixed sleeps: a short poll interval)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def kube(identity: Identity) -> Identity:
    """The identity server, with ServiceAccounts allowed SelfSubjectReview whatever the default roles are."""
    grant = [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
              "metadata": {"name": "legacy-test-whoami"},
              "rules": [{"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"],
                         "verbs": ["create"]}]},
             {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
              "metadata": {"name": "legacy-test-whoami"},
              "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "legacy-test-whoami"},
              "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                            "name": "system:serviceaccounts"}]}]
    identity.server.kubectl("apply", "-f", "-", context=CLUSTER,
                            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": grant}))
    return identity


def kubectl(kube: Identity, *args: str, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
    res: subprocess.CompletedProcess[str] = kube.server.kubectl(*args, context=CLUSTER, check=check, input=input)
    return res


def token_secret(namespace: str, name: str, account: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Secret", "type": TOKEN_TYPE,
                       "metadata": {"name": name, "namespace": namespace, "annotations": {NAME_NOTE: account}}})


def secret(kube: Identity, namespace: str, name: str) -> dict[str, Any] | None:
    res = kubectl(kube, "get", "secret", name, "-n", namespace, "-o", "json", check=False)
    if res.returncode != 0:
        assert "NotFound" in res.stderr, res.stderr
        return None
    found: dict[str, Any] = json.loads(res.stdout)
    return found


def filled(kube: Identity, namespace: str, name: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        found = secret(kube, namespace, name)
        return found if found and {"token", "ca.crt", "namespace"} <= set(found.get("data") or {}) else None
    return eventually(probe, f"the token controller to fill {namespace}/{name}")


def whoami_status(kube: Identity, token: str) -> int:
    with kube.http() as http:
        return http.post(kube.listener(CLUSTER) + "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                         headers={"Authorization": f"Bearer {token}"},
                         json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).status_code


def namespace(kube: Identity, name: str) -> str:
    kubectl(kube, "create", "namespace", name)
    return name


def decoded(data: dict[str, str], key: str) -> str:
    return base64.b64decode(data[key]).decode()


def jwt_claims(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return claims


def test_the_controller_fills_the_secret_and_its_token_authenticates_until_the_secret_goes(kube: Identity) -> None:
    ns = namespace(kube, "legacy-fill")
    kubectl(kube, "create", "serviceaccount", "bot", "-n", ns)
    uid = kube.server.get("serviceaccount", "bot", "-n", ns, context=CLUSTER)["metadata"]["uid"]
    kubectl(kube, "apply", "-f", "-", input=token_secret(ns, "bot-token", "bot"))
    found = filled(kube, ns, "bot-token")
    data = found["data"]
    assert decoded(data, "namespace") == ns
    assert decoded(data, "ca.crt") == kube.server.ca_file.read_text()
    assert found["metadata"]["annotations"][UID_NOTE] == uid
    token = decoded(data, "token")
    assert jwt_claims(token) == {
        "iss": "kubernetes/serviceaccount", "sub": f"system:serviceaccount:{ns}:bot",
        "kubernetes.io/serviceaccount/namespace": ns, "kubernetes.io/serviceaccount/secret.name": "bot-token",
        "kubernetes.io/serviceaccount/service-account.name": "bot",
        "kubernetes.io/serviceaccount/service-account.uid": uid}
    who = json.loads(kubectl(kube, "--token", token, "auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert who == {"username": f"system:serviceaccount:{ns}:bot", "uid": uid,
                   "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"]}
    assert whoami_status(kube, token) == 201
    assert kube.get("cluster2", "/api", token=token).status_code == 401  # this cluster's key only
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    status = json.loads(kubectl(kube, "create", "-f", "-", "-o", "json", input=json.dumps(review)).stdout)["status"]
    assert status["authenticated"] is True and status["user"]["username"] == f"system:serviceaccount:{ns}:bot"

    # a TokenRequest bound to the Secret works and dies with it
    bound = kubectl(kube, "create", "token", "bot", "-n", ns, "--bound-object-kind", "Secret",
                    "--bound-object-name", "bot-token").stdout.strip()
    assert jwt_claims(bound)["kubernetes.io"]["secret"]["name"] == "bot-token"
    assert whoami_status(kube, bound) == 201
    kubectl(kube, "delete", "secret", "bot-token", "-n", ns)
    assert whoami_status(kube, token) == 401
    assert whoami_status(kube, bound) == 401
    res = kubectl(kube, "--token", token, "auth", "whoami", check=False)
    assert res.returncode != 0 and "Unauthorized" in res.stderr, res.stderr


def test_a_changed_token_in_the_secret_revokes_the_old_one(kube: Identity) -> None:
    ns = namespace(kube, "legacy-change")
    kubectl(kube, "create", "serviceaccount", "bot", "-n", ns)
    kubectl(kube, "apply", "-f", "-", input=token_secret(ns, "bot-token", "bot"))
    token = decoded(filled(kube, ns, "bot-token")["data"], "token")
    assert whoami_status(kube, token) == 201
    other = base64.b64encode(b"not-the-token").decode()
    kubectl(kube, "patch", "secret", "bot-token", "-n", ns, "--type", "merge", "-p",
            json.dumps({"data": {"token": other}}))
    assert whoami_status(kube, token) == 401
    assert filled(kube, ns, "bot-token")["data"]["token"] == other  # a token present is never replaced


def test_deleting_the_service_account_deletes_its_token_secrets(kube: Identity) -> None:
    ns = namespace(kube, "legacy-sa-gone")
    kubectl(kube, "create", "serviceaccount", "bot", "-n", ns)
    kubectl(kube, "create", "serviceaccount", "keeper", "-n", ns)
    kubectl(kube, "apply", "-f", "-", input=token_secret(ns, "bot-token", "bot"))
    kubectl(kube, "apply", "-f", "-", input=token_secret(ns, "keeper-token", "keeper"))
    token = decoded(filled(kube, ns, "bot-token")["data"], "token")
    filled(kube, ns, "keeper-token")
    kubectl(kube, "delete", "serviceaccount", "bot", "-n", ns)
    eventually(lambda: secret(kube, ns, "bot-token") is None, "the token Secret of a deleted account to go")
    assert whoami_status(kube, token) == 401
    assert secret(kube, ns, "keeper-token") is not None
    kubectl(kube, "create", "serviceaccount", "bot", "-n", ns)  # same name, new uid: the old token stays dead
    assert whoami_status(kube, token) == 401


def test_a_secret_for_a_missing_account_is_deleted_and_the_annotation_is_required(kube: Identity) -> None:
    ns = namespace(kube, "legacy-orphan")
    kubectl(kube, "apply", "-f", "-", input=token_secret(ns, "ghost-token", "ghost"))
    eventually(lambda: secret(kube, ns, "ghost-token") is None, "the Secret of a missing account to be deleted")
    unnamed = json.loads(token_secret(ns, "unnamed", "x"))
    del unnamed["metadata"]["annotations"]
    res = kubectl(kube, "apply", "-f", "-", input=json.dumps(unnamed), check=False)
    assert res.returncode != 0
    assert (f'Secret "unnamed" is invalid: metadata.annotations[{NAME_NOTE}]: Required value') in res.stderr, res.stderr
    # a token Secret whose uid annotation names another incarnation of the account is deleted too
    kubectl(kube, "create", "serviceaccount", "bot", "-n", ns)
    stale = json.loads(token_secret(ns, "stale-token", "bot"))
    stale["metadata"]["annotations"][UID_NOTE] = "00000000-0000-0000-0000-000000000000"
    kubectl(kube, "apply", "-f", "-", input=json.dumps(stale))
    eventually(lambda: secret(kube, ns, "stale-token") is None, "a Secret for another uid to be deleted")


def test_a_token_not_signed_by_the_cluster_is_refused(kube: Identity) -> None:
    forged_claims = {"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:default:default"}
    body = base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).decode().rstrip("=")
    forged = f"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{body}.c2lnbmF0dXJl"
    assert whoami_status(kube, forged) == 401
    with kube.http() as http:
        res = http.get(kube.server.cluster_url(CLUSTER) + "/api", headers={"Authorization": f"Bearer {forged}"})
    assert res.status_code == 401


def test_a_restart_finishes_what_a_kill_interrupted(tmp_path: Path) -> None:
    """Objects committed without their reaction (as if killed right after the commit) are reconciled
    when the cluster starts again on the same store: a Secret filled, an orphan deleted."""
    store = Store(tmp_path / "c1.db")
    cluster = Cluster("c1", store, signing_secret=b"k" * 32)
    account = store.get("/serviceaccounts", "default", "default")
    assert account is not None
    pairs = (("kept", "default"), ("orphan", "gone"))
    raw = [json.loads(token_secret("default", name, owner)) for name, owner in pairs]
    for obj in raw:
        obj["metadata"]["uid"] = obj["metadata"]["name"] + "-uid"
    store.commit([Change("ADDED", "/secrets", obj) for obj in raw])  # the store only: no controller saw them
    assert cluster.store.get("/secrets", "default", "orphan") is not None
    store.close()
    store = Store(tmp_path / "c1.db")
    try:
        cluster = Cluster("c1", store, signing_secret=b"k" * 32)
        assert store.get("/secrets", "default", "orphan") is None
        kept = store.get("/secrets", "default", "kept")
        assert kept is not None and kept["metadata"]["annotations"][UID_NOTE] == account["metadata"]["uid"]
        token = decoded(kept["data"], "token")
        claims = cluster.tokens.claims(token)
        assert claims is not None
        assert subject(claims, store, token) == ("default", "default", account["metadata"]["uid"])
        assert subject(claims, store) is None  # a legacy token is checked against the Secret's copy
    finally:
        store.close()
