"""Is a CRD fit to serve? Its spec, `openAPIV3Schema` and printer columns, checked when it is written.

kube-apiserver refuses a CRD whose schema is not structural; `schema.py` relies on the same
promise, so a schema reaches it only once every keyword has the type it expects: numbers for
bounds, non-negative integers for lengths and counts, booleans for flags, lists of strings for
`required`, schemas (objects) under `properties`, `items`, `not` and the combinators, and a
`pattern` RE2 can compile (Go's regexp syntax: no look-around, no back-references).

Printer columns need a string name and JSONPath, a known type and an integer priority.

One rule kube does not have: `allOf`/`anyOf`/`oneOf`/`not` check a value once per branch, so
nesting them multiplies the work per value. The product of (1 + branches) along any path may not
exceed `MAX_FAN_OUT`, which bounds validation to that many checks per value of the object.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from apiserver.errors import INVALID, NOT_SUPPORTED, REQUIRED, FieldCause, cause
from apiserver.resources import from_crd
from apiserver.schema import compiled_pattern

MAX_FAN_OUT = 1000
_TYPES = ("array", "boolean", "integer", "number", "object", "string")
_COUNTS = ("maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties")
_NUMBERS = ("minimum", "maximum", "multipleOf")
_FLAGS = ("exclusiveMinimum", "exclusiveMaximum", "nullable", "uniqueItems", "x-kubernetes-preserve-unknown-fields",
          "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string")  # fmt: skip
_STRING_LISTS = ("required", "x-kubernetes-list-map-keys")
_LIST_TYPES = ("atomic", "map", "set")


def crd_causes(crd: Mapping[str, Any]) -> list[FieldCause]:
    """Every reason the CustomResourceDefinition `crd` cannot be registered and served; [] when it can."""
    spec = crd.get("spec") or {}
    if not isinstance(spec, dict) or not isinstance(spec.get("names") or {}, dict):
        return [cause(INVALID, "spec", "must be an object with an object spec.names", "object")]
    names = spec.get("names") or {}
    problems = []
    for f in ("group", "names", "scope", "versions"):
        if not spec.get(f):
            problems.append(cause(REQUIRED, f"spec.{f}"))
    for f in ("plural", "kind"):
        if names and not names.get(f):
            problems.append(cause(REQUIRED, f"spec.names.{f}"))
    if spec.get("group") and names.get("plural"):
        want = f"{names['plural']}.{spec['group']}"
        if crd["metadata"].get("name") != want:
            problems.append(
                cause(
                    INVALID, "metadata.name", 'must be spec.names.plural+"."+spec.group', crd["metadata"].get("name")
                )
            )
    if spec.get("scope") not in (None, "Namespaced", "Cluster"):
        problems.append(
            cause(
                NOT_SUPPORTED, "spec.scope", 'supported values: "Cluster", "Namespaced"', spec.get("scope")
            )
        )
    versions = spec.get("versions") or []
    if not isinstance(versions, list) or not all(isinstance(v, dict) for v in versions):
        return [*problems, cause(INVALID, "spec.versions", "must be a list of objects", "array")]
    if versions and sum(1 for v in versions if v.get("storage")) != 1:
        problems.append(
            cause(INVALID, "spec.versions", "must have exactly one version marked as storage version", "array")
        )
    for i, v in enumerate(versions):
        holder = v.get("schema")
        root = holder.get("openAPIV3Schema") if isinstance(holder, dict) else None
        problems += schema_causes(root, f"spec.versions[{i}].schema.openAPIV3Schema")
        columns = v.get("additionalPrinterColumns")
        problems += column_causes(columns, f"spec.versions[{i}].additionalPrinterColumns")
    if not problems:
        try:
            from_crd(crd)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            problems.append(cause(INVALID, "spec", f"cannot be served: {type(exc).__name__}: {exc}", "object"))
    return problems


def schema_causes(root: Any, path: str) -> list[FieldCause]:
    """Every reason the schema `root` (at `path` in the CRD) cannot be enforced; [] when it can."""
    if root is None:
        return []
    out: list[FieldCause] = []
    for where, node, fan_out in _subschemas(root, path, 1):
        if not isinstance(node, Mapping):
            out.append(cause(INVALID, where, "must be a schema object", node))
            continue
        out += _keyword_causes(node, where)
        if fan_out > MAX_FAN_OUT:
            detail = f"allOf/anyOf/oneOf/not nest to {fan_out} checks per value (at most {MAX_FAN_OUT})"
            out.append(cause(INVALID, where, detail, show_value=False))
            break
    return out


def _keyword_causes(node: Mapping[str, Any], where: str) -> list[FieldCause]:
    out: list[FieldCause] = []
    kind = node.get("type")
    if kind is not None and kind not in _TYPES:
        out.append(cause(NOT_SUPPORTED, f"{where}.type", "supported values: " + ", ".join(f'"{t}"' for t in _TYPES),
                         kind))  # fmt: skip
    for key in _COUNTS:
        value = node.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            out.append(cause(INVALID, f"{where}.{key}", "must be a non-negative integer", value))
    for key in _NUMBERS:
        value = node.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            out.append(cause(INVALID, f"{where}.{key}", "must be a number", value))
    if isinstance(factor := node.get("multipleOf"), int | float) and not isinstance(factor, bool) and factor <= 0:
        out.append(cause(INVALID, f"{where}.multipleOf", "must be greater than zero", factor))
    for key in _FLAGS:
        if node.get(key) is not None and not isinstance(node[key], bool):
            out.append(cause(INVALID, f"{where}.{key}", "must be a boolean", node[key]))
    for key in _STRING_LISTS:
        value = node.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            out.append(cause(INVALID, f"{where}.{key}", "must be a list of strings", value))
    for key in ("allOf", "anyOf", "oneOf"):
        if node.get(key) is not None and not isinstance(node[key], list):
            out.append(cause(INVALID, f"{where}.{key}", "must be a list of schemas", node[key]))
    if node.get("enum") is not None and not isinstance(node["enum"], list):
        out.append(cause(INVALID, f"{where}.enum", "must be a list", node["enum"]))
    if node.get("format") is not None and not isinstance(node["format"], str):
        out.append(cause(INVALID, f"{where}.format", "must be a string", node["format"]))
    if node.get("x-kubernetes-list-type") not in (None, *_LIST_TYPES):
        out.append(cause(NOT_SUPPORTED, f"{where}.x-kubernetes-list-type", 'supported values: "atomic", "map", "set"',
                         node["x-kubernetes-list-type"]))  # fmt: skip
    if (pattern := node.get("pattern")) is not None:
        compiled = compiled_pattern(pattern) if isinstance(pattern, str) else "not a string"
        if isinstance(compiled, str):
            detail = f"must be a valid regular expression, but isn't: {compiled}"
            out.append(cause(INVALID, f"{where}.pattern", detail, pattern))
    return out


def _subschemas(node: Any, path: str, fan_out: int) -> Iterator[tuple[str, Any, int]]:
    """Every schema under `node` (itself first) with its path and the checks per value it costs."""
    yield path, node, fan_out
    if not isinstance(node, Mapping):
        return
    for key in ("properties", "patternProperties", "definitions"):
        children = node.get(key)
        if children is None:
            continue
        if not isinstance(children, Mapping):
            yield f"{path}.{key}", children, fan_out
            continue
        for name, sub in children.items():
            yield from _subschemas(sub, f"{path}.{key}[{name}]", fan_out)
    for key in ("items", "additionalItems", "additionalProperties"):
        if node.get(key) is not None and not isinstance(node[key], bool):
            yield from _subschemas(node[key], f"{path}.{key}", fan_out)
    branches = sum(len(node[k]) for k in ("allOf", "anyOf", "oneOf") if isinstance(node.get(k), list))
    inner = fan_out * (1 + branches + (1 if "not" in node else 0))
    if "not" in node:
        yield from _subschemas(node["not"], f"{path}.not", inner)
    for key in ("allOf", "anyOf", "oneOf"):
        value = node.get(key)
        for i, sub in enumerate(value) if isinstance(value, list) else ():
            yield from _subschemas(sub, f"{path}.{key}[{i}]", inner)


_COLUMN_TYPES = ("integer", "number", "string", "boolean", "date")


def column_causes(columns: Any, path: str) -> list[FieldCause]:
    """Every reason `additionalPrinterColumns` cannot be rendered; [] when it can."""
    if columns is None:
        return []
    if not isinstance(columns, list):
        return [cause(INVALID, path, "must be a list of columns", columns)]
    out: list[FieldCause] = []
    for i, col in enumerate(columns):
        where = f"{path}[{i}]"
        if not isinstance(col, Mapping):
            out.append(cause(INVALID, where, "must be an object", col))
            continue
        for key in ("name", "jsonPath"):
            if not isinstance(col.get(key), str) or not col[key]:
                out.append(cause(INVALID, f"{where}.{key}", "must be a non-empty string", col.get(key)))
        if col.get("type", "string") not in _COLUMN_TYPES:
            detail = "supported values: " + ", ".join(f'"{t}"' for t in _COLUMN_TYPES)
            out.append(cause(NOT_SUPPORTED, f"{where}.type", detail, col.get("type")))
        for key in ("format", "description"):
            if col.get(key) is not None and not isinstance(col[key], str):
                out.append(cause(INVALID, f"{where}.{key}", "must be a string", col[key]))
        priority = col.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority < 2**31:
            out.append(cause(INVALID, f"{where}.priority", "must be a non-negative integer", priority))
    return out
