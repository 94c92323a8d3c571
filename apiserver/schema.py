"""Enforce a CustomResourceDefinition's `openAPIV3Schema` on custom resources, as kube-apiserver does.

On every write the server runs, in this order:

* `prune` - drop fields the schema does not declare (structural pruning);
* `default` - drop non-nullable nulls and fill in `default` values;
* `validate` - check the result, returning `FieldCause`s worded exactly like kube-apiserver's
  (go-openapi messages via k8s.io/kube-openapi), which the caller turns into a 422 Invalid.

The root's `apiVersion`, `kind` and `metadata` belong to the server and are left alone.
CEL rules (`x-kubernetes-validations`) are not evaluated. `pattern` is matched with RE2 (Go's
regexp semantics, linear in the input: no pattern can make a check backtrack for long); a
schema is checked for well-formedness when its CRD is registered (`schemacheck.py`).
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import re2

from apiserver.errors import (
    DUPLICATE,
    INVALID,
    NOT_SUPPORTED,
    REQUIRED,
    TOO_LONG,
    TOO_MANY,
    TYPE_INVALID,
    FieldCause,
    cause,
)

Schema = Mapping[str, Any]
Causes = list[FieldCause]

_META = frozenset({"apiVersion", "kind", "metadata"})
_NO_SKIP: frozenset[str] = frozenset()
_PRESERVE = "x-kubernetes-preserve-unknown-fields"
_EMBEDDED = "x-kubernetes-embedded-resource"
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
# strfmt's IsDateTime: a calendar date, "T", hh:mm:ss, optional fraction, then Z or +hh:mm.
_DATE_TIME = re.compile(r"(\d{4}-\d\d-\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.\d+)?(?:[Zz]|[+-]\d\d:\d\d)", re.A)
_JSON_TYPES = {
    bool: "boolean", int: "integer", float: "number", str: "string", dict: "object", list: "array",
    type(None): "null",
}  # fmt: skip
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.never_capture = True  # a yes/no answer is all validation needs
_UNANCHORED, _NO_MATCH = re2._Anchor.UNANCHORED, re2._NULL_SPAN


# ---------------------------------------------------------------- pruning


def prune(obj: dict[str, Any], schema: Mapping[str, Any]) -> None:
    """Drop, in place, every field `schema` does not declare (the root is an embedded resource)."""
    _prune(obj, schema, embedded=True)


def _prune(x: Any, s: Schema | None, embedded: bool = False, keep: bool = False) -> None:
    """Structural pruning of `x` against `s`. Under x-kubernetes-preserve-unknown-fields (`keep`,
    which also covers the node's array items) unknown fields stay, but declared ones are pruned."""
    keep = keep or (s is not None and bool(s.get(_PRESERVE)))
    if isinstance(x, dict):
        if s is None:
            if not keep:
                x.clear()
            return
        embedded = embedded or bool(s.get(_EMBEDDED))
        props: Schema = s.get("properties") or {}
        extra = s.get("additionalProperties")
        for k in list(x):
            if embedded and k in _META:
                continue
            if k in props:
                _prune(x[k], props[k])
            elif isinstance(extra, Mapping):
                _prune(x[k], extra)
            elif not keep and extra is not True:
                del x[k]
    elif isinstance(x, list):
        items = s.get("items") if s is not None else None
        if items is not None or not keep:
            for v in x:
                _prune(v, items, keep=keep)


# ---------------------------------------------------------------- defaulting


def default(obj: dict[str, Any], schema: Mapping[str, Any]) -> None:
    """Apply, in place, the schema's defaults; non-nullable nulls are defaulted or removed."""
    _default(obj, schema, _META)


def _default(x: Any, s: Schema, skip: frozenset[str] = _NO_SKIP) -> None:
    """kube's PruneNonNullableNullsWithoutDefaults then Default, in one walk."""
    if isinstance(x, dict):
        props: Schema = s.get("properties") or {}
        extra = s.get("additionalProperties")
        extra = extra if isinstance(extra, Mapping) else None
        for k, v in list(x.items()):
            sub = props.get(k, extra)
            if k in skip or sub is None:
                continue
            if v is None and not sub.get("nullable"):
                if sub.get("default") is None:
                    del x[k]
                    continue
                x[k] = copy.deepcopy(sub["default"])
        for k, sub in props.items():
            if k not in x and k not in skip and sub.get("default") is not None:
                x[k] = copy.deepcopy(sub["default"])
        for k, v in x.items():
            sub = props.get(k, extra)
            if k not in skip and sub is not None:
                _default(v, sub)
    elif isinstance(x, list) and isinstance(items := s.get("items"), Mapping):
        for i, v in enumerate(x):
            if v is None and not items.get("nullable") and items.get("default") is not None:
                x[i] = copy.deepcopy(items["default"])
            _default(x[i], items)


# ---------------------------------------------------------------- validation


def validate(obj: Mapping[str, Any], schema: Mapping[str, Any]) -> list[FieldCause]:
    """Every way `obj` breaks `schema`, except inside the root's apiVersion, kind and metadata."""
    out: Causes = []
    _check_object(obj, schema, "", out, _META)
    return out


def _check(v: Any, s: Schema, path: str, out: Causes) -> None:
    """One value against one schema node, in go-openapi's order: type, anyOf/allOf/oneOf/not,
    string, number, array, enum, object."""
    types = _types(s)
    if v is None:
        if types and not s.get("nullable"):
            out.append(_type_error(path, types, "null"))
        _check_enum(v, s, path, out)
        return
    actual = _json_type(v)
    if types and not (
        actual in types
        or (actual == "number" and "integer" in types and float(v).is_integer())
        or (actual == "integer" and "number" in types)
    ):
        out.append(_type_error(path, types, actual))
    if "allOf" in s or "anyOf" in s or "oneOf" in s or "not" in s:
        _check_combinators(v, s, path, out)
    if actual == "string":
        _check_string(v, s, path, out)
    elif actual in ("integer", "number"):
        _check_number(v, s, path, out)
    elif actual == "array":
        _check_array(v, s, path, out)
    _check_enum(v, s, path, out)
    if actual == "object":
        _check_object(v, s, path, out)


def _check_string(v: str, s: Schema, path: str, out: Causes) -> None:
    # go-openapi stops at the first of maxLength, minLength, pattern that fails.
    if (most := s.get("maxLength")) is not None and len(v) > most:
        out.append(cause(TOO_LONG, path, f"may not be more than {most} bytes", show_value=False))
    elif (least := s.get("minLength")) is not None and len(v) < least:
        out.append(cause(INVALID, path, f"{path} in body should be at least {least} chars long", v))
    elif (pattern := s.get("pattern")) is not None and not _matches(pattern, v):
        out.append(cause(INVALID, path, f"{path} in body should match '{pattern}'", v))
    if (fmt := s.get("format")) and not _format_ok(fmt, v):
        out.append(cause(TYPE_INVALID, path, f"{path} in body must be of type {fmt}: {_json(v)}", v))


def _check_number(v: float, s: Schema, path: str, out: Causes) -> None:
    fmt = s.get("format")
    if fmt in _INT_RANGES and (isinstance(v, int) or v.is_integer()):
        low, high = _INT_RANGES[fmt]
        if not low <= v <= high:
            out.append(cause(TYPE_INVALID, path, f'{path} in body must be of type {fmt}: "{v}"', v))
    # Like go-openapi, an integer value is compared with int64(bound), a float with the float bound.
    is_int = isinstance(v, int)
    if (factor := s.get("multipleOf")) is not None and not _is_multiple(v, factor):
        text = f"{path} in body should be a multiple of {_bound(factor, is_int)}"
        out.append(cause(INVALID, path, text, v))
    for key, word in (("minimum", "greater than"), ("maximum", "less than")):
        if (limit := s.get(key)) is None:
            continue
        bound = int(limit) if is_int else float(limit)
        exclusive = bool(s.get("exclusive" + key.capitalize()))
        if (v < bound if key == "minimum" else v > bound) or (exclusive and v == bound):
            rel = word if exclusive else f"{word} or equal to"
            out.append(cause(INVALID, path, f"{path} in body should be {rel} {_bound(bound, is_int)}", v))


def _check_array(v: list[Any], s: Schema, path: str, out: Causes) -> None:
    if isinstance(items := s.get("items"), Mapping):
        for i, item in enumerate(v):
            _check(item, items, f"{path}[{i}]", out)
    if (least := s.get("minItems")) is not None and len(v) < least:
        out.append(cause(INVALID, path, f"{path} in body should have at least {least} items", len(v)))
    if (most := s.get("maxItems")) is not None and len(v) > most:
        out.append(_too_many(path, len(v), most))
    if s.get("uniqueItems") and len({_json(x) for x in v}) < len(v):
        out.append(cause(INVALID, path, f"{path} in body shouldn't contain duplicates", ""))
    list_type = s.get("x-kubernetes-list-type")
    if list_type == "set":
        for i in _repeats([_json(x) for x in v]):
            out.append(cause(DUPLICATE, f"{path}[{i}]", value=v[i]))
    elif list_type == "map":
        _check_list_map(v, s.get("x-kubernetes-list-map-keys") or [], path, out)


def _check_list_map(v: list[Any], keys: list[str], path: str, out: Causes) -> None:
    for i, x in enumerate(v):
        if x is not None and not isinstance(x, Mapping):
            out.append(cause(INVALID, f"{path}[{i}]", "must be an object for an array of list-type map", x))
            return
    entries = [{k: x[k] for k in keys if k in x} if x else {} for x in v]
    for i in _repeats([_json(e) for e in entries]):
        # kube prints the key map with Go's %#v: map[string]interface {}{"name":"a"}
        shown = ", ".join(f"{_json(k)}:{_json(entries[i][k])}" for k in sorted(entries[i]))
        message = f"{DUPLICATE[1]}: map[string]interface {{}}{{{shown}}}"
        out.append(FieldCause(f"{path}[{i}]", DUPLICATE[0], message))


def _check_enum(v: Any, s: Schema, path: str, out: Causes) -> None:
    allowed = s.get("enum")
    if allowed and not any(_same(v, a) for a in allowed):
        shown = ", ".join(_json(a if isinstance(a, str) else _json(a)) for a in allowed)
        out.append(cause(NOT_SUPPORTED, path, f"supported values: {shown}", v))


def _check_object(v: Mapping[str, Any], s: Schema, path: str, out: Causes, skip: frozenset[str] = _NO_SKIP) -> None:
    # go-openapi stops looking inside an object with too few or too many properties.
    if (least := s.get("minProperties")) is not None and len(v) < least:
        out.append(cause(INVALID, path, f"{path} in body should have at least {least} properties", len(v)))
        return
    if (most := s.get("maxProperties")) is not None and len(v) > most:
        out.append(_too_many(path, len(v), most))
        return
    props: Schema = s.get("properties") or {}
    extra = s.get("additionalProperties")
    for k, value in v.items():
        if k in skip:
            continue
        if k in props:
            _check(value, props[k], _child(path, k), out)
        elif isinstance(extra, Mapping):
            _check(value, extra, f"{path}[{k}]", out)
        elif extra is False:
            out.append(cause(INVALID, path, f"{path}.{k} in body is a forbidden property", k))
    for k in s.get("required") or ():
        if k not in v and k not in skip:
            out.append(cause(REQUIRED, _child(path, k)))


def _check_combinators(v: Any, s: Schema, path: str, out: Causes) -> None:
    """allOf/anyOf/oneOf/not, reported like go-openapi: a summary cause with no field (its message
    names the path) plus the causes of the alternative that came closest."""

    def summary(text: str) -> FieldCause:
        return cause(INVALID, "", f'"{path}" {text}', "")

    def run(sub: Schema) -> Causes:
        found: Causes = []
        _check(v, sub, path, found)
        return found

    def closest(results: list[Causes]) -> Causes:
        return min(results, key=len)

    if any_of := s.get("anyOf"):
        results = [run(sub) for sub in any_of]
        if all(results):
            out.append(summary("must validate at least one schema (anyOf)"))
            out.extend(closest(results))
    if one_of := s.get("oneOf"):
        results = [run(sub) for sub in one_of]
        valid = sum(not r for r in results)
        if valid != 1:
            found = f"Found {valid} valid alternatives" if valid else "Found none valid"
            out.append(summary(f"must validate one and only one schema (oneOf). {found}"))
        if valid == 0:
            out.extend(closest(results))
    if all_of := s.get("allOf"):
        results = [run(sub) for sub in all_of]
        for r in results:
            out.extend(r)
        if failed := sum(bool(r) for r in results):
            none = ". None validated" if failed == len(results) else ""
            out.append(summary(f"must validate all the schemas (allOf){none}"))
    if isinstance(not_schema := s.get("not"), Mapping) and not run(not_schema):
        out.append(summary("must not validate the schema (not)"))


# ---------------------------------------------------------------- helpers


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _types(s: Schema) -> tuple[str, ...]:
    if s.get("x-kubernetes-int-or-string"):
        return ("integer", "string")
    return (s["type"],) if s.get("type") else ()


def _json_type(v: Any) -> str:
    if name := _JSON_TYPES.get(type(v)):
        return name
    return "object" if isinstance(v, Mapping) else "array" if isinstance(v, list) else type(v).__name__


def _type_error(path: str, types: tuple[str, ...], actual: str) -> FieldCause:
    expected = ",".join(types)
    return cause(TYPE_INVALID, path, f'{path} in body must be of type {expected}: "{actual}"', actual)


def _too_many(path: str, actual: int, most: int) -> FieldCause:
    # field.TooMany shows the actual count, which errors.cause() leaves out for TOO_MANY.
    return FieldCause(path, TOO_MANY[0], f"{TOO_MANY[1]}: {actual}: must have at most {most} items")


def _same(v: Any, allowed: Any) -> bool:
    """JSON equality: 1 == 1.0, but true != 1."""
    kind, other = _json_type(v), _json_type(allowed)
    numbers = ("integer", "number")
    return (kind == other or (kind in numbers and other in numbers)) and bool(v == allowed)


@functools.lru_cache(maxsize=1024)
def compiled_pattern(pattern: str) -> Any:
    """The RE2 program for `pattern`, or the compile error's text."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        return str(exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc)


def _matches(pattern: str, v: str) -> bool:
    """Go's regexp.MatchString with RE2; a pattern RE2 cannot compile (only in a CRD stored before
    patterns were checked at registration) matches nothing, so the write is refused, not waved through."""
    compiled = compiled_pattern(pattern)
    if isinstance(compiled, str):
        return False
    # The wrapper's search() builds a Match object in Python (~15 us); the program's own Match is
    # ten times cheaper, which counts when a body holds 100 000 strings.
    text = v.encode("utf-8", "surrogatepass")
    return bool(compiled._regexp.Match(_UNANCHORED, text, 0, len(text))[0] != _NO_MATCH)


def _format_ok(fmt: str, v: str) -> bool:
    """The string formats checked: date-time (as strfmt's IsDateTime) and byte (standard base64)."""
    try:
        if fmt == "date-time":
            m = _DATE_TIME.fullmatch(v)
            datetime.strptime(m[1] if m else "", "%Y-%m-%d")  # a real calendar date
            return m is not None and int(m[2]) <= 23 and int(m[3]) <= 59 and int(m[4]) <= 59
        if fmt == "byte":
            base64.b64decode(v.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_multiple(v: float, factor: float) -> bool:
    if isinstance(v, int) and float(factor).is_integer() and factor:
        return v % int(factor) == 0
    try:
        ratio = v / factor if factor >= 1 else (1 / factor) * v
        return math.isclose(ratio, round(ratio), rel_tol=1e-9, abs_tol=1e-9)
    except (ZeroDivisionError, OverflowError):  # a zero factor; an integer beyond float range
        return True


def _repeats(keys: list[str]) -> list[int]:
    """Indexes of each key's second appearance, as kube's list-type validation reports them."""
    seen: dict[str, int] = {}
    repeats = []
    for i, k in enumerate(keys):
        seen[k] = seen.get(k, 0) + 1
        if seen[k] == 2:
            repeats.append(i)
    return repeats


def _json(v: Any) -> str:
    """Canonical compact JSON; also how Go quotes a string (%q) and prints a scalar (%#v)."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        v = int(v)
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False, sort_keys=True, default=str)


def _bound(b: float, as_int: bool) -> str:
    return str(int(b)) if as_int else _go_float(float(b))


def _go_float(f: float) -> str:
    """A float64 as Go's %v prints it: shortest digits, exponent form from 1e+06 and below 1e-04."""
    d = Decimal(repr(f)).normalize()
    if -4 <= d.adjusted() < 6:
        return format(d, "f")
    mantissa, exp = format(d, "e").split("e")
    return f"{mantissa}e{int(exp):+03d}"
