"""Request decoding for the Kubernetes REST API: paths, accepted representations and query options.

Maps `/api/v1/namespaces/ns/secrets/x/status` and `/apis/g/v/...` onto a `Target` (resource type,
version, namespace, name, subresource), decides what the client accepts (plain JSON, Table,
PartialObjectMetadata) and checks the query parameters as kube-apiserver parses them: integers
(`limit`, `timeoutSeconds`, `gracePeriodSeconds`) must be non-negative int64s, `resourceVersion`
an unsigned integer, enumerations one of their values; anything else is a 400 `BadRequest`.
Bodies are decoded in `decoding.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apiserver import errors
from apiserver.resources import Registry, ResourceType

_INT64 = re.compile(r"[+-]?[0-9]{1,19}")
_UINT64 = re.compile(r"[0-9]{1,20}")
_INT_PARAMS = ("limit", "timeoutSeconds", "gracePeriodSeconds")
_CHOICES = {
    "fieldValidation": ("", "Ignore", "Warn", "Strict"),
    "propagationPolicy": ("", "Orphan", "Background", "Foreground"),
    "resourceVersionMatch": ("", "NotOlderThan", "Exact"),
    "includeObject": ("", "None", "Metadata", "Object"),
}


@dataclass(frozen=True)
class Target:
    rt: ResourceType
    version: str
    namespace: str  # "" = cluster-scoped, or all namespaces for a namespaced collection
    name: str
    subresource: str

    @property
    def is_collection(self) -> bool:
        return not self.name


def resolve(registry: Registry, path: str) -> Target | None:
    """None when the path is not a resource path (discovery and friends are handled elsewhere)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api" and parts[1] == "v1":
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        rt = registry.lookup(group, version, rest[2])
        if rt is not None and rt.namespaced:
            namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        raise errors.path_not_found()
    rt = registry.lookup(group, version, rest[0])
    if rt is None:
        raise errors.path_not_found()
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if sub and not ((sub == "status" and rt.has_status) or sub in rt.subresources):
        raise errors.path_not_found()
    if namespace and not rt.namespaced:
        raise errors.path_not_found()
    return Target(rt, version, namespace, name, sub)


@dataclass(frozen=True)
class Accept:
    table: bool = False
    partial: bool = False  # PartialObjectMetadata(List)


def negotiate(accept: str) -> Accept:
    """Pick the first representation we can produce, in the client's order of preference."""
    for raw in accept.split(","):
        part = raw.replace(" ", "")
        if "as=Table" in part and "g=meta.k8s.io" in part:
            return Accept(table=True)
        if "as=PartialObjectMetadata" in part and "g=meta.k8s.io" in part:
            return Accept(partial=True)
        media = part.split(";")[0]
        if media in ("application/json", "*/*", "application/*", "application/yaml", ""):
            return Accept()
    return Accept()


def dry_run(values: list[str]) -> bool:
    for v in values:
        if v != "All":
            raise errors.bad_request(f'Invalid dry run value: "{v}" (supported: "All")')
    return bool(values)


def check_kind(rt: ResourceType, version: str, body: Any) -> None:
    """A body's apiVersion/kind, when given, must name the resource of the URL."""
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request must be a JSON or YAML object")
    api_version, kind = body.get("apiVersion"), body.get("kind")
    for field, value in (("apiVersion", api_version), ("kind", kind)):
        if value is not None and not isinstance(value, str):
            raise errors.bad_request(f"{field} must be a string, not {type(value).__name__}")
    if kind and kind != rt.kind:
        raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
    if api_version and api_version not in {rt.api_version(v) for v in rt.versions}:
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API version "
            f"({rt.api_version(version)})"
        )


def check_query(query: Mapping[str, str]) -> None:
    """400 on a query parameter kube-apiserver would refuse to parse (every value given is checked)."""
    for name in _INT_PARAMS:
        if name in query:
            int_param(query, name)
    rv = query.get("resourceVersion", "")
    if rv and (not _UINT64.fullmatch(rv) or int(rv) >= 2**64):
        raise errors.bad_request(f'resourceVersion: Invalid value: "{rv}": must be an unsigned integer')
    for name, allowed in _CHOICES.items():
        value = query.get(name, "")
        if value not in allowed:
            shown = ", ".join(f'"{a}"' for a in allowed if a)
            raise errors.bad_request(f'{name}: Unsupported value: "{value}": supported values: {shown}')
    if query.get("resourceVersionMatch") and not rv:
        raise errors.bad_request("resourceVersionMatch is forbidden unless resourceVersion is provided")


def int_param(query: Mapping[str, str], name: str) -> int | None:
    """A non-negative int64 query parameter, None when absent or empty."""
    raw = query.get(name, "")
    if not raw:
        return None
    if not _INT64.fullmatch(raw) or not 0 <= int(raw) < 2**63:
        raise errors.bad_request(f'{name}: Invalid value: "{raw}": must be a non-negative integer')
    return int(raw)


def delete_options(decoded: Any) -> dict[str, Any]:
    """A DeleteOptions body, type-checked as Go's decoder would (400 on a field of the wrong type)."""
    if not isinstance(decoded, dict):
        raise errors.bad_request("DeleteOptions must be an object")
    problems = []
    grace = decoded.get("gracePeriodSeconds")
    if grace is not None and (isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace < 2**63):
        problems.append("gracePeriodSeconds must be a non-negative integer")
    if decoded.get("orphanDependents") is not None and not isinstance(decoded["orphanDependents"], bool):
        problems.append("orphanDependents must be a boolean")
    if not isinstance(decoded.get("propagationPolicy") or "", str):
        problems.append("propagationPolicy must be a string")
    elif (decoded.get("propagationPolicy") or "") not in _CHOICES["propagationPolicy"]:
        problems.append(f'Unsupported propagationPolicy: {decoded["propagationPolicy"]}')
    dry = decoded.get("dryRun")
    if dry is not None and (not isinstance(dry, list) or not all(isinstance(d, str) for d in dry)):
        problems.append("dryRun must be a list of strings")
    pre = decoded.get("preconditions")
    if pre is not None and (
        not isinstance(pre, dict) or not all(isinstance(pre.get(k) or "", str) for k in ("uid", "resourceVersion"))
    ):
        problems.append("preconditions must be an object of strings (uid, resourceVersion)")
    if problems:
        raise errors.bad_request("invalid DeleteOptions: " + "; ".join(problems))
    return decoded
