"""Label and field selectors: parsed from `labelSelector`/`fieldSelector` query strings, matched on objects.

Label selectors follow k8s.io/apimachinery/pkg/labels: requirements joined by `,` (AND), each one of
`key=v`, `key==v`, `key!=v`, `key in (a,b)`, `key notin (a,b)`, `key` (exists), `!key` (does not exist),
`key>N`, `key<N`. Keys may carry a DNS prefix (`example.com/name`); whitespace between tokens is ignored.
`label_selector_from_dict` builds the same thing from a metav1.LabelSelector (matchLabels/matchExpressions).

Field selectors follow k8s.io/apimachinery/pkg/fields: `field=v`, `field==v`, `field!=v` joined by `,`,
with `\\`, `\\,` and `\\=` escapes in values. A field name is a dotted path into the object
(`metadata.name`, `involvedObject.kind`); a missing field reads as "". Which field names a kind supports
is the caller's decision (`FieldSelector.fields()`).

Syntax errors raise 400 BadRequest worded like kube-apiserver's parser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from apiserver import errors

__all__ = [
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "field_value",
    "label_selector_from_dict",
    "parse_field_selector",
    "parse_label_selector",
]

# ------------------------------------------------------------------------------- label selectors

_SET_OPS = ("in", "notin")
_VALUE_OPS = ("=", "==", "!=", ">", "<")
_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NAME_RULE = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
)


@dataclass(frozen=True)
class Requirement:
    """One label requirement; `operator` is one of `= == != in notin exists ! > <`."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator in ("=", "==", "in"):
            return present and value in self.values
        if self.operator in ("!=", "notin"):
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if value is None or not _INTEGER.fullmatch(value):
            return False
        return int(value) > int(self.values[0]) if self.operator == ">" else int(value) < int(self.values[0])

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return f"!{self.key}"
        if self.operator in _SET_OPS:
            return f"{self.key} {self.operator} ({','.join(self.values)})"
        return f"{self.key}{self.operator}{self.values[0]}"


class LabelSelector:
    """A conjunction of label requirements; the empty selector matches everything."""

    def __init__(self, requirements: Iterable[Requirement] = ()) -> None:
        self.requirements: tuple[Requirement, ...] = tuple(requirements)

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        return all(r.matches(labels or {}) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return f"LabelSelector({str(self)!r})"


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse a `labelSelector` query value; None or blank gives the empty (match-all) selector."""
    try:
        return LabelSelector(_LabelParser(text or "").parse())
    except ValueError as exc:
        raise errors.bad_request(str(exc)) from None


def label_selector_from_dict(sel: Mapping[str, Any]) -> LabelSelector:
    """Build a selector from a metav1.LabelSelector dict; `{}` matches everything."""
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    try:
        requirements = [_requirement(k, "=", [v]) for k, v in (sel.get("matchLabels") or {}).items()]
        for expr in sel.get("matchExpressions") or []:
            if not isinstance(expr, Mapping):
                raise ValueError("matchExpressions entries must be objects")
            operator = operators.get(str(expr.get("operator")))
            if operator is None:
                raise ValueError(f"{expr.get('operator')!r} is not a valid label selector operator")
            requirements.append(_requirement(expr.get("key"), operator, expr.get("values") or []))
    except ValueError as exc:
        raise errors.bad_request(str(exc)) from None
    return LabelSelector(requirements)


def _requirement(key: Any, operator: str, values: list[Any]) -> Requirement:
    """Validate like labels.NewRequirement and build the requirement (ValueError on a problem)."""
    if not isinstance(key, str) or not all(isinstance(v, str) for v in values):
        raise ValueError("label selector keys and values must be strings")
    problem = _key_problem(key)
    if problem:
        raise ValueError(str(errors.cause(errors.INVALID, "key", problem, key)))
    if operator in _SET_OPS and not values:
        raise ValueError("values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty")
    if operator in ("=", "==", "!=") and len(values) != 1:
        raise ValueError("values: Invalid value: exact-match compatibility requires one single value")
    if operator in ("exists", "!") and values:
        raise ValueError("values: Forbidden: values set must be empty for exists and does not exist")
    for i, value in enumerate(values):
        if operator in (">", "<") and not _INTEGER.fullmatch(value):
            detail = "for 'Gt', 'Lt' operators, the value must be an integer"
            raise ValueError(str(errors.cause(errors.INVALID, f"values[{i}]", detail, value)))
        if len(value) > 63 or (value and not _NAME.fullmatch(value)):
            detail = f"a valid label must be an empty string or {_NAME_RULE}, and at most 63 characters"
            raise ValueError(str(errors.cause(errors.INVALID, f"values[{i}]", detail, value)))
    return Requirement(key, operator, tuple(sorted(set(values))))


def _key_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return "prefix part must be non-empty"
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    return None if _NAME.fullmatch(name) else f"name part {_NAME_RULE}"


_SPECIAL = "=!(),<>"


def _tokenize(text: str) -> list[tuple[str, str]]:
    """Split into (kind, literal); kind is the symbol itself, `in`/`notin`, `id` or `end`."""
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
        elif text[i : i + 2] in ("==", "!="):
            tokens.append((text[i : i + 2], text[i : i + 2]))
            i += 2
        elif text[i] in _SPECIAL:
            tokens.append((text[i], text[i]))
            i += 1
        else:
            start = i
            while i < len(text) and not text[i].isspace() and text[i] not in _SPECIAL:
                i += 1
            word = text[start:i]
            tokens.append((word if word in _SET_OPS else "id", word))
    tokens.append(("end", ""))
    return tokens


class _LabelParser:
    """Recursive-descent parser mirroring labels.Parser, including its error messages."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self, *, keywords: bool = False) -> tuple[str, str]:
        kind, literal = self.tokens[self.pos]
        return ("id" if kind in _SET_OPS and not keywords else kind), literal

    def take(self, *, keywords: bool = False) -> tuple[str, str]:
        token = self.peek(keywords=keywords)
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return token

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            kind, literal = self.peek()
            if kind == "end":
                return requirements
            if kind not in ("id", "!"):
                raise ValueError(f"found '{literal}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self.requirement())
            except ValueError as exc:
                raise ValueError(f"unable to parse requirement: {exc}") from None
            kind, literal = self.take()
            if kind == "end":
                return requirements
            if kind != ",":
                raise ValueError(f"found '{literal}', expected: ',' or 'end of string'")
            kind, literal = self.peek()
            if kind not in ("id", "!"):
                raise ValueError(f"found '{literal}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        negated = self.peek()[0] == "!"
        if negated:
            self.take()
        kind, key = self.take()
        if kind != "id":
            raise ValueError(f"found '{key}', expected: identifier")
        if negated:
            return _requirement(key, "!", [])
        if self.peek()[0] in ("end", ","):
            return _requirement(key, "exists", [])
        operator, literal = self.take(keywords=True)
        if operator in _SET_OPS:
            return _requirement(key, operator, self.value_set())
        if operator in _VALUE_OPS:
            return _requirement(key, operator, [self.exact_value()])
        raise ValueError(f"found '{literal}', expected: in, notin, =, ==, !=, gt, lt")

    def exact_value(self) -> str:
        if self.peek()[0] in ("end", ","):
            return ""
        kind, literal = self.take()
        if kind != "id":
            raise ValueError(f"found '{literal}', expected: identifier")
        return literal

    def value_set(self) -> list[str]:
        kind, literal = self.take()
        if kind != "(":
            raise ValueError(f"found '{literal}', expected: '('")
        kind, literal = self.peek()
        if kind == ")":
            self.take()
            return [""]
        if kind not in ("id", ","):
            raise ValueError(f"found '{literal}', expected: ',', ')' or identifier")
        values: list[str] = []
        expecting_value = True
        while True:
            kind, literal = self.take()
            if kind == "id" and expecting_value:
                values.append(literal)
                expecting_value = False
            elif kind in (",", ")"):
                if expecting_value:
                    values.append("")  # `(,a)`, `(a,,b)` and `(a,)` all carry an empty value
                if kind == ")":
                    return values
                expecting_value = True
            else:
                raise ValueError(f"found '{literal}', expected: ',' or ')'")


# ------------------------------------------------------------------------------- field selectors


@dataclass(frozen=True)
class FieldRequirement:
    """`field <operator> value` with operator `=`, `==` or `!=`."""

    field: str
    operator: str
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return (field_value(obj, self.field) == self.value) != (self.operator == "!=")

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        return f"{self.field}{self.operator}{escaped}"


class FieldSelector:
    """A conjunction of field requirements; the empty selector matches everything."""

    def __init__(self, requirements: Iterable[FieldRequirement] = ()) -> None:
        self.requirements: tuple[FieldRequirement, ...] = tuple(requirements)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def fields(self) -> set[str]:
        return {r.field for r in self.requirements}

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The value at dotted `path` as a selector compares it: strings as-is, missing/null as ""."""
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return ""
        node = node[part]
    if node is None:
        return ""
    return node if isinstance(node, str) else json.dumps(node, separators=(",", ":"))


def parse_field_selector(text: str | None) -> FieldSelector:
    """Parse a `fieldSelector` query value; None or "" gives the empty (match-all) selector."""
    requirements = []
    for term in _split_unescaped(text or ""):
        if not term:
            continue
        match = re.search("!=|==|=", term)
        if match is None:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        value = _unescape(term[match.end() :])
        requirements.append(FieldRequirement(term[: match.start()], match.group(), value))
    return FieldSelector(requirements)


def _split_unescaped(text: str) -> list[str]:
    """Split on commas that are not preceded by an escaping backslash."""
    terms: list[str] = []
    start, escaped = 0, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _unescape(value: str) -> str:
    out: list[str] = []
    escaped = False
    for ch in value:
        if escaped:
            if ch not in "\\,=!":
                raise errors.bad_request(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            raise errors.bad_request(f"invalid field selector: unescaped character in value: {ch}")
        else:
            out.append(ch)
    if escaped:
        raise errors.bad_request("invalid field selector: invalid escape sequence: \\")
    return "".join(out)
