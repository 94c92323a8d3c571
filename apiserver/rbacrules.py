"""RBAC PolicyRules as pure values: matching a request (kube's RuleAllows) and coverage (Covers).

A PolicyRule from a Role or ClusterRole is compiled once into a `Rule` of frozensets, so matching a
request is a few set lookups:
- verbs and apiGroups match exactly or by `*`;
- resources match `*`, the resource (`pods`), the resource with its subresource (`pods/log`) or
  `*/<subresource>`;
- resourceNames, when present, require the request's name (a request without a name, e.g. a create,
  list, watch or deletecollection, never matches such a rule);
- nonResourceURLs (only for non-resource requests) match exactly, by a trailing-`*` prefix, or `*`.

`uncovered` is upstream's escalation check (`validation.Covers`): each requested rule is broken into
atomic (verb, group, resource, resourceName) and (verb, nonResourceURL) parts; a part is covered when
one held rule covers it; a `*` in the request is covered only by a `*` in a held rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from apiserver.requestinfo import RequestInfo
from apiserver.resources import Obj

ALL = "*"
_FIELDS = ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs")


def strings(value: Any) -> tuple[str, ...]:
    """A rule field as a tuple of strings (anything malformed counts as absent)."""
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def normalized(raw: Any) -> dict[str, tuple[str, ...]]:
    """A PolicyRule's five list fields as tuples of strings."""
    src = raw if isinstance(raw, dict) else {}
    return {f: strings(src.get(f)) for f in _FIELDS}


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled PolicyRule; `fields` keeps its lists for the wire forms."""

    verbs: frozenset[str]
    groups: frozenset[str]
    resources: frozenset[str]
    wild_subresources: frozenset[str]  # `sub` of every `*/sub`
    names: frozenset[str]
    urls: frozenset[str]
    url_prefixes: tuple[str, ...]  # of every `prefix*`, so `*` gives ""
    fields: tuple[tuple[str, tuple[str, ...]], ...]
    any_verb: bool = False
    any_group: bool = False
    any_resource: bool = False

    def allows(self, info: RequestInfo) -> bool:
        """kube's RuleAllows for one request."""
        if not info.resource_request:
            return self.allows_url(info.verb, info.path)
        sub = info.subresource
        combined = f"{info.resource}/{sub}" if sub else info.resource
        return self.allows_resource(info.verb, info.api_group, combined, sub, info.name)

    def allows_resource(self, verb: str, group: str, combined: str, sub: str, name: str) -> bool:
        """RuleAllows for a resource request, `combined` being `resource[/subresource]`."""
        return ((self.any_verb or verb in self.verbs) and (self.any_group or group in self.groups)
                and (self.any_resource or combined in self.resources or (sub != "" and sub in self.wild_subresources))
                and (not self.names or name in self.names))

    def allows_url(self, verb: str, path: str) -> bool:
        """RuleAllows for a non-resource request."""
        return (self.any_verb or verb in self.verbs) and (
            path in self.urls or any(path.startswith(p) for p in self.url_prefixes))

    def resource_wire(self) -> Obj | None:
        """The SelfSubjectRulesReview ResourceRule of this rule (None if it names no resources)."""
        f = dict(self.fields)
        if not f["resources"]:
            return None
        out: Obj = {"verbs": list(f["verbs"])}
        for key in ("apiGroups", "resources", "resourceNames"):
            if f[key]:
                out[key] = list(f[key])
        return out

    def non_resource_wire(self) -> Obj | None:
        """The SelfSubjectRulesReview NonResourceRule of this rule (None if it names no URLs)."""
        f = dict(self.fields)
        if not f["nonResourceURLs"]:
            return None
        return {"verbs": list(f["verbs"]), "nonResourceURLs": list(f["nonResourceURLs"])}


def compile_rule(raw: Any) -> Rule:
    f = normalized(raw)
    resources = f["resources"]
    urls = f["nonResourceURLs"]
    return Rule(
        verbs=frozenset(f["verbs"]),
        groups=frozenset(f["apiGroups"]),
        resources=frozenset(resources),
        wild_subresources=frozenset(r[2:] for r in resources if r.startswith("*/") and len(r) > 2),
        names=frozenset(f["resourceNames"]),
        urls=frozenset(urls),
        url_prefixes=tuple(u.rstrip("*") for u in urls if u.endswith("*")),
        fields=tuple(f.items()),
        any_verb=ALL in f["verbs"],
        any_group=ALL in f["apiGroups"],
        any_resource=ALL in resources,
    )


def compile_rules(raw_rules: Any) -> tuple[Rule, ...]:
    """The compiled rules of a role's `rules` (anything that is not a list has none)."""
    return tuple(compile_rule(r) for r in raw_rules) if isinstance(raw_rules, list) else ()


# -- coverage (escalation prevention) ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Part:
    """One atomic part of a requested rule: a resource part (url "") or a non-resource one."""

    verb: str
    group: str = ""
    resource: str = ""
    name: str = ""
    url: str = ""

    def wire(self) -> Obj:
        """This part as a one-of-each PolicyRule (what an escalation denial lists)."""
        if self.url:
            return {"nonResourceURLs": [self.url], "verbs": [self.verb]}
        out: Obj = {"apiGroups": [self.group], "resources": [self.resource], "verbs": [self.verb]}
        if self.name:
            out["resourceNames"] = [self.name]
        return out


def breakdown(raw: Any) -> list[_Part]:
    """upstream's BreakdownRule: every (group, resource, verb[, name]) and (url, verb) of a rule (the
    one breakdown: coverage here, escalation messages in rbacadmission through `_Part.wire`)."""
    f = normalized(raw)
    parts = [
        _Part(verb, group, resource, name)
        for group in f["apiGroups"]
        for resource in f["resources"]
        for verb in f["verbs"]
        for name in (f["resourceNames"] or ("",))
    ]
    parts += [_Part(verb, url=url) for url in f["nonResourceURLs"] for verb in f["verbs"]]
    return parts


def _covers(owner: Rule, part: _Part) -> bool:
    """upstream's ruleCovers for an atomic part (literal `*` only by `*`)."""
    if ALL not in owner.verbs and part.verb not in owner.verbs:
        return False
    if part.url:  # upstream also asks a non-resource part's owner for no resourceNames
        return not owner.names and (part.url in owner.urls or any(part.url.startswith(p) for p in owner.url_prefixes))
    if ALL not in owner.groups and part.group not in owner.groups:
        return False
    if ALL not in owner.resources and part.resource not in owner.resources:
        sub = part.resource.partition("/")[2]
        if not sub or f"*/{sub}" not in owner.resources:
            return False
    if not part.name:
        return not owner.names
    return not owner.names or part.name in owner.names


def uncovered(held: Iterable[Rule], requested: Iterable[Obj]) -> list[Obj]:
    """The requested rules (as given) with at least one part that no held rule covers."""
    owners = list(held)
    return [rule for rule in requested
            if not all(any(_covers(o, part) for o in owners) for part in breakdown(rule))]
