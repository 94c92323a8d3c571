"""RBAC admission (rbacadmission.py, rbacvalidation.py) on an in-process Cluster over a real SQLite store,
judged by the real RBAC engine behind the `--authorization-mode RBAC` chain: upstream's validation (422
with field causes), the immutable roleRef (PUT, merge patch, apply), escalation prevention worded as
kube-apiserver words it, `bind` and `escalate`, rules already held, system:masters, the server's own
writes, garbage-collector-only updates, a binding to a missing role, and the aggregationRule."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from apiserver import authorization, errors
from apiserver.authn import Identity
from apiserver.cluster import Cluster
from apiserver.decoding import APPLY, MERGE
from apiserver.store import Store
from apiserver.writing import Options, Outcome

RBAC = "rbac.authorization.k8s.io"
NS = "team"
ALICE = Identity("alice", "u-alice", ("devs", "system:authenticated"))
ADMIN = Identity("root", "u-root", ("system:masters", "system:authenticated"))
ALICE_SAYS = 'user "alice" (groups=["devs" "system:authenticated"]) is attempting to grant RBAC permissions ' \
             "not currently held:\n"
SECRETS_GET = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}


class Api:
    """Writes to one in-process cluster as a given requester (None: the server itself)."""

    def __init__(self, path: Path) -> None:
        self.store = Store(path)
        self.cluster = Cluster("c1", self.store)
        self.cluster.authorizer = authorization.chain("RBAC", self.cluster.rbac)
        ns_rt = self.cluster.registry.by_key("/namespaces")
        assert ns_rt is not None
        self.cluster.writer.create(ns_rt, "", {"metadata": {"name": NS}}, "v1", Options())

    def _rt(self, plural: str) -> Any:
        rt = self.cluster.registry.by_key(f"{RBAC}/{plural}")
        assert rt is not None
        return rt

    def create(self, plural: str, obj: dict[str, Any], user: Identity | None = ALICE) -> Outcome:
        rt = self._rt(plural)
        return self.cluster.writer.create(rt, NS if rt.namespaced else "", copy.deepcopy(obj), "v1", Options(user=user))

    def put(self, plural: str, obj: dict[str, Any], user: Identity | None = ALICE) -> Outcome:
        rt = self._rt(plural)
        return self.cluster.writer.update(rt, NS if rt.namespaced else "", obj["metadata"]["name"],
                                          copy.deepcopy(obj), "v1", Options(user=user), require_rv=False)

    def patch(self, plural: str, name: str, kind: str, body: Any, user: Identity | None = ALICE) -> Outcome:
        rt = self._rt(plural)
        return self.cluster.writer.patch(rt, NS if rt.namespaced else "", name, kind, body, "v1",
                                         Options(user=user, field_manager="test"))

    def refused(self, code: int, plural: str, obj: dict[str, Any], user: Identity | None = ALICE) -> errors.ApiError:
        with pytest.raises(errors.ApiError) as caught:
            self.create(plural, obj, user)
        assert caught.value.code == code, caught.value
        return caught.value


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    a = Api(tmp_path / "c1.db")
    yield a
    a.store.close()


def role(name: str, rules: list[dict[str, Any]], cluster: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name} if cluster else {"name": name, "namespace": NS}
    return {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole" if cluster else "Role", "metadata": meta,
            "rules": rules}


def binding(name: str, ref_kind: str, ref_name: str, subjects: list[dict[str, Any]] | None = None,
            cluster: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name} if cluster else {"name": name, "namespace": NS}
    return {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding" if cluster else "RoleBinding", "metadata": meta,
            "roleRef": {"apiGroup": RBAC, "kind": ref_kind, "name": ref_name},
            "subjects": subjects if subjects is not None else [{"kind": "User", "apiGroup": RBAC, "name": "bob"}]}


def grant_alice(api: Api, name: str, rules: list[dict[str, Any]]) -> None:
    """A Role with `rules` bound to alice in NS, written by the server itself."""
    api.create("roles", role(name, rules), user=None)
    api.create("rolebindings", binding(f"alice-{name}", "Role", name, [{"kind": "User", "name": "alice"}]), user=None)


def causes(exc: errors.ApiError) -> list[tuple[str, str]]:
    return [(c["field"], c["message"]) for c in (exc.details or {}).get("causes", [])]


# -- validation -----------------------------------------------------------------------------------
def test_rules_are_validated_as_upstream(api: Api) -> None:
    exc = api.refused(422, "roles", role("r", [{"apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"]},
                                               {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]), user=ADMIN)
    assert causes(exc) == [
        ("rules[0].verbs", "Required value: verbs must contain at least one value"),
        ("rules[1].apiGroups", "Required value: resource rules must supply at least one api group"),
        ("rules[1].resources", "Required value: resource rules must supply at least one resource"),
        ("rules[2].nonResourceURLs",
         'Invalid value: []string{"/healthz"}: namespaced rules cannot apply to non-resource URLs')]
    assert exc.message.startswith(f'Role.{RBAC} "r" is invalid: [rules[0].verbs: Required value')
    mixed = {"verbs": ["get"], "nonResourceURLs": ["/metrics"], "resources": ["pods"], "apiGroups": [""]}
    exc = api.refused(422, "clusterroles", role("c", [mixed], cluster=True))
    assert exc.message == (f'ClusterRole.{RBAC} "c" is invalid: rules[0].nonResourceURLs: Invalid value: '
                           '[]string{"/metrics"}: rules cannot apply to both regular resources and non-resource URLs')
    exc = api.refused(422, "clusterroles", {**role("agg", [], cluster=True), "aggregationRule": {}})
    assert causes(exc) == [("aggregationRule.clusterRoleSelectors",
                            "Required value: at least one clusterRoleSelector required if aggregationRule is non-nil")]


def test_bindings_are_validated_as_upstream(api: Api) -> None:
    bad = binding("b", "Foo", "", [{"kind": "Robot", "name": "r2"}, {"kind": "ServiceAccount", "name": ""}])
    bad["roleRef"]["apiGroup"] = "example.com"
    assert causes(api.refused(422, "rolebindings", bad, user=ADMIN)) == [
        ("roleRef.apiGroup", f'Unsupported value: "example.com": supported values: "{RBAC}"'),
        ("roleRef.kind", 'Unsupported value: "Foo": supported values: "Role", "ClusterRole"'),
        ("roleRef.name", "Required value"),
        ("subjects[0].kind", 'Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"'),
        ("subjects[1].name", "Required value")]
    no_ref = binding("n", "Role", "r")
    del no_ref["roleRef"]
    assert causes(api.refused(422, "rolebindings", no_ref, user=ADMIN)) == [
        ("roleRef.kind", 'Unsupported value: "": supported values: "Role", "ClusterRole"'),
        ("roleRef.name", "Required value")]
    cluster_wide = binding("cb", "Role", "a/b", [{"kind": "ServiceAccount", "name": "sa"}], cluster=True)
    assert causes(api.refused(422, "clusterrolebindings", cluster_wide)) == [
        ("roleRef.kind", 'Unsupported value: "Role": supported values: "ClusterRole"'),
        ("roleRef.name", "Invalid value: \"a/b\": may not contain '/'"),
        ("subjects[0].namespace", "Required value")]


def test_subject_and_role_ref_api_groups_are_defaulted(api: Api) -> None:
    body = binding("d", "ClusterRole", "view", [{"kind": "Group", "name": "devs"},
                                                 {"kind": "ServiceAccount", "name": "sa", "namespace": NS}])
    del body["roleRef"]["apiGroup"]
    stored = api.create("rolebindings", body, user=ADMIN).obj
    assert stored["roleRef"]["apiGroup"] == RBAC
    assert [s.get("apiGroup") for s in stored["subjects"]] == [RBAC, None]


def test_role_ref_is_immutable_on_put_patch_and_apply(api: Api) -> None:
    api.create("rolebindings", binding("b", "ClusterRole", "view"), user=ADMIN)
    want = (f'RoleBinding.{RBAC} "b" is invalid: roleRef: Invalid value: rbac.RoleRef{{APIGroup:"{RBAC}", '
            'Kind:"ClusterRole", Name:"edit"}: cannot change roleRef')
    attempts: list[Callable[[], Outcome]] = [
                lambda: api.put("rolebindings", binding("b", "ClusterRole", "edit"), user=ADMIN),
                lambda: api.patch("rolebindings", "b", MERGE, {"roleRef": {"name": "edit"}}, user=ADMIN),
                lambda: api.patch("rolebindings", "b", APPLY, binding("b", "ClusterRole", "edit"), user=ADMIN)]
    for attempt in attempts:
        with pytest.raises(errors.ApiError) as caught:
            attempt()
        assert (caught.value.code, caught.value.message) == (422, want)
        assert causes(caught.value) == [("roleRef", want.split("roleRef: ", 1)[1])]
    # the subjects may change
    api.patch("rolebindings", "b", MERGE, {"subjects": [{"kind": "User", "name": "carol"}]}, user=ADMIN)
    assert api.store.get(f"{RBAC}/rolebindings", NS, "b")["subjects"] == [  # type: ignore[index]
        {"kind": "User", "name": "carol", "apiGroup": RBAC}]


# -- escalation prevention ------------------------------------------------------------------------
def test_a_role_granting_unheld_rules_is_forbidden_with_upstreams_message(api: Api) -> None:
    rules = [{"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["get", "list"]},
             {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["delete"], "resourceNames": ["web"]}]
    exc = api.refused(403, "roles", role("r", rules))
    assert exc.reason == "Forbidden"
    assert exc.message == (f'roles.{RBAC} "r" is forbidden: ' + ALICE_SAYS
                           + '{APIGroups:[""], Resources:["configmaps"], Verbs:["get" "list"]}\n'
                           + '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}\n'
                           + '{APIGroups:["apps"], Resources:["deployments"], ResourceNames:["web"], Verbs:["delete"]}')
    assert exc.details == {"name": "r", "group": RBAC, "kind": "roles"}
    exc = api.refused(403, "clusterroles", role("c", [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}], True))
    assert exc.message == f'clusterroles.{RBAC} "c" is forbidden: ' + ALICE_SAYS + \
        '{NonResourceURLs:["/metrics"], Verbs:["get"]}'
    assert api.store.get(f"{RBAC}/roles", NS, "r") is None


def test_rules_already_held_may_be_granted(api: Api) -> None:
    grant_alice(api, "reader", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}])
    api.create("roles", role("subset", [SECRETS_GET]))
    api.create("rolebindings", binding("bob-subset", "Role", "subset"))
    api.refused(403, "roles", role("more", [{**SECRETS_GET, "verbs": ["get", "delete"]}]))
    # held in NS only: a ClusterRole (judged cluster-wide) with the same rule is an escalation
    api.refused(403, "clusterroles", role("cluster-subset", [SECRETS_GET], cluster=True))


def test_a_binding_needs_bind_or_the_referenced_roles_rules(api: Api) -> None:
    api.create("roles", role("secret-reader", [SECRETS_GET]), user=None)
    api.create("roles", role("other", [SECRETS_GET]), user=None)
    exc = api.refused(403, "rolebindings", binding("b", "Role", "secret-reader"))
    assert exc.message == (f'rolebindings.{RBAC} "b" is forbidden: ' + ALICE_SAYS
                           + '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}')
    grant_alice(api, "binder", [{"apiGroups": [RBAC], "resources": ["roles"], "verbs": ["bind"],
                                 "resourceNames": ["secret-reader"]}])
    api.create("rolebindings", binding("b", "Role", "secret-reader"))  # bind on exactly this role
    api.refused(403, "rolebindings", binding("b2", "Role", "other"))
    api.refused(404, "rolebindings", binding("b3", "Role", "missing"))  # upstream: the role lookup's NotFound
    api.create("clusterroles", role("secret-viewer", [SECRETS_GET], cluster=True), user=None)
    exc = api.refused(403, "clusterrolebindings", binding("cb", "ClusterRole", "secret-viewer", cluster=True))
    assert exc.message.startswith(f'clusterrolebindings.{RBAC} "cb" is forbidden: ' + ALICE_SAYS)


def test_escalate_allows_any_role_but_no_binding(api: Api) -> None:
    grant_alice(api, "escalator", [{"apiGroups": [RBAC], "resources": ["roles"], "verbs": ["escalate"]}])
    api.create("roles", role("wide", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]))
    api.put("roles", role("wide", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]))
    api.refused(403, "rolebindings", binding("b", "Role", "wide"))  # escalate is no bind
    api.refused(403, "clusterroles", role("c", [SECRETS_GET], cluster=True))  # roles, not clusterroles


def test_masters_and_the_server_itself_pass(api: Api) -> None:
    everything = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    api.create("clusterroles", role("all", everything, cluster=True), user=ADMIN)
    api.create("clusterrolebindings", binding("all", "ClusterRole", "all", cluster=True), user=ADMIN)
    api.create("roles", role("all", everything), user=None)
    api.create("rolebindings", binding("all", "Role", "all"), user=None)
    assert api.store.get(f"{RBAC}/clusterrolebindings", "", "all") is not None


def test_updates_are_judged_but_garbage_collector_fields_are_not(api: Api) -> None:
    api.create("roles", role("r", [SECRETS_GET]), user=None)
    owner = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u-1"}]
    api.patch("roles", "r", MERGE, {"metadata": {"ownerReferences": owner, "finalizers": ["example.com/keep"]}})
    with pytest.raises(errors.ApiError) as caught:  # any other change re-judges the rules
        api.patch("roles", "r", MERGE, {"metadata": {"labels": {"a": "b"}}})
    assert caught.value.code == 403
    grant_alice(api, "reader", [SECRETS_GET])
    api.patch("roles", "r", MERGE, {"metadata": {"labels": {"a": "b"}}})
    with pytest.raises(errors.ApiError) as caught:
        api.patch("roles", "r", APPLY, role("r", [{**SECRETS_GET, "verbs": ["get", "list"]}]))
    assert caught.value.code == 403 and caught.value.message.endswith('Verbs:["list"]}')


def test_an_aggregation_rule_needs_full_authority(api: Api) -> None:
    api.create("clusterroles", role("escalator", [{"apiGroups": [RBAC], "resources": ["clusterroles"],
                                                   "verbs": ["escalate"]}], cluster=True), user=None)
    api.create("clusterrolebindings", binding("alice-escalator", "ClusterRole", "escalator",
                                              [{"kind": "User", "name": "alice"}], cluster=True), user=None)
    aggregated = {**role("agg", [], cluster=True),
                  "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}}
    api.create("clusterroles", aggregated)  # escalate on clusterroles is enough (upstream checks it first)
    bob = Identity("bob", "u-bob", ("system:authenticated",))
    exc = api.refused(403, "clusterroles", {**aggregated, "metadata": {"name": "agg2"}}, user=bob)
    assert exc.message == (f'clusterroles.{RBAC} "agg2" is forbidden: must have cluster-admin privileges to use '
                           "the aggregationRule")
