"""The bootstrap RBAC policy every cluster keeps: upstream's default ClusterRoles and bindings.

What kube-apiserver's `rbac/bootstrap-roles` post-start hook does, per cluster, at start: the
default roles (`cluster-admin`, the aggregated `admin`/`edit`/`view` and the
`system:aggregate-to-*` roles feeding them, `system:discovery`, `system:basic-user`,
`system:public-info-viewer`, `system:auth-delegator`, `system:monitoring`,
`system:service-account-issuer-discovery`) and the bindings that make them effective
(`cluster-admin` → system:masters, discovery/basic-user → system:authenticated, public-info →
also system:unauthenticated, issuer discovery → system:serviceaccounts). The data follows
Kubernetes 1.32's bootstrap policy for the built-in kinds; our CRDs are in no default role.

Reconciliation follows upstream's: a missing object is created; an object whose annotation
`rbac.authorization.kubernetes.io/autoupdate` is "false" is left alone; otherwise missing
labels/annotations, rules not covered by the present ones, aggregation selectors and subjects
are added and nothing the user added is removed. A binding whose roleRef differs gets the
expected roleRef back (upstream deletes and re-creates it; we replace it in place). The rules of
aggregated roles are the aggregation controller's (`rbacaggregation.py`) to fill.

Names of the four RBAC kinds are path segments, not DNS subdomains (upstream's ValidateRBACName),
which is what makes `system:discovery` valid: `name_causes` is the writer's hook for them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from apiserver.errors import INVALID, FieldCause, cause
from apiserver.resources import Obj
from apiserver.serviceaccounts import Create, Replace
from apiserver.store import Store

GROUP = "rbac.authorization.k8s.io"
CLUSTERROLE_KEY = f"{GROUP}/clusterroles"
CLUSTERROLEBINDING_KEY = f"{GROUP}/clusterrolebindings"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAP_LABEL = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"

READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
READ_WRITE = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


def name_causes(obj: Obj, problems: list[FieldCause]) -> list[FieldCause]:
    """Replace the DNS-subdomain name problems by upstream's path-segment rule for RBAC objects."""
    out = [p for p in problems if p.field != "metadata.name"]
    name = (obj.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        return problems  # missing or not a string: the generic problem stands
    if name in (".", ".."):
        return [*out, cause(INVALID, "metadata.name", f"may not be '{name}'", name)]
    return out + [cause(INVALID, "metadata.name", f"may not contain '{bad}'", name) for bad in ("/", "%")
                  if bad in name]


def _rule(verbs: Iterable[str], group: str, *resources: str) -> Obj:
    return {"apiGroups": [group], "resources": sorted(resources), "verbs": sorted(verbs)}


def _urls(*urls: str) -> Obj:
    return {"nonResourceURLs": sorted(urls), "verbs": ["get"]}


def _role(name: str, rules: list[Obj], *, aggregate_to: str = "", aggregates: str = "") -> Obj:
    labels = dict(BOOTSTRAP_LABEL)
    if aggregate_to:
        labels[AGGREGATE_TO + aggregate_to] = "true"
    role: Obj = {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRole",
                 "metadata": {"name": name, "labels": labels, "annotations": {AUTOUPDATE: "true"}},
                 "rules": rules}
    if aggregates:
        role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {AGGREGATE_TO + aggregates: "true"}}]}
    return role


def _view_rules() -> list[Obj]:
    return [
        _rule(READ, "", "configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods",
              "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
              "services/status"),
        _rule(READ, "", "bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
              "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"),
        _rule(READ, "", "namespaces"),  # at namespace scope: reading *this* namespace
        _rule(READ, "discovery.k8s.io", "endpointslices"),
        _rule(READ, "apps", "controllerrevisions", "daemonsets", "daemonsets/status", "deployments",
              "deployments/scale", "deployments/status", "replicasets", "replicasets/scale", "replicasets/status",
              "statefulsets", "statefulsets/scale", "statefulsets/status"),
        _rule(READ, "autoscaling", "horizontalpodautoscalers", "horizontalpodautoscalers/status"),
        _rule(READ, "batch", "cronjobs", "cronjobs/status", "jobs", "jobs/status"),
        _rule(READ, "extensions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
              "deployments/status", "ingresses", "ingresses/status", "networkpolicies", "replicasets",
              "replicasets/scale", "replicasets/status", "replicationcontrollers/scale"),
        _rule(READ, "policy", "poddisruptionbudgets", "poddisruptionbudgets/status"),
        _rule(READ, "networking.k8s.io", "ingresses", "ingresses/status", "networkpolicies"),
    ]


def _edit_rules() -> list[Obj]:
    pods_escalating = ("pods/attach", "pods/exec", "pods/portforward", "pods/proxy")
    return [
        _rule(READ, "", *pods_escalating, "secrets", "services/proxy"),  # reads view leaves out
        _rule(("impersonate",), "", "serviceaccounts"),
        _rule(WRITE, "", "pods", *pods_escalating),
        _rule(("create",), "", "pods/eviction"),
        _rule(WRITE, "", "configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
              "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"),
        _rule(("create",), "", "serviceaccounts/token"),
        _rule(WRITE, "apps", "daemonsets", "deployments", "deployments/rollback", "deployments/scale",
              "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"),
        _rule(WRITE, "autoscaling", "horizontalpodautoscalers"),
        _rule(WRITE, "batch", "cronjobs", "jobs"),
        _rule(WRITE, "extensions", "daemonsets", "deployments", "deployments/rollback", "deployments/scale",
              "ingresses", "networkpolicies", "replicasets", "replicasets/scale", "replicationcontrollers/scale"),
        _rule(WRITE, "policy", "poddisruptionbudgets"),
        _rule(WRITE, "networking.k8s.io", "ingresses", "networkpolicies"),
        _rule(READ_WRITE, "coordination.k8s.io", "leases"),
    ]


def cluster_roles() -> list[Obj]:
    """The default ClusterRoles, as they are created in a new cluster."""
    aggregated_edit = _role("edit", [], aggregate_to="admin", aggregates="edit")
    aggregated_view = _role("view", [], aggregate_to="edit", aggregates="view")
    return [
        _role("cluster-admin", [_rule(("*",), "*", "*"), {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        _role("admin", [], aggregates="admin"),
        aggregated_edit,
        aggregated_view,
        _role("system:aggregate-to-admin", [
            _rule(("create",), "authorization.k8s.io", "localsubjectaccessreviews"),
            _rule(READ_WRITE, GROUP, "rolebindings", "roles"),
        ], aggregate_to="admin"),
        _role("system:aggregate-to-edit", _edit_rules(), aggregate_to="edit"),
        _role("system:aggregate-to-view", _view_rules(), aggregate_to="view"),
        _role("system:discovery", [_urls("/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                                         "/openapi/*", "/readyz", "/version", "/version/")]),
        _role("system:monitoring", [_urls("/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics",
                                          "/metrics/slis", "/readyz", "/readyz/*")]),
        _role("system:basic-user", [
            _rule(("create",), "authorization.k8s.io", "selfsubjectaccessreviews", "selfsubjectrulesreviews"),
            _rule(("create",), "authentication.k8s.io", "selfsubjectreviews"),
        ]),
        _role("system:public-info-viewer", [_urls("/healthz", "/livez", "/readyz", "/version", "/version/")]),
        _role("system:auth-delegator", [
            _rule(("create",), "authentication.k8s.io", "tokenreviews"),
            _rule(("create",), "authorization.k8s.io", "subjectaccessreviews"),
        ]),
        _role("system:service-account-issuer-discovery",
              [_urls("/.well-known/openid-configuration", "/.well-known/openid-configuration/",
                     "/openid/v1/jwks", "/openid/v1/jwks/")]),
    ]


def _binding(role: str, *groups: str) -> Obj:
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": role, "labels": dict(BOOTSTRAP_LABEL), "annotations": {AUTOUPDATE: "true"}},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": group} for group in groups]}


def cluster_role_bindings() -> list[Obj]:
    """The default ClusterRoleBindings, as they are created in a new cluster."""
    return [
        _binding("cluster-admin", "system:masters"),
        _binding("system:monitoring", "system:monitoring"),
        _binding("system:discovery", "system:authenticated"),
        _binding("system:basic-user", "system:authenticated"),
        _binding("system:public-info-viewer", "system:authenticated", "system:unauthenticated"),
        _binding("system:service-account-issuer-discovery", "system:serviceaccounts"),
    ]


# -- rule coverage (upstream's validation.Covers, whole rules rather than broken-down ones) --------
def _has(values: Any, wanted: str) -> bool:
    return isinstance(values, list) and ("*" in values or wanted in values)


def _covers_resource(resources: Any, wanted: str) -> bool:
    if _has(resources, wanted):
        return True
    base, _, sub = wanted.partition("/")
    return bool(sub) and isinstance(resources, list) and (f"{base}/*" in resources or f"*/{sub}" in resources)


def _covers_url(urls: Any, wanted: str) -> bool:
    return isinstance(urls, list) and any(u == wanted or (u.endswith("*") and wanted.startswith(u[:-1]))
                                          for u in urls if isinstance(u, str))


def _atoms(rule: Obj) -> list[tuple[str, str, str, str, str]]:
    """One (verb, group, resource, resourceName, url) per combination a rule grants."""
    verbs = rule.get("verbs") or []
    if rule.get("nonResourceURLs"):
        return [(v, "", "", "", u) for v in verbs for u in rule["nonResourceURLs"]]
    names = rule.get("resourceNames") or [""]
    return [(v, g, r, n, "") for v in verbs for g in rule.get("apiGroups") or []
            for r in rule.get("resources") or [] for n in names]


def _atom_covered(owner: Obj, atom: tuple[str, str, str, str, str]) -> bool:
    verb, group, resource, name, url = atom
    if not _has(owner.get("verbs"), verb):
        return False
    if url:
        return _covers_url(owner.get("nonResourceURLs"), url)
    owner_names = owner.get("resourceNames") or []
    return (_has(owner.get("apiGroups"), group) and _covers_resource(owner.get("resources"), resource)
            and (not owner_names or name in owner_names))


def covered(owners: list[Obj], rule: Obj) -> bool:
    """Whether the rules `owners` together grant everything `rule` grants."""
    return all(any(_atom_covered(o, atom) for o in owners if isinstance(o, dict)) for atom in _atoms(rule))


# -- reconciliation -------------------------------------------------------------------------------
def _merged_meta(current: Obj, wanted: Obj) -> dict[str, Any]:
    meta = copy.deepcopy(current.get("metadata") or {})
    for field in ("labels", "annotations"):
        present = meta.get(field)
        meta[field] = {**wanted["metadata"][field], **(present if isinstance(present, dict) else {})}  # theirs win
    return meta


def reconcile_role(current: Obj, wanted: Obj) -> Obj | None:
    """The role with what `wanted` adds to `current`, or None when nothing is missing."""
    rules = [r for r in current.get("rules") or [] if isinstance(r, dict)]
    missing = [r for r in wanted["rules"] if not covered(rules, r)]
    out = {**copy.deepcopy(current), "metadata": _merged_meta(current, wanted)}
    if missing:
        out["rules"] = rules + missing
    if "aggregationRule" in wanted:
        present = (current.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
        extra = [s for s in wanted["aggregationRule"]["clusterRoleSelectors"] if s not in present]
        out["aggregationRule"] = {"clusterRoleSelectors": [*present, *extra]}
    return None if out == current else out


def reconcile_binding(current: Obj, wanted: Obj) -> Obj | None:
    """The binding with the expected roleRef and any missing subjects, or None when it is complete."""
    subjects = [s for s in current.get("subjects") or [] if isinstance(s, dict)]
    missing = [s for s in wanted["subjects"] if not any(_same_subject(s, have) for have in subjects)]
    out = {**copy.deepcopy(current), "metadata": _merged_meta(current, wanted), "roleRef": wanted["roleRef"],
           "subjects": subjects + missing}
    return None if out == current else out


def _same_subject(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(a.get(k, "") == b.get(k, "") for k in ("kind", "name", "namespace")) and (
        a.get("apiGroup", GROUP) == b.get("apiGroup", GROUP))


def _protected(obj: Obj) -> bool:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(AUTOUPDATE) == "false"


def ensure_defaults(store: Store, create: Create, replace: Replace) -> int:
    """Create or complete the bootstrap roles and bindings; returns how many writes it asked for."""
    writes = 0
    for key, objects, reconcile in ((CLUSTERROLE_KEY, cluster_roles(), reconcile_role),
                                    (CLUSTERROLEBINDING_KEY, cluster_role_bindings(), reconcile_binding)):
        for wanted in objects:
            current = store.get(key, "", wanted["metadata"]["name"])
            if current is None:
                create(key, "", wanted)
                writes += 1
            elif not _protected(current) and (updated := reconcile(current, wanted)) is not None:
                replace(key, "", updated)
                writes += 1
    return writes
