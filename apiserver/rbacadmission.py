"""Admission of the four RBAC kinds: upstream's validation and privilege-escalation prevention.

Runs on every create and update of a Role, ClusterRole, RoleBinding or ClusterRoleBinding (PUT,
every PATCH and server-side apply reach `Cluster._admit` through `Writer.update`/`Writer.create`):
- defaulting, always, as rbac/v1 does: `roleRef.apiGroup` and the `apiGroup` of User/Group
  subjects default to `rbac.authorization.k8s.io`;
- validation, for a requester's write (`Options.user` set; the server's own writes are trusted):
  pkg/apis/rbac/validation's rules and wording (422 Invalid with field causes), including the
  immutable `roleRef` (`roleRef: Invalid value: rbac.RoleRef{...}: cannot change roleRef`);
- escalation prevention (pkg/registry/rbac/*/policybased): members of `system:masters` pass; a
  Role/ClusterRole passes when the requester may `escalate` it or holds every rule it grants (an
  `aggregationRule` needs full authority: `*` on everything); a binding passes when the requester
  may `bind` the referenced role (asked in the binding's namespace, "" for a ClusterRoleBinding) or
  holds every rule of the referenced role there (a missing role is 404, as upstream). A change of
  only `ownerReferences`/`finalizers` (the garbage collector's) is never an escalation. A denial is
  403 worded as upstream's ConfirmNoEscalation, missing rules broken down, compacted, sorted and
  printed in PolicyRule's compact form (Go's `%q`, so lists are space-separated).

Rights are asked from the cluster's request authorizer chain (`cluster.authorizer`, which includes
the masters bypass and is AlwaysAllow without authentication); without one, from `cluster.rbac`
plus the masters check; a cluster with neither has no authorization to escalate against.
Differences: upstream asks `escalate` with the request's name, empty on a POST; here a create asks
with an empty name and an update with the role's (an apply that creates asks with an empty name).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from apiserver import errors, rbacvalidation
from apiserver.authn import Identity
from apiserver.rbacrules import breakdown
from apiserver.rbacvalidation import CLUSTER_ROLES, GROUP, ROLES, default, goq, validate
from apiserver.requestinfo import RequestInfo
from apiserver.resources import Obj, ResourceType

RBAC_KEYS = rbacvalidation.RBAC_KEYS  # the kinds `admit` judges
MASTERS = "system:masters"
_FULL_AUTHORITY: list[Obj] = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                              {"verbs": ["*"], "nonResourceURLs": ["*"]}]
_GC_FIELDS = ("ownerReferences", "finalizers")
_VOLATILE_META = ("resourceVersion", "managedFields", "generation")


class _Verdict(Protocol):
    allowed: bool


class _Authorizer(Protocol):
    def authorize(self, user: Identity, info: RequestInfo) -> _Verdict: ...


class _Rules(_Authorizer, Protocol):
    def missing_rules(self, user: Identity, namespace: str, rules: list[Obj]) -> list[Obj]: ...


class _Store(Protocol):
    def get(self, key: str, ns: str, name: str) -> Obj | None: ...


def admit(cluster: Any, rt: ResourceType, old: Obj | None, new: Obj, user: Identity | None) -> None:
    """The RBAC admission of one write of `rt` (in place); raises 422/403/404, else returns."""
    if rt.key not in RBAC_KEYS:
        return
    default(rt.key, new)
    if user is None:
        return
    name = str((new.get("metadata") or {}).get("name") or "")
    problems = validate(rt.key, new, old)
    if problems:
        raise errors.invalid(rt.kind, GROUP, name, problems)
    if MASTERS in user.groups or (old is not None and _only_gc_fields(old, new)):
        return
    judge = _Judge(getattr(cluster, "authorizer", None), getattr(cluster, "rbac", None))
    if rt.key in (ROLES, CLUSTER_ROLES):
        _check_role(judge, rt, new, old, user)
    else:
        _check_binding(judge, cluster.store, rt, new, user)


def _only_gc_fields(old: Obj, new: Obj) -> bool:
    """True when `new` differs from `old` in ownerReferences/finalizers only (IsOnlyMutatingGCFields)."""
    def stripped(obj: Obj) -> Obj:
        meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in (*_GC_FIELDS, *_VOLATILE_META)}
        return {**obj, "metadata": meta}
    return stripped(old) == stripped(new)


# -- escalation prevention ------------------------------------------------------------------------
class _Judge:
    """The requester's rights: the authorizer chain if installed, else RBAC plus the masters bypass."""

    def __init__(self, authorizer: _Authorizer | None, rbac: _Rules | None) -> None:
        self._authorizer, self._rbac = authorizer, rbac

    def allows(self, user: Identity, info: RequestInfo) -> bool:
        if self._authorizer is not None:
            return bool(self._authorizer.authorize(user, info).allowed)
        if self._rbac is None or MASTERS in user.groups:
            return True  # no authorization installed: nothing to escalate against
        return bool(self._rbac.authorize(user, info).allowed)

    def missing(self, user: Identity, namespace: str, rules: list[Obj]) -> list[Obj]:
        """The atomic rules of `rules` the user does not hold (broken down as upstream's Covers)."""
        atomic = [part.wire() for rule in rules if isinstance(rule, dict) for part in breakdown(rule)]
        if self._rbac is None or not atomic:
            return []
        return self._rbac.missing_rules(user, namespace, atomic)


def _verb_info(verb: str, resource: str, namespace: str, name: str) -> RequestInfo:
    scope = f"/namespaces/{namespace}" if namespace else ""
    path = f"/apis/{GROUP}/v1{scope}/{resource}" + (f"/{name}" if name else "")
    return RequestInfo(verb=verb, path=path, resource_request=True, api_group=GROUP, api_version="*",
                       namespace=namespace, resource=resource, name=name)


def _check_role(judge: _Judge, rt: ResourceType, role: Obj, old: Obj | None, user: Identity) -> None:
    """Escalation prevention of a Role/ClusterRole write; an aggregationRule set, changed or removed
    (`old`'s counts: removing one freezes the gathered rules) needs full authority, as upstream."""
    meta = role.get("metadata") or {}
    name, namespace = str(meta.get("name") or ""), str(meta.get("namespace") or "")
    if judge.allows(user, _verb_info("escalate", rt.plural, namespace, "" if old is None else name)):
        return
    missing = judge.missing(user, namespace, _list(role.get("rules")))
    if missing:
        raise _escalation(rt.plural, name, user, missing)
    aggregating = any(isinstance((obj or {}).get("aggregationRule"), dict) for obj in (role, old))
    if rt.key == CLUSTER_ROLES and aggregating and judge.missing(user, "", _FULL_AUTHORITY):
        raise errors.forbidden(rt.plural, GROUP, name, "must have cluster-admin privileges to use the aggregationRule")


def _check_binding(judge: _Judge, store: _Store, rt: ResourceType, binding: Obj, user: Identity) -> None:
    meta = binding.get("metadata") or {}
    name, namespace = str(meta.get("name") or ""), str(meta.get("namespace") or "")
    ref = binding["roleRef"]
    role_plural = "roles" if ref["kind"] == "Role" else "clusterroles"
    if judge.allows(user, _verb_info("bind", role_plural, namespace, str(ref["name"]))):
        return
    role = store.get(f"{GROUP}/{role_plural}", namespace if role_plural == "roles" else "", str(ref["name"]))
    if role is None:
        raise errors.not_found(role_plural, GROUP, str(ref["name"]))
    missing = judge.missing(user, namespace, _list(role.get("rules")))
    if missing:
        raise _escalation(rt.plural, name, user, missing)


def _escalation(plural: str, name: str, user: Identity, missing: list[Obj]) -> errors.ApiError:
    lines = sorted({compact_string(rule) for rule in compact(missing)})
    why = (f"user {goq(user.user)} (groups={_go_list(user.groups)}) is attempting to grant RBAC permissions "
           "not currently held:\n" + "\n".join(lines))
    return errors.forbidden(plural, GROUP, name, why)


# -- PolicyRule helpers (rbac/v1's CompactRules, CompactString; BreakdownRule is rbacrules') --------------
def compact(rules: Iterable[Obj]) -> list[Obj]:
    """Merge the verbs of simple rules (one group, one resource, at most one resourceName)."""
    merged: dict[tuple[str, str, tuple[str, ...]], Obj] = {}
    out: list[Obj] = []
    for rule in rules:
        groups, resources, names = _list(rule.get("apiGroups")), _list(rule.get("resources")), \
            _list(rule.get("resourceNames"))
        simple = (len(groups) == 1 and len(resources) == 1 and len(names) <= 1
                  and not _list(rule.get("nonResourceURLs")))
        if not simple:
            out.append(rule)
            continue
        key = (str(groups[0]), str(resources[0]), tuple(str(n) for n in names))
        if key in merged:
            merged[key]["verbs"] = [*merged[key]["verbs"], *_list(rule.get("verbs"))]
        else:
            merged[key] = {**rule, "verbs": list(_list(rule.get("verbs")))}
    return out + list(merged.values())


def compact_string(rule: Obj) -> str:
    """PolicyRule.CompactString: `{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}`."""
    fields = (("APIGroups", "apiGroups"), ("Resources", "resources"), ("NonResourceURLs", "nonResourceURLs"),
              ("ResourceNames", "resourceNames"), ("Verbs", "verbs"))
    return "{" + ", ".join(f"{label}:{_go_list(_list(rule.get(k)))}" for label, k in fields
                           if _list(rule.get(k))) + "}"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _go_list(items: Iterable[Any]) -> str:
    """Go's %q of a []string: `["a" "b"]`."""
    return "[" + " ".join(goq(i) for i in items) + "]"
