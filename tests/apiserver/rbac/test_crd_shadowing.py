"""A CustomResourceDefinition never replaces a built-in type: a CRD named
`roles.rbac.authorization.k8s.io` is stored but not served, Roles stay RBAC's (judged by the RBAC
engine, escalation-checked), and deleting that CRD deletes no Role, before or after a restart."""

from __future__ import annotations

from pathlib import Path

from apiserver.cluster import Cluster
from apiserver.store import Store
from apiserver.writing import Options

RBAC = "rbac.authorization.k8s.io"
SHADOW = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": f"roles.{RBAC}"},
    "spec": {"group": RBAC, "scope": "Namespaced",
             "names": {"plural": "roles", "singular": "role", "kind": "Role", "listKind": "RoleList"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}
ROLE = {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": {"name": "reader", "namespace": "default"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}


def _cluster(path: Path) -> Cluster:
    return Cluster("c1", Store(path))


def test_a_crd_cannot_shadow_or_delete_a_builtin(tmp_path: Path) -> None:
    db = tmp_path / "c1.db"
    cluster = _cluster(db)
    roles = cluster.registry.by_key(f"{RBAC}/roles")
    assert roles is not None and roles.builtin
    cluster.writer.create(roles, "default", dict(ROLE), "v1", Options())
    crd_rt = cluster.registry.by_key("apiextensions.k8s.io/customresourcedefinitions")
    assert crd_rt is not None
    cluster.writer.create(crd_rt, "", dict(SHADOW), "v1", Options())
    served = cluster.registry.by_key(f"{RBAC}/roles")
    assert served is roles  # still the built-in type, not the CRD's
    cluster.store.close()

    cluster = _cluster(db)  # a restart registers stored CRDs: the built-in still wins
    served = cluster.registry.by_key(f"{RBAC}/roles")
    assert served is not None and served.builtin
    crd_rt = cluster.registry.by_key("apiextensions.k8s.io/customresourcedefinitions")
    assert crd_rt is not None
    cluster.writer.delete(crd_rt, "", f"roles.{RBAC}", {}, False)
    assert cluster.store.get(f"{RBAC}/roles", "default", "reader") is not None  # no Role deleted with it
    assert cluster.registry.by_key(f"{RBAC}/roles") is not None
    cluster.store.close()
