"""The RBAC authorizer of one cluster: Roles, ClusterRoles and their bindings, as kube-apiserver's.

ClusterRoleBindings grant their ClusterRole in every namespace and for cluster-scoped requests;
RoleBindings grant their Role (of the binding's namespace) or ClusterRole inside the binding's
namespace only. A subject is a `User` (by name), a `Group` (by name) or a `ServiceAccount` (name and
namespace; a RoleBinding's subject without a namespace means the binding's), which is the user
`system:serviceaccount:<ns>:<name>`. A binding whose role does not exist grants nothing and is an
evaluation error (`clusterrole.rbac.authorization.k8s.io "x" not found`), as upstream reports it.

Cost: bindings are indexed by subject (user name, group name; a ServiceAccount subject under its
user name), roles are the store's own (namespace, name) map, and the rules one caller holds in one
namespace are compiled once and cached per (user, groups, namespace), so an authorization is a dict
lookup plus a scan of that caller's rules. Any change to an RBAC object drops the cache; `observe`
looks at every committed event but does work only for the four RBAC resources.

Admission of RBAC writes may run in worker threads (writing.py `off_loop`) while the loop commits:
index changes and compilation happen under one lock; the cache is read without it (a reader racing
a change may use the rules of a moment ago, as upstream's informer-fed authorizer does).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from apiserver.authn import Identity
from apiserver.rbacrules import Rule, compile_rules, uncovered
from apiserver.requestinfo import RequestInfo
from apiserver.resources import Obj
from apiserver.store import Event, Store

GROUP = "rbac.authorization.k8s.io"
ROLES = f"{GROUP}/roles"
ROLEBINDINGS = f"{GROUP}/rolebindings"
CLUSTERROLES = f"{GROUP}/clusterroles"
CLUSTERROLEBINDINGS = f"{GROUP}/clusterrolebindings"
_RBAC_KEYS = frozenset({ROLES, ROLEBINDINGS, CLUSTERROLES, CLUSTERROLEBINDINGS})
_BINDING_KINDS = {CLUSTERROLEBINDINGS: "ClusterRoleBinding", ROLEBINDINGS: "RoleBinding"}
_SA_PREFIX = "system:serviceaccount:"
_CACHE_LIMIT = 8192  # compiled (user, groups, namespace) entries before the cache starts over
_DECIDED_LIMIT = 1024  # decisions remembered per compiled entry before they start over
_DECIDED_BUDGET = 65_536  # decisions remembered by all entries together before the cache starts over


@dataclass(frozen=True)
class Decision:
    """An authorizer's answer; `reason` says which binding allowed (or why evaluation failed)."""

    allowed: bool
    reason: str = ""


@dataclass(frozen=True)
class RulesReview:
    """What a caller may do in a namespace, in SelfSubjectRulesReview wire form."""

    resource_rules: list[Obj]
    non_resource_rules: list[Obj]
    incomplete: bool = False
    evaluation_error: str = ""


@dataclass(frozen=True)
class _Subject:
    kind: str
    name: str
    namespace: str

    def user(self, binding_namespace: str) -> str | None:
        """The user name this subject is (None for a Group, or a ServiceAccount without namespace)."""
        if self.kind == "User":
            return self.name
        if self.kind == "ServiceAccount":
            ns = self.namespace or binding_namespace
            return f"{_SA_PREFIX}{ns}:{self.name}" if ns and self.name else None
        return None

    def describe(self, binding_namespace: str) -> str:
        if self.kind == "ServiceAccount":
            return f'{self.kind} "{self.name}/{self.namespace or binding_namespace}"'
        return f'{self.kind} "{self.name}"'


@dataclass(frozen=True)
class _Binding:
    kind: str  # ClusterRoleBinding | RoleBinding
    namespace: str  # "" for a ClusterRoleBinding
    name: str
    role_kind: str
    role_name: str
    subjects: tuple[_Subject, ...]

    @property
    def order(self) -> tuple[int, str]:
        return (0 if self.kind == "ClusterRoleBinding" else 1, self.name)

    def index_keys(self) -> set[str]:
        keys = set()
        for s in self.subjects:
            user = s.user(self.namespace)
            if user is not None:
                keys.add("u:" + user)
            elif s.kind == "Group":
                keys.add("g:" + s.name)
        return keys

    def subject_for(self, user: Identity) -> _Subject | None:
        """The first subject that names `user` (upstream's appliesTo)."""
        for s in self.subjects:
            if (s.kind == "Group" and s.name in user.groups) or (
                    s.kind != "Group" and s.user(self.namespace) == user.user):
                return s
        return None

    def source(self, subject: _Subject) -> str:
        """upstream's binding describer, e.g. `RoleBinding "b/ns" of Role "r" to ServiceAccount "sa/ns"`."""
        name = f"{self.name}/{self.namespace}" if self.kind == "RoleBinding" else self.name
        return f'{self.kind} "{name}" of {self.role_kind} "{self.role_name}" to {subject.describe(self.namespace)}'


class _Budget:
    """How many more decisions the compiled entries may remember together (a bound on memory, whatever
    the names and namespaces callers make up); spent, entries stop remembering until the cache resets."""

    def __init__(self) -> None:
        self.remaining = _DECIDED_BUDGET

    def take(self) -> bool:
        self.remaining -= 1
        return self.remaining >= 0


class _Held:
    """The rules one caller holds in one namespace, each with the binding that grants it, and the
    decisions already taken on them (bounded: the same list or create repeats)."""

    def __init__(self, rules: list[tuple[Rule, str]], errors: list[str], budget: _Budget) -> None:
        self._budget = budget
        self.rules = tuple(rules)
        self.errors = tuple(errors)
        unique = list(dict.fromkeys(errors))  # upstream's aggregate: one as is, several as `[a, b]`
        self.error_text = unique[0] if len(unique) == 1 else f"[{', '.join(unique)}]" if unique else ""
        self._denied = Decision(False, f"RBAC: {self.error_text}" if errors else "")
        self._decided: dict[RequestInfo, Decision] = {}

    def decide(self, info: RequestInfo) -> Decision:
        decided = self._decided.get(info)
        if decided is None:
            source = self._first_allowing(info)
            decided = Decision(True, f"RBAC: allowed by {source}") if source is not None else self._denied
            if len(self._decided) >= _DECIDED_LIMIT:
                self._decided = {}
            if self._budget.take():
                self._decided[info] = decided
        return decided

    def _first_allowing(self, info: RequestInfo) -> str | None:
        verb = info.verb
        if not info.resource_request:
            return next((src for rule, src in self.rules if rule.allows_url(verb, info.path)), None)
        group, sub, name = info.api_group, info.subresource, info.name
        combined = f"{info.resource}/{sub}" if sub else info.resource
        for rule, source in self.rules:
            if rule.allows_resource(verb, group, combined, sub, name):
                return source
        return None


def _binding(kind: str, obj: Obj) -> _Binding:
    meta = obj.get("metadata") or {}
    ref = obj.get("roleRef") or {}
    subjects = []
    for s in obj.get("subjects") or []:
        if isinstance(s, dict):
            subjects.append(_Subject(str(s.get("kind") or ""), str(s.get("name") or ""),
                                     str(s.get("namespace") or "")))
    ns = str(meta.get("namespace") or "") if kind == "RoleBinding" else ""
    return _Binding(kind, ns, str(meta.get("name") or ""), str(ref.get("kind") or ""), str(ref.get("name") or ""),
                    tuple(subjects))


class RBACAuthorizer:
    """Authorizes requests of one cluster by its RBAC objects (kept current through `observe`)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._bindings: dict[tuple[str, str, str], _Binding] = {}  # (kind, namespace, name)
        self._by_subject: dict[str, set[tuple[str, str, str]]] = {}  # "u:<user>" | "g:<group>"
        self._roles: dict[tuple[str, str, str], tuple[Rule, ...] | str] = {}  # compiled rules or error
        self._cache: dict[tuple[str, tuple[str, ...], str], _Held] = {}
        self._budget = _Budget()
        with self._lock:
            for key, kind in _BINDING_KINDS.items():
                for _, obj in store.items(key):
                    self._add(_binding(kind, obj))

    # -- indexes ------------------------------------------------------------------------------------
    def observe(self, events: Iterable[Event]) -> None:
        """Follow a committed batch: re-index changed bindings, and forget compiled rules on any RBAC change."""
        changed = [ev for ev in events if ev.resource in _RBAC_KEYS]
        if not changed:
            return
        with self._lock:
            for ev in changed:
                kind = _BINDING_KINDS.get(ev.resource)
                if kind is None:
                    continue
                binding = _binding(kind, ev.obj)
                old = self._bindings.get((kind, binding.namespace, binding.name))
                if old is not None:
                    self._remove(old)
                if ev.type != "DELETED":
                    self._add(binding)
            self._roles = {}
            self._reset()

    def _reset(self) -> None:
        """Forget every compiled entry and remembered decision (under the lock)."""
        self._cache = {}
        self._budget = _Budget()

    def _add(self, b: _Binding) -> None:
        ident = (b.kind, b.namespace, b.name)
        self._bindings[ident] = b
        for key in b.index_keys():
            self._by_subject.setdefault(key, set()).add(ident)

    def _remove(self, b: _Binding) -> None:
        ident = (b.kind, b.namespace, b.name)
        self._bindings.pop(ident, None)
        for key in b.index_keys():
            idents = self._by_subject.get(key)
            if idents is not None:
                idents.discard(ident)
                if not idents:
                    del self._by_subject[key]

    # -- the rules a caller holds ---------------------------------------------------------------------
    def _held(self, user: Identity, namespace: str) -> _Held:
        key = (user.user, user.groups, namespace)
        held = self._cache.get(key)
        if held is not None:
            return held
        with self._lock:
            if len(self._cache) >= _CACHE_LIMIT or self._budget.remaining <= 0:
                self._reset()
            held = self._compile(user, namespace)
            self._cache[key] = held
        return held

    def _compile(self, user: Identity, namespace: str) -> _Held:
        idents: set[tuple[str, str, str]] = set(self._by_subject.get("u:" + user.user, ()))
        for group in user.groups:
            idents |= self._by_subject.get("g:" + group, set())
        bindings = sorted((self._bindings[i] for i in idents
                           if i[0] == "ClusterRoleBinding" or (namespace and i[1] == namespace)),
                          key=lambda b: b.order)
        rules: list[tuple[Rule, str]] = []
        errors: list[str] = []
        for b in bindings:
            subject = b.subject_for(user)
            if subject is None:
                continue
            role = self._role(b)
            if isinstance(role, str):
                errors.append(role)
                continue
            source = b.source(subject)
            rules.extend((rule, source) for rule in role)
        return _Held(rules, errors, self._budget)

    def _role(self, b: _Binding) -> tuple[Rule, ...] | str:
        """The compiled rules of a binding's role, or the error upstream would report."""
        ns = b.namespace if b.role_kind == "Role" else ""
        ident = (b.role_kind, ns, b.role_name)
        found = self._roles.get(ident)
        if found is None:
            found = self._load_role(b.role_kind, ns, b.role_name)
            self._roles[ident] = found
        return found

    def _load_role(self, kind: str, namespace: str, name: str) -> tuple[Rule, ...] | str:
        if kind not in ("Role", "ClusterRole"):
            return f'unsupported role reference kind: "{kind}"'
        obj: Any = self._store.get(ROLES if kind == "Role" else CLUSTERROLES, namespace, name)
        if obj is None:
            return f'{kind.lower()}.{GROUP} "{name}" not found'
        return compile_rules(obj.get("rules"))

    # -- the contract ---------------------------------------------------------------------------------
    def authorize(self, user: Identity, info: RequestInfo) -> Decision:
        """Allowed by the first rule (ClusterRoleBindings first, then RoleBindings of the request's
        namespace, each by name) that allows the request; denied otherwise."""
        return self._held(user, info.namespace).decide(info)

    def rules_for(self, user: Identity, namespace: str) -> RulesReview:
        """Every rule `user` holds in `namespace` ("" = cluster-wide only), as SelfSubjectRulesReview has them."""
        held = self._held(user, namespace)
        resource_rules = [w for rule, _ in held.rules if (w := rule.resource_wire()) is not None]
        non_resource_rules = [w for rule, _ in held.rules if (w := rule.non_resource_wire()) is not None]
        return RulesReview(resource_rules, non_resource_rules, bool(held.errors), held.error_text)

    def missing_rules(self, user: Identity, namespace: str, rules: list[Obj]) -> list[Obj]:
        """The rules of `rules` that `user` does not fully hold in `namespace` (escalation check)."""
        held = self._held(user, namespace)
        return uncovered((rule for rule, _ in held.rules), rules)
