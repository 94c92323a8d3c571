"""Holes found in the security review of issue 9, each pinned by a test: a server-side apply that
creates must be allowed to `create` too (kube-apiserver's withAuthorization), removing or changing a
ClusterRole's aggregationRule needs full authority (upstream checks the old object too), and a path
with empty segments (`//`) is served as the request that was authorized (a review is answered,
never stored as an object)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.apiserver import ApiServer

from apiserver import accessreviews, authorization, errors, rbacadmission, rbacrules
from apiserver.authn import Identity
from apiserver.cluster import Cluster
from apiserver.decoding import APPLY
from apiserver.satokens import TokenIssuer
from apiserver.server import canonical
from apiserver.store import Store
from apiserver.writing import Options

RBAC = "rbac.authorization.k8s.io"
NS = "team"
ALICE = Identity("alice", "u-alice", ("system:authenticated",))


class InProcess:
    """One in-process cluster under the RBAC chain; RBAC objects written by the server itself."""

    def __init__(self, path: Path) -> None:
        self.store = Store(path)
        self.cluster = Cluster("c1", self.store)
        self.cluster.authorizer = authorization.chain("RBAC", self.cluster.rbac)
        self.write("/namespaces", {"metadata": {"name": NS}})

    def rt(self, key: str) -> Any:
        rt = self.cluster.registry.by_key(key)
        assert rt is not None
        return rt

    def write(self, key: str, obj: dict[str, Any]) -> None:
        rt = self.rt(key)
        self.cluster.writer.create(rt, NS if rt.namespaced else "", obj, "v1", Options())

    def grant(self, name: str, rules: list[dict[str, Any]], cluster: bool = False) -> None:
        kind = "ClusterRole" if cluster else "Role"
        meta = {"name": name} if cluster else {"name": name, "namespace": NS}
        self.write(f"{RBAC}/{kind.lower()}s", {"metadata": meta, "rules": rules})
        self.write(f"{RBAC}/{kind.lower()}bindings", {
            "metadata": meta, "roleRef": {"apiGroup": RBAC, "kind": kind, "name": name},
            "subjects": [{"kind": "User", "apiGroup": RBAC, "name": "alice"}]})

    def apply(self, key: str, name: str, body: dict[str, Any], dry_run: bool = False) -> int:
        """A server-side apply as alice: the HTTP status it ends with."""
        rt = self.rt(key)
        opts = Options(user=ALICE, field_manager="t", dry_run=dry_run)
        try:
            out = self.cluster.writer.patch(rt, NS if rt.namespaced else "", name, APPLY, body, "v1", opts)
        except errors.ApiError as exc:
            self.last = exc
            return exc.code
        return 201 if out.created else 200


@pytest.fixture
def local(tmp_path: Path) -> Iterator[InProcess]:
    kit = InProcess(tmp_path / "c1.db")
    yield kit
    kit.store.close()


def _configmap(name: str, value: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS},
            "data": {"k": value}}


def test_an_apply_that_creates_needs_create_as_well_as_patch(local: InProcess) -> None:
    local.grant("patcher", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"]}])
    assert local.apply("/configmaps", "cm", _configmap("cm", "a")) == 403
    assert local.last.message == ('configmaps "cm" is forbidden: User "alice" cannot create resource "configmaps" '
                                  'in API group "" in the namespace "team"')
    assert local.apply("/configmaps", "cm", _configmap("cm", "a"), dry_run=True) == 403
    assert local.store.get("/configmaps", NS, "cm") is None
    local.write("/configmaps", _configmap("cm", "a"))
    assert local.apply("/configmaps", "cm", _configmap("cm", "b")) == 200  # an existing object: patch is enough
    local.grant("creator", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"],
                             "resourceNames": ["cm2"]}])
    assert local.apply("/configmaps", "cm2", _configmap("cm2", "a")) == 201  # asked with the name, as upstream
    assert local.apply("/configmaps", "cm3", _configmap("cm3", "a")) == 403


def test_removing_an_aggregation_rule_needs_full_authority(local: InProcess) -> None:
    gathered = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
    local.write(f"{RBAC}/clusterroles", {"metadata": {"name": "agg"}, "rules": [gathered],
                                         "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}})
    local.grant("editor", [gathered, {"apiGroups": [RBAC], "resources": ["clusterroles"], "verbs": ["patch"]}],
                cluster=True)
    body = {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": {"name": "agg"}, "rules": [gathered],
            "aggregationRule": None}
    assert local.apply(f"{RBAC}/clusterroles", "agg", body) == 403
    assert local.last.message == (f'clusterroles.{RBAC} "agg" is forbidden: must have cluster-admin privileges '
                                  "to use the aggregationRule")
    stored = local.store.get(f"{RBAC}/clusterroles", "", "agg")
    assert stored is not None and "aggregationRule" in stored


def test_canonical_drops_empty_segments() -> None:
    assert canonical("") == "/"
    assert canonical("apis//authorization.k8s.io/v1//selfsubjectaccessreviews/") == \
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    assert canonical("api/v1/namespaces/n/pods/p/log") == "/api/v1/namespaces/n/pods/p/log"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    srv = ApiServer(tmp_path_factory.mktemp("review"), clusters=("cluster1",), auth=True).start()
    yield srv
    srv.stop()


def _post(server: ApiServer, path: str, body: Any) -> httpx.Response:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    with httpx.Client(trust_env=False, verify=context, timeout=30) as http:
        return http.post(server.cluster_url("cluster1") + path, content=json.dumps(body),
                         headers={"Authorization": f"Bearer {server.tokens()['cluster1']}",
                                  "Content-Type": "application/json"})


@pytest.mark.parametrize("path", ["/apis/authorization.k8s.io/v1//selfsubjectaccessreviews",
                                  "//apis/authorization.k8s.io/v1/selfsubjectaccessreviews/"])
def test_a_review_behind_empty_segments_is_answered_not_stored(server: ApiServer, path: str) -> None:
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "metadata": {"name": "kept"}, "spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}}
    res = _post(server, path, review)
    assert res.status_code == 201, res.text
    assert res.json()["status"] == {"allowed": True} and "uid" not in res.json()["metadata"]
    listed = server.kubectl("get", "--raw", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                            context="cluster1", check=False)
    assert '"kept"' not in listed.stdout


def test_one_rule_breakdown_serves_coverage_and_escalation_messages() -> None:
    assert vars(rbacadmission)["breakdown"] is rbacrules.breakdown  # imported, not its own
    rule = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"], "resourceNames": ["a"],
            "nonResourceURLs": ["/x"]}
    assert [p.wire() for p in rbacrules.breakdown(rule)] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["a"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"], "resourceNames": ["a"]},
        {"nonResourceURLs": ["/x"], "verbs": ["get"]}, {"nonResourceURLs": ["/x"], "verbs": ["list"]}]


def test_token_audiences_are_checked_by_the_issuer_alone() -> None:
    issuer = TokenIssuer(b"k" * 32, "c1")
    account = {"metadata": {"name": "sa", "namespace": NS, "uid": "u1"}}
    vault = issuer.mint(account, ["vault"], 600, now=1_000_000)
    assert issuer.claims(vault, now=1_000_000) is None  # not for the API
    assert issuer.claims(vault, now=1_000_000, audiences=["vault", "x"]) is not None
    assert accessreviews.audience_claims(issuer, vault, ["vault"], now=1_000_000) is not None
    assert accessreviews.audience_claims(issuer, vault, ["other"], now=1_000_000) is None
    assert accessreviews.audience_claims(issuer, issuer.mint_legacy(account, "s"), ["vault"]) is None


def test_no_review_is_stored_through_the_generic_handlers(server: ApiServer) -> None:
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews/kept2?fieldManager=t"
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "metadata": {"name": "kept2"}, "spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}}
    context = ssl.create_default_context(cafile=str(server.ca_file))
    with httpx.Client(trust_env=False, verify=context, timeout=30) as http:
        res = http.patch(server.cluster_url("cluster1") + path, content=json.dumps(review),
                         headers={"Authorization": f"Bearer {server.tokens()['cluster1']}",
                                  "Content-Type": "application/apply-patch+yaml"})
    assert res.status_code == 404, res.text
    listed = server.kubectl("get", "--raw", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                            context="cluster1", check=False)
    assert "kept2" not in listed.stdout + listed.stderr
