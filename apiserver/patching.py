"""The three PATCH body formats kube-apiserver accepts, applied to plain JSON values.

The PATCH handler picks one by Content-Type:

* `application/merge-patch+json`          -> `merge_patch` (RFC 7386; kubectl patch/label, CRs)
* `application/json-patch+json`           -> `json_patch` (RFC 6902; `kubectl patch --type=json`)
* `application/strategic-merge-patch+json` -> `strategic_merge_patch` (built-in kinds only; kubectl's
  client-side apply and the Python client's `CoreV1Api.patch_*` send it)

All three are pure: they return a new value and never mutate their inputs. A malformed patch document
raises 400 BadRequest; a well-formed JSON patch that does not apply (missing path, failed `test`) raises
422 Invalid, as kube-apiserver does.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from apiserver import errors

__all__ = ["DEFAULT_MERGE_KEYS", "DEFAULT_SET_FIELDS", "json_patch", "merge_patch", "strategic_merge_patch"]

# ------------------------------------------------------------------------------- RFC 7386 merge patch


def merge_patch(target: Any, patch: Any) -> Any:
    """Objects merge recursively, `null` deletes a key, anything else replaces the target."""
    return _merge(copy.deepcopy(target), patch)


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge(target.get(key), value)
    return target


# ------------------------------------------------------------------------------- RFC 6902 JSON patch

_OPS_WITH_VALUE = frozenset({"add", "replace", "test"})
_OPS_WITH_FROM = frozenset({"move", "copy"})
_BAD_ESCAPE = re.compile(r"~(?![01])")


@dataclass(frozen=True)
class _Op:
    name: str
    path: list[str]
    pointer: str
    source: list[str]  # "from", for move and copy
    source_pointer: str
    value: Any


def json_patch(target: Any, ops: Any) -> Any:
    """Apply a list of RFC 6902 operations atomically; the input document is never modified."""
    doc = copy.deepcopy(target)
    for op in _parse_ops(ops):
        doc = _apply(doc, op)
    return doc


def _parse_ops(ops: Any) -> list[_Op]:
    if not isinstance(ops, list):
        raise errors.bad_request("invalid JSON patch: the body must be a JSON array of operations")
    parsed = []
    for i, op in enumerate(ops):
        if not isinstance(op, dict):
            raise errors.bad_request(f"invalid JSON patch: operation {i} is not a JSON object")
        name = op.get("op")
        if name not in _OPS_WITH_VALUE | _OPS_WITH_FROM | {"remove"}:
            raise errors.bad_request(f"invalid JSON patch: operation {i} has unsupported op {name!r}")
        if name in _OPS_WITH_VALUE and "value" not in op:
            raise errors.bad_request(f'invalid JSON patch: operation {i} ("{name}") is missing "value"')
        source = _parse_pointer(op.get("from"), i, "from") if name in _OPS_WITH_FROM else []
        path = _parse_pointer(op.get("path"), i, "path")
        parsed.append(_Op(name, path, op["path"], source, str(op.get("from", "")), op.get("value")))
    return parsed


def _parse_pointer(pointer: Any, index: int, member: str) -> list[str]:
    if not isinstance(pointer, str):
        raise errors.bad_request(f'invalid JSON patch: operation {index} is missing a string "{member}"')
    if pointer == "":
        return []
    if not pointer.startswith("/") or _BAD_ESCAPE.search(pointer):
        raise errors.bad_request(f'invalid JSON patch: operation {index}: "{pointer}" is not a JSON pointer')
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]


def _unprocessable(pointer: str, detail: str) -> errors.ApiError:
    """422 as kube-apiserver answers a patch that does not apply, plus a cause naming the path."""
    cause = {"reason": errors.INVALID[0], "message": detail, "field": pointer}
    message = f"the server rejected our request due to an error in our request: {detail}"
    return errors.ApiError(422, "Invalid", message, {"causes": [cause]})


def _apply(doc: Any, op: _Op) -> Any:
    if op.name == "add":
        return _add(doc, op.path, copy.deepcopy(op.value), op.pointer)
    if op.name == "remove":
        _remove(doc, op.path, op.pointer)
        return doc
    if op.name == "replace":
        return _replace(doc, op.path, copy.deepcopy(op.value), op.pointer)
    source = op.source_pointer
    if op.name == "move":
        if op.source == op.path:
            _get(doc, op.source, source)
            return doc
        if op.path[: len(op.source)] == op.source:
            raise _unprocessable(op.pointer, f'cannot move "{source}" into its own child "{op.pointer}"')
        return _add(doc, op.path, _remove(doc, op.source, source), op.pointer)
    if op.name == "copy":
        return _add(doc, op.path, copy.deepcopy(_get(doc, op.source, source)), op.pointer)
    actual = _get(doc, op.path, op.pointer)  # "test"
    if not _json_equal(actual, op.value):
        raise _unprocessable(op.pointer, f'test operation failed: the value at "{op.pointer}" differs')
    return doc


def _missing(pointer: str) -> errors.ApiError:
    return _unprocessable(pointer, f'the path "{pointer}" does not exist in the document')


def _get(doc: Any, path: list[str], pointer: str) -> Any:
    node = doc
    for token in path:
        if isinstance(node, dict):
            if token not in node:
                raise _missing(pointer)
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(token, len(node), pointer)]
        else:
            raise _missing(pointer)
    return node


def _index(token: str, size: int, pointer: str, *, insert: bool = False) -> int:
    if insert and token == "-":
        return size
    if not (token.isascii() and token.isdigit()) or (len(token) > 1 and token.startswith("0")):
        raise _unprocessable(pointer, f'invalid array index "{token}" in path "{pointer}"')
    index = int(token)
    if index > size or (index == size and not insert):
        raise _unprocessable(pointer, f'array index {index} is out of bounds in path "{pointer}"')
    return index


def _add(doc: Any, path: list[str], value: Any, pointer: str) -> Any:
    if not path:
        return value
    parent = _get(doc, path[:-1], pointer)
    if isinstance(parent, dict):
        parent[path[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(path[-1], len(parent), pointer, insert=True), value)
    else:
        raise _missing(pointer)
    return doc


def _remove(doc: Any, path: list[str], pointer: str) -> Any:
    """Remove the value at `path` (in place) and return it."""
    if not path:
        raise _unprocessable(pointer, "cannot remove the whole document")
    parent = _get(doc, path[:-1], pointer)
    if isinstance(parent, dict) and path[-1] in parent:
        return parent.pop(path[-1])
    if isinstance(parent, list):
        return parent.pop(_index(path[-1], len(parent), pointer))
    raise _missing(pointer)


def _replace(doc: Any, path: list[str], value: Any, pointer: str) -> Any:
    if not path:
        return value
    parent = _get(doc, path[:-1], pointer)
    if isinstance(parent, dict) and path[-1] in parent:
        parent[path[-1]] = value
    elif isinstance(parent, list):
        parent[_index(path[-1], len(parent), pointer)] = value
    else:
        raise _missing(pointer)
    return doc


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true != 1 and key order does not matter."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


# ------------------------------------------------------------------------------- strategic merge patch

# List field -> merge key, from the `patchMergeKey` tags of the built-in Go types. A key may be qualified
# by the enclosing field ("containers.ports"), which wins over the bare field name ("ports").
DEFAULT_MERGE_KEYS: Mapping[str, str] = MappingProxyType({
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "env": "name", "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
    "imagePullSecrets": "name", "secrets": "name", "hostAliases": "ip", "resourceClaims": "name",
    "schedulingGates": "name", "topologySpreadConstraints": "topologyKey",
    "ports": "port", "containers.ports": "containerPort", "initContainers.ports": "containerPort",
    "ephemeralContainers.ports": "containerPort",
    "conditions": "type", "ownerReferences": "uid",
})  # fmt: skip
# Primitive lists merged as a set union (`patchStrategy:"merge"` on a []string).
DEFAULT_SET_FIELDS: frozenset[str] = frozenset({"finalizers"})

_PATCH = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM = "$deleteFromPrimitiveList/"
_ORDER = "$setElementOrder/"


def strategic_merge_patch(
    target: Any,
    patch: Any,
    merge_keys: Mapping[str, str] = DEFAULT_MERGE_KEYS,
    *,
    set_fields: Collection[str] = DEFAULT_SET_FIELDS,
) -> Any:
    """Merge patch plus keyed list merging and the `$patch`, `$retainKeys`,
    `$deleteFromPrimitiveList/…` and `$setElementOrder/…` directives."""
    if not isinstance(patch, dict):
        raise _smp_error("the body must be a JSON object")
    base = copy.deepcopy(target) if isinstance(target, dict) else {}
    return _Strategic(merge_keys, set_fields).merge_map(base, patch, "")


@dataclass(frozen=True)
class _Strategic:
    merge_keys: Mapping[str, str]
    set_fields: Collection[str]

    def merge_key(self, parent: str, field: str) -> str | None:
        return self.merge_keys.get(f"{parent}.{field}") or self.merge_keys.get(field)

    def merge_map(self, original: dict[str, Any], patch: dict[str, Any], parent: str) -> dict[str, Any]:
        """Merge `patch` into `original` (owned by us, modified in place) and return the result."""
        directive = patch.get(_PATCH)
        if directive == "replace":
            return self.merge_map({}, {k: v for k, v in patch.items() if k != _PATCH}, parent)
        if directive == "delete":
            return {}
        if directive is not None:
            raise _smp_error(f"unknown patch type {directive!r} in a map")
        if _RETAIN_KEYS in patch:
            retain = patch[_RETAIN_KEYS]
            if not isinstance(retain, list):
                raise _smp_error(f"{_RETAIN_KEYS} must be a list")
            for key in [k for k in original if k not in retain]:
                del original[key]
        for key, value in patch.items():
            field = key.removeprefix(_DELETE_FROM)
            if field != key and isinstance(value, list) and isinstance(original.get(field), list):
                original[field] = [item for item in original[field] if item not in value]
        for key, value in patch.items():
            if key.startswith("$"):
                continue
            if value is None or (isinstance(value, dict) and value.get(_PATCH) == "delete"):
                original.pop(key, None)
            elif isinstance(value, dict):
                current = original.get(key)
                original[key] = self.merge_map(current if isinstance(current, dict) else {}, value, key)
            elif isinstance(value, list):
                original[key] = self.merge_list(original.get(key), value, parent, key)
            else:
                original[key] = value
        for key, order in patch.items():
            field = key.removeprefix(_ORDER)
            if field != key and isinstance(order, list) and isinstance(original.get(field), list):
                original[field] = _reorder(original[field], order, self.merge_key(parent, field))
        return original

    def merge_list(self, original: Any, patch: list[Any], parent: str, field: str) -> list[Any]:
        current: list[Any] = original if isinstance(original, list) else []
        key = self.merge_key(parent, field)
        replace = False
        deleted: list[Any] = []
        items: list[Any] = []
        for element in patch:
            directive = element.get(_PATCH) if isinstance(element, dict) else None
            if directive == "replace":
                replace = True
            elif directive == "delete":
                deleted.append(_merge_key_value(element, key))
            elif directive is not None:
                raise _smp_error(f"unknown patch type {directive!r} in {field}")
            else:
                items.append(element)
        if replace:
            return [self.merge_map({}, e, field) if isinstance(e, dict) else copy.deepcopy(e) for e in items]
        if key is not None and all(isinstance(e, dict) for e in items):
            result = [e for e in current if not (isinstance(e, dict) and key in e and e[key] in deleted)]
            for element in items:
                value = _merge_key_value(element, key)
                match = [i for i, e in enumerate(result) if isinstance(e, dict) and e.get(key) == value]
                if match:
                    result[match[0]] = self.merge_map(result[match[0]], element, field)
                else:
                    result.append(self.merge_map({}, element, field))
            return result
        if field in self.set_fields:
            result = list(current)
            for element in items:
                if element not in result:
                    result.append(copy.deepcopy(element))
            return result
        return [self.merge_map({}, e, field) if isinstance(e, dict) else copy.deepcopy(e) for e in items]


def _merge_key_value(element: dict[str, Any], key: str | None) -> Any:
    if key is None or key not in element:
        raise _smp_error(f"{element} does not contain declared merge key: {key}")
    return element[key]


def _smp_error(detail: str) -> errors.ApiError:
    return errors.bad_request(f"strategic merge patch: {detail}")


def _reorder(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    """Sort `items` into the order `$setElementOrder` gives; unlisted items keep their order at the end."""

    def ident(element: Any) -> Any:
        return element.get(key) if key is not None and isinstance(element, dict) else element

    wanted = [ident(o) for o in order]

    def rank(element: Any) -> int:
        value = ident(element)
        return next((i for i, w in enumerate(wanted) if w == value), len(wanted))

    return sorted(items, key=rank)
