"""Defaulting and validation of the four RBAC kinds, as rbac/v1 defaults and pkg/apis/rbac/validation.

`default` fills `roleRef.apiGroup` and the `apiGroup` of User/Group subjects
(`rbac.authorization.k8s.io`); `validate` answers upstream's field errors, worded as upstream
(values printed as Go's `%#v` where upstream prints a slice or struct): rules need verbs; a
resource rule needs apiGroups and resources; a rule may not mix nonResourceURLs with resources; a
Role may not have nonResourceURLs; an aggregationRule needs a selector; `roleRef` is
{apiGroup rbac.authorization.k8s.io, kind Role|ClusterRole (ClusterRole only in a
ClusterRoleBinding), a valid name} and immutable (`cannot change roleRef`); subjects are
User/Group (apiGroup rbac.authorization.k8s.io) or ServiceAccount (apiGroup "", a namespace in a
ClusterRoleBinding), each with a name. `rbacadmission.py` calls both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from apiserver.errors import INVALID, NOT_SUPPORTED, REQUIRED, FieldCause, cause
from apiserver.resources import Obj

GROUP = "rbac.authorization.k8s.io"
ROLES, CLUSTER_ROLES = f"{GROUP}/roles", f"{GROUP}/clusterroles"
BINDINGS, CLUSTER_BINDINGS = f"{GROUP}/rolebindings", f"{GROUP}/clusterrolebindings"
RBAC_KEYS = frozenset({ROLES, CLUSTER_ROLES, BINDINGS, CLUSTER_BINDINGS})


def default(key: str, obj: Obj) -> None:
    """rbac/v1 defaulting in place: roleRef.apiGroup, and the apiGroup of User/Group subjects."""
    if key not in (BINDINGS, CLUSTER_BINDINGS):
        return
    ref = obj.setdefault("roleRef", {})  # a missing roleRef is Go's zero value, defaulted like any other
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = GROUP
    for subject in obj.get("subjects") or []:
        if isinstance(subject, dict) and not subject.get("apiGroup") and subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = GROUP


def validate(key: str, new: Obj, old: Obj | None) -> list[FieldCause]:
    """Upstream's field errors of a Role/ClusterRole/binding (and of its update against `old`)."""
    if key in (ROLES, CLUSTER_ROLES):
        problems: list[FieldCause] = []
        for i, rule in enumerate(_list(new.get("rules"))):
            problems += _rule_causes(rule if isinstance(rule, dict) else {}, key == ROLES, f"rules[{i}]")
        aggregation = new.get("aggregationRule")
        if key == CLUSTER_ROLES and isinstance(aggregation, dict) \
                and not _list(aggregation.get("clusterRoleSelectors")):
            problems.append(cause(REQUIRED, "aggregationRule.clusterRoleSelectors",
                                  "at least one clusterRoleSelector required if aggregationRule is non-nil"))
        return problems
    namespaced = key == BINDINGS
    ref = _dict(new.get("roleRef"))
    problems = _role_ref_causes(ref, namespaced)
    for i, subject in enumerate(_list(new.get("subjects"))):
        problems += _subject_causes(subject if isinstance(subject, dict) else {}, namespaced, f"subjects[{i}]")
    if old is not None:
        before = _dict(old.get("roleRef"))
        if _ref_triple(before) != _ref_triple(ref):
            problems.append(FieldCause("roleRef", INVALID[0],
                                       f"{INVALID[1]}: {_go_role_ref(ref)}: cannot change roleRef"))
    return problems


def _rule_causes(rule: Obj, namespaced: bool, path: str) -> list[FieldCause]:
    out: list[FieldCause] = []
    if not _list(rule.get("verbs")):
        out.append(cause(REQUIRED, f"{path}.verbs", "verbs must contain at least one value"))
    urls = _list(rule.get("nonResourceURLs"))
    if urls:
        shown = _go_slice(urls)
        if namespaced:
            out.append(FieldCause(f"{path}.nonResourceURLs", INVALID[0],
                                  f"{INVALID[1]}: {shown}: namespaced rules cannot apply to non-resource URLs"))
        if any(_list(rule.get(k)) for k in ("apiGroups", "resources", "resourceNames")):
            out.append(FieldCause(f"{path}.nonResourceURLs", INVALID[0], f"{INVALID[1]}: {shown}: rules cannot "
                                  "apply to both regular resources and non-resource URLs"))
        return out
    if not _list(rule.get("apiGroups")):
        out.append(cause(REQUIRED, f"{path}.apiGroups", "resource rules must supply at least one api group"))
    if not _list(rule.get("resources")):
        out.append(cause(REQUIRED, f"{path}.resources", "resource rules must supply at least one resource"))
    return out


def _role_ref_causes(ref: Obj, namespaced: bool) -> list[FieldCause]:
    out: list[FieldCause] = []
    if ref.get("apiGroup") != GROUP:
        out.append(cause(NOT_SUPPORTED, "roleRef.apiGroup", f'supported values: "{GROUP}"', ref.get("apiGroup", "")))
    kinds = ("Role", "ClusterRole") if namespaced else ("ClusterRole",)
    if ref.get("kind") not in kinds:
        out.append(cause(NOT_SUPPORTED, "roleRef.kind", "supported values: " + ", ".join(f'"{k}"' for k in kinds),
                         ref.get("kind", "")))
    name = ref.get("name")
    if not name:
        out.append(cause(REQUIRED, "roleRef.name"))
    else:
        out += [cause(INVALID, "roleRef.name", msg, name) for msg in _path_segment_problems(str(name))]
    return out


def _subject_causes(subject: Obj, namespaced: bool, path: str) -> list[FieldCause]:
    out: list[FieldCause] = []
    if not subject.get("name"):
        out.append(cause(REQUIRED, f"{path}.name"))
    kind, group = subject.get("kind"), subject.get("apiGroup", "")
    if kind == "ServiceAccount":
        if group:
            out.append(cause(NOT_SUPPORTED, f"{path}.apiGroup", 'supported values: ""', group))
        if not namespaced and not subject.get("namespace"):
            out.append(cause(REQUIRED, f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if group != GROUP:
            out.append(cause(NOT_SUPPORTED, f"{path}.apiGroup", f'supported values: "{GROUP}"', group))
    else:
        out.append(cause(NOT_SUPPORTED, f"{path}.kind", 'supported values: "ServiceAccount", "User", "Group"',
                         kind if kind is not None else ""))
    return out


def _path_segment_problems(name: str) -> list[str]:
    """apimachinery's IsValidPathSegmentName (ValidateRBACName)."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def goq(text: Any) -> str:
    """Go's %q of a string (close enough: JSON escaping of the same characters)."""
    return json.dumps(str(text), ensure_ascii=False)


def _go_slice(items: Iterable[Any]) -> str:
    """Go's %#v of a []string: `[]string{"a", "b"}`."""
    return "[]string{" + ", ".join(goq(i) for i in items) + "}"


def _ref_triple(ref: Obj) -> tuple[str, str, str]:
    return str(ref.get("apiGroup") or ""), str(ref.get("kind") or ""), str(ref.get("name") or "")


def _go_role_ref(ref: Obj) -> str:
    group, kind, name = _ref_triple(ref)
    return f"rbac.RoleRef{{APIGroup:{goq(group)}, Kind:{goq(kind)}, Name:{goq(name)}}}"

