"""The ClusterRole aggregation controller, as kube-controller-manager's `clusterrole-aggregation`.

A ClusterRole with `aggregationRule.clusterRoleSelectors` gets as `rules` the de-duplicated union
of the rules of every other ClusterRole matching any of its selectors (metav1.LabelSelector:
matchLabels and matchExpressions; `{}` matches every ClusterRole), taken selector by selector
and, within one selector, in the order of the matching roles' names, so the result is stable.
It is recomputed whenever a ClusterRole that is aggregated, or that a selector matches before or
after the change, is created, changed or deleted, and written through the cluster's own write
path only when it differs: a user's write of the rules of an aggregated role is overwritten, and
roles aggregating each other converge (the union only grows) instead of looping. A selector that
does not parse matches nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from apiserver import errors
from apiserver.rbacdefaults import CLUSTERROLE_KEY
from apiserver.resources import Obj
from apiserver.selectors import LabelSelector, label_selector_from_dict
from apiserver.serviceaccounts import Replace
from apiserver.store import Event, Store


def _meta(obj: Obj | None) -> Mapping[str, Any]:
    meta = (obj or {}).get("metadata")
    return meta if isinstance(meta, dict) else {}


def _labels(obj: Obj | None) -> Mapping[str, str]:
    labels = _meta(obj).get("labels")
    return labels if isinstance(labels, dict) else {}


def selectors(role: Obj) -> list[LabelSelector]:
    """The parsed selectors of an aggregated role ([] when it has no aggregationRule)."""
    rule = role.get("aggregationRule")
    raw = rule.get("clusterRoleSelectors") if isinstance(rule, dict) else None
    out: list[LabelSelector] = []
    for sel in raw if isinstance(raw, list) else []:
        if not isinstance(sel, dict):
            continue
        try:
            out.append(label_selector_from_dict(sel))
        except errors.ApiError:
            continue
    return out


def _normal(rule: Mapping[str, Any]) -> Mapping[str, Any]:
    """A rule without empty fields, so `resourceNames: []` and an absent field compare equal."""
    return {k: v for k, v in rule.items() if v not in (None, [], "")}


class ClusterRoleAggregator:
    """Keeps the rules of aggregated ClusterRoles the union of the roles they select."""

    def __init__(self, store: Store, replace: Replace) -> None:
        self.store = store
        self._replace = replace

    def aggregate(self, role: Obj) -> list[Obj]:
        """The rules `role` should have, from the ClusterRoles its selectors match now."""
        name = _meta(role).get("name")
        roles = [obj for _, obj in self.store.items(CLUSTERROLE_KEY) if _meta(obj).get("name") != name]
        rules: list[Obj] = []
        seen: list[Mapping[str, Any]] = []
        for selector in selectors(role):
            for other in roles:  # store order: by name
                if not selector.matches(_labels(other)):
                    continue
                for rule in other.get("rules") or []:
                    if isinstance(rule, dict) and _normal(rule) not in seen:
                        seen.append(_normal(rule))
                        rules.append(rule)
        return rules

    def sync(self, name: str) -> bool:
        """Write the aggregated rules of one ClusterRole if they differ; True if it wrote."""
        role = self.store.get(CLUSTERROLE_KEY, "", name)
        if role is None or not isinstance(role.get("aggregationRule"), dict):
            return False
        rules = self.aggregate(role)
        present = role.get("rules")
        if isinstance(present, list) and [_normal(r) if isinstance(r, dict) else r for r in present] == [
                _normal(r) for r in rules]:
            return False
        self._replace(CLUSTERROLE_KEY, "", {**role, "rules": rules})
        return True

    def resync(self) -> int:
        """Bring every aggregated ClusterRole up to date (at start); returns how many were written."""
        names = [_meta(obj).get("name", "") for _, obj in self.store.items(CLUSTERROLE_KEY)
                 if isinstance(obj.get("aggregationRule"), dict)]
        return sum(self.sync(name) for name in names)

    def observe(self, events: Iterable[Event]) -> None:
        """React to committed ClusterRole events: recompute every aggregated role they concern."""
        changed = [ev for ev in events if ev.resource == CLUSTERROLE_KEY]
        if not changed:
            return
        aggregated = [obj for _, obj in self.store.items(CLUSTERROLE_KEY)
                      if isinstance(obj.get("aggregationRule"), dict)]
        todo: list[str] = []
        for ev in changed:
            if ev.type != "DELETED" and isinstance(ev.obj.get("aggregationRule"), dict):
                todo.append(_meta(ev.obj).get("name", ""))
            for role in aggregated:
                if any(sel.matches(_labels(ev.obj)) or (ev.prev is not None and sel.matches(_labels(ev.prev)))
                       for sel in selectors(role)):
                    todo.append(_meta(role).get("name", ""))
        for name in dict.fromkeys(todo):
            self.sync(name)
