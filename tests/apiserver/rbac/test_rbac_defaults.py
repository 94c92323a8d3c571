"""The bootstrap RBAC policy (rbacdefaults.py) and the ClusterRole aggregation controller
(rbacaggregation.py) on an in-process Cluster over a real SQLite store: the defaults after start,
reconciliation on restart (user additions kept, autoupdate=false left alone, nothing written when
all is in place), admin ⊇ edit ⊇ view without secrets in view, and aggregation following the
labels of other ClusterRoles as they are created, changed and deleted."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apiserver import rbacdefaults
from apiserver.cluster import Cluster
from apiserver.rbacdefaults import covered
from apiserver.store import Store
from apiserver.writing import Options

ROLES = rbacdefaults.CLUSTERROLE_KEY
BINDINGS = rbacdefaults.CLUSTERROLEBINDING_KEY
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
TO_VIEW = "rbac.authorization.k8s.io/aggregate-to-view"
SECRETS_GET = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}


class Node:
    """A cluster on a store that can be stopped and started again (the store lock is released)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = Store(path)
        self.cluster = Cluster("c1", self.store)

    def restart(self) -> int:
        """Start again on the same database; returns how many writes the start made."""
        self.store.close()
        self.store = Store(self.path)
        before = self.store.rv
        self.cluster = Cluster("c1", self.store)
        return self.store.rv - before

    def get(self, key: str, name: str) -> dict[str, Any]:
        obj = self.store.get(key, "", name)
        assert obj is not None, f"{key} {name} is missing"
        return copy.deepcopy(obj)

    def rules(self, name: str) -> list[dict[str, Any]]:
        return list(self.get(ROLES, name).get("rules") or [])

    def put(self, key: str, obj: dict[str, Any]) -> None:
        rt = self.cluster.registry.by_key(key)
        assert rt is not None
        if self.store.get(key, "", obj["metadata"]["name"]) is None:
            self.cluster.writer.create(rt, "", obj, "v1", Options())
        else:
            self.cluster.writer.update(rt, "", obj["metadata"]["name"], obj, "v1", Options(), require_rv=False)

    def delete(self, key: str, name: str) -> None:
        rt = self.cluster.registry.by_key(key)
        assert rt is not None
        self.cluster.writer.delete(rt, "", name, {}, False)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    started = Node(tmp_path / "store" / "c1.db")
    yield started
    started.store.close()


def _role(name: str, rules: list[dict[str, Any]], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels or {}}, "rules": rules}


def _default(name: str) -> dict[str, Any]:
    return next(role for role in rbacdefaults.cluster_roles() if role["metadata"]["name"] == name)


def test_the_defaults_are_there_after_start(node: Node) -> None:
    for wanted in rbacdefaults.cluster_roles():
        role = node.get(ROLES, wanted["metadata"]["name"])
        assert role["metadata"]["annotations"][AUTOUPDATE] == "true"
        assert role["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
    assert node.rules("cluster-admin") == [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                                           {"nonResourceURLs": ["*"], "verbs": ["*"]}]
    discovery = node.rules("system:discovery")
    assert discovery == [{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                                              "/openapi/*", "/readyz", "/version", "/version/"], "verbs": ["get"]}]
    assert covered(node.rules("system:basic-user"), {"apiGroups": ["authorization.k8s.io"], "verbs": ["create"],
                                                     "resources": ["selfsubjectaccessreviews",
                                                                   "selfsubjectrulesreviews"]})
    assert covered(node.rules("system:auth-delegator"), {"apiGroups": ["authentication.k8s.io"],
                                                         "resources": ["tokenreviews"], "verbs": ["create"]})
    subjects = {name: [(s["kind"], s["name"]) for s in node.get(BINDINGS, name)["subjects"]]
                for name in ("cluster-admin", "system:discovery", "system:basic-user", "system:public-info-viewer",
                             "system:service-account-issuer-discovery")}
    assert subjects == {
        "cluster-admin": [("Group", "system:masters")],
        "system:discovery": [("Group", "system:authenticated")],
        "system:basic-user": [("Group", "system:authenticated")],
        "system:public-info-viewer": [("Group", "system:authenticated"), ("Group", "system:unauthenticated")],
        "system:service-account-issuer-discovery": [("Group", "system:serviceaccounts")],
    }
    assert node.get(BINDINGS, "cluster-admin")["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                                              "kind": "ClusterRole", "name": "cluster-admin"}


def test_a_second_start_writes_nothing(node: Node) -> None:
    assert node.restart() == 0
    assert node.restart() == 0


def test_admin_holds_edit_which_holds_view_and_view_reads_no_secrets(node: Node) -> None:
    view, edit, admin = node.rules("view"), node.rules("edit"), node.rules("admin")
    assert view and all(covered(edit, rule) for rule in view)
    assert all(covered(admin, rule) for rule in edit)
    assert not covered(view, SECRETS_GET) and covered(edit, SECRETS_GET)
    assert not any("secrets" in (rule.get("resources") or []) for rule in view)
    assert covered(edit, {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]})
    assert covered(edit, {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]})
    assert not covered(edit, {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"],
                              "verbs": ["create"]})
    assert covered(admin, {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings", "roles"],
                           "verbs": ["create", "delete", "get", "list", "watch", "update", "patch"]})
    assert covered(admin, {"apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"],
                           "verbs": ["create"]})
    assert covered(view, {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]})
    assert not covered(view, {"apiGroups": ["volsync.backube"], "resources": ["*"], "verbs": ["get"]})


def test_user_additions_are_kept_and_missing_defaults_come_back_on_restart(node: Node) -> None:
    basic = node.get(ROLES, "system:basic-user")
    extra = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}
    basic["rules"] = [basic["rules"][1], extra]  # drops the access-review rule, adds one of the user's
    basic["metadata"]["labels"]["team"] = "ops"
    node.put(ROLES, basic)
    binding = node.get(BINDINGS, "system:discovery")
    binding["subjects"] = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]
    node.put(BINDINGS, binding)
    node.delete(BINDINGS, "system:basic-user")
    assert node.restart() == 3
    rules = node.rules("system:basic-user")
    assert extra in rules and all(covered(rules, r) for r in _default("system:basic-user")["rules"])
    assert node.get(ROLES, "system:basic-user")["metadata"]["labels"]["team"] == "ops"
    subjects = [(s["kind"], s["name"]) for s in node.get(BINDINGS, "system:discovery")["subjects"]]
    assert subjects == [("User", "alice"), ("Group", "system:authenticated")]
    assert node.get(BINDINGS, "system:basic-user")["subjects"][0]["name"] == "system:authenticated"
    assert node.restart() == 0


def test_autoupdate_false_is_left_alone(node: Node) -> None:
    role = node.get(ROLES, "system:discovery")
    role["metadata"]["annotations"][AUTOUPDATE] = "false"
    role["rules"] = [{"nonResourceURLs": ["/version"], "verbs": ["get"]}]
    node.put(ROLES, role)
    binding = node.get(BINDINGS, "system:public-info-viewer")
    binding["metadata"]["annotations"][AUTOUPDATE] = "false"
    binding["subjects"] = binding["subjects"][:1]
    node.put(BINDINGS, binding)
    assert node.restart() == 0
    assert node.rules("system:discovery") == [{"nonResourceURLs": ["/version"], "verbs": ["get"]}]
    assert len(node.get(BINDINGS, "system:public-info-viewer")["subjects"]) == 1


def test_a_labelled_role_joins_view_edit_and_admin_until_unlabelled_or_deleted(node: Node) -> None:
    rule = {"apiGroups": ["volsync.backube"], "resources": ["replicationsources"], "verbs": ["get", "list"]}
    node.put(ROLES, _role("volsync-view", [rule], {TO_VIEW: "true"}))
    for name in ("view", "edit", "admin"):
        assert rule in node.rules(name), name
    unlabelled = node.get(ROLES, "volsync-view")
    unlabelled["metadata"]["labels"] = {}
    node.put(ROLES, unlabelled)
    for name in ("view", "edit", "admin"):
        assert rule not in node.rules(name), name
    node.put(ROLES, _role("volsync-view", [rule], {TO_VIEW: "true"}))
    assert rule in node.rules("admin")
    node.delete(ROLES, "volsync-view")
    for name in ("view", "edit", "admin"):
        assert rule not in node.rules(name), name
    assert node.restart() == 0


def test_a_users_aggregated_role_is_the_ordered_union_and_owns_its_rules(node: Node) -> None:
    first = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
    second = {"apiGroups": [""], "resources": ["services"], "verbs": ["list"]}
    node.put(ROLES, _role("zz-part", [second, first], {"tier": "b"}))
    node.put(ROLES, _role("aa-part", [first], {"tier": "a"}))
    node.put(ROLES, _role("other", [SECRETS_GET], {"tier": "c"}))
    aggregated = _role("combined", [SECRETS_GET])
    aggregated["aggregationRule"] = {"clusterRoleSelectors": [
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}]}
    node.put(ROLES, aggregated)
    assert node.rules("combined") == [first, second]  # by the matching roles' names, duplicates once
    overwritten = node.get(ROLES, "combined")
    overwritten["rules"] = [SECRETS_GET]  # a user's write of the rules of an aggregated role
    node.put(ROLES, overwritten)
    assert node.rules("combined") == [first, second]
    changed = node.get(ROLES, "other")
    changed["metadata"]["labels"] = {"tier": "a"}
    node.put(ROLES, changed)
    assert node.rules("combined") == [first, SECRETS_GET, second]
    assert node.restart() == 0


def test_rbac_names_are_path_segments() -> None:
    assert rbacdefaults.name_causes({"metadata": {"name": "system:discovery"}}, []) == []
    problems = rbacdefaults.name_causes({"metadata": {"name": "a/b%c"}}, [])
    assert [str(p) for p in problems] == ["metadata.name: Invalid value: \"a/b%c\": may not contain '/'",
                                          "metadata.name: Invalid value: \"a/b%c\": may not contain '%'"]
    assert [str(p) for p in rbacdefaults.name_causes({"metadata": {"name": ".."}}, [])] == [
        "metadata.name: Invalid value: \"..\": may not be '..'"]
