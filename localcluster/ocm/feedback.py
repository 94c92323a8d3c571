"""Status feedback of a ManifestWork's manifests: the JSONPath subset OCM users write, and the
`WellKnownStatus` fields OCM defines per kind. Pure: an object in, feedback values out.

Supported paths (kubectl's JSONPath, as `feedbackRules[].jsonPaths[].path` uses it): an optional
`{...}` wrapper and `$`, then `.field`, `['field']` / `["field"]`, `[index]` (negative counts from the
end), `[*]` / `.*`, and filters `[?(@.a.b == "x")]` with `==`, `!=`, `<`, `<=`, `>`, `>=` against a
string, number or boolean literal, or `[?(@.a)]` (the field exists). One match gives a typed value
(`Integer`, `String`, `Boolean`; anything else, floats included, `JsonRaw`); several matches give a
`JsonRaw` list; none is "not found". An invalid path is a per-value error message, never an exception.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

# OCM's well-known status fields per (group, kind)
WELL_KNOWN: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("apps", "Deployment"): (("ReadyReplicas", ".status.readyReplicas"), ("Replicas", ".status.replicas"),
                             ("AvailableReplicas", ".status.availableReplicas")),
    ("apps", "DaemonSet"): (("NumberReady", ".status.numberReady"),
                            ("DesiredNumberScheduled", ".status.desiredNumberScheduled"),
                            ("NumberAvailable", ".status.numberAvailable")),
    ("batch", "Job"): (("JobComplete", '.status.conditions[?(@.type=="Complete")].status'),
                       ("JobSucceeded", ".status.succeeded")),
    ("", "Pod"): (("PodReady", '.status.conditions[?(@.type=="Ready")].status'), ("PodPhase", ".status.phase")),
}

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_NAME = re.compile(r"[A-Za-z0-9_\-]+")
_FILTER = re.compile(r"\?\(\s*@((?:\.[A-Za-z0-9_\-]+)+)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*\)")
_MISSING = object()
JSON_RAW_LIMIT = 1024  # the ManifestWork schema's maxLength of fieldValue.jsonRaw


class PathError(ValueError):
    """A path outside the supported subset; the message says where."""


@dataclass(frozen=True)
class _Step:
    kind: str  # "field", "index", "all", "filter"
    field: str = ""
    index: int = 0
    subpath: tuple[str, ...] = ()
    op: str = ""
    literal: Any = None


def _literal(text: str, path: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    try:
        return json.loads(text)
    except ValueError:
        raise PathError(f"invalid literal {text!r} in filter of {path!r}") from None


def _bracket(body: str, path: str) -> _Step:
    if body == "*":
        return _Step("all")
    if len(body) >= 2 and body[0] == body[-1] and body[0] in "'\"":
        return _Step("field", field=body[1:-1])
    if re.fullmatch(r"-?\d+", body):
        return _Step("index", index=int(body))
    found = _FILTER.fullmatch(body)
    if found is None:
        raise PathError(f"unsupported bracket expression [{body}] in {path!r}")
    sub, op, lit = found.groups()
    return _Step("filter", subpath=tuple(sub[1:].split(".")), op=op or "",
                 literal=_literal(lit, path) if op else None)


def parse(path: str) -> tuple[_Step, ...]:
    """The steps of `path`; PathError when it is outside the supported subset."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    if not text or text[0] not in ".[":
        raise PathError(f"path {path!r} must start with '.' or '['")
    steps: list[_Step] = []
    pos = 0
    while pos < len(text):
        if text[pos] == ".":
            pos += 1
            if text.startswith("*", pos):
                steps.append(_Step("all"))
                pos += 1
                continue
            name = _NAME.match(text, pos)
            if name is None:
                raise PathError(f"expected a field name at offset {pos} of {path!r}")
            steps.append(_Step("field", field=name.group()))
            pos = name.end()
        elif text[pos] == "[":
            end = _closing(text, pos, path)
            steps.append(_bracket(text[pos + 1:end].strip(), path))
            pos = end + 1
        else:
            raise PathError(f"unexpected {text[pos]!r} at offset {pos} of {path!r}")
    return tuple(steps)


def _closing(text: str, start: int, path: str) -> int:
    """The index of the `]` closing the bracket at `start` (quotes and parentheses respected)."""
    depth, quote = 0, ""
    for i in range(start + 1, len(text)):
        ch = text[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "]" and depth == 0:
            return i
    raise PathError(f"unclosed '[' at offset {start} of {path!r}")


def _children(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        yield from node.values()
    elif isinstance(node, list):
        yield from node


def _lookup(node: Any, fields: tuple[str, ...]) -> Any:
    for name in fields:
        if not isinstance(node, dict) or name not in node:
            return _MISSING
        node = node[name]
    return node


def _matches(item: Any, step: _Step) -> bool:
    value = _lookup(item, step.subpath)
    if value is _MISSING:
        return False
    if not step.op:
        return True
    try:
        return bool(_COMPARE[step.op](value, step.literal))
    except TypeError:  # e.g. "a" < 1: no match, as kubectl's JSONPath
        return False


def _step(nodes: list[Any], step: _Step) -> list[Any]:
    out: list[Any] = []
    for node in nodes:
        if step.kind == "field":
            if isinstance(node, dict) and step.field in node:
                out.append(node[step.field])
        elif step.kind == "index":
            if isinstance(node, list) and -len(node) <= step.index < len(node):
                out.append(node[step.index])
        elif step.kind == "all":
            out.extend(_children(node))
        else:
            out.extend(item for item in (node if isinstance(node, list) else [node]) if _matches(item, step))
    return out


def evaluate(obj: Obj, path: str) -> list[Any]:
    """Every value `path` matches in `obj` (PathError for an unsupported path)."""
    nodes: list[Any] = [obj]
    for step in parse(path):
        nodes = _step(nodes, step)
    return nodes


def field_value(value: Any) -> Obj:
    """OCM's `fieldValue` for one value."""
    if isinstance(value, bool):
        return {"type": "Boolean", "boolean": value}
    if isinstance(value, int):
        return {"type": "Integer", "integer": value}
    if isinstance(value, str):
        return {"type": "String", "string": value}
    return {"type": "JsonRaw", "jsonRaw": json.dumps(value, sort_keys=True, separators=(",", ":"))}


@dataclass(frozen=True)
class Feedback:
    """The values of one manifest's feedback rules and a message per value that could not be read."""

    values: tuple[Obj, ...]
    errors: tuple[str, ...]


def _rule_paths(rules: list[Obj], group: str, kind: str) -> tuple[list[tuple[str, str, bool]], list[str]]:
    """(name, path, required) of every value the rules ask for; messages for rules that ask nothing."""
    paths: list[tuple[str, str, bool]] = []
    errors: list[str] = []
    for rule in rules:
        if not isinstance(rule, dict):
            errors.append(f"feedback rule {rule!r} is not an object")
        elif rule.get("type") == "WellKnownStatus":
            known = WELL_KNOWN.get((group, kind))
            if known is None:
                errors.append(f"no well-known status fields for kind {kind} of group {group or 'core'}")
            paths += [(name, path, False) for name, path in known or ()]
        elif rule.get("type") == "JSONPaths":
            paths += [(str(p.get("name") or ""), str(p.get("path") or ""), True) for p in rule.get("jsonPaths") or []]
        else:
            errors.append(f"unknown feedback rule type {rule.get('type')!r}")
    return paths, errors


def collect(obj: Obj, rules: list[Obj]) -> Feedback:
    """The feedback values of `obj` for `rules` (WellKnownStatus fields an object lacks are left
    out silently, as a Deployment without ready Pods has no readyReplicas; a JSONPaths value not found
    is an error message)."""
    api_version = str(obj.get("apiVersion") or "")
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    paths, errors = _rule_paths(rules, group, str(obj.get("kind") or ""))
    values: list[Obj] = []
    seen: set[str] = set()
    for name, path, required in paths:
        if not name or name in seen:
            errors.append(f"feedback value name {name!r} is empty or repeated")
            continue
        seen.add(name)
        try:
            found = evaluate(obj, path)
        except PathError as exc:
            errors.append(f"{name}: {exc}")
            continue
        if not found:
            if required:
                errors.append(f"{name}: no value at {path}")
            continue
        value = field_value(found[0] if len(found) == 1 else found)
        if len(value.get("jsonRaw") or "") > JSON_RAW_LIMIT:
            errors.append(f"{name}: the value at {path} exceeds {JSON_RAW_LIMIT} bytes")
            continue
        values.append({"name": name, "fieldValue": value})
    return Feedback(tuple(values), tuple(errors))
