"""Issue 9's acceptance with the real kubectl 1.32 (its output is the spec): ServiceAccount tokens
(`kubectl create token`, legacy token Secrets, TokenReview), `kubectl auth whoami`, `kubectl auth can-i`
(users by impersonation, ServiceAccounts by impersonation and by their own token, `--list`,
subresources, non-resource URLs, two namespaces), a RoleBinding flipping both the answer and the real
request, escalation prevention (`bind`, `escalate`), the tokens kube-apiserver refuses (401), and the
default roles. One server serves the module; every test works in its own two namespaces."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from rbackit import Kube, forbidden, rbac_server, role, rule, sa_groups, sa_user
from support.waiting import eventually

from apiserver.satokens import ISSUER, KEY_FILE, TokenIssuer

pytestmark = [pytest.mark.kubectl, pytest.mark.timeout(180)]

RBAC = "rbac.authorization.k8s.io"
LOGGED_OUT = "You must be logged in to the server"
ESCALATION = "is attempting to grant RBAC permissions not currently held:"
BASIC_RULES = {  # what `can-i --list` shows a user with no grants (system:basic-user, discovery, public-info)
    ("selfsubjectreviews.authentication.k8s.io", "[]", "[]", "[create]"),
    ("selfsubjectaccessreviews.authorization.k8s.io", "[]", "[]", "[create]"),
    ("selfsubjectrulesreviews.authorization.k8s.io", "[]", "[]", "[create]"),
    *{("", f"[{url}]", "[]", "[get]") for url in (
        "/api/*", "/api", "/apis/*", "/apis", "/healthz", "/livez", "/openapi/*", "/openapi", "/readyz",
        "/version/", "/version")},
}
ACCOUNT_RULES = BASIC_RULES | {  # and every ServiceAccount: system:service-account-issuer-discovery
    ("", f"[{url}]", "[]", "[get]") for url in (
        "/.well-known/openid-configuration", "/.well-known/openid-configuration/", "/openid/v1/jwks",
        "/openid/v1/jwks/")}


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    server = rbac_server(tmp_path_factory.mktemp("rbac")).start()
    try:
        yield Kube(server)
    finally:
        server.stop()


@pytest.fixture
def ns(kube: Kube) -> Iterator[tuple[str, str]]:
    names = (f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}")
    for name in names:
        kube.ok("create", "namespace", name)
    yield names
    for name in names:
        kube.run("delete", "namespace", name, "--wait=false")


def claims(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    out: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return out


def account(kube: Kube, namespace: str, name: str) -> tuple[str, str]:
    """Create a ServiceAccount; (its user name, a token of it)."""
    kube.ok("create", "serviceaccount", name, "-n", namespace)
    return sa_user(namespace, name), kube.token(namespace, name)


def refused(kube: Kube, token: str) -> None:
    """kube-apiserver's answer to a token it does not accept: 401, and kubectl's message."""
    assert kube.http_status("/api", token) == 401
    res = kube.run("auth", "whoami", token=token)
    assert res.returncode == 1 and LOGGED_OUT in res.stderr, res.stderr


# -- tokens and whoami --------------------------------------------------------------------------
def test_admin_whoami(kube: Kube) -> None:
    who = kube.whoami()  # the kubeconfig's user: `<cluster>-admin` of the static token file
    assert (who["Username"], who["Groups"]) == ("cluster1-admin", "[system:masters system:authenticated]")


def test_create_token_with_duration_and_audience_and_whoami(kube: Kube, ns: tuple[str, str]) -> None:
    a, _ = ns
    kube.ok("create", "serviceaccount", "bot", "-n", a)
    token = kube.token(a, "bot", "--duration", "15m")
    jwt = claims(token)
    assert jwt["exp"] - jwt["iat"] == 900 and jwt["aud"] == [ISSUER] and jwt["sub"] == sa_user(a, "bot")
    who = kube.whoami(token)
    uid = kube.json("get", "serviceaccount", "bot", "-n", a)["metadata"]["uid"]
    assert (who["Username"], who["UID"], who["Groups"]) == (sa_user(a, "bot"), uid, sa_groups(a))
    assert json.loads(kube.ok("auth", "whoami", "-o", "json", token=token))["status"]["userInfo"]["groups"] == [
        "system:serviceaccounts", f"system:serviceaccounts:{a}", "system:authenticated"]
    assert claims(kube.token(a, "bot", "--audience", "other"))["aud"] == ["other"]


def test_whoami_of_a_pod_bound_token_shows_kube_132_extras(kube: Kube, ns: tuple[str, str]) -> None:
    a, _ = ns
    kube.ok("create", "serviceaccount", "bot", "-n", a)
    kube.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": a},
                "spec": {"serviceAccountName": "bot", "containers": [{"name": "c", "image": "busybox"}]}})
    token = kube.token(a, "bot", "--bound-object-kind", "Pod", "--bound-object-name", "p")
    jwt = claims(token)
    pod_uid = kube.json("get", "pod", "p", "-n", a)["metadata"]["uid"]
    assert jwt["kubernetes.io"]["pod"] == {"name": "p", "uid": pod_uid}
    who = kube.whoami(token)
    assert who["Username"] == sa_user(a, "bot")
    assert who["Extra: authentication.kubernetes.io/credential-id"] == f"[JTI={jwt['jti']}]"
    assert who["Extra: authentication.kubernetes.io/pod-name"] == "[p]"
    assert who["Extra: authentication.kubernetes.io/pod-uid"] == f"[{pod_uid}]"


def test_tokens_kube_apiserver_refuses(kube: Kube, ns: tuple[str, str]) -> None:
    a, _ = ns
    kube.ok("create", "serviceaccount", "bot", "-n", a)
    sa = kube.json("get", "serviceaccount", "bot", "-n", a)
    issuer = TokenIssuer((kube.server.data_dir / KEY_FILE).read_bytes(), "cluster1")
    assert kube.whoami(issuer.mint(sa, [ISSUER], 600))["Username"] == sa_user(a, "bot")  # the key is right
    refused(kube, issuer.mint(sa, [ISSUER], 600, now=time.time() - 601))  # expired
    refused(kube, kube.token(a, "bot", "--audience", "other"))
    kube.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": a},
                "spec": {"serviceAccountName": "bot", "containers": [{"name": "c", "image": "busybox"}]}})
    bound = kube.token(a, "bot", "--bound-object-kind", "Pod", "--bound-object-name", "p")
    assert kube.whoami(bound)["Username"] == sa_user(a, "bot")
    kube.ok("delete", "pod", "p", "-n", a, "--grace-period=0", "--force")
    refused(kube, bound)
    plain = kube.token(a, "bot")
    assert kube.http_status("/api", plain) == 200
    kube.ok("delete", "serviceaccount", "bot", "-n", a)
    refused(kube, plain)


def test_legacy_token_secret_is_filled_and_dies_with_it(kube: Kube, ns: tuple[str, str]) -> None:
    a, _ = ns
    kube.ok("create", "serviceaccount", "bot", "-n", a)
    kube.apply({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                "metadata": {"name": "bot-token", "namespace": a,
                             "annotations": {"kubernetes.io/service-account.name": "bot"}}})

    def filled() -> dict[str, str]:
        data: dict[str, str] = kube.json("get", "secret", "bot-token", "-n", a).get("data") or {}
        return data if {"token", "ca.crt", "namespace"} <= set(data) else {}

    data = eventually(filled, timeout=20, what="the token controller fills the Secret")
    assert base64.b64decode(data["namespace"]).decode() == a
    token = base64.b64decode(data["token"]).decode()
    assert kube.whoami(token)["Username"] == sa_user(a, "bot")
    kube.ok("delete", "secret", "bot-token", "-n", a)
    refused(kube, token)


def test_token_review(kube: Kube, ns: tuple[str, str]) -> None:
    a, _ = ns
    user, token = account(kube, a, "bot")

    def review(presented: str) -> dict[str, Any]:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": presented}}
        status: dict[str, Any] = json.loads(kube.ok("create", "-f", "-", "-o", "json", input=json.dumps(body)))[
            "status"]
        return status

    good = review(token)
    assert good["authenticated"] is True and good["user"]["username"] == user
    assert good["user"]["groups"] == ["system:serviceaccounts", f"system:serviceaccounts:{a}", "system:authenticated"]
    assert good["audiences"] == [ISSUER]
    assert not review(token[:-4] + "AAAA").get("authenticated")


# -- can-i --------------------------------------------------------------------------------------
def test_can_i_matrix_for_users_across_namespaces(kube: Kube, ns: tuple[str, str]) -> None:
    a, b = ns
    carol = f"carol-{a}"
    kube.apply(role(a, "cm-reader", [rule(["get", "list"], ["configmaps"])]))
    kube.ok("create", "rolebinding", "cm-readers", "-n", a, "--role", "cm-reader", "--user", "alice", "--group", "devs")
    kube.ok("create", "clusterrolebinding", carol, "--clusterrole", "view", "--user", carol)
    try:
        matrix: list[tuple[tuple[str, ...], str]] = [
            (("list", "configmaps", "-n", a, "--as", "alice"), "yes"),
            (("get", "configmaps/some", "-n", a, "--as", "alice"), "yes"),
            (("watch", "configmaps", "-n", a, "--as", "alice"), "no"),
            (("create", "configmaps", "-n", a, "--as", "alice"), "no"),
            (("list", "configmaps", "-n", b, "--as", "alice"), "no"),
            (("list", "configmaps", "--all-namespaces", "--as", "alice"), "no"),
            (("list", "configmaps", "-n", a, "--as", "bob"), "no"),
            (("list", "configmaps", "-n", a, "--as", "bob", "--as-group", "devs"), "yes"),
            (("list", "secrets", "-n", a, "--as", "bob", "--as-group", "devs"), "no"),
            (("list", "configmaps", "--all-namespaces", "--as", carol), "yes"),
            (("watch", "pods", "-n", b, "--as", carol), "yes"),
            (("get", "secrets", "-n", b, "--as", carol), "no"),
            (("get", "/version", "--as", "bob"), "yes"),
            (("get", "/healthz", "--as", "bob"), "yes"),
            (("get", "/metrics", "--as", "bob"), "no"),
            (("delete", "secrets", "--all-namespaces"), "yes"),  # the admin: system:masters
        ]
        answers = {args: kube.can_i(*args) for args, _ in matrix}
        assert answers == {args: (want, 0 if want == "yes" else 1) for args, want in matrix}
    finally:
        kube.run("delete", "clusterrolebinding", carol)


def test_subject_access_review_as_the_admin(kube: Kube, ns: tuple[str, str]) -> None:
    a, b = ns
    kube.apply(role(a, "cm-reader", [rule(["list"], ["configmaps"])]))
    kube.ok("create", "rolebinding", "cm-readers", "-n", a, "--role", "cm-reader", "--user", "dave")

    def allowed(namespace: str) -> Any:
        sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
               "spec": {"user": "dave", "resourceAttributes": {"namespace": namespace, "verb": "list",
                                                               "resource": "configmaps"}}}
        return json.loads(kube.ok("create", "-f", "-", "-o", "json", input=json.dumps(sar)))["status"]["allowed"]

    assert allowed(a) is True and allowed(b) is False


def test_can_i_for_service_accounts_by_impersonation_and_own_token(kube: Kube, ns: tuple[str, str]) -> None:
    a, b = ns
    user, token = account(kube, a, "bot")
    kube.apply(role(a, "log-reader", [rule(["get"], ["pods/log"])]))
    kube.ok("create", "rolebinding", "bot-logs", "-n", a, "--role", "log-reader", "--serviceaccount", f"{a}:bot")
    kube.ok("create", "rolebinding", "a-accounts-view", "-n", b, "--clusterrole", "view",
            "--group", f"system:serviceaccounts:{a}")
    matrix: list[tuple[tuple[str, ...], str]] = [
        (("get", "pods", "--subresource", "log", "-n", a), "yes"),
        (("get", "pods", "-n", a), "no"),
        (("get", "pods", "--subresource", "log", "-n", b), "yes"),  # view holds pods/log
        (("list", "pods", "-n", b), "yes"),  # by the group system:serviceaccounts:<a>
        (("list", "secrets", "-n", b), "no"),
        (("create", "serviceaccounts", "--subresource", "token", "-n", a), "no"),
        (("list", "pods", "--all-namespaces"), "no"),
        (("get", "/version"), "yes"),
    ]
    want = {args: (answer, 0 if answer == "yes" else 1) for args, answer in matrix}
    assert {args: kube.can_i(*args, "--as", user) for args, _ in matrix} == want
    assert {args: kube.can_i(*args, token=token) for args, _ in matrix} == want
    other = sa_user(a, "other")  # impersonating an account gives it its groups, as kube-apiserver does
    assert kube.can_i("list", "pods", "-n", b, "--as", other) == ("yes", 0)
    assert kube.can_i("get", "pods", "--subresource", "log", "-n", a, "--as", other) == ("no", 1)


def test_a_rolebinding_flips_can_i_and_the_request(kube: Kube, ns: tuple[str, str]) -> None:
    a, b = ns
    user, token = account(kube, a, "bot")

    def state(namespace: str) -> tuple[tuple[str, int], int, str]:
        res = kube.run("get", "secrets", "-n", namespace, token=token)
        return kube.can_i("list", "secrets", "-n", namespace, token=token), res.returncode, res.stderr.strip()

    denied = (("no", 1), 1, forbidden(user, "list", "secrets", a))
    assert state(a) == denied
    kube.apply(role(a, "secret-reader", [rule(["get", "list"], ["secrets"])]))
    kube.ok("create", "rolebinding", "read-secrets", "-n", a, "--role", "secret-reader", "--serviceaccount",
            f"{a}:bot")
    allowed = (("yes", 0), 0, f"No resources found in {a} namespace.")
    assert eventually(lambda: state(a) == allowed, timeout=10, what="the grant takes effect")
    assert state(b) == (("no", 1), 1, forbidden(user, "list", "secrets", b))
    res = kube.run("get", "namespaces", token=token)
    assert res.returncode == 1 and res.stderr.strip() == forbidden(user, "list", "namespaces", "")
    kube.ok("delete", "rolebinding", "read-secrets", "-n", a)
    assert eventually(lambda: state(a) == denied, timeout=10, what="the removal takes effect")


def test_can_i_list_with_and_without_grants(kube: Kube, ns: tuple[str, str]) -> None:
    a, b = ns
    plain = f"plain-{a}"
    assert kube.can_i_list("--as", plain) == BASIC_RULES
    assert kube.can_i_list("--as", plain, "-n", b) == BASIC_RULES
    user, token = account(kube, a, "bot")
    assert kube.can_i_list("-n", a, token=token) == ACCOUNT_RULES
    kube.apply(role(a, "mixed", [rule(["get", "list"], ["configmaps"]), rule(["get"], ["secrets"], names=["one"]),
                                 rule(["update"], ["deployments/scale"], group="apps")]))
    kube.ok("create", "rolebinding", "mixed", "-n", a, "--role", "mixed", "--serviceaccount", f"{a}:bot")
    granted = {("configmaps", "[]", "[]", "[get list]"), ("secrets", "[]", "[one]", "[get]"),
               ("deployments.apps/scale", "[]", "[]", "[update]")}
    assert eventually(lambda: kube.can_i_list("-n", a, token=token) == ACCOUNT_RULES | granted, timeout=10)
    assert kube.can_i_list("-n", a, "--as", user) == ACCOUNT_RULES | granted
    assert kube.can_i_list("-n", b, token=token) == ACCOUNT_RULES
    assert kube.can_i("get", "secrets/one", "-n", a, token=token) == ("yes", 0)
    assert kube.can_i("get", "secrets/two", "-n", a, token=token) == ("no", 1)


def test_impersonation_needs_the_impersonate_verb(kube: Kube, ns: tuple[str, str]) -> None:
    a, _ = ns
    user, token = account(kube, a, "imp")

    def denied(kind: str, name: str) -> str:
        return (f'Error from server (Forbidden): {kind} "{name}" is forbidden: User "{user}" cannot impersonate '
                f'resource "{kind}" in API group "" at the cluster scope')

    res = kube.run("get", "configmaps", "-n", a, "--as", "alice", token=token)
    assert (res.returncode, res.stderr.strip()) == (1, denied("users", "alice"))
    name = f"impersonate-alice-{a}"
    kube.ok("create", "clusterrole", name, "--verb", "impersonate", "--resource", "users", "--resource-name", "alice")
    try:
        kube.ok("create", "clusterrolebinding", name, "--clusterrole", name, "--serviceaccount", f"{a}:imp")
        eventually(lambda: kube.run("auth", "whoami", "--as", "alice", token=token).returncode == 0, timeout=10)
        as_alice = json.loads(kube.ok("auth", "whoami", "--as", "alice", "-o", "json", token=token))
        assert as_alice["status"]["userInfo"] == {"username": "alice", "groups": ["system:authenticated"]}
        res = kube.run("get", "configmaps", "-n", a, "--as", "bob", token=token)
        assert (res.returncode, res.stderr.strip()) == (1, denied("users", "bob"))
        res = kube.run("get", "configmaps", "-n", a, "--as", "alice", "--as-group", "devs", token=token)
        assert (res.returncode, res.stderr.strip()) == (1, denied("groups", "devs"))
    finally:
        kube.run("delete", "clusterrolebinding", name)
        kube.run("delete", "clusterrole", name)


# -- escalation prevention ----------------------------------------------------------------------
def test_escalation_needs_bind_or_escalate(kube: Kube, ns: tuple[str, str]) -> None:
    a, _ = ns
    user, token = account(kube, a, "granter")
    kube.apply(role(a, "binder", [rule(["create", "get", "list", "delete"], ["rolebindings", "roles"], RBAC)]))
    kube.ok("create", "rolebinding", "granter-binds", "-n", a, "--role", "binder", "--serviceaccount", f"{a}:granter")
    kube.apply(role(a, "secret-reader", [rule(["get"], ["secrets"])]))
    groups = f'(groups=["system:serviceaccounts" "system:serviceaccounts:{a}" "system:authenticated"])'
    missing = '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}'

    bind = ("create", "rolebinding", "self-secrets", "-n", a, "--role", "secret-reader",
            "--serviceaccount", f"{a}:granter")
    res = kube.run(*bind, token=token)
    assert res.returncode == 1
    assert (f'rolebindings.{RBAC} "self-secrets" is forbidden: user "{user}" {groups} {ESCALATION}\n{missing}'
            in res.stderr), res.stderr
    create_role = ("create", "role", "more", "-n", a, "--verb", "get", "--resource", "secrets")
    res = kube.run(*create_role, token=token)
    assert res.returncode == 1
    assert f'roles.{RBAC} "more" is forbidden: user "{user}" {groups} {ESCALATION}\n{missing}' in res.stderr

    kube.apply(role(a, "rb-reader", [rule(["get"], ["rolebindings"], RBAC)]))  # held already: no escalation
    kube.ok("create", "rolebinding", "self-rb-reader", "-n", a, "--role", "rb-reader",
            "--serviceaccount", f"{a}:granter", token=token)
    assert kube.can_i("get", "secrets", "-n", a, token=token) == ("no", 1)

    kube.apply(role(a, "may-bind", [rule(["bind"], ["roles"], RBAC, names=["secret-reader"])]))
    kube.ok("create", "rolebinding", "granter-may-bind", "-n", a, "--role", "may-bind",
            "--serviceaccount", f"{a}:granter")
    eventually(lambda: kube.can_i("bind", "roles/secret-reader", "-n", a, token=token) == ("yes", 0), timeout=10)
    kube.ok(*bind, token=token)
    assert eventually(lambda: kube.can_i("get", "secrets", "-n", a, token=token) == ("yes", 0), timeout=10)
    res = kube.run("create", "role", "even-more", "-n", a, "--verb", "list", "--resource", "secrets", token=token)
    assert res.returncode == 1 and ESCALATION in res.stderr  # bind is no escalate

    kube.apply(role(a, "may-escalate", [rule(["escalate"], ["roles"], RBAC)]))
    kube.ok("create", "rolebinding", "granter-may-escalate", "-n", a, "--role", "may-escalate",
            "--serviceaccount", f"{a}:granter")
    eventually(lambda: kube.can_i("escalate", "roles", "-n", a, token=token) == ("yes", 0), timeout=10)
    kube.ok(*create_role, token=token)
    assert kube.json("get", "role", "more", "-n", a)["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]


# -- default roles ------------------------------------------------------------------------------
def test_default_roles_view_edit_admin(kube: Kube, ns: tuple[str, str]) -> None:
    a, _ = ns
    tokens = {}
    for name in ("view", "edit", "admin"):
        tokens[name] = account(kube, a, f"{name}-bot")[1]
        kube.ok("create", "rolebinding", f"{name}-bot", "-n", a, "--clusterrole", name,
                "--serviceaccount", f"{a}:{name}-bot")
    questions = [("get", "secrets"), ("list", "configmaps"), ("create", "configmaps"), ("create", "rolebindings"),
                 ("get", "pods --subresource log"), ("create", "pods --subresource exec"), ("update", "resourcequotas")]
    want = {"view": ["no", "yes", "no", "no", "yes", "no", "no"],
            "edit": ["yes", "yes", "yes", "no", "yes", "yes", "no"],
            "admin": ["yes", "yes", "yes", "yes", "yes", "yes", "no"]}

    def answers(name: str) -> list[str]:
        return [kube.can_i(verb, *what.split(), "-n", a, token=tokens[name])[0] for verb, what in questions]

    assert eventually(lambda: {name: answers(name) for name in want} == want, timeout=10)
    for name, rc in (("view", 1), ("edit", 0)):
        res = kube.run("get", "secrets", "-n", a, token=tokens[name])
        assert res.returncode == rc, res.stderr
    assert forbidden(sa_user(a, "view-bot"), "list", "secrets", a) in kube.run(
        "get", "secrets", "-n", a, token=tokens["view"]).stderr
    view = kube.json("get", "clusterrole", "view")
    assert view["aggregationRule"]["clusterRoleSelectors"] == [
        {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]
    assert any("pods" in r.get("resources", []) and "list" in r["verbs"] for r in view["rules"])
    assert kube.json("get", "clusterrole", "cluster-admin")["rules"] == [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}]
