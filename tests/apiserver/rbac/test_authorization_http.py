"""Authorization on the wire: a real `volsync-apiserver` (authentication on, `--authorization-mode RBAC`
by default) called over HTTPS with httpx and the real kubectl: kube-apiserver's 403 bodies byte for
byte, a RoleBinding flipping a request, impersonation headers allowed and denied, the access reviews
(SelfSubjectAccessReview, SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectRulesReview),
TokenReview for valid, other-audience and deleted-account tokens, and the AlwaysAllow mode."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.apiserver import ApiServer

CLUSTER = "cluster1"
NS = "authz"
SA_USER = f"system:serviceaccount:{NS}:robot"
ISSUER = "https://kubernetes.default.svc.cluster.local"
AUTHZ = "/apis/authorization.k8s.io/v1"


@dataclass
class Api:
    server: ApiServer

    def call(self, method: str, path: str, token: str | None = None, body: Any = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        token = token if token is not None else self.server.tokens()[CLUSTER]
        context = ssl.create_default_context(cafile=str(self.server.ca_file))
        with httpx.Client(trust_env=False, verify=context, timeout=30) as http:
            return http.request(method, self.server.cluster_url(CLUSTER) + path, json=body,
                                headers=[("Authorization", f"Bearer {token}"), *(headers or {}).items()])

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> str:
        return self.server.kubectl(*args, context=CLUSTER, check=check, input=input).stdout

    def apply(self, *objs: Any) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}))

    def token(self, account: str, *args: str) -> str:
        return self.kubectl("create", "token", account, "-n", NS, *args).strip()


def _start(data_dir: Path, *extra: str) -> ApiServer:
    return ApiServer(data_dir, clusters=(CLUSTER,), auth=True, extra_args=list(extra)).start()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    server = _start(tmp_path_factory.mktemp("authz-http"))
    try:
        kit = Api(server)
        kit.kubectl("create", "namespace", NS)
        kit.kubectl("create", "serviceaccount", "robot", "-n", NS)
        kit.kubectl("create", "serviceaccount", "other", "-n", NS)
        yield kit
    finally:
        server.stop()


@pytest.fixture(scope="module")
def robot(api: Api) -> str:
    return api.token("robot")


def _status(message: str, details: dict[str, str]) -> str:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": "Forbidden", "details": details, "code": 403}
    return json.dumps(body, separators=(",", ":")) + "\n"


def _rule_grant(name: str, rules: list[dict[str, Any]], user: str = SA_USER, cluster: bool = False) -> list[Any]:
    kind = "ClusterRole" if cluster else "Role"
    meta: dict[str, Any] = {"name": name} if cluster else {"name": name, "namespace": NS}
    subject = ({"kind": "ServiceAccount", "name": user.rsplit(":", 1)[1], "namespace": NS}
               if user.startswith("system:serviceaccount:") else
               {"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"})
    return [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta, "rules": rules},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": f"{kind}Binding", "metadata": meta,
             "subjects": [subject], "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}}]


def _until(check: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_denials_are_kube_apiservers_403_bodies_byte_for_byte(api: Api, robot: str) -> None:
    cases = [
        ("/api/v1/namespaces/authz/secrets", _status(
            f'secrets is forbidden: User "{SA_USER}" cannot list resource "secrets" in API group "" in the '
            f'namespace "{NS}"', {"kind": "secrets"})),
        ("/api/v1/nodes", _status(
            f'nodes is forbidden: User "{SA_USER}" cannot list resource "nodes" in API group "" at the cluster scope',
            {"kind": "nodes"})),
        ("/api/v1/namespaces/authz/pods/p/log", _status(
            f'pods "p" is forbidden: User "{SA_USER}" cannot get resource "pods/log" in API group "" in the '
            f'namespace "{NS}"', {"name": "p", "kind": "pods"})),
        ("/apis/apps/v1/namespaces/authz/deployments/d", _status(
            f'deployments.apps "d" is forbidden: User "{SA_USER}" cannot get resource "deployments" in API group '
            f'"apps" in the namespace "{NS}"', {"name": "d", "group": "apps", "kind": "deployments"})),
    ]
    for path, body in cases:
        got = api.call("GET", path, robot)
        assert (got.status_code, got.text) == (403, body), path
    got = api.call("GET", "/foo", robot)
    expected = ('{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"forbidden: User '
                f'\\"{SA_USER}\\" cannot get path \\"/foo\\"","reason":"Forbidden","details":{{}},"code":403}}\n')
    assert (got.status_code, got.text) == (403, expected)
    assert api.call("GET", "/version", robot).status_code == 200  # system:public-info-viewer
    assert api.call("GET", "/apis", robot).status_code == 200  # system:discovery


def test_a_rolebinding_grants_the_request_and_deleting_it_takes_it_back(api: Api, robot: str) -> None:
    path = "/api/v1/namespaces/authz/configmaps"
    assert api.call("GET", path, robot).status_code == 403
    api.apply(*_rule_grant("cm-reader", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]))
    _until(lambda: api.call("GET", path, robot).status_code == 200, "the binding never granted the list")
    assert api.call("POST", path, robot, {"metadata": {"name": "x"}}).status_code == 403
    api.kubectl("delete", "rolebinding", "cm-reader", "-n", NS)
    _until(lambda: api.call("GET", path, robot).status_code == 403, "deleting the binding never revoked it")


def test_impersonation_needs_the_impersonate_verb(api: Api, robot: str) -> None:
    as_alice = {"Impersonate-User": "alice"}
    denied = api.call("GET", "/api/v1/namespaces/authz/secrets", robot, headers=as_alice)
    assert (denied.status_code, denied.text) == (403, _status(
        f'users "alice" is forbidden: User "{SA_USER}" cannot impersonate resource "users" in API group "" at the '
        "cluster scope", {"name": "alice", "kind": "users"}))
    as_sa = api.call("GET", "/api/v1/namespaces/authz/secrets", robot,
                     headers={"Impersonate-User": f"system:serviceaccount:{NS}:other"})
    assert (as_sa.status_code, as_sa.text) == (403, _status(
        f'serviceaccounts "other" is forbidden: User "{SA_USER}" cannot impersonate resource "serviceaccounts" in '
        f'API group "" in the namespace "{NS}"', {"name": "other", "kind": "serviceaccounts"}))
    api.apply(*_rule_grant("impersonate-alice", [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"],
                                                  "resourceNames": ["alice"]}], cluster=True))
    as_alice_denied = _status(f'secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in '
                              f'the namespace "{NS}"', {"kind": "secrets"})
    _until(lambda: api.call("GET", "/api/v1/namespaces/authz/secrets", robot, headers=as_alice).text == as_alice_denied,
           "impersonating alice was never allowed")
    review = api.call("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", robot, {}, headers=as_alice)
    assert review.status_code == 201 and review.json()["status"]["userInfo"] == {
        "username": "alice", "groups": ["system:authenticated"]}
    group = api.call("GET", "/version", robot, headers={**as_alice, "Impersonate-Group": "admins"})
    assert (group.status_code, group.text) == (403, _status(
        f'groups "admins" is forbidden: User "{SA_USER}" cannot impersonate resource "groups" in API group "" at the '
        "cluster scope", {"name": "admins", "kind": "groups"}))
    alone = api.call("GET", "/version", robot, headers={"Impersonate-Group": "admins"})
    assert alone.status_code == 400 and alone.json()["reason"] == "BadRequest"


def test_kubectl_as_and_as_group_impersonate_from_the_admin(api: Api) -> None:
    who = json.loads(api.kubectl("auth", "whoami", "-o", "json", "--as", f"system:serviceaccount:{NS}:other"))
    assert who["status"]["userInfo"] == {"username": f"system:serviceaccount:{NS}:other", "groups": [
        "system:serviceaccounts", f"system:serviceaccounts:{NS}", "system:authenticated"]}
    who = json.loads(api.kubectl("auth", "whoami", "-o", "json", "--as", "bob", "--as-group", "devs",
                                 "--as-group", "ops"))
    assert who["status"]["userInfo"] == {"username": "bob", "groups": ["devs", "ops", "system:authenticated"]}
    refused = api.server.kubectl("get", "secrets", "-n", NS, "--as", "bob", context=CLUSTER, check=False)
    assert refused.returncode == 1
    assert ('Error from server (Forbidden): secrets is forbidden: User "bob" cannot list resource "secrets" in API '
            f'group "" in the namespace "{NS}"') in refused.stderr


def test_access_reviews_answer_as_the_chain_decides(api: Api, robot: str) -> None:
    def can_i(*args: str, token: str | None = None) -> str:
        extra = ("--token", token) if token else ()
        return api.server.kubectl(*extra, "auth", "can-i", *args, context=CLUSTER, check=False).stdout.strip()

    assert can_i("list", "secrets", "-n", NS, token=robot) == "no"
    assert can_i("list", "secrets", "-n", NS) == "yes"  # the admin: system:masters
    api.apply(*_rule_grant("secret-getter", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                                              "resourceNames": ["s1"]}]))
    _until(lambda: can_i("get", "secrets/s1", "-n", NS, token=robot) == "yes", "can-i never saw the binding")
    assert can_i("get", "secrets/s2", "-n", NS, token=robot) == "no"
    rows = api.kubectl("--token", robot, "auth", "can-i", "--list", "-n", NS)
    assert any(line.split()[:1] == ["secrets"] and "[s1]" in line and "[get]" in line for line in rows.splitlines())
    sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
        "user": SA_USER, "groups": ["system:serviceaccounts"],
        "resourceAttributes": {"namespace": NS, "verb": "get", "resource": "secrets", "name": "s1"}}}
    answer = api.call("POST", AUTHZ + "/subjectaccessreviews", body=sar)
    assert answer.status_code == 201 and answer.json()["status"]["allowed"] is True
    assert api.call("POST", AUTHZ + "/subjectaccessreviews", robot, sar).status_code == 403
    local = {**sar, "kind": "LocalSubjectAccessReview"}
    assert api.call("POST", AUTHZ + f"/namespaces/{NS}/localsubjectaccessreviews", body=local).json()[
        "status"]["allowed"] is True
    elsewhere = api.call("POST", AUTHZ + "/namespaces/default/localsubjectaccessreviews", body=local)
    assert elsewhere.status_code == 422 and "must match metadata.namespace" in elsewhere.json()["message"]
    moved = {**local, "metadata": {"namespace": "default"}}
    assert api.call("POST", AUTHZ + f"/namespaces/{NS}/localsubjectaccessreviews", body=moved).status_code == 400
    assert api.call("GET", AUTHZ + "/selfsubjectaccessreviews").status_code == 405
    assert api.call("POST", AUTHZ + "/selfsubjectrulesreviews", robot, {"spec": {}}).status_code == 400
    resources = api.kubectl("api-resources", "--api-group", "authorization.k8s.io", "-o", "name").split()
    assert set(resources) == {"localsubjectaccessreviews.authorization.k8s.io",
                              "selfsubjectaccessreviews.authorization.k8s.io",
                              "selfsubjectrulesreviews.authorization.k8s.io",
                              "subjectaccessreviews.authorization.k8s.io"}
    assert "tokenreviews" in api.kubectl("api-resources", "--api-group", "authentication.k8s.io", "-o", "name")


def _token_review(api: Api, token: str, audiences: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"token": token, **({"audiences": audiences} if audiences else {})}
    got = api.call("POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                   body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec})
    assert got.status_code == 201, got.text
    status: dict[str, Any] = got.json()["status"]
    return status


def test_token_review(api: Api, robot: str) -> None:
    valid = _token_review(api, robot)
    assert valid["authenticated"] is True and valid["audiences"] == [ISSUER]
    assert valid["user"]["username"] == SA_USER and "system:serviceaccounts" in valid["user"]["groups"]
    foreign = api.token("robot", "--audience", "vault")
    assert "authenticated" not in _token_review(api, foreign)
    for_vault = _token_review(api, foreign, ["vault", "other"])
    assert for_vault["authenticated"] is True and for_vault["audiences"] == ["vault"]
    assert "authenticated" not in _token_review(api, robot, ["vault"])
    api.kubectl("create", "serviceaccount", "doomed", "-n", NS)
    doomed = api.token("doomed")
    assert _token_review(api, doomed)["authenticated"] is True
    api.kubectl("delete", "serviceaccount", "doomed", "-n", NS)
    assert "authenticated" not in _token_review(api, doomed)
    assert "authenticated" not in _token_review(api, "not-a-token")
    refused = api.call("POST", "/apis/authentication.k8s.io/v1/tokenreviews", robot, {"spec": {"token": robot}})
    assert refused.status_code == 403  # needs system:auth-delegator


def test_always_allow_mode_lets_any_authenticated_caller_do_anything(tmp_path: Path) -> None:
    server = _start(tmp_path / "api", "--authorization-mode", "AlwaysAllow")
    try:
        kit = Api(server)
        kit.kubectl("create", "namespace", NS)
        kit.kubectl("create", "serviceaccount", "robot", "-n", NS)
        token = kit.token("robot")
        assert kit.call("GET", "/api/v1/namespaces/authz/secrets", token).status_code == 200
        assert kit.call("GET", "/api/v1/nodes", token).status_code == 200
    finally:
        server.stop()


def _upgrade(api: Api, path: str, token: str) -> tuple[int, Any]:
    """A raw WebSocket upgrade (what kubectl exec sends first): the HTTP status and the JSON body."""
    host, port = api.server.url.removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(api.server.ca_file))
    request = (f"GET /clusters/{CLUSTER}{path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Protocol: v5.channel.k8s.io\r\nAuthorization: Bearer {token}\r\n\r\n")
    with socket.create_connection((host, int(port)), timeout=30) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def test_websocket_upgrades_and_kubectl_exec_are_authorized(api: Api, robot: str) -> None:
    path = f"/api/v1/namespaces/{NS}/pods/p/exec?command=true&stdout=1"
    code, body = _upgrade(api, path, robot)
    assert (code, body["reason"]) == (403, "Forbidden")
    assert body["message"] == (f'pods "p" is forbidden: User "{SA_USER}" cannot create resource "pods/exec" in API '
                               f'group "" in the namespace "{NS}"')
    api.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": NS},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
              *_rule_grant("pod-getter", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]))
    _until(lambda: api.call("GET", f"/api/v1/namespaces/{NS}/pods/p", robot).status_code == 200, "get pods granted")
    refused = api.server.kubectl("--token", robot, "exec", "p", "-n", NS, "--", "true", context=CLUSTER, check=False)
    assert refused.returncode != 0
    assert f'cannot create resource "pods/exec" in API group "" in the namespace "{NS}"' in refused.stderr
