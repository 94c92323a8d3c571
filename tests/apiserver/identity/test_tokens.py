"""ServiceAccount tokens: TokenRequest (`kubectl create token`), the JWT's claims, authentication as
the ServiceAccount (on the per-cluster listener and under /clusters/<name>), and every way a token
stops working: expiry, another cluster, a deleted and re-created account, a deleted bound object."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import kubernetes
from identitykit import Identity

from apiserver.satokens import ISSUER, Bound, TokenIssuer, subject
from apiserver.store import Change, Store

SA_GROUPS = ["system:serviceaccounts", "system:serviceaccounts:{ns}", "system:authenticated"]


def _claims(token: str) -> dict[str, Any]:
    parts = token.split(".")
    assert len(parts) == 3
    header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    assert header["alg"] == "HS256" and header["typ"] == "JWT"
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    return claims


def _whoami(identity: Identity, cluster: str, token: str, via_listener: bool = True) -> httpx.Response:
    base = identity.listener(cluster) if via_listener else identity.server.cluster_url(cluster)
    with identity.http() as http:
        return http.post(base + "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                         headers={"Authorization": f"Bearer {token}"},
                         json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})


def _grant_configmap_list(identity: Identity, namespace: str) -> None:
    """A Role and RoleBinding letting `namespace`'s default ServiceAccount list its ConfigMaps."""
    server = identity.server
    server.kubectl("create", "role", "configmap-lister", "--verb=list", "--resource=configmaps", "-n", namespace,
                   context="cluster1")
    server.kubectl("create", "rolebinding", "configmap-lister", "--role=configmap-lister",
                   f"--serviceaccount={namespace}:default", "-n", namespace, context="cluster1")


def test_kubectl_create_token_gives_a_jwt_that_authenticates_as_the_account(identity: Identity) -> None:
    token = identity.server.kubectl("create", "token", "default", context="cluster1").stdout.strip()
    claims = _claims(token)
    account = identity.server.get("serviceaccount", "default", context="cluster1")
    assert claims["iss"] == ISSUER and claims["aud"] == [ISSUER]
    assert claims["sub"] == "system:serviceaccount:default:default"
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] == claims["iat"]
    assert claims["kubernetes.io"] == {"namespace": "default", "serviceaccount": {
        "name": "default", "uid": account["metadata"]["uid"]}}
    for via_listener in (True, False):
        review = _whoami(identity, "cluster1", token, via_listener)
        assert review.status_code == 201, review.text
        assert review.json()["status"]["userInfo"] == {
            "username": "system:serviceaccount:default:default", "uid": account["metadata"]["uid"],
            "groups": [g.format(ns="default") for g in SA_GROUPS],
            "extra": {"authentication.kubernetes.io/credential-id": [f"JTI={claims['jti']}"]}}  # as kube 1.32
    assert identity.get("cluster1", "/api/v1/namespaces/default/configmaps", token=token).status_code == 403
    _grant_configmap_list(identity, "default")  # RBAC: a ServiceAccount reads what a binding grants it
    assert identity.get("cluster1", "/api/v1/namespaces/default/configmaps", token=token).status_code == 200
    whoami = identity.server.kubectl("--token", token, "auth", "whoami", "-o", "json", context="cluster1")
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == "system:serviceaccount:default:default"


def test_a_token_of_one_cluster_is_refused_by_the_other(identity: Identity) -> None:
    token = identity.server.kubectl("create", "token", "default", context="cluster1").stdout.strip()
    assert _whoami(identity, "cluster2", token).status_code == 401
    assert _whoami(identity, "cluster2", token, via_listener=False).status_code == 401


def test_a_token_of_a_deleted_and_recreated_account_is_refused(identity: Identity) -> None:
    server = identity.server
    server.kubectl("create", "serviceaccount", "bot", context="cluster1")
    token = server.kubectl("create", "token", "bot", "--duration=10m", context="cluster1").stdout.strip()
    assert _claims(token)["exp"] - _claims(token)["iat"] == 600
    assert _whoami(identity, "cluster1", token).status_code == 201
    server.kubectl("delete", "serviceaccount", "bot", context="cluster1")
    assert _whoami(identity, "cluster1", token).status_code == 401
    server.kubectl("create", "serviceaccount", "bot", context="cluster1")  # same name, new uid
    assert _whoami(identity, "cluster1", token).status_code == 401


def test_token_request_validation(identity: Identity) -> None:
    path = "/api/v1/namespaces/default/serviceaccounts/{name}/token"
    short = identity.post("cluster1", path.format(name="default"), {"spec": {"expirationSeconds": 599}})
    assert short.status_code == 422
    assert short.json()["message"] == ('TokenRequest.authentication.k8s.io "default" is invalid: '
                                       "spec.expirationSeconds: Invalid value: 599: may not specify a duration "
                                       "less than 10 minutes")
    assert identity.post("cluster1", path.format(name="nobody"), {"spec": {}}).status_code == 404
    missing_pod = identity.post("cluster1", path.format(name="default"),
                                {"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "none"}}})
    assert missing_pod.status_code == 404
    odd_kind = identity.post("cluster1", path.format(name="default"),
                             {"spec": {"boundObjectRef": {"kind": "ConfigMap", "apiVersion": "v1", "name": "x"}}})
    assert odd_kind.status_code == 400
    other_audience = identity.post("cluster1", path.format(name="default"), {"spec": {"audiences": ["vault"]}})
    assert other_audience.status_code == 201
    assert _whoami(identity, "cluster1", other_audience.json()["status"]["token"]).status_code == 401


def test_a_pod_bound_token_is_extended_and_dies_with_its_pod(identity: Identity) -> None:
    server = identity.server
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bound"},
           "spec": {"containers": [{"name": "main", "image": "busybox"}]}}
    uid = identity.post("cluster1", "/api/v1/namespaces/default/pods", pod).json()["metadata"]["uid"]
    res = identity.post("cluster1", "/api/v1/namespaces/default/serviceaccounts/default/token",
                        {"spec": {"expirationSeconds": 3607,
                                  "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "bound", "uid": uid}}})
    assert res.status_code == 201, res.text
    body = res.json()
    claims = _claims(body["status"]["token"])
    assert claims["kubernetes.io"]["pod"] == {"name": "bound", "uid": uid}
    assert claims["exp"] - claims["iat"] == 365 * 24 * 3600  # as kube-apiserver extends the kubelet's tokens
    assert claims["kubernetes.io"]["warnafter"] == claims["iat"] + 3607
    expires = time.mktime(time.strptime(body["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert abs(expires - (claims["iat"] + 3607)) <= 1
    assert _whoami(identity, "cluster1", body["status"]["token"]).status_code == 201
    server.kubectl("delete", "pod", "bound", "--grace-period=0", "--force", context="cluster1")
    assert _whoami(identity, "cluster1", body["status"]["token"]).status_code == 401


def test_the_official_client_in_cluster_config_lists_its_namespace(identity: Identity, tmp_path: Path) -> None:
    """What a Pod's `load_incluster_config()` does, with the files the kubelet would project."""
    created = identity.post("cluster1", "/api/v1/namespaces", {"metadata": {"name": "incluster"}})
    assert created.status_code == 201
    token = identity.server.kubectl("create", "token", "default", "-n", "incluster", context="cluster1").stdout
    _grant_configmap_list(identity, "incluster")
    root_ca = identity.get("cluster1", "/api/v1/namespaces/incluster/configmaps/kube-root-ca.crt").json()
    (tmp_path / "token").write_text(token.strip())
    (tmp_path / "ca.crt").write_text(root_ca["data"]["ca.crt"])
    environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(identity.ports["cluster1"])}
    config = kubernetes.client.Configuration()
    loader = kubernetes.config.incluster_config.InClusterConfigLoader(
        token_filename=str(tmp_path / "token"), cert_filename=str(tmp_path / "ca.crt"), environ=environ)
    loader.load_and_set(config)
    with kubernetes.client.ApiClient(config) as client:
        names = [c.metadata.name for c in kubernetes.client.CoreV1Api(client).list_namespaced_config_map(
            "incluster").items]
    assert names == ["kube-root-ca.crt"]


def test_the_verifier_honours_expiry_audience_signature_and_cluster() -> None:
    secret = b"k" * 32
    issuer = TokenIssuer(secret, "cluster1")
    account = {"metadata": {"name": "default", "namespace": "default", "uid": "u1"}}
    token = issuer.mint(account, [ISSUER], 600, now=1_000_000)
    assert issuer.claims(token, now=1_000_000) is not None
    assert issuer.claims(token, now=1_000_599) is not None
    assert issuer.claims(token, now=1_000_600) is None  # exp is exclusive
    assert issuer.claims(token, now=999_999) is None  # before nbf
    assert TokenIssuer(secret, "cluster2").claims(token, now=1_000_000) is None
    assert TokenIssuer(b"x" * 32, "cluster1").claims(token, now=1_000_000) is None
    head, body, sig = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged["exp"] += 10_000
    forged_body = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    assert issuer.claims(f"{head}.{forged_body}.{sig}", now=1_000_700) is None
    assert issuer.claims(issuer.mint(account, ["vault"], 600, now=1_000_000), now=1_000_000) is None
    for garbage in ("", "a.b", "a.b.c", "!!.??.**", token + "x"):
        assert issuer.claims(garbage, now=1_000_000) is None


def test_a_bad_jwt_shaped_header_is_401_not_500(identity: Identity) -> None:
    for token in ("a.b.c", "eyJhbGciOiJub25lIn0.e30.", "\u00e9.\u00e9.\u00e9"):
        with identity.http() as http:
            res = http.get(identity.listener("cluster1") + "/api/v1/namespaces",
                           headers={"Authorization": f"Bearer {token}".encode()})
        assert res.status_code == 401, token


def test_a_token_bound_to_a_terminating_pod_works_until_a_minute_after_its_deletion_time(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    try:
        account = {"metadata": {"name": "default", "namespace": "ns", "uid": "sa-uid"}}
        store.commit([Change("ADDED", "/serviceaccounts", account)])
        issuer = TokenIssuer(b"k" * 32, "c1")
        token = issuer.mint(account, [ISSUER], 600, Bound("Pod", "p", "pod-uid"))
        claims = issuer.claims(token)
        assert claims is not None

        def pod_deleted(seconds_ago: int) -> tuple[str, str, str] | None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds_ago))
            pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "pod-uid", "deletionTimestamp": stamp}}
            store.commit([Change("MODIFIED" if store.get("/pods", "ns", "p") else "ADDED", "/pods", pod)])
            return subject(claims, store)

        assert pod_deleted(-30) == ("ns", "default", "sa-uid")  # graceful deletion under way
        assert pod_deleted(30) == ("ns", "default", "sa-uid")
        assert pod_deleted(120) is None
    finally:
        store.close()


def test_discovery_lists_the_token_subresource_and_only_post_is_served(identity: Identity) -> None:
    resources = identity.get("cluster1", "/api/v1").json()["resources"]
    token = next(r for r in resources if r["name"] == "serviceaccounts/token")
    assert (token["kind"], token["group"], token["verbs"]) == ("TokenRequest", "authentication.k8s.io", ["create"])
    assert identity.get("cluster1", "/api/v1/namespaces/default/serviceaccounts/default/token").status_code == 405
